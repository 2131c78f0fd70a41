"""Reference implementations for chapter 2: stability and momentum."""

import math

import numpy as np


def power_iteration(matvec, dim, num_iters, seed):
    """Eigenvalue of largest magnitude of a symmetric operator, and a unit eigenvector.

    ``matvec(v)`` returns ``A @ v`` for a NumPy vector ``v`` of shape ``(dim,)``. The start
    vector is ``np.random.default_rng(seed).standard_normal(dim)``; each of the ``num_iters``
    iterations applies ``matvec`` and normalizes. Returns ``(eigenvalue, eigenvector)``: the
    Rayleigh quotient ``v @ A v`` (a float, with its sign) and ``v``, shape ``(dim,)``, norm 1.

    Exercise 2.2 in book/ch02_momentum/exercises.ipynb.
    """
    if dim < 1 or num_iters < 0:
        raise ValueError("power_iteration needs dim >= 1 and num_iters >= 0")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim)
    v = v / np.linalg.norm(v)
    for _ in range(num_iters):
        # v_{k+1} = A v_k / ||A v_k||
        w = np.asarray(matvec(v), dtype=np.float64).reshape(dim)
        norm = np.linalg.norm(w)
        if norm == 0.0:  # v lies in the null space: A v = 0 v
            break
        v = w / norm
    eigenvalue = float(v @ np.asarray(matvec(v), dtype=np.float64).reshape(dim))
    return eigenvalue, v


def max_stable_lr(H):
    """The largest learning rate ``2 / lambda_max(H)`` for which gradient descent converges.

    ``H`` is a symmetric positive semidefinite matrix of shape ``(d, d)``; returns a float
    (``math.inf`` when ``lambda_max = 0``, i.e. ``H`` is zero: every step size is then stable).

    Exercise 2.1 in book/ch02_momentum/exercises.ipynb.
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {H.shape}")
    if not np.allclose(H, H.T):
        raise ValueError("H must be symmetric")
    lam_max = float(np.linalg.eigvalsh(H)[-1])  # eigvalsh sorts ascending
    if lam_max <= 0.0:
        return math.inf
    return 2.0 / lam_max


def heavy_ball(grad, x0, lr, beta, num_steps):
    """Heavy-ball momentum in PyTorch's convention: ``v <- beta v + g``, ``x <- x - lr v``.

    ``grad(x)`` returns the gradient (a NumPy array shaped like ``x``) at ``x``; ``x0`` has shape
    ``(d,)``; ``v`` starts at zero. Returns the iterates, shape ``(num_steps + 1, d)``, row 0 being
    ``x0``: exactly those of ``torch.optim.SGD(params, lr=lr, momentum=beta)``.

    Exercise 2.3 in book/ch02_momentum/exercises.ipynb.
    """
    x = np.array(x0, dtype=np.float64)
    v = np.zeros_like(x)
    iterates = [x.copy()]
    for _ in range(num_steps):
        g = np.asarray(grad(x), dtype=np.float64)
        v = beta * v + g  # v_{t+1} = beta v_t + g_t
        x = x - lr * v  # x_{t+1} = x_t - lr v_{t+1}
        iterates.append(x.copy())
    return np.stack(iterates)


def nesterov(grad, x0, lr, beta, num_steps):
    """Nesterov momentum in PyTorch's form: ``v <- beta v + g``, ``x <- x - lr (g + beta v)``.

    Same inputs and output as :func:`heavy_ball`; the iterates are exactly those of
    ``torch.optim.SGD(params, lr=lr, momentum=beta, nesterov=True)``.

    Exercise 2.4 in book/ch02_momentum/exercises.ipynb.
    """
    x = np.array(x0, dtype=np.float64)
    v = np.zeros_like(x)
    iterates = [x.copy()]
    for _ in range(num_steps):
        g = np.asarray(grad(x), dtype=np.float64)
        v = beta * v + g  # v_{t+1} = beta v_t + g_t
        x = x - lr * (g + beta * v)  # the look-ahead: step along g_t + beta v_{t+1}
        iterates.append(x.copy())
    return np.stack(iterates)


def polyak_parameters(mu, L):
    """Polyak's optimal heavy-ball ``(lr, beta)`` for curvatures in ``[mu, L]``, ``0 < mu <= L``.

    ``lr = 4 / (sqrt(L) + sqrt(mu))**2`` and ``beta = ((sqrt(L) - sqrt(mu)) / (sqrt(L) +
    sqrt(mu)))**2``, returned as a tuple of two floats.

    Exercise 2.5 in book/ch02_momentum/exercises.ipynb.
    """
    if not 0 < mu <= L:
        raise ValueError(f"polyak_parameters needs 0 < mu <= L, got mu={mu}, L={L}")
    sqrt_mu, sqrt_L = math.sqrt(mu), math.sqrt(L)
    lr = 4.0 / (sqrt_L + sqrt_mu) ** 2
    beta = ((sqrt_L - sqrt_mu) / (sqrt_L + sqrt_mu)) ** 2
    return lr, beta


def proximal_point(H, b, x0, lr, num_steps):
    """Proximal point (implicit Euler) on ``f(x) = 0.5 x^T H x + b^T x``.

    Each step is ``x_{k+1} = argmin_x f(x) + ||x - x_k||^2 / (2 lr)``, i.e. the solution of
    ``(I + lr H) x_{k+1} = x_k - lr b``. ``H`` is ``(d, d)`` symmetric positive semidefinite,
    ``b`` and ``x0`` are ``(d,)``. Returns the iterates, shape ``(num_steps + 1, d)``.

    Exercise 2.6 in book/ch02_momentum/exercises.ipynb.
    """
    H = np.asarray(H, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.array(x0, dtype=np.float64)
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    A = np.eye(len(x)) + lr * H
    iterates = [x.copy()]
    for _ in range(num_steps):
        # gradient of the step's objective: H x + b + (x - x_k) / lr = 0
        x = np.linalg.solve(A, x - lr * b)
        iterates.append(x.copy())
    return np.stack(iterates)


def cosine_schedule(step, total_steps, base_lr, min_lr=0.0, warmup_steps=0):
    """Learning rate at ``step`` (0-based) of a cosine schedule with linear warm-up.

    For ``step < warmup_steps``: ``base_lr * (step + 1) / warmup_steps``; after that,
    ``min_lr + 0.5 (base_lr - min_lr) (1 + cos(pi (step - warmup_steps) / (total_steps -
    warmup_steps)))``. Returns a float. Raises ``ValueError`` unless ``0 <= warmup_steps <
    total_steps``; ``step`` runs from 0 to ``total_steps`` (which gives ``min_lr``).

    Exercise 2.7 in book/ch02_momentum/exercises.ipynb.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError("cosine_schedule needs 0 <= warmup_steps < total_steps")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
