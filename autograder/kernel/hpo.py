"""Kernel-side drivers for chapter 12: they build the callables (an ``evaluate`` for successive
halving, an objective ``f`` for Bayesian optimization) from plain data, record every call the
notebook's function makes, and return the calls beside the function's own result.

A learning-curve table travels as ``{"a": [...], "b": [...], "c": [...]}``: configuration k at
resource r has loss ``a[k] + b[k] * r**(-c[k])`` (curves that cross when b and c differ).
An objective travels as ``{"kind": "branin"}`` or ``{"kind": "bowl", "center": [...],
"scale": [...]}`` (``sum(scale * (x - center)**2)``).
"""

import math

import numpy as np


class RuleBroken(Exception):
    """The notebook's code broke a rule its prompt states (the grader reports it as failed)."""


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RuleBroken(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


def successive_halving(ns, curves, num_configs, min_resource, eta, num_rungs=None):
    """The notebook's ``successive_halving`` on configs ``{"id": k}``, k < ``num_configs``,
    with ``evaluate`` reading the curve table. Returns ``{"best": id, "history": [[k, r,
    loss], ...], "calls": [[id, r], ...]}``."""
    a, b, c = (np.asarray(curves[key], dtype=np.float64) for key in ("a", "b", "c"))
    calls = []

    def evaluate(config, resource):
        if not isinstance(config, dict) or "id" not in config:
            raise RuleBroken("evaluate was called with something other than one of the configs")
        r = _number(resource, "the resource passed to evaluate")
        if not r > 0:
            raise RuleBroken("evaluate was called with a resource that is not positive")
        k = int(config["id"])
        calls.append([k, r])
        return float(a[k] + b[k] * r ** (-c[k]))

    configs = [{"id": k} for k in range(int(num_configs))]
    if num_rungs is None:
        out = ns["successive_halving"](evaluate, configs, min_resource, eta)
    else:
        out = ns["successive_halving"](evaluate, configs, min_resource, eta, num_rungs)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise RuleBroken("successive_halving must return a pair (best_config, history)")
    best, history = out
    if configs != [{"id": k} for k in range(int(num_configs))]:
        raise RuleBroken("successive_halving changed the configs; leave them as they were")
    if not any(best is cfg for cfg in configs):
        raise RuleBroken("best_config must be one of the configs passed in (the object itself)")
    rows = []
    for row in list(history):
        if not isinstance(row, tuple | list) or len(row) != 3:
            raise RuleBroken("each history entry must be a triple (index, resource, loss)")
        k, r, loss = row
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise RuleBroken("the first item of a history entry must be an int index")
        rows.append([int(k), _number(r, "a history resource"), _number(loss, "a history loss")])
    return {"best": int(best["id"]), "history": rows, "calls": calls}


def _branin(x):
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (
        (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x[0])
        + 10
    )


def bayes_opt(ns, problem, bounds, num_iters, seed):
    """The notebook's ``bayes_opt`` on the objective described by ``problem``. Returns
    ``{"best_x", "best_f", "history", "calls"}``, ``calls`` every point f was given."""
    center = np.asarray(problem.get("center", [0.0]), dtype=np.float64)
    scale = np.asarray(problem.get("scale", [1.0]), dtype=np.float64)
    d = len(bounds)
    calls = []

    def f(x):
        if not isinstance(x, np.ndarray) or x.shape != (d,) or x.dtype != np.float64:
            raise RuleBroken(f"f must be called with a float64 array of shape ({d},)")
        calls.append([float(v) for v in x])
        if problem["kind"] == "branin":
            return float(_branin(x))
        return float(np.sum(scale * (x - center) ** 2))

    out = ns["bayes_opt"](f, bounds, num_iters, seed)
    if not isinstance(out, tuple | list) or len(out) != 3:
        raise RuleBroken("bayes_opt must return a triple (best_x, best_f, history)")
    best_x, best_f, history = out
    best_x = np.asarray(best_x, dtype=np.float64)
    history = [_number(v, "a history value") for v in list(history)]
    return {
        "best_x": best_x,
        "best_f": _number(best_f, "best_f"),
        "history": history,
        "calls": calls,
    }
