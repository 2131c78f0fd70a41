"""Chapter 12's graded questions: the Hyperband schedule, successive halving, the GP posterior,
expected improvement and the Bayesian-optimization loop."""

import numpy as np

from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("hpo", number=12, notebook="book/ch12_hpo/exercises.ipynb")

# ---------------------------------------------------------------------------------------------
# 12.1 The Hyperband schedule: integers compare exactly; a float r_i = R / eta**k is one
# division, so any correct order of operations agrees to a few ulp (1e-12 relative).

SCHEDULE = chapter.question(
    "hyperband_schedule",
    points=2,
    functions=["hyperband_schedule"],
    title="12.1 The Hyperband schedule",
    hint="s_max by integer arithmetic (while eta**(s+1) <= R: s += 1), not floor(math.log(R, "
    "eta)), which is 4 for R=243, eta=3. For s = s_max..0: n = -(-(s_max+1) * eta**s // "
    "(s+1)) (ceiling, not floor), rungs (n // eta**i, R * eta**(i-s)) for i = 0..s.",
)


def check_schedule(t, R, eta):
    t.compare("hyperband_schedule", R, eta, rtol=1e-12, atol=0)


@SCHEDULE.case(public=True)
def schedule_li_table(t, rng):
    check_schedule(t, 81, 3)
    check_schedule(t, 16, 2)


@SCHEDULE.case()
def schedule_float_log_traps(t, rng):
    for R, eta in [(243, 3), (1000, 10), (125, 5), (2187, 3)]:
        check_schedule(t, R, eta)


@SCHEDULE.case()
def schedule_random(t, rng):
    for _ in range(6):
        eta = int(rng.integers(2, 6))
        check_schedule(t, int(rng.integers(2, 3000)), eta)


@SCHEDULE.case()
def schedule_edges(t, rng):
    check_schedule(t, 1, 3)  # s_max = 0: one bracket, one rung
    check_schedule(t, 2, 3)  # R < eta
    check_schedule(t, 100, 3)  # floats where 3**k does not divide 100


# ---------------------------------------------------------------------------------------------
# 12.2 Successive halving on learning curves that cross.

HALVING = chapter.question(
    "successive_halving",
    points=3,
    functions=["successive_halving"],
    title="12.2 Successive halving",
    hint="Rung i calls evaluate(config, min_resource * eta**i) for each survivor (rung 0 in the "
    "order of configs, later rungs from the lowest loss of the rung before), then keeps "
    "len(survivors) // eta (floor) lowest losses, ties to the earlier config (sort by (loss, "
    "index)). num_rungs=None: rungs until one is left, floor(log_eta n) + 1 by integers.",
)


def random_curves(rng, n, ties=False):
    if ties:  # few distinct values: many exact ties in every rung
        a = rng.integers(0, 3, size=n) / 4.0
        return {"a": a, "b": np.zeros(n), "c": np.ones(n)}
    return {"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 2, n), "c": rng.uniform(0.2, 1.5, n)}


def check_halving(t, curves, n, min_resource, eta, num_rungs=None):
    args = (curves, n, min_resource, eta) + (() if num_rungs is None else (num_rungs,))
    want = t.reference("driver:successive_halving", *args)
    got = t.student("driver:successive_halving", *args)
    if len(got["calls"]) != len(want["calls"]):
        raise AssertionError(
            f"successive_halving: evaluate was called {len(got['calls'])} times; expected "
            f"{len(want['calls'])} (keep len(survivors) // eta per rung)"
        )
    assert_close(got["calls"], want["calls"], rtol=1e-12, atol=0, what="the calls of evaluate")
    assert_close(got["history"], want["history"], rtol=1e-12, atol=0, what="history")
    if got["best"] != want["best"]:
        raise AssertionError("successive_halving: best_config is not the expected config")


@HALVING.case(public=True)
def halving_nine_configs(t, rng):
    check_halving(t, random_curves(rng, 9), 9, 1, 3)


@HALVING.case(public=True)
def halving_ties(t, rng):
    check_halving(t, random_curves(rng, 10, ties=True), 10, 2, 3)


@HALVING.case()
def halving_random(t, rng):
    for n, eta in [(27, 3), (20, 2), (17, 4), (1, 3), (2, 2), (26, 3)]:
        check_halving(t, random_curves(rng, n), n, float(rng.choice([1, 0.5, 1.2345679])), eta)


@HALVING.case()
def halving_num_rungs(t, rng):
    check_halving(t, random_curves(rng, 34), 34, 3, 3, 4)  # Hyperband's s = 3 bracket
    check_halving(t, random_curves(rng, 15), 15, 9, 3, 3)
    check_halving(t, random_curves(rng, 8), 8, 27, 3, 1)  # one rung: the best of all
    check_halving(t, random_curves(rng, 12, ties=True), 12, 1, 2, 2)
    t.expect_error(ValueError, "driver:successive_halving", random_curves(rng, 8), 8, 1, 3, 3)


@HALVING.case()
def halving_ties_hidden(t, rng):
    for n, eta in [(13, 3), (16, 2)]:
        check_halving(t, random_curves(rng, n, ties=True), n, 1, eta)


# ---------------------------------------------------------------------------------------------
# 12.3 The GP posterior: float64 solves of n <= 25 with noise_var >= 1e-4 (condition number
# below ~1e6): Cholesky, solve or inv agree to ~1e-10; the prompt promises 1e-8.

GP = chapter.question(
    "gp_posterior",
    points=2,
    functions=["gp_posterior"],
    title="12.3 The GP posterior",
    hint="K = k(X, X) + noise_var * I (the noise inside the inverse), k* = k(X, X_test); mean = "
    "k*^T K^-1 y; var = signal_var - sum(k* * K^-1 k*, axis=0), the latent f (no noise added). "
    "k(x, x') = signal_var * exp(-||x - x'||^2 / (2 length_scale^2)).",
)
GP_TOL = {"rtol": 1e-8, "atol": 1e-8}


def gp_case(t, rng, n, d, m, ell, sv, nv):
    X, y, Xs = rng.uniform(size=(n, d)), rng.normal(size=n), rng.uniform(size=(m, d))
    t.compare("gp_posterior", X, y, Xs, ell, sv, nv, **GP_TOL)


@GP.case(public=True)
def gp_small(t, rng):
    gp_case(t, rng, 6, 2, 5, 0.4, 1.0, 0.1)


@GP.case()
def gp_random(t, rng):
    for n, d, m, ell, sv, nv in [(20, 3, 30, 0.6, 2.0, 0.05), (1, 1, 4, 0.3, 1.0, 0.2)]:
        gp_case(t, rng, n, d, m, ell, sv, nv)
    gp_case(t, rng, 12, 2, 1, 0.8, 0.5, 0.5)  # one test point


@GP.case()
def gp_far_and_at_training_points(t, rng):
    X, y = rng.uniform(size=(8, 2)), rng.normal(size=8)
    Xs = np.vstack([X[:3], X[:2] + 10.0])  # at data: var small; far away: var = signal_var
    t.compare("gp_posterior", X, y, Xs, 0.3, 1.5, 1e-4, **GP_TOL)


# ---------------------------------------------------------------------------------------------
# 12.4 Expected improvement (closed form, float64: 1e-12 relative).

EI = chapter.question(
    "expected_improvement",
    points=2,
    functions=["expected_improvement"],
    title="12.4 Expected improvement",
    hint="Minimization: gain = best - mean - xi (not mean - best), z = gain / std, EI = gain * "
    "Phi(z) + std * phi(z); where std == 0, EI = max(gain, 0). Broadcast mean and std.",
)
EI_TOL = {"rtol": 1e-12, "atol": 1e-15}


@EI.case(public=True)
def ei_small(t, rng):
    mean, std = rng.normal(size=8), rng.uniform(0.1, 1.0, size=8)
    t.compare("expected_improvement", mean, std, 0.2, **EI_TOL)
    t.compare("expected_improvement", mean, std, 0.2, 0.05, **EI_TOL)


@EI.case()
def ei_zero_std(t, rng):
    mean = rng.normal(size=6)
    std = np.where(np.arange(6) % 2 == 0, 0.0, rng.uniform(0.1, 1, size=6))
    t.compare("expected_improvement", mean, std, float(np.median(mean)), 0.01, **EI_TOL)


@EI.case()
def ei_random_and_scalars(t, rng):
    t.compare(
        "expected_improvement", rng.normal(size=(4, 5)), rng.uniform(0.01, 3, size=(4, 5)), -0.5
    )
    t.compare("expected_improvement", 0.3, 0.7, 0.1, 0.0, **EI_TOL)
    t.compare("expected_improvement", rng.normal(size=5), 0.4, 0.0, 0.2, **EI_TOL)


# ---------------------------------------------------------------------------------------------
# 12.5 The BO loop: the points asked for and the values seen. A different but correct GP solve
# moves EI by ~1e-12 relative, far below the gap between the best two of 2000 candidates.

BO = chapter.question(
    "bayes_opt",
    points=3,
    functions=["bayes_opt"],
    title="12.5 Bayesian optimization",
    hint="num_iters counts every call of f, the 5 initial points included (then num_iters - 5 "
    "GP steps). Draw rng.uniform(size=(5, d)) first, then per step rng.uniform(size=(2000, d)) "
    "candidates; unit-cube inputs, standardized y (ddof=0), length_scale 0.3, signal_var 1, "
    "noise_var 1e-6, xi 0, the first argmax of EI.",
    timeout=120.0,
)
BO_TOL = {"rtol": 1e-9, "atol": 1e-12}
BRANIN = {"kind": "branin"}
BRANIN_BOUNDS = [[-5.0, 10.0], [0.0, 15.0]]


def check_bo(t, problem, bounds, num_iters, seed):
    args = (problem, bounds, num_iters, seed)
    want = t.reference("driver:bayes_opt", *args)
    got = t.student("driver:bayes_opt", *args)
    if len(got["calls"]) != len(want["calls"]):
        raise AssertionError(
            f"bayes_opt: f was called {len(got['calls'])} times; expected {num_iters} (the "
            "initial design counts)"
        )
    assert_close(got["calls"], want["calls"], what="the points given to f", **BO_TOL)
    assert_close(got["history"], want["history"], what="history", **BO_TOL)
    assert_close(got["best_x"], want["best_x"], what="best_x", **BO_TOL)
    assert_close(got["best_f"], want["best_f"], what="best_f", **BO_TOL)


def bowl(rng, d):
    return {
        "kind": "bowl",
        "center": rng.uniform(-1, 1, size=d).tolist(),
        "scale": rng.uniform(0.5, 3, size=d).tolist(),
    }


@BO.case(public=True)
def bo_bowl(t, rng):
    check_bo(t, bowl(rng, 2), [[-2.0, 2.0], [-1.0, 3.0]], 9, 0)


@BO.case()
def bo_branin(t, rng):
    check_bo(t, BRANIN, BRANIN_BOUNDS, 12, int(rng.integers(0, 2**31)))


@BO.case()
def bo_dimensions_and_edges(t, rng):
    check_bo(t, bowl(rng, 1), [[0.0, 5.0]], 8, int(rng.integers(0, 1000)))
    check_bo(t, bowl(rng, 3), [[-1.0, 1.0]] * 3, 8, int(rng.integers(0, 1000)))
    check_bo(t, bowl(rng, 2), [[-1.0, 1.0], [0.0, 0.5]], 5, 3)  # the initial design only
    t.expect_error(ValueError, "driver:bayes_opt", BRANIN, BRANIN_BOUNDS, 4, 0)
