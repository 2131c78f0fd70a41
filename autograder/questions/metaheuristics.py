"""Chapter 11's graded questions: Rastrigin and Ackley, differential evolution, particle swarm
and simulated annealing.

The test functions are closed forms compared with the reference. The optimizers are random
searches whose random-number stream the prompts do not fix, so a correct submission need not
reproduce the reference's points: they are graded by properties. A trusted driver
(``autograder/kernel/metaheuristics.py``) hands them a counted objective and reports the rows of
every call; here, in the grader, the counts, the stopping rule, the bounds, ``best_f ==
f(best_x)`` (with the grader's own f) and quality thresholds are checked. Each threshold was
measured over many seeds, for the reference and for a correct implementation drawing its random
numbers differently, and sits far from both them and the targeted mistake (see each case).

The public cases are built so that every correct implementation returns the same thing (a
minimum at a corner of the box, reached exactly by clipping; a start at the minimum), so that
they compare with the reference's result as plain data and replay in the student release.
"""

import numpy as np

from autograder.compare import assert_close
from autograder.kernel.metaheuristics import objective
from autograder.spec import Chapter

chapter = Chapter("metaheuristics", number=11, notebook="book/ch11_metaheuristics/exercises.ipynb")

# ---------------------------------------------------------------------------------------------
# 11.1 The test functions, float64: values up to ~100 from d <= 8 terms of size <= 30; any
# correct order of operations (or 20 sin^2 for 10 - 10 cos) agrees to ~1e-13 absolute.

TEST_TOL = {"rtol": 1e-12, "atol": 1e-10}
ACKLEY_TOL = {"rtol": 1e-12, "atol": 1e-12}  # 0 at the origin up to float64 cancellation


def test_inputs(rng):
    """Inputs of several shapes: (d,), (m, d), (2, 3, 4, d), integers, the origin."""
    return [
        rng.uniform(-5.12, 5.12, size=(7,)),
        rng.uniform(-5.12, 5.12, size=(6, 2)),
        rng.uniform(-30, 30, size=(2, 3, 4, 3)),
        rng.uniform(-1, 1, size=(5, 1)),
        rng.integers(-3, 4, size=(4, 3)),  # integer points: the cosines are 1
        np.zeros((2, 8)),
    ]


RASTRIGIN = chapter.question(
    "rastrigin",
    points=1,
    functions=["rastrigin"],
    title="11.1 Rastrigin",
    hint="10 d + sum over the last axis of x^2 - 10 cos(2 pi x), d = x.shape[-1]; float64 of "
    "shape x.shape[:-1] (a scalar for one point); integers converted to float.",
)


@RASTRIGIN.case(public=True)
def rastrigin_batched(t, rng):
    t.compare("rastrigin", rng.uniform(-5.12, 5.12, size=(3, 4, 5)), **TEST_TOL)


@RASTRIGIN.case()
def rastrigin_shapes_and_edges(t, rng):
    for x in test_inputs(rng):
        t.compare("rastrigin", x, **TEST_TOL)


ACKLEY = chapter.question(
    "ackley",
    points=1,
    functions=["ackley"],
    title="11.1 Ackley",
    hint="-20 exp(-0.2 sqrt(mean(x^2))) - exp(mean(cos(2 pi x))) + 20 + e, the means over the "
    "last axis (divide by d, not by the number of points); 0 at the origin.",
)


@ACKLEY.case(public=True)
def ackley_batched(t, rng):
    t.compare("ackley", rng.uniform(-32.768, 32.768, size=(3, 4, 5)), **ACKLEY_TOL)


@ACKLEY.case()
def ackley_shapes_and_edges(t, rng):
    for x in test_inputs(rng):
        t.compare("ackley", x, **ACKLEY_TOL)


# ---------------------------------------------------------------------------------------------
# What every optimizer must satisfy, checked on the driver's report (see the module docstring).

F_TOL = {"rtol": 1e-12, "atol": 1e-12}  # f of one row alone vs inside a batch: an ulp or two


def check_contract(t, got, problem, bounds, per_call, num_calls, target, what):
    """The contract of the three optimizers on one run (``got`` with ``trace``).

    ``per_call``: rows of every call of f; ``num_calls``: calls of a run that does not stop.
    """
    rows, mins = got["rows"], got["mins"]
    if any(r != per_call for r in rows):
        raise AssertionError(f"{what}: {CALL_RULE[what]}")
    if got["num_evaluations"] != sum(rows):
        raise AssertionError(
            f"{what}: num_evaluations is not the number of rows passed to f (count every row, "
            "the initial ones included)"
        )
    if target is None and len(rows) != num_calls:
        raise AssertionError(f"{what}: f was not called once at the start and once per step")
    if target is not None:
        best = np.minimum.accumulate(mins)
        if len(rows) > num_calls or np.any(best[:-1] <= target):
            raise AssertionError(
                f"{what}: did not stop after the first step whose best value is <= target"
            )
        if best[-1] > target and len(rows) != num_calls:
            raise AssertionError(f"{what}: stopped before the best value reached target")
    x = np.asarray(got["best_x"], dtype=np.float64)
    if bounds is not None:
        lo, hi = np.asarray(bounds, dtype=np.float64).T
        if got["outside"] or np.any(x < lo) or np.any(x > hi):
            raise AssertionError(f"{what}: a point outside the bounds (clip to them)")
    f_of_x = float(objective(problem)(x[None])[0])
    assert_close(got["best_f"], f_of_x, what="best_f, against f(best_x),", **F_TOL)
    assert_close(
        got["best_f"], min(mins), what="best_f, against the best value f returned,", **F_TOL
    )


CALL_RULE = {
    "differential_evolution": "f must be called with all pop_size rows at once (the initial "
    "population, then each generation's trials)",
    "particle_swarm": "f must be called with all num_particles positions at once",
    "simulated_annealing": "f must be called with one row, shape (1, d), per evaluation",
}


def box(rng, d):
    lo = rng.uniform(-5, 1, size=d)
    return np.stack([lo, lo + rng.uniform(0.5, 6, size=d)], axis=1)


def problem_in(rng, bounds, kinds=("sphere", "rastrigin", "ackley")):
    lo, hi = bounds[:, 0], bounds[:, 1]
    shift = lo + rng.uniform(0.1, 0.9, size=len(lo)) * (hi - lo)
    return {"kind": str(rng.choice(kinds)), "shift": shift.tolist()}


def corner_problem(d):
    """The L1 distance to the box's lower corner: every correct run ends at ``lo`` exactly
    (clipping puts points on the bound; one ulp inside is already worse), whatever its
    random numbers."""
    lo = np.array([-1.0, 0.5, -3.0, 2.0])[:d]
    hi = lo + np.array([2.0, 1.5, 4.0, 1.0])[:d]
    return {"kind": "l1", "shift": lo.tolist()}, np.stack([lo, hi], axis=1)


EXACT = {"rtol": 0, "atol": 0}

# ---------------------------------------------------------------------------------------------
# 11.2 Differential evolution.

DE = chapter.question(
    "differential_evolution",
    points=3,
    functions=["differential_evolution"],
    title="11.2 Differential evolution",
    hint="rng = default_rng(seed); X uniform in the box, f(X) once. Per generation: r1, r2, r3 "
    "distinct and != i; v = X[r1] + F (X[r2] - X[r3]); take v_j where U < CR or j == j_rand "
    "(one j_rand per trial), else x_j; clip; f(all trials) in one call; replace where "
    "f(trial) <= f(x). num_evaluations = rows given to f; check target before each generation.",
)


def de_run(t, problem, bounds, pop, F, CR, G, seed, target=None):
    got = t.student(
        "driver:differential_evolution",
        problem,
        bounds,
        pop,
        F,
        CR,
        G,
        seed,
        target,
        True,
    )
    check_contract(t, got, problem, bounds, pop, G + 1, target, "differential_evolution")
    return got


@DE.case(public=True)
def de_corner_of_the_box(t, rng):
    # Measured: 0/2000 runs of the reference and 0/2000 of another correct DE (other draws)
    # end off the corner (with a sphere centred beyond it instead, 5/2000 did: one ulp from
    # the corner rounded to the same value).
    problem, bounds = corner_problem(3)
    t.compare("driver:differential_evolution", problem, bounds, 12, 0.8, 0.5, 60, 7, **EXACT)


@DE.case()
def de_contract_random(t, rng):
    for G in (0, 1, int(rng.integers(2, 25))):
        d = int(rng.choice([1, 2, 3, 5]))
        bounds = box(rng, d)
        args = (problem_in(rng, bounds), bounds, int(rng.integers(4, 16)))
        args += (float(rng.uniform(0.3, 0.9)), float(rng.uniform(0, 1)), G)
        de_run(t, *args, int(rng.integers(2**31)))
    seed = int(rng.integers(2**31))
    assert_close(
        de_run(t, *args, seed),
        de_run(t, *args, seed),
        what="a second run with the same seed",
        **EXACT,
    )


@DE.case()
def de_target(t, rng):
    # 2-D Rastrigin, pop 20, CR 0.2, target 1e-2 within 150 generations: reached in 50/50 runs
    # (reference and another correct DE), after 35-80 generations.
    bounds = np.array([[-5.12, 5.12]] * 2)
    problem = {"kind": "rastrigin", "shift": rng.uniform(-1, 1, size=2).tolist()}
    got = de_run(t, problem, bounds, 20, 0.5, 0.2, 150, int(rng.integers(2**31)), 1e-2)
    if got["best_f"] > 1e-2:
        raise AssertionError("differential_evolution: did not reach 1e-2 on 2-D Rastrigin")
    # the initial population already reaches target: one call; target never reached: all
    de_run(t, problem, bounds, 8, 0.5, 0.9, 10, int(rng.integers(2**31)), 1e9)
    de_run(t, problem, bounds, 8, 0.5, 0.9, 10, int(rng.integers(2**31)), -1.0)


@DE.case()
def de_j_rand_with_cr_zero(t, rng):
    # CR = 0: only the j_rand coordinate of each trial comes from the mutant; 4-D Rastrigin is
    # separable, so that suffices. pop 30, 120 generations: best <= 1.1e-6 over 50 runs of
    # the reference and of another correct DE; without j_rand every trial equals its target
    # and the best stays the initial population's (15-50).
    bounds = np.array([[-5.12, 5.12]] * 4)
    problem = {"kind": "rastrigin", "shift": rng.uniform(-1, 1, size=4).tolist()}
    got = de_run(t, problem, bounds, 30, 0.5, 0.0, 120, int(rng.integers(2**31)))
    if got["best_f"] >= 0.5:
        raise AssertionError(
            "differential_evolution: with CR = 0 it does not solve separable 4-D Rastrigin "
            "(j_rand: one coordinate of every trial must come from the mutant)"
        )


@DE.case()
def de_rejects_bad_arguments(t, rng):
    problem, bounds = corner_problem(2)
    t.expect_error(ValueError, "driver:differential_evolution", problem, bounds, 3, 0.5, 0.9, 5, 0)
    bad = bounds[:, ::-1].copy()  # lo > hi
    t.expect_error(ValueError, "driver:differential_evolution", problem, bad, 8, 0.5, 0.9, 5, 0)


# ---------------------------------------------------------------------------------------------
# 11.3 Particle swarm.

PSO = chapter.question(
    "particle_swarm",
    points=2,
    functions=["particle_swarm"],
    title="11.3 Particle swarm",
    hint="rng = default_rng(seed); X uniform in the box, V uniform in +-(hi - lo), f(X) once. "
    "Per iteration: g = the best personal best; r1, r2 uniform of shape (n, d); V = w V + c1 r1 "
    "(P - X) + c2 r2 (g - X); X = clip(X + V); f(X) in one call; P, f(P) where f(X) <= f(P). "
    "Return the best personal best; check target before each iteration.",
)
CLERC = (0.7298, 1.49618, 1.49618)


def pso_run(t, problem, bounds, n, iters, w, c1, c2, seed, target=None):
    got = t.student(
        "driver:particle_swarm",
        problem,
        bounds,
        n,
        iters,
        w,
        c1,
        c2,
        seed,
        target,
        True,
    )
    check_contract(t, got, problem, bounds, n, iters + 1, target, "particle_swarm")
    return got


@PSO.case(public=True)
def pso_corner_of_the_box(t, rng):
    # Measured: 0/2000 runs of the reference and 0/2000 of another correct PSO end off the
    # corner.
    problem, bounds = corner_problem(3)
    t.compare("driver:particle_swarm", problem, bounds, 12, 40, *CLERC, 7, **EXACT)


@PSO.case()
def pso_contract_random(t, rng):
    for iters in (0, 1, int(rng.integers(2, 30))):
        d = int(rng.choice([1, 2, 4]))
        bounds = box(rng, d)
        args = (problem_in(rng, bounds), bounds, int(rng.integers(2, 15)), iters)
        args += (float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.5, 2)))
        args += (float(rng.uniform(0.5, 2)),)
        pso_run(t, *args, int(rng.integers(2**31)))
    seed = int(rng.integers(2**31))
    assert_close(
        pso_run(t, *args, seed),
        pso_run(t, *args, seed),
        what="a second run with the same seed",
        **EXACT,
    )


@PSO.case()
def pso_target(t, rng):
    # 3-D sphere, 20 particles, target 1e-4 within 200 iterations: reached in every run.
    bounds = np.array([[-5.0, 5.0]] * 3)
    problem = {"kind": "sphere", "shift": rng.uniform(-3, 3, size=3).tolist()}
    got = pso_run(t, problem, bounds, 20, 200, *CLERC, int(rng.integers(2**31)), 1e-4)
    if got["best_f"] > 1e-4:
        raise AssertionError("particle_swarm: did not reach 1e-4 on a 3-D sphere")
    pso_run(t, problem, bounds, 6, 10, *CLERC, int(rng.integers(2**31)), 1e9)


@PSO.case()
def pso_social_term(t, rng):
    # 5-D Ackley on +-32.768, 30 particles, 200 iterations, Clerc's constants: best <= 7.6e-6
    # over 50 runs of the reference and another correct PSO; without the social term (c2 = 0)
    # best >= 4.5 in every run.
    bounds = np.array([[-32.768, 32.768]] * 5)
    problem = {"kind": "ackley", "shift": rng.uniform(-5, 5, size=5).tolist()}
    got = pso_run(t, problem, bounds, 30, 200, *CLERC, int(rng.integers(2**31)))
    if got["best_f"] > 1e-3:
        raise AssertionError(
            "particle_swarm: does not solve 5-D Ackley with Clerc's constants (is every particle "
            "pulled towards the swarm's best, g?)"
        )


@PSO.case()
def pso_rejects_bad_bounds(t, rng):
    problem, bounds = corner_problem(2)
    bad = bounds[:, ::-1].copy()
    t.expect_error(ValueError, "driver:particle_swarm", problem, bad, 5, 3, *CLERC, 0)


# ---------------------------------------------------------------------------------------------
# 11.4 Simulated annealing.

SA = chapter.question(
    "simulated_annealing",
    points=3,
    functions=["simulated_annealing"],
    title="11.4 Simulated annealing",
    hint="rng = default_rng(seed); f(x0[None]) once. Step k = 0, 1, ...: y = x + step_size * "
    "rng.standard_normal(d); f(y[None]); accept if f(y) - f(x) <= 0 or rng.random() < exp(-"
    "(f(y) - f(x)) / T_k), T_k = T0 cooling**k (uphill moves too, not only downhill); return "
    "the best point ever seen (not the last), num_steps + 1 evaluations.",
)


def sa_run(t, problem, x0, step, T0, cooling, num_steps, seed, target=None):
    got = t.student(
        "driver:simulated_annealing",
        problem,
        x0,
        step,
        T0,
        cooling,
        num_steps,
        seed,
        target,
        True,
    )
    check_contract(t, got, problem, None, 1, num_steps + 1, target, "simulated_annealing")
    if got["best_f"] > got["mins"][0]:
        raise AssertionError("simulated_annealing: best_f is worse than f(x0)")
    return got


def sphere_at(c):
    return {"kind": "sphere", "shift": np.asarray(c, dtype=np.float64).tolist()}


@SA.case(public=True)
def sa_start_at_the_minimum(t, rng):
    # Every proposal is worse than x0, the minimum: any correct run returns (x0, 0, 301).
    x0 = rng.uniform(-2, 2, size=3)
    t.compare("driver:simulated_annealing", sphere_at(x0), x0, 0.3, 1.0, 0.99, 300, 5, **EXACT)
    # target reached by x0 itself: stop before the first step, one evaluation
    t.compare("driver:simulated_annealing", sphere_at(x0), x0, 0.3, 1.0, 0.99, 300, 5, 0.0, **EXACT)


@SA.case()
def sa_contract_random(t, rng):
    for steps in (0, 1, int(rng.integers(2, 300))):
        d = int(rng.choice([1, 2, 5]))
        bounds = box(rng, d)
        problem = problem_in(rng, bounds)
        x0 = bounds[:, 0] + rng.uniform(size=d) * (bounds[:, 1] - bounds[:, 0])
        args = (problem, x0, float(rng.uniform(0.05, 1)), float(rng.uniform(0.01, 5)))
        args += (float(rng.uniform(0.9, 1)), steps)
        sa_run(t, *args, int(rng.integers(2**31)))
    seed = int(rng.integers(2**31))
    assert_close(
        sa_run(t, *args, seed),
        sa_run(t, *args, seed),
        what="a second run with the same seed",
        **EXACT,
    )


@SA.case()
def sa_target(t, rng):
    # 3-D sphere from distance 2, cold: target 0.05 within 1000 steps in every run.
    c = rng.uniform(-2, 2, size=3)
    got = sa_run(
        t, sphere_at(c), c + 2 / np.sqrt(3), 0.1, 1e-3, 1.0, 1000, int(rng.integers(2**31)), 0.05
    )
    if got["best_f"] > 0.05:
        raise AssertionError("simulated_annealing: did not reach 0.05 on a cold 3-D sphere")


@SA.case()
def sa_cold_rejects_uphill(t, rng):
    # T0 = 1e-3 on a 10-D sphere from distance sqrt(90), step 0.1, 1000 steps: best <= 0.035
    # over 50 runs of the reference and another correct SA; accepting every move, >= 30.
    c = rng.uniform(-2, 2, size=10)
    got = sa_run(t, sphere_at(c), c + 3.0, 0.1, 1e-3, 1.0, 1000, int(rng.integers(2**31)))
    if got["best_f"] >= 1.0:
        raise AssertionError(
            "simulated_annealing: at T0 = 1e-3 it does not descend a 10-D sphere (uphill moves "
            "must be rare when T is small)"
        )


@SA.case()
def sa_metropolis_and_cooling(t, rng):
    # At constant T = 0.5 on a 4-D sphere (step 0.2, 2000 steps) the walk samples exp(-f/T):
    # E f = d T / 2 = 1, and a proposal adds d step^2 = 0.16. Mean proposal value after step
    # 500, measured over 50 runs: 0.96-1.37 (reference and another correct SA); greedy
    # (never uphill) 0.15-0.17; every move accepted >= 45; exp(-delta T) instead 3.2-5.2.
    c = rng.uniform(-2, 2, size=4)
    got = sa_run(t, sphere_at(c), c, 0.2, 0.5, 1.0, 2000, int(rng.integers(2**31)))
    mean = float(np.mean(got["mins"][500:]))
    if not 0.6 <= mean <= 2.4:
        raise AssertionError(
            "simulated_annealing: at constant temperature the values it visits are not those "
            "of the Metropolis rule (accept uphill with probability exp(-delta / T))"
        )
    # Cooling from T0 = 2 by 0.998 a step: mean over the last 200 proposals 0.20-0.31
    # (T_k ~ 0.04); without cooling 0.72-2.2.
    got = sa_run(t, sphere_at(c), c, 0.2, 2.0, 0.998, 2000, int(rng.integers(2**31)))
    if float(np.mean(got["mins"][1800:])) >= 0.5:
        raise AssertionError("simulated_annealing: the temperature does not fall as T0 cooling**k")
