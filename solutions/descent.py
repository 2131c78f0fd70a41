"""Reference implementations for chapter 1: descent, backprop, gradient checks, mini-batches."""

import numpy as np


def quadratic_minimizer(H, b):
    """Minimizer ``x* = -H^{-1} b`` of ``0.5 x^T H x + b^T x`` for symmetric positive definite H.

    ``H`` has shape ``(d, d)``, ``b`` shape ``(d,)``; returns a float64 array of shape ``(d,)``.
    Raises ``ValueError`` when ``H`` is not square, not symmetric or not positive definite
    (then the quadratic has no unique minimizer).

    Exercise 1.1 in book/ch01_descent/exercises.ipynb.
    """
    H = np.asarray(H, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or b.shape != (H.shape[0],):
        raise ValueError(f"H must be (d, d) and b (d,); got H {H.shape} and b {b.shape}")
    if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * np.abs(H).max(initial=0.0)):
        raise ValueError("H is not symmetric, so 0.5 x^T H x + b^T x is not its quadratic form")
    try:
        # Cholesky succeeds exactly when H is (numerically) positive definite.
        C = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        raise ValueError(
            "H is not positive definite: the quadratic has no unique minimizer"
        ) from None
    # The gradient H x + b vanishes at x*: solve H x* = -b with the factor H = C C^T.
    z = np.linalg.solve(C, -b)
    return np.linalg.solve(C.T, z)


def gradient_descent(grad, x0, lr, num_steps):
    """Iterates of ``x <- x - lr * grad(x)`` from ``x0``: an array of shape ``(num_steps + 1, d)``.

    Row 0 is ``x0`` itself, row k the point after k steps. ``grad`` maps a ``(d,)`` array to a
    ``(d,)`` array.

    Exercise 1.2 in book/ch01_descent/exercises.ipynb.
    """
    x = np.array(x0, dtype=np.float64)  # a copy: the caller's x0 is never modified
    xs = np.empty((num_steps + 1, x.size))
    xs[0] = x
    for k in range(num_steps):
        # x_{k+1} = x_k - lr * grad L(x_k)
        x = x - lr * np.asarray(grad(x), dtype=np.float64)
        xs[k + 1] = x
    return xs


def mlp_gradients(params, X, y):
    """Gradients of ``L = (1/n) sum_i 0.5 ||W2 tanh(W1 x_i + b1) + b2 - y_i||^2`` by hand.

    ``params`` holds ``W1 (h, d)``, ``b1 (h,)``, ``W2 (k, h)``, ``b2 (k,)``; ``X`` is ``(n, d)``
    and ``y`` is ``(n, k)``. Returns a dict with the same four keys holding dL/dparam, each the
    shape of its parameter, computed by backpropagation in NumPy (no autograd).

    Exercise 1.3 in book/ch01_descent/exercises.ipynb.
    """
    W1, b1, W2, b2 = (np.asarray(params[k], dtype=np.float64) for k in ("W1", "b1", "W2", "b2"))
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = X.shape[0]
    # Forward pass, one row per example: Z = X W1^T + b1, A = tanh(Z), F = A W2^T + b2.
    Z = X @ W1.T + b1
    A = np.tanh(Z)
    F = A @ W2.T + b2
    # Backward pass. dL/dF = (F - y) / n: the 0.5 cancels the 2 from the square.
    dF = (F - y) / n
    dW2 = dF.T @ A
    db2 = dF.sum(axis=0)
    dA = dF @ W2
    dZ = dA * (1.0 - A**2)  # tanh'(z) = 1 - tanh(z)^2
    dW1 = dZ.T @ X
    db1 = dZ.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def central_difference(f, x, h):
    """Gradient of scalar ``f`` at the 1-D array ``x`` by central differences, error O(h**2).

    Component i is ``(f(x + h e_i) - f(x - h e_i)) / (2 h)``; returns a float64 array shaped
    like ``x``. Costs ``2 d`` evaluations of ``f``.

    Exercise 1.4 in book/ch01_descent/exercises.ipynb.
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def relative_error(a, b):
    """Relative error ``||a - b|| / max(||a||, ||b||)`` (Euclidean norms), 0.0 when both are 0.

    Symmetric in ``a`` and ``b`` and unchanged when both are scaled by the same factor: the
    criterion used to compare a finite-difference gradient with a backpropagated one.

    Exercise 1.5 in book/ch01_descent/exercises.ipynb.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


def minibatch_sgd(X, y, batch_size, lr, num_epochs, seed):
    """Mini-batch SGD on least squares ``L(w) = 0.5 * mean((X w - y)**2)`` from ``w = 0``.

    One generator ``rng = np.random.default_rng(seed)``; each epoch visits the rows in the order
    ``rng.permutation(n)`` in consecutive batches of ``batch_size`` (the last may be smaller) and
    steps ``w <- w - lr * X_b^T (X_b w - y_b) / len(b)`` once per batch. Returns ``(w, losses)``:
    ``w`` of shape ``(d,)`` and ``losses`` of shape ``(num_epochs,)``, the full-data loss after
    each epoch. Raises ``ValueError`` if ``batch_size < 1``.

    Exercise 1.6 in book/ch01_descent/exercises.ipynb.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n, d = X.shape
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    losses = np.empty(num_epochs)
    for epoch in range(num_epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]  # the last batch may be smaller
            Xb, yb = X[batch], y[batch]
            w = w - lr * Xb.T @ (Xb @ w - yb) / len(batch)
        losses[epoch] = 0.5 * np.mean((X @ w - y) ** 2)
    return w, losses
