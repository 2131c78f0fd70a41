"""Reference implementations for chapter 12: hyperparameter optimization by successive halving,
Hyperband and Bayesian optimization with a Gaussian process."""

import math

import numpy as np


def hyperband_schedule(max_resource, eta):
    """Li et al.'s Hyperband brackets for a maximum resource ``R`` and reduction factor ``eta``.

    ``s_max`` is the largest integer with ``eta**s_max <= R``, found by integer arithmetic
    (``math.log(243, 3)`` is 4.999..., so a floored float log loses a bracket). Returns a list
    with one bracket per ``s = s_max, s_max - 1, ..., 0``; bracket ``s`` is the list of its
    ``s + 1`` rungs ``(n_i, r_i)``, ``i = 0..s``, with

    - ``n = ceil((s_max + 1) * eta**s / (s + 1))`` by integer ceiling division,
    - ``n_i = n // eta**i`` configurations run with
    - ``r_i = R * eta**(i - s)`` resource each: an int when ``eta**(s - i)`` divides ``R``,
      else the float ``R / eta**(s - i)``.

    Exercise 12.1 in book/ch12_hpo/exercises.ipynb.
    """
    if isinstance(max_resource, bool) or isinstance(eta, bool):
        raise TypeError("max_resource and eta must be numbers, not bools")
    if not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
    if max_resource < 1:
        raise ValueError(f"max_resource must be >= 1, got {max_resource!r}")
    s_max = 0
    while eta ** (s_max + 1) <= max_resource:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))
        rungs = []
        for i in range(s + 1):
            div = eta ** (s - i)
            exact = isinstance(max_resource, int) and max_resource % div == 0
            r = max_resource // div if exact else max_resource / div
            rungs.append((n // eta**i, r))
        brackets.append(rungs)
    return brackets


def successive_halving(evaluate, configs, min_resource, eta, num_rungs=None):
    """Successive halving (Jamieson and Talwalkar) of the list ``configs``.

    Rung ``i = 0, 1, ...`` calls ``evaluate(config, min_resource * eta**i)`` once for every
    surviving configuration (rung 0: all of them, in the order of ``configs``; later rungs: the
    survivors from lowest to highest loss of the rung before, ties in the order of ``configs``)
    and keeps the ``len(survivors) // eta`` lowest losses, ties won by the earlier config.
    ``num_rungs=None`` runs ``floor(log_eta(n)) + 1`` rungs (integer arithmetic), which leaves
    one configuration in the last rung; after the last rung nothing is dropped and its lowest
    loss (ties: earlier config) wins. ``num_rungs`` larger than that, or below 1, is a
    ValueError. ``configs`` is left unchanged.

    Returns ``(best_config, history)``, ``history`` the list of ``(index into configs,
    resource, loss)`` of every call, in call order.

    Exercise 12.2 in book/ch12_hpo/exercises.ipynb.
    """
    n = len(configs)
    if n == 0:
        raise ValueError("configs is empty")
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
    most = 1
    while eta**most <= n:
        most += 1
    if num_rungs is None:
        num_rungs = most
    if not 1 <= num_rungs <= most:
        raise ValueError(f"num_rungs must be between 1 and {most} for {n} configs, eta={eta}")
    survivors = list(range(n))
    history = []
    for i in range(num_rungs):
        resource = min_resource * eta**i
        losses = []
        for k in survivors:
            loss = float(evaluate(configs[k], resource))
            history.append((k, resource, loss))
            losses.append(loss)
        ranked = [k for _, k in sorted(zip(losses, survivors))]
        survivors = ranked if i == num_rungs - 1 else ranked[: len(ranked) // eta]
    return configs[survivors[0]], history


def gp_posterior(X_train, y_train, X_test, length_scale, signal_var, noise_var):
    """Posterior mean and variance of the latent function of a zero-mean Gaussian process.

    Kernel ``k(x, x') = signal_var * exp(-||x - x'||**2 / (2 length_scale**2))``; observations
    ``y = f(X_train) + noise`` with noise variance ``noise_var``. For ``X_test`` (m, d) returns
    float64 arrays ``(mean, var)`` of shape (m,):
    ``mean = k*^T (K + noise_var I)^-1 y`` and ``var = signal_var - k*^T (K + noise_var I)^-1 k*``
    (the latent f, without the noise). Inputs are left unchanged.

    Exercise 12.3 in book/ch12_hpo/exercises.ipynb.
    """
    X = np.asarray(X_train, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64)
    Xs = np.asarray(X_test, dtype=np.float64)

    def kernel(A, B):
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return signal_var * np.exp(-np.maximum(sq, 0.0) / (2.0 * length_scale**2))

    K = kernel(X, X) + noise_var * np.eye(len(X))
    L = np.linalg.cholesky(K)
    Ks = kernel(X, Xs)  # (n, m)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
    V = np.linalg.solve(L, Ks)
    mean = Ks.T @ alpha
    var = signal_var - (V * V).sum(0)
    return mean, var


def expected_improvement(mean, std, best, xi=0.0):
    """Expected improvement below ``best`` (minimization) of a Gaussian ``N(mean, std**2)``.

    ``(best - mean - xi) Phi(z) + std phi(z)`` with ``z = (best - mean - xi) / std``; where
    ``std == 0`` it is ``max(best - mean - xi, 0)``. ``mean`` and ``std`` broadcast; returns a
    float64 array of their broadcast shape.

    Exercise 12.4 in book/ch12_hpo/exercises.ipynb.
    """
    from scipy.special import ndtr  # the standard normal cdf

    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    mean, std = np.broadcast_arrays(mean, std)
    gain = best - mean - xi
    out = np.array(np.maximum(gain, 0.0), dtype=np.float64)
    pos = std > 0
    z = gain[pos] / std[pos]
    out[pos] = gain[pos] * ndtr(z) + std[pos] * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return out


def bayes_opt(f, bounds, num_iters, seed):
    """Minimize ``f`` over the box ``bounds`` (d, 2) with a GP and expected improvement.

    ``rng = np.random.default_rng(seed)``. ``num_iters`` counts every call of ``f``: first
    ``num_init = 5`` points ``lo + (hi - lo) * u``, ``u`` the rows of ``rng.uniform(size=(5,
    d))``, then one point per iteration. Each iteration scales the inputs to the unit cube,
    standardizes y (mean 0, std 1 with ``ddof=0``; a std of 0 is taken as 1), takes the GP
    posterior as ``gp_posterior`` with ``length_scale=0.3``, ``signal_var=1``,
    ``noise_var=1e-6``, and ``expected_improvement`` with ``best`` the smallest standardized y
    and ``xi=0`` at the candidates ``rng.uniform(size=(2000, d))``; f is evaluated at the first
    argmax. ``f`` gets a float64 (d,) array and returns a float. ``num_iters < 5`` is a
    ValueError. Self-contained: the GP and EI are written inline.

    Returns ``(best_x, best_f, history)``: the first point with the lowest value, that value,
    and the list of the ``num_iters`` values of f in call order.

    Exercise 12.5 in book/ch12_hpo/exercises.ipynb.
    """
    from scipy.special import ndtr

    num_init, num_candidates, length_scale, noise_var = 5, 2000, 0.3, 1e-6
    bounds = np.asarray(bounds, dtype=np.float64)
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise ValueError(f"bounds must have shape (d, 2), got {bounds.shape}")
    if num_iters < num_init:
        raise ValueError(f"num_iters must be at least {num_init}, got {num_iters}")
    rng = np.random.default_rng(seed)
    lo, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    d = len(bounds)

    def kernel(A, B):  # signal_var = 1
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return np.exp(-np.maximum(sq, 0.0) / (2.0 * length_scale**2))

    U = rng.uniform(size=(num_init, d))
    ys = [float(f(lo + width * u)) for u in U]
    while len(ys) < num_iters:
        y = np.array(ys)
        sd = y.std()
        z = (y - y.mean()) / (sd if sd > 0 else 1.0)
        cand = rng.uniform(size=(num_candidates, d))
        L = np.linalg.cholesky(kernel(U, U) + noise_var * np.eye(len(U)))
        Ks = kernel(U, cand)
        mean = Ks.T @ np.linalg.solve(L.T, np.linalg.solve(L, z))
        std = np.sqrt(np.maximum(1.0 - (np.linalg.solve(L, Ks) ** 2).sum(0), 0.0))
        gain = z.min() - mean  # xi = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            ei = np.where(
                std > 0,
                gain * ndtr(gain / std)
                + std * np.exp(-0.5 * (gain / std) ** 2) / np.sqrt(2 * np.pi),
                np.maximum(gain, 0.0),
            )
        u = cand[int(np.argmax(ei))]
        U = np.vstack([U, u])
        ys.append(float(f(lo + width * u)))
    k = int(np.argmin(ys))
    return lo + width * U[k], ys[k], ys


def branin(x):
    """The Branin function on [-5, 10] x [0, 15]; its minimum 0.397887 is attained three times."""
    x1, x2 = float(x[0]), float(x[1])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


BRANIN_BOUNDS = [[-5.0, 10.0], [0.0, 15.0]]
