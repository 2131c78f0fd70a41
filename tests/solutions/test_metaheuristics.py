"""Chapter 11 reference: test functions, DE, PSO and simulated annealing."""

import numpy as np
import pytest
import scipy.optimize

from solutions import metaheuristics as mh

SEEDS = range(10)


class Counter:
    def __init__(self, f):
        self.f, self.rows, self.calls = f, 0, 0

    def __call__(self, X):
        assert X.ndim == 2
        self.rows += X.shape[0]
        self.calls += 1
        return self.f(X)


def test_closed_forms_on_batched_inputs():
    """Do rastrigin and ackley match their textbook formulas on (3, 4, d) inputs and vanish at 0?"""
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (3, 4, 6))
    d = 6
    ras = 10 * d + (x**2 - 10 * np.cos(2 * np.pi * x)).sum(-1)
    ack = (
        -20 * np.exp(-0.2 * np.sqrt((x**2).mean(-1)))
        - np.exp(np.cos(2 * np.pi * x).mean(-1))
        + 20
        + np.e
    )
    np.testing.assert_allclose(mh.rastrigin(x), ras, rtol=1e-12)
    np.testing.assert_allclose(mh.ackley(x), ack, rtol=1e-12)
    assert mh.rastrigin(np.zeros(5)) == 0.0
    assert abs(mh.ackley(np.zeros(5))) < 1e-14  # float64 cancellation of 20 + e - 20 - e


@pytest.mark.parametrize("target", [None, 1.0])
def test_evaluation_counts_and_contract(target):
    """Do the three optimizers count rows passed to f, keep x in bounds and report f(best_x)?"""
    b = [[-5.12, 5.12]] * 3
    f = Counter(mh.rastrigin)
    x, fx, n = mh.differential_evolution(f, b, 12, 0.5, 0.9, 30, 1, target=target)
    assert n == f.rows and (target is not None or n == 12 * 31) and n % 12 == 0
    assert fx == mh.rastrigin(x) and np.all(np.abs(x) <= 5.12)
    f = Counter(mh.rastrigin)
    x, fx, n = mh.particle_swarm(f, b, 9, 25, 0.7298, 1.49618, 1.49618, 1, target=target)
    assert n == f.rows and (target is not None or n == 9 * 26) and n % 9 == 0
    assert fx == mh.rastrigin(x) and np.all(np.abs(x) <= 5.12)
    f = Counter(mh.rastrigin)
    x, fx, n = mh.simulated_annealing(f, np.ones(3), 0.3, 1.0, 0.99, 200, 1, target=target)
    assert n == f.rows and (target is not None or n == 201)
    assert fx == mh.rastrigin(x)


def test_target_stops_after_first_generation_reaching_it():
    """Does DE stop at the first generation whose best is <= target, not before and not after?"""
    b = [[-5.12, 5.12]] * 2
    _, fx_full, _ = mh.differential_evolution(mh.rastrigin, b, 20, 0.5, 0.2, 100, 3)
    t = 1e-2
    hist = []
    for g in range(100):
        hist.append(mh.differential_evolution(mh.rastrigin, b, 20, 0.5, 0.2, g, 3)[1])
        if hist[-1] <= t:
            break
    _, fx, n = mh.differential_evolution(mh.rastrigin, b, 20, 0.5, 0.2, 100, 3, target=t)
    assert fx <= t and n == 20 * len(hist) and fx == hist[-1]


def _scipy_evals(d, pop, F, CR, seed, target=1e-6, maxiter=3000):
    rows = [0]

    def fv(X):  # scipy's vectorized f takes (d, m)
        rows[0] += X.shape[1]
        return mh.rastrigin(X.T)

    best = [np.inf]

    def cb(intermediate_result):
        if intermediate_result.fun <= target:
            raise StopIteration

    scipy.optimize.differential_evolution(
        fv,
        [(-5.12, 5.12)] * d,
        strategy="rand1bin",
        mutation=F,
        recombination=CR,
        popsize=pop // d,
        init="random",
        updating="deferred",
        vectorized=True,
        polish=False,
        tol=0,
        atol=0,
        maxiter=maxiter,
        rng=seed,
        callback=cb,
    )
    del best
    return rows[0]


@pytest.mark.slow
def test_de_matches_scipy_like_for_like():
    """Does DE reach 1e-6 on 5-D Rastrigin in >= 9/10 runs within 1.3x scipy's median rows?"""
    ours, reached = [], 0
    for s in SEEDS:
        _, fx, n = mh.differential_evolution(
            mh.rastrigin, [[-5.12, 5.12]] * 5, 50, 0.5, 0.2, 3000, s, target=1e-6
        )
        reached += fx <= 1e-6
        ours.append(n)
    theirs = [_scipy_evals(5, 50, 0.5, 0.2, s) for s in SEEDS]
    assert reached >= 9
    assert np.median(ours) <= 1.3 * np.median(theirs)
    assert sum(n <= 3 * np.median(theirs) for n in ours) >= 8


def test_j_rand_makes_cr_zero_work():
    """With CR=0 only j_rand moves a coordinate: does DE still solve separable 5-D Rastrigin?"""
    for s in SEEDS:
        _, fx, _ = mh.differential_evolution(
            mh.rastrigin, [[-5.12, 5.12]] * 5, 50, 0.5, 0.0, 200, s
        )
        assert fx < 0.5


def test_pso_solves_ackley():
    """Does Clerc-Kennedy PSO reach 1e-3 on 5-D Ackley in >= 8/10 runs in 300 iterations?"""
    hits = 0
    for s in SEEDS:
        _, fx, _ = mh.particle_swarm(
            mh.ackley, [[-32.768, 32.768]] * 5, 30, 300, 0.7298, 1.49618, 1.49618, s
        )
        hits += fx <= 1e-3
    assert hits >= 8


def test_sa_finds_ackley_basin():
    """From U[-5,5]^5, does SA end in the global basin (f < 1) of Ackley in >= 8/10 runs?"""
    hits = 0
    for s in SEEDS:
        x0 = np.random.default_rng(100 + s).uniform(-5, 5, 5)
        _, fx, _ = mh.simulated_annealing(mh.ackley, x0, 0.2, 0.5, 0.999, 5000, s)
        hits += fx < 1
    assert hits >= 8


def test_sa_cold_rejects_uphill():
    """At T0=1e-3 on a 10-D sphere, does SA act as descent (median best < 1)?"""

    def sphere(X):
        return (X**2).sum(-1)

    best = [
        mh.simulated_annealing(sphere, np.full(10, 3.0), 0.1, 1e-3, 1.0, 3000, s)[1] for s in SEEDS
    ]
    assert np.median(best) < 1
