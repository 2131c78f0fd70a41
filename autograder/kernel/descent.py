"""Drivers for chapter 1: build the callables that cannot cross as data, then call the notebook."""

import numpy as np

# Smooth test functions for gradient checking, by name (the grader sends names, never code).
FUNCTIONS = {
    "sin_sum": lambda x: float(np.sum(np.sin(x))),
    "quadratic": lambda x: float(0.5 * x @ x + np.sum(np.arange(1, x.size + 1) * x)),
    "quartic_coupled": lambda x: float(np.sum(x**4) / 4 + np.sum(x[:-1] * x[1:])),
    "logsumexp": lambda x: float(np.log(np.sum(np.exp(x)))),
    "rosenbrock": lambda x: float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)),
}

# Gradients that drive gradient descent, by name: x -> grad(x).
GRADIENTS = {
    "tanh": lambda x: np.tanh(x - 1.0),  # gradient of sum log cosh(x - 1)
    "sin": lambda x: np.sin(x),  # gradient of -sum cos(x)
}


def gd_on_quadratic(ns, H, b, x0, lr, num_steps):
    """``gradient_descent`` on ``0.5 x^T H x + b^T x`` (gradient ``H x + b``)."""
    H = np.asarray(H, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return ns["gradient_descent"](
        lambda x: H @ x + b, np.asarray(x0, dtype=np.float64), lr, num_steps
    )


def gd_on_function(ns, name, x0, lr, num_steps):
    """``gradient_descent`` driven by the named nonlinear gradient."""
    return ns["gradient_descent"](GRADIENTS[name], np.asarray(x0, dtype=np.float64), lr, num_steps)


def central_difference_on(ns, name, x, h):
    """``central_difference`` of the named smooth function at ``x`` with step ``h``."""
    return ns["central_difference"](FUNCTIONS[name], np.asarray(x, dtype=np.float64), h)
