"""Reference implementations for chapter 4: normalization, conditioning and initialization."""

import numpy as np
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch normalization of ``x`` (n, d) over the batch axis 0.

    y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch mean and the *biased* batch
    variance (divide by n) of each feature. ``gamma`` and ``beta`` have shape (d,). Returns
    ``(y, cache)``: ``y`` has the shape and dtype of ``x`` (float32 in, float32 out); ``cache``
    holds whatever :func:`batchnorm_backward` needs.

    Exercise 4.1 in book/ch04_normalization/exercises.ipynb.
    """
    x = np.asarray(x)
    gamma, beta = np.asarray(gamma), np.asarray(beta)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (n, d), got shape {x.shape}")
    if gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ValueError(f"gamma and beta must have shape ({x.shape[1]},)")
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)  # biased: divide by n, as in training mode
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    y = gamma * x_hat + beta
    return y, (x_hat, inv_std, gamma)


def batchnorm_backward(dy, cache):
    """Gradients of batch normalization given ``dy`` = dL/dy (n, d) and the forward ``cache``.

    Returns ``(dx, dgamma, dbeta)`` with the shapes of ``x``, ``gamma`` and ``beta``:
    dx = gamma / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat)), means over the batch.

    Exercise 4.2 in book/ch04_normalization/exercises.ipynb.
    """
    x_hat, inv_std, gamma = cache
    dy = np.asarray(dy)
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    # The mean and the variance depend on every row, hence the two batch-mean terms.
    dx = gamma * inv_std * (dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


def condition_number(A):
    """Condition number sigma_max / sigma_min of a square matrix ``A`` in the 2-norm.

    Returns ``inf`` when ``A`` is singular: sigma_min is zero, or below the tolerance that
    ``numpy.linalg.matrix_rank`` uses (sigma_max * max(A.shape) * machine epsilon).

    Exercise 4.3 in book/ch04_normalization/exercises.ipynb.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square 2-D array, got shape {A.shape}")
    s = np.linalg.svd(A, compute_uv=False)
    tol = s[0] * max(A.shape) * np.finfo(A.dtype).eps
    if s[-1] == 0.0 or s[-1] <= tol:
        return float("inf")
    return float(s[0] / s[-1])


def jacobian_condition_number(f, x):
    """Condition number of the Jacobian of ``f: R^d -> R^d`` at the point ``x``.

    ``f`` maps a torch tensor of shape (d,) to one of shape (d,); ``x`` is a tensor (d,). The
    Jacobian J[i, j] = d f_i / d x_j comes from autograd; returns sigma_max(J) / sigma_min(J) as a
    float, ``inf`` when J is singular: sigma_min <= sigma_max * d * eps with eps the machine
    epsilon of J's own dtype (1.2e-7 for float32). Self-contained: it does not call
    :func:`condition_number`.

    Exercise 4.4 in book/ch04_normalization/exercises.ipynb.
    """
    x = torch.as_tensor(x)
    J = torch.autograd.functional.jacobian(f, x).reshape(x.numel(), -1)
    s = torch.linalg.svdvals(J.detach()).double()
    tol = s[0] * max(J.shape) * torch.finfo(J.dtype).eps
    if s[-1] == 0.0 or s[-1] <= tol:
        return float("inf")
    return float(s[0] / s[-1])


def xavier_uniform(fan_in, fan_out, rng):
    """Glorot/Xavier uniform weights (fan_out, fan_in): U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    The distribution of ``torch.nn.init.xavier_uniform_`` (gain 1), drawn with the NumPy
    generator ``rng``; the variance a**2 / 3 = 2 / (fan_in + fan_out).

    Exercise 4.5 in book/ch04_normalization/exercises.ipynb.
    """
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_out, fan_in))


def he_normal(fan_in, fan_out, rng):
    """He/Kaiming normal weights (fan_out, fan_in): N(0, 2 / fan_in), drawn with ``rng``.

    The distribution of ``torch.nn.init.kaiming_normal_`` with the ReLU gain sqrt(2) and
    ``mode="fan_in"``.

    Exercise 4.6 in book/ch04_normalization/exercises.ipynb.
    """
    std = np.sqrt(2.0 / fan_in)
    return rng.normal(0.0, std, size=(fan_out, fan_in))


def layer_variances(X, weights, activation):
    """Variance of every layer's activations in a bias-free MLP.

    ``X`` (n, d_0) is the input batch; ``weights`` a list of arrays W_l of shape
    (d_l, d_{l-1}); ``activation`` one of "relu", "tanh", "sigmoid", "linear". With h_0 = X and
    h_l = activation(h_{l-1} @ W_l.T), returns a float array of length L whose entry l - 1 is the
    variance of all entries of h_l (``np.var``, over the batch and the units together). An
    unknown ``activation`` raises ``ValueError`` before any work, even when ``weights`` is empty.

    Exercise 4.7 in book/ch04_normalization/exercises.ipynb.
    """
    phis = {
        "relu": lambda z: np.maximum(z, 0.0),
        "tanh": np.tanh,
        "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # = 1 / (1 + exp(-z)), no overflow
        "linear": lambda z: z,
    }
    if activation not in phis:
        raise ValueError(f"unknown activation {activation!r}; use one of {sorted(phis)}")
    h = np.asarray(X, dtype=np.float64)
    out = []
    for W in weights:
        h = phis[activation](h @ np.asarray(W, dtype=np.float64).T)
        out.append(h.var())
    return np.array(out)
