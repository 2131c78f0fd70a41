"""Kernel-side drivers for chapter 11: the objective ``f`` cannot travel as data, so a driver
builds it here from a plain description, wraps it so that every call is counted and checked,
calls the notebook's optimizer, and returns its result beside what the wrapper saw.

An objective travels as ``{"kind": k, "shift": [...]}`` with ``k`` one of ``"sphere"``,
``"rastrigin"``, ``"ackley"`` and ``"l1"`` (``sum |z_j|``): the function of ``z = x - shift``,
minimum 0 at ``x = shift``.
The wrapper refuses anything but a float64 array of shape ``(m, d)``, ``m >= 1``, and records
per call the number of rows, the smallest value returned and how many rows lie outside the
bounds. The grader compares; nothing here decides whether a result is right.
"""

import numpy as np


class RuleBroken(Exception):
    """The notebook's code broke a rule its prompt states (the grader reports it as failed)."""


def objective(problem):
    """The function of ``problem`` on ``(m, d)`` float64 rows (also used by the grader)."""
    kind = problem["kind"]
    shift = np.asarray(problem["shift"], dtype=np.float64)

    def sphere(z):
        return np.einsum("ij,ij->i", z, z)

    def rastrigin(z):  # 10 - 10 cos(2 pi z) written as 20 sin^2(pi z)
        return np.einsum("ij,ij->i", z, z) + 20.0 * (np.sin(np.pi * z) ** 2).sum(axis=1)

    def ackley(z):
        radius = np.sqrt(np.einsum("ij,ij->i", z, z) / z.shape[1])
        wave = np.cos(2.0 * np.pi * z).mean(axis=1)
        return 20.0 * (1.0 - np.exp(-0.2 * radius)) + (np.e - np.exp(wave))

    def l1(z):  # 0 only where z == 0 exactly: one ulp away is already worse
        return np.abs(z).sum(axis=1)

    base = {"sphere": sphere, "rastrigin": rastrigin, "ackley": ackley, "l1": l1}[kind]
    return lambda X: base(np.asarray(X, dtype=np.float64) - shift)


class Counted:
    """``f`` as the notebook sees it: counts and checks every call."""

    def __init__(self, problem, d, bounds=None):
        self.fn, self.d = objective(problem), d
        self.lo = self.hi = None
        if bounds is not None:
            b = np.asarray(bounds, dtype=np.float64)
            self.lo, self.hi = b[:, 0], b[:, 1]
        self.rows, self.mins, self.outside = [], [], 0

    def __call__(self, X):
        if (
            not isinstance(X, np.ndarray)
            or X.dtype != np.float64
            or X.ndim != 2
            or X.shape[0] < 1
            or X.shape[1] != self.d
        ):
            got = f"{type(X).__name__} {getattr(X, 'dtype', '')} {getattr(X, 'shape', '')}"
            raise RuleBroken(
                f"called f with {got.strip()}; f takes a float64 array of shape (m, {self.d})"
            )
        if self.lo is not None:
            out = np.any((X < self.lo) | (X > self.hi), axis=1)
            self.outside += int(np.count_nonzero(out))
        y = self.fn(X)
        self.rows.append(int(X.shape[0]))
        self.mins.append(float(y.min()))
        return y.copy()


def _result(out, d, f, trace):
    if not isinstance(out, tuple | list) or len(out) != 3:
        raise RuleBroken("must return a triple (best_x, best_f, num_evaluations)")
    best_x, best_f, n = out
    best_x = np.array(best_x, dtype=np.float64)
    if best_x.shape != (d,):
        raise RuleBroken(f"returned best_x of shape {best_x.shape}; expected ({d},)")
    if isinstance(best_f, bool) or not isinstance(best_f, int | float | np.integer | np.floating):
        raise RuleBroken("must return best_f as a number")
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise RuleBroken("must return num_evaluations as an int")
    result = {
        "best_x": best_x,
        "best_f": float(best_f),
        "num_evaluations": int(n),
        "rows": list(f.rows),  # rows passed to f, call by call
        "outside": f.outside,  # rows passed to f outside the bounds
    }
    if trace:
        result["mins"] = list(f.mins)  # the smallest value of each call
    return result


def differential_evolution(
    ns, problem, bounds, pop_size, F, CR, num_generations, seed, target=None, trace=False
):
    """The notebook's ``differential_evolution`` on the counted objective ``problem``."""
    f = Counted(problem, len(bounds), bounds)
    out = ns["differential_evolution"](
        f, bounds, pop_size, F, CR, num_generations, seed, target=target
    )
    return _result(out, len(bounds), f, trace)


def particle_swarm(
    ns, problem, bounds, num_particles, num_iters, w, c1, c2, seed, target=None, trace=False
):
    """The notebook's ``particle_swarm`` on the counted objective ``problem``."""
    f = Counted(problem, len(bounds), bounds)
    out = ns["particle_swarm"](f, bounds, num_particles, num_iters, w, c1, c2, seed, target=target)
    return _result(out, len(bounds), f, trace)


def simulated_annealing(
    ns, problem, x0, step_size, T0, cooling, num_steps, seed, target=None, trace=False
):
    """The notebook's ``simulated_annealing`` on the counted objective ``problem``."""
    d = int(np.shape(x0)[0])
    f = Counted(problem, d)
    out = ns["simulated_annealing"](f, x0, step_size, T0, cooling, num_steps, seed, target=target)
    return _result(out, d, f, trace)
