"""Drivers for chapter 2: build matrix-vector products and gradients, then call the notebook."""

import numpy as np


def _quadratic_grad(H, b):
    """x -> H x + b, the gradient of 0.5 x^T H x + b^T x."""
    H = np.asarray(H, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return lambda x: H @ np.asarray(x, dtype=np.float64) + b


def _logcosh_grad(A, c):
    """x -> A^T tanh(A x - c), the gradient of sum(log cosh(A x - c)): smooth, not quadratic."""
    A = np.asarray(A, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    return lambda x: A.T @ np.tanh(A @ np.asarray(x, dtype=np.float64) - c)


def power_iteration_on_matrix(ns, A, num_iters, seed):
    """``power_iteration`` with ``matvec = A @ v``; returns ``(eigenvalue, eigenvector)``."""
    A = np.asarray(A, dtype=np.float64)
    value, vector = ns["power_iteration"](lambda v: A @ np.asarray(v), A.shape[0], num_iters, seed)
    return float(value), np.asarray(vector, dtype=np.float64)


def momentum_on_quadratic(ns, method, H, b, x0, lr, beta, num_steps):
    """``heavy_ball`` or ``nesterov`` (``method``) on ``0.5 x^T H x + b^T x``."""
    if method not in ("heavy_ball", "nesterov"):
        raise ValueError(f"unknown method {method}")
    x0 = np.asarray(x0, dtype=np.float64)
    return ns[method](_quadratic_grad(H, b), x0, lr, beta, num_steps)


def momentum_on_logcosh(ns, method, A, c, x0, lr, beta, num_steps):
    """``heavy_ball`` or ``nesterov`` (``method``) on ``sum(log cosh(A x - c))``."""
    if method not in ("heavy_ball", "nesterov"):
        raise ValueError(f"unknown method {method}")
    x0 = np.asarray(x0, dtype=np.float64)
    return ns[method](_logcosh_grad(A, c), x0, lr, beta, num_steps)


def cosine_schedule_values(ns, total_steps, base_lr, min_lr, warmup_steps):
    """``cosine_schedule`` at every step ``0 .. total_steps - 1``, as a float64 array."""
    f = ns["cosine_schedule"]
    return np.array(
        [
            float(f(s, total_steps, base_lr, min_lr=min_lr, warmup_steps=warmup_steps))
            for s in range(total_steps)
        ]
    )


def cosine_schedule_defaults(ns, total_steps, base_lr):
    """``cosine_schedule(step, total_steps, base_lr)`` with the defaults, at every step."""
    f = ns["cosine_schedule"]
    return np.array([float(f(s, total_steps, base_lr)) for s in range(total_steps + 1)])
