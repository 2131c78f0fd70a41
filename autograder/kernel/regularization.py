"""Drivers for chapter 5: call a notebook function and report which arguments it changed.

Each driver is named after the function it calls, so that an error raised by the student's code
is reported under that function's name. It returns ``{"value": ..., "changed": [...]}``: the
function's result and the names of the array arguments it modified in place (the prompts say
inputs may not be modified; the grader fails the question when ``changed`` is not empty).
"""

import numpy as np

PARAMS = {
    "rescale_hidden_units": ["W1", "b1", "W2", "c"],
    "hidden_unit_balance": ["W1", "b1", "W2"],
    "min_norm_solution": ["X", "y"],
    "ridge_path": ["X", "y", "lambdas"],
    "soft_threshold": ["x", "t"],
    "ista": ["X", "y", "alpha", "num_steps"],
    "lasso_kkt_violation": ["X", "y", "w", "alpha"],
    "orthogonality_penalty": ["W"],
    "dropout_expected_loss": ["X", "y", "w", "p"],
}


def _call(ns, name, args):
    """``ns[name](*args)`` on fresh arrays, compared afterwards with copies kept aside."""
    args = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    kept = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    value = ns[name](*args)
    changed = [
        param
        for param, arg, copy in zip(PARAMS[name], args, kept)
        if copy is not None
        and not (
            arg.shape == copy.shape
            and arg.dtype == copy.dtype
            and np.array_equal(arg, copy, equal_nan=arg.dtype.kind in "fc")
        )
    ]
    return {"value": value, "changed": changed}


def rescale_hidden_units(ns, *args):
    return _call(ns, "rescale_hidden_units", args)


def hidden_unit_balance(ns, *args):
    return _call(ns, "hidden_unit_balance", args)


def min_norm_solution(ns, *args):
    return _call(ns, "min_norm_solution", args)


def ridge_path(ns, *args):
    return _call(ns, "ridge_path", args)


def soft_threshold(ns, *args):
    return _call(ns, "soft_threshold", args)


def ista(ns, *args):
    return _call(ns, "ista", args)


def lasso_kkt_violation(ns, *args):
    return _call(ns, "lasso_kkt_violation", args)


def orthogonality_penalty(ns, *args):
    return _call(ns, "orthogonality_penalty", args)


def dropout_expected_loss(ns, *args):
    return _call(ns, "dropout_expected_loss", args)
