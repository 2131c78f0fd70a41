"""Reference implementations for chapter 5: symmetries, tie-breakers and regularizers."""

import numpy as np


def rescale_hidden_units(W1, b1, W2, c):
    """Rescale hidden unit i of a one-hidden-layer ReLU net by ``c[i] > 0``.

    The net is ``relu(X @ W1.T + b1) @ W2.T`` (plus any output bias), with ``W1`` (h, d),
    ``b1`` (h,), ``W2`` (k, h) and ``c`` (h,). Returns new arrays
    ``(c[:, None] * W1, c * b1, W2 / c[None, :])``, which compute the same function because
    relu(c z) = c relu(z) for c > 0. The inputs are not modified; ValueError if any c <= 0.

    Exercise 5.1 in book/ch05_regularization/exercises.ipynb.
    """
    W1, b1, W2, c = (np.asarray(a, dtype=np.float64) for a in (W1, b1, W2, c))
    h = W1.shape[0]
    if W1.ndim != 2 or b1.shape != (h,) or W2.ndim != 2 or W2.shape[1] != h or c.shape != (h,):
        raise ValueError("expected W1 (h, d), b1 (h,), W2 (k, h) and c (h,)")
    if not np.all(c > 0):  # also rejects NaN
        raise ValueError("every scale c[i] must be positive")
    return c[:, None] * W1, c * b1, W2 / c[None, :]


def hidden_unit_balance(W1, b1, W2):
    """Balance of each hidden unit, ``a_i = ||W2[:, i]||^2 - ||W1[i]||^2 - b1[i]^2``, shape (h,).

    The bias belongs to the unit's incoming weights: gradient flow keeps every a_i constant
    only when it is counted there.

    Exercise 5.2 in book/ch05_regularization/exercises.ipynb.
    """
    W1, b1, W2 = (np.asarray(a, dtype=np.float64) for a in (W1, b1, W2))
    return np.sum(W2**2, axis=0) - np.sum(W1**2, axis=1) - b1**2


def min_norm_solution(X, y):
    """The minimum-norm least-squares solution ``pinv(X) @ y`` for any ``X`` (n, d), ``y`` (n,).

    Through the thin SVD X = U diag(s) V^T: w = V diag(1/s) U^T y over the singular values
    s_i > 1e-15 * s_max (numpy.linalg.pinv's default rcond); the others count as zero. Works for
    rank-deficient X, where the normal equations X^T X w = X^T y are singular.

    Exercise 5.3 in book/ch05_regularization/exercises.ipynb.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError("expected X (n, d) and y (n,)")
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros(X.shape[1])
    keep = s > 1e-15 * s[0]
    return Vt[keep].T @ ((U[:, keep].T @ y) / s[keep])


def ridge_path(X, y, lambdas):
    """Ridge solutions for every strength in ``lambdas``, as an array (len(lambdas), d).

    Row j minimizes (1/(2n)) ||X w - y||^2 + (lambdas[j]/2) ||w||^2, that is
    w = (X^T X + n lambda I)^(-1) X^T y = V diag(s / (s^2 + n lambda)) U^T y by the thin SVD
    (sklearn's Ridge(alpha=n * lambda, fit_intercept=False)). ValueError unless every lambda > 0.

    Exercise 5.4 in book/ch05_regularization/exercises.ipynb.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or lambdas.ndim != 1:
        raise ValueError("expected X (n, d), y (n,) and a 1-D array of lambdas")
    if not np.all(lambdas > 0):  # also rejects NaN
        raise ValueError("every lambda must be positive")
    n = X.shape[0]
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    Uty = U.T @ y
    filters = s[None, :] / (s[None, :] ** 2 + n * lambdas[:, None])  # (len, r)
    return (filters * Uty[None, :]) @ Vt


def soft_threshold(x, t):
    """``sign(x) * max(|x| - t, 0)`` elementwise, the same shape as ``x``; ValueError if t < 0.

    Exercise 5.5 in book/ch05_regularization/exercises.ipynb.
    """
    x = np.asarray(x, dtype=np.float64)
    if not t >= 0:  # also rejects NaN
        raise ValueError("the threshold t must be >= 0")
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def ista(X, y, alpha, num_steps):
    """ISTA for the Lasso (1/(2n)) ||X w - y||^2 + alpha ||w||_1, from w = 0; the last iterate.

    With M the largest eigenvalue of X^T X / n (the Lipschitz constant of the gradient), each
    of the ``num_steps`` steps is w <- S_{alpha/M}(w - X^T (X w - y) / (n M)), S the soft
    threshold. Returns w (d,); w = 0 when X = 0.

    Exercise 5.6 in book/ch05_regularization/exercises.ipynb.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, d = X.shape
    w = np.zeros(d)
    M = np.linalg.norm(X, 2) ** 2 / n  # sigma_max(X)^2 / n = lambda_max(X^T X / n)
    if M == 0:
        return w  # X = 0: the gradient is 0 and w = 0 is optimal
    for _ in range(num_steps):
        z = w - X.T @ (X @ w - y) / (n * M)
        # S_{alpha/M}(z) = sign(z) max(|z| - alpha/M, 0)
        w = np.sign(z) * np.maximum(np.abs(z) - alpha / M, 0.0)
    return w


def lasso_kkt_violation(X, y, w, alpha):
    """How far ``w`` is from satisfying the Lasso's optimality conditions (a float >= 0).

    With g = X^T (y - X w) / n, the conditions are g_j = alpha sign(w_j) where w_j != 0 and
    |g_j| <= alpha where w_j = 0; the violation is the largest of |g_j - alpha sign(w_j)| and
    max(|g_j| - alpha, 0) over the coordinates where each applies.

    Exercise 5.7 in book/ch05_regularization/exercises.ipynb.
    """
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    g = X.T @ (y - X @ w) / X.shape[0]
    nonzero = w != 0
    v = np.where(nonzero, np.abs(g - alpha * np.sign(w)), np.maximum(np.abs(g) - alpha, 0.0))
    return float(v.max()) if v.size else 0.0


def orthogonality_penalty(W):
    """``(||W^T W - I||_F^2, 4 W (W^T W - I))`` for ``W`` (m, n), I the n x n identity.

    Returns the value as a Python float and the gradient as an array shaped like W.

    Exercise 5.8 in book/ch05_regularization/exercises.ipynb.
    """
    W = np.asarray(W, dtype=np.float64)
    E = W.T @ W - np.eye(W.shape[1])
    return float(np.sum(E**2)), 4.0 * W @ E


def dropout_expected_loss(X, y, w, p):
    """Expected loss of a linear model under inverted dropout on its inputs, in closed form.

    Each input x_ij is replaced by x_ij m_ij / (1 - p) with m_ij ~ Bernoulli(1 - p). The
    expected value of (1/(2n)) ||X~ w - y||^2 is the plain loss plus
    (p / (1 - p)) sum_j w_j^2 ||X[:, j]||^2 / (2n). ValueError unless 0 <= p < 1.

    Exercise 5.9 in book/ch05_regularization/exercises.ipynb.
    """
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    if not 0 <= p < 1:
        raise ValueError("the drop probability p must satisfy 0 <= p < 1")
    n = X.shape[0]
    r = X @ w - y
    penalty = p / (1 - p) * np.sum(w**2 * np.sum(X**2, axis=0)) / (2 * n)
    return float(r @ r / (2 * n) + penalty)
