"""Reference implementations for chapter 11: test functions, DE, PSO and simulated annealing.

Contract shared by the three optimizers: ``f`` maps an ``(m, d)`` array to an ``(m,)`` array;
``num_evaluations`` counts rows passed to ``f`` (the initial population included); ``target=t``
stops after the first generation/iteration/step whose best value is ``<= t`` (``None``: run all).
Each returns ``(best_x, best_f, num_evaluations)`` with ``best_f == f(best_x)`` and ``best_x``
inside the bounds.
"""

import numpy as np


def rastrigin(x):
    """Rastrigin ``10 d + sum(x_j^2 - 10 cos(2 pi x_j))`` over the last axis; 0 at the origin."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    return 10.0 * d + np.sum(x**2 - 10.0 * np.cos(2.0 * np.pi * x), axis=-1)


def ackley(x):
    """Ackley (a=20, b=0.2, c=2 pi) over the last axis; 0 at the origin."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    r = np.sqrt(np.sum(x**2, axis=-1) / d)
    c = np.sum(np.cos(2.0 * np.pi * x), axis=-1) / d
    return -20.0 * np.exp(-0.2 * r) - np.exp(c) + 20.0 + np.e


def differential_evolution(f, bounds, pop_size, F, CR, num_generations, seed, target=None):
    """DE/rand/1/bin with synchronous replacement on ``<=``; see the module docstring.

    Exercise 11.2 in book/ch11_metaheuristics/exercises.ipynb.
    """
    b = np.asarray(bounds, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 2 or not np.all(b[:, 0] < b[:, 1]):
        raise ValueError(f"bounds must be (d, 2) with lo < hi; got {b.shape}")
    lo, hi = b[:, 0], b[:, 1]

    def evaluate(X):  # f on (m, d) rows, checked to return (m,) values
        y = np.asarray(f(X), dtype=np.float64)
        if y.shape != (X.shape[0],):
            raise ValueError(f"f must map (m, d) to (m,); got {y.shape} for {X.shape}")
        return y

    d = lo.size
    if pop_size < 4:
        raise ValueError("DE/rand/1 needs pop_size >= 4")
    rng = np.random.default_rng(seed)
    X = lo + rng.random((pop_size, d)) * (hi - lo)
    fx = evaluate(X)
    n = pop_size
    for _ in range(num_generations):
        if target is not None and fx.min() <= target:
            break
        # r1, r2, r3 distinct and different from i: sample from the other pop_size - 1 indices.
        idx = np.empty((pop_size, 3), dtype=np.int64)
        for i in range(pop_size):
            others = rng.choice(pop_size - 1, size=3, replace=False)
            idx[i] = others + (others >= i)
        V = X[idx[:, 0]] + F * (X[idx[:, 1]] - X[idx[:, 2]])
        cross = rng.random((pop_size, d)) < CR
        j_rand = rng.integers(d, size=pop_size)
        cross[np.arange(pop_size), j_rand] = True
        U = np.clip(np.where(cross, V, X), lo, hi)
        fu = evaluate(U)
        n += pop_size
        keep = fu <= fx
        X[keep] = U[keep]
        fx[keep] = fu[keep]
    i = int(np.argmin(fx))
    return X[i].copy(), float(fx[i]), n


def particle_swarm(f, bounds, num_particles, num_iters, w, c1, c2, seed, target=None):
    """Global-best PSO with clipped positions; see the module docstring.

    Exercise 11.3 in book/ch11_metaheuristics/exercises.ipynb.
    """
    b = np.asarray(bounds, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 2 or not np.all(b[:, 0] < b[:, 1]):
        raise ValueError(f"bounds must be (d, 2) with lo < hi; got {b.shape}")
    lo, hi = b[:, 0], b[:, 1]

    def evaluate(X):  # f on (m, d) rows, checked to return (m,) values
        y = np.asarray(f(X), dtype=np.float64)
        if y.shape != (X.shape[0],):
            raise ValueError(f"f must map (m, d) to (m,); got {y.shape} for {X.shape}")
        return y

    d = lo.size
    rng = np.random.default_rng(seed)
    X = lo + rng.random((num_particles, d)) * (hi - lo)
    V = (2.0 * rng.random((num_particles, d)) - 1.0) * (hi - lo)
    fx = evaluate(X)
    n = num_particles
    P, fp = X.copy(), fx.copy()
    for _ in range(num_iters):
        if target is not None and fp.min() <= target:
            break
        g = P[np.argmin(fp)]
        r1 = rng.random((num_particles, d))
        r2 = rng.random((num_particles, d))
        V = w * V + c1 * r1 * (P - X) + c2 * r2 * (g - X)
        X = np.clip(X + V, lo, hi)
        fx = evaluate(X)
        n += num_particles
        better = fx <= fp
        P[better] = X[better]
        fp[better] = fx[better]
    i = int(np.argmin(fp))
    return P[i].copy(), float(fp[i]), n


def simulated_annealing(f, x0, step_size, T0, cooling, num_steps, seed, target=None):
    """Metropolis walk ``x + step N(0, I)`` at ``T_k = T0 cooling^k``; the best point seen.

    Exercise 11.4 in book/ch11_metaheuristics/exercises.ipynb.
    """

    def evaluate(X):  # f on (m, d) rows, checked to return (m,) values
        y = np.asarray(f(X), dtype=np.float64)
        if y.shape != (X.shape[0],):
            raise ValueError(f"f must map (m, d) to (m,); got {y.shape} for {X.shape}")
        return y

    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float64).reshape(-1)
    fcur = float(evaluate(x[None])[0])
    n = 1
    best_x, best_f = x.copy(), fcur
    for k in range(num_steps):
        if target is not None and best_f <= target:
            break
        y = x + step_size * rng.standard_normal(x.size)
        fy = float(evaluate(y[None])[0])
        n += 1
        delta = fy - fcur
        T = T0 * cooling**k
        if delta <= 0 or rng.random() < np.exp(-delta / T):
            x, fcur = y, fy
            if fy < best_f:
                best_x, best_f = y.copy(), fy
    return best_x, best_f, n
