"""Chapter 12's reference against Li et al.'s table, optuna's Hyperband and sklearn's GP."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from solutions import hpo

LI_TABLE_1 = [
    [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    [(34, 3), (11, 9), (3, 27), (1, 81)],
    [(15, 9), (5, 27), (1, 81)],
    [(8, 27), (2, 81)],
    [(5, 81)],
]


def test_schedule_is_li_table_1():
    """Does (R=81, eta=3) give Li et al.'s Table 1: 206 evaluations of 143 configs, 1902 units?"""
    sched = hpo.hyperband_schedule(81, 3)
    assert sched == LI_TABLE_1
    assert all(isinstance(r, int) for b in sched for _, r in b)
    assert sum(n for b in sched for n, _ in b) == 206
    assert sum(b[0][0] for b in sched) == 143
    assert [sum(n * r for n, r in b) for b in sched] == [405, 363, 351, 378, 405]


def test_schedule_243_has_six_brackets():
    """Does R=243, eta=3 get s_max=5 (six brackets), though floor(math.log(243, 3)) is 4?"""
    assert math.floor(math.log(243, 3)) == 4
    sched = hpo.hyperband_schedule(243, 3)
    assert len(sched) == 6
    assert sched[0] == [(243, 1), (81, 3), (27, 9), (9, 27), (3, 81), (1, 243)]
    assert sched[1] == [(98, 3), (32, 9), (10, 27), (3, 81), (1, 243)]
    assert sched[-1] == [(6, 243)]


def test_schedule_1000_10():
    """Does R=1000, eta=10 give four brackets (math.log(1000, 10) is 2.999...)?"""
    assert math.floor(math.log(1000, 10)) == 2
    assert hpo.hyperband_schedule(1000, 10) == [
        [(1000, 1), (100, 10), (10, 100), (1, 1000)],
        [(134, 10), (13, 100), (1, 1000)],
        [(20, 100), (2, 1000)],
        [(4, 1000)],
    ]


def test_schedule_100_3_floats():
    """When R is not a power of eta, is r_i the float R / eta**(s - i) (ints where exact)?"""
    sched = hpo.hyperband_schedule(100, 3)
    assert [len(b) for b in sched] == [5, 4, 3, 2, 1]
    assert [n for n, _ in sched[0]] == [81, 27, 9, 3, 1]
    for s, bracket in zip(range(4, -1, -1), sched):
        for i, (_, r) in enumerate(bracket):
            assert r == pytest.approx(100 * 3.0 ** (i - s), rel=1e-15)
            assert isinstance(r, int) == (100 % 3 ** (s - i) == 0)


@pytest.mark.parametrize(("R", "eta"), [(81, 3), (27, 3), (16, 2), (243, 3), (1000, 10)])
def test_bracket_count_against_optuna(R, eta):
    """Does optuna's HyperbandPruner build as many brackets where its float log is exact, and
    one fewer where math.log rounds down (243/3, 1000/10)?"""
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=eta)
    study = optuna.create_study(pruner=pruner)
    pruner._try_initialization(study)  # optuna 5.1.0 (pinned): builds its brackets lazily
    ours = len(hpo.hyperband_schedule(R, eta))
    theirs = pruner._n_brackets
    exact = math.log(R, eta) == round(math.log(R, eta))
    assert theirs == (ours if exact else ours - 1)


def crossing_curves(resource_loss):
    """An evaluate() over configs given as dicts with an 'id'; records its calls."""
    calls = []

    def evaluate(config, resource):
        calls.append((config["id"], resource))
        return resource_loss(config["id"], resource)

    return evaluate, calls


def test_successive_halving_crossing_curves():
    """On curves that cross, does SH call exactly the schedule, in order, and pick the config
    best at the largest resource rather than the one best at the smallest?"""
    # Config k: loss = a_k + b_k / resource; low a means good in the end, low b good early.
    a = np.array([0.50, 0.10, 0.30, 0.20, 0.40, 0.60, 0.25, 0.35, 0.45])
    b = np.array([0.00, 2.00, 0.50, 1.00, 0.20, 0.05, 3.00, 0.80, 0.10])
    evaluate, calls = crossing_curves(lambda k, r: a[k] + b[k] / r)
    configs = [{"id": k} for k in range(9)]
    best, history = hpo.successive_halving(evaluate, configs, 1, 3)
    assert [r for _, r, _ in history] == [1] * 9 + [3] * 3 + [9]
    assert [(k, r) for k, r, _ in history] == calls
    rung0 = a + b
    keep = sorted(range(9), key=lambda k: (rung0[k], k))[:3]
    assert [k for k, _, _ in history[9:12]] == keep
    rung1 = {k: a[k] + b[k] / 3 for k in keep}
    winner = min(keep, key=lambda k: (rung1[k], k))
    assert best == configs[winner] and history[-1][0] == winner
    assert int(np.argmin(rung0)) != winner  # the early leader lost
    assert configs == [{"id": k} for k in range(9)]


def test_successive_halving_ties_and_rungs():
    """Do ties keep the earlier config, and does num_rungs stop early and reject too many?"""
    evaluate, calls = crossing_curves(lambda k, r: 1.0)
    best, history = hpo.successive_halving(
        evaluate, list(map(lambda k: {"id": k}, range(10))), 2, 3
    )
    assert [k for k, _, _ in history] == list(range(10)) + [0, 1, 2] + [0]
    assert best == {"id": 0} and [r for _, r, _ in history][-1] == 18
    _, history = hpo.successive_halving(evaluate, [{"id": k} for k in range(9)], 1, 3, 2)
    assert len(history) == 12
    with pytest.raises(ValueError):
        hpo.successive_halving(evaluate, [{"id": k} for k in range(8)], 1, 3, 3)


def test_hyperband_brackets_call_counts():
    """Does one SH call per bracket with num_rungs=s+1 give the table's 206 evaluations?"""
    rng = np.random.default_rng(0)
    total = 0
    for s, bracket in zip(range(4, -1, -1), hpo.hyperband_schedule(81, 3)):
        n, r0 = bracket[0]
        evaluate, calls = crossing_curves(lambda k, r: rng.uniform())
        _, history = hpo.successive_halving(evaluate, [{"id": k} for k in range(n)], r0, 3, s + 1)
        counts = [sum(1 for _, rr, _ in history if rr == r) for _, r in bracket]
        assert counts == [m for m, _ in bracket]
        total += len(history)
    assert total == 206


def test_gp_posterior_matches_sklearn():
    """Do the posterior mean and latent variance match sklearn's GP with the kernel fixed?"""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    rng = np.random.default_rng(1)
    for n, d, ell, sv, nv in [(12, 2, 0.4, 1.0, 1e-6), (30, 3, 0.8, 2.5, 0.1), (5, 1, 0.2, 0.7, 0)]:
        X, y, Xs = rng.uniform(size=(n, d)), rng.normal(size=n), rng.uniform(size=(40, d))
        mean, var = hpo.gp_posterior(X, y, Xs, ell, sv, nv + 1e-12)
        kernel = ConstantKernel(sv, "fixed") * RBF(ell, "fixed")
        gp = GaussianProcessRegressor(kernel, alpha=nv + 1e-12, optimizer=None).fit(X, y)
        m, sd = gp.predict(Xs, return_std=True)
        # float64, n <= 30 well-conditioned solves: agreement to ~1e-11; 1e-8 leaves room.
        np.testing.assert_allclose(mean, m, atol=1e-8, rtol=0)
        np.testing.assert_allclose(var, sd**2, atol=1e-8, rtol=0)
        if nv > 0:  # with a WhiteKernel instead, sklearn's std**2 is latent + noise
            white = kernel + WhiteKernel(nv, "fixed")
            gp = GaussianProcessRegressor(white, alpha=1e-12, optimizer=None).fit(X, y)
            _, sd = gp.predict(Xs, return_std=True)
            np.testing.assert_allclose(var + nv, sd**2, atol=1e-8, rtol=0)


def test_gp_interpolates_without_noise():
    """With tiny noise, is the mean at a training point its y and the variance near 0?"""
    rng = np.random.default_rng(2)
    X, y = rng.uniform(size=(6, 2)), rng.normal(size=6)
    mean, var = hpo.gp_posterior(X, y, X, 0.3, 1.0, 1e-10)
    np.testing.assert_allclose(mean, y, atol=1e-6)
    assert np.all(np.abs(var) < 1e-6)


def test_expected_improvement_closed_form_and_monte_carlo():
    """Does EI equal the closed form, a Monte Carlo mean of max(best - f - xi, 0), and the
    positive part at std = 0?"""
    rng = np.random.default_rng(3)
    mean, std = rng.normal(size=200), rng.uniform(0.05, 2.0, size=200)
    ei = hpo.expected_improvement(mean, std, 0.3, 0.01)
    gain = 0.3 - mean - 0.01
    np.testing.assert_allclose(
        ei, gain * norm.cdf(gain / std) + std * norm.pdf(gain / std), rtol=1e-12
    )
    for mu, sd in [(0.0, 1.0), (1.0, 0.5), (-2.0, 3.0), (2.0, 0.5)]:
        assert abs((0.0 - mu) / sd) < 4.5
        draws = np.random.default_rng(4).normal(mu, sd, size=400_000)
        mc = np.maximum(0.0 - draws, 0.0)
        # Monte Carlo: standard error sd(mc)/sqrt(N); 5 of them.
        tol = 5 * mc.std() / math.sqrt(len(mc))
        assert abs(hpo.expected_improvement(mu, sd, 0.0) - mc.mean()) < tol
    np.testing.assert_array_equal(
        hpo.expected_improvement([0.1, 0.5, 0.3], [0.0, 0.0, 0.0], 0.3, 0.1),
        np.maximum(0.3 - np.array([0.1, 0.5, 0.3]) - 0.1, 0.0),
    )
    assert np.all(ei >= 0)


def test_bayes_opt_counts_calls():
    """Does bayes_opt call f exactly num_iters times, with (d,) float arrays inside the box,
    and return best_f = min(history) = f(best_x)?"""
    calls = []

    def f(x):
        assert x.shape == (2,) and x.dtype == np.float64
        calls.append(x.copy())
        return hpo.branin(x)

    best_x, best_f, history = hpo.bayes_opt(f, hpo.BRANIN_BOUNDS, 30, 0)
    assert len(calls) == 30 and len(history) == 30
    assert best_f == min(history) == hpo.branin(best_x)
    X = np.array(calls)
    assert np.all(X >= [-5, 0]) and np.all(X <= [10, 15])
    with pytest.raises(ValueError):
        hpo.bayes_opt(f, hpo.BRANIN_BOUNDS, 4, 0)


def random_search(f, bounds, n, seed):
    rng = np.random.default_rng(seed)
    bounds = np.asarray(bounds)
    X = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.uniform(size=(n, len(bounds)))
    return min(f(x) for x in X)


@pytest.mark.slow
def test_bayes_opt_on_branin():
    """In 30 evaluations does BO get below 0.5 in >= 7 of 10 seeds (minimum 0.397887) and beat
    random search's median at 30 in >= 9 of 10?"""
    bo = [hpo.bayes_opt(hpo.branin, hpo.BRANIN_BOUNDS, 30, s)[1] for s in range(10)]
    rs = [random_search(hpo.branin, hpo.BRANIN_BOUNDS, 30, 100 + s) for s in range(10)]
    assert min(bo) >= 0.397887 - 1e-6
    assert sum(v < 0.5 for v in bo) >= 7
    assert sum(v < np.median(rs) for v in bo) >= 9
