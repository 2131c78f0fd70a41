"""Chapter 10's graded questions: the soft-bounds device, its expected update, the implied L2
strength, and analog SGD under one random-number contract."""

import numpy as np

from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("memristor", number=10, notebook="book/ch10_memristor/exercises.ipynb")

# float64 throughout. Equivalent ways to write one update (delta (1 - w/w_max) or delta -
# delta w / w_max) differ by a few ulps a step; a trajectory of at most a few hundred
# contracting steps keeps that below 1e-12. The prompts promise 1e-9 relative, 1e-12 absolute.
TOL = {"rtol": 1e-9, "atol": 1e-12}


def check_update(t, w, delta, w_min, w_max, noise_std, up_down=0.0):
    seed = int(t_seed(w, delta))
    args = (w, delta, w_min, w_max, noise_std, seed)
    want = t.reference("driver:soft_bounds_twice", *args, up_down=up_down)
    got = t.student("driver:soft_bounds_twice", *args, up_down=up_down)
    if not (isinstance(got, tuple | list) and len(got) == 3):
        raise AssertionError("soft_bounds_update: the call could not be checked")
    assert_close(got[:2], want[:2], names=("the first update", "the second update"), **TOL)
    if got[2] != want[2]:
        raise AssertionError(
            "soft_bounds_update: the generator was not left where one "
            "rng.standard_normal(shape) per call leaves it (draw exactly once, even at "
            "noise_std = 0)"
        )


def t_seed(w, delta):
    """A seed derived from the case's own inputs (so one case's calls differ from another's)."""
    return int(np.abs(np.sum(np.asarray(w) * 1e6) + np.sum(np.asarray(delta) * 1e7))) % 2**31


def interior(rng, shape, w_min, w_max):
    return rng.uniform(0.9 * w_min, 0.9 * w_max, size=shape)


# ---------------------------------------------------------------------------------------------
# 10.1 The soft-bounds device.

UPDATE = chapter.question(
    "soft_bounds_update",
    points=3,
    functions=["soft_bounds_update"],
    title="10.1 A soft-bounds pulse update",
    hint="Draw xi = rng.standard_normal(shape) once, shape the broadcast shape of w and delta, "
    "even when noise_std is 0. Up (delta > 0): (1 + up_down) delta (1 - w / w_max); down "
    "(delta < 0): (1 - up_down) delta (1 - w / w_min); 0 where delta == 0; the step is "
    "multiplied by (1 + noise_std xi), not added to; clip the result to [w_min, w_max]; "
    "ValueError unless w_min < 0 < w_max.",
)


@UPDATE.case(public=True)
def update_small(t, rng):
    w = np.array([-0.5, 0.0, 0.25, 0.75])
    check_update(t, w, np.array([0.1, -0.1, 0.2, -0.05]), -1.0, 1.0, 0.0)
    check_update(t, w, np.array([0.1, -0.1, 0.0, 0.05]), -1.0, 1.0, 0.3)


@UPDATE.case(public=True)
def update_asymmetric_bounds(t, rng):
    w = np.array([-0.2, 0.1, 0.6])
    check_update(t, w, np.array([-0.05, -0.05, 0.05]), -0.4, 1.2, 0.2)


@UPDATE.case()
def update_random(t, rng):
    for shape, lo, hi in [((5,), -1.0, 1.0), ((3, 4), -0.3, 0.8), ((1,), -2.0, 0.5)]:
        w = interior(rng, shape, lo, hi)
        delta = rng.normal(0, 0.05, size=shape)
        check_update(t, w, delta, lo, hi, float(rng.uniform(0.1, 0.8)))


@UPDATE.case()
def update_broadcasts(t, rng):
    # w (d, 1) and delta (1, k): the normals have the broadcast shape (d, k)
    check_update(t, interior(rng, (4, 1), -1, 1), rng.normal(0, 0.1, (1, 3)), -1.0, 1.0, 0.5)
    check_update(t, interior(rng, (6,), -1, 1), np.float64(0.02), -1.0, 1.0, 0.4)


@UPDATE.case()
def update_delta_zero_and_no_noise(t, rng):
    w = interior(rng, (8,), -0.5, 0.5)
    delta = rng.normal(0, 0.05, size=8)
    delta[[1, 4, 6]] = 0.0  # these never move, whatever xi is
    check_update(t, w, delta, -0.5, 0.5, 2.0)
    check_update(t, w, delta, -0.5, 0.5, 0.0)  # sigma 0: still one draw per call
    check_update(t, w, np.zeros(8), -0.5, 0.5, 1.0)


@UPDATE.case()
def update_clipping(t, rng):
    # large requested steps and noise: results beyond the bounds must be clipped
    w = interior(rng, (10,), -0.6, 0.9)
    delta = rng.choice([-1.0, 1.0], size=10) * rng.uniform(0.5, 3.0, size=10)
    check_update(t, w, delta, -0.6, 0.9, 1.5)
    check_update(t, np.array([0.9, -0.6]), np.array([0.3, -0.3]), -0.6, 0.9, 0.0)  # at the bounds


@UPDATE.case()
def update_up_down(t, rng):
    for a in (0.3, -0.25):
        w = interior(rng, (7,), -1.0, 1.0)
        check_update(t, w, rng.normal(0, 0.1, size=7), -1.0, 1.0, 0.2, up_down=a)


@UPDATE.case()
def update_rejects_bad_bounds(t, rng):
    w, d = np.array([0.1, 0.2]), np.array([0.05, -0.05])
    for lo, hi in [(0.0, 1.0), (-1.0, 0.0), (0.5, 1.0)]:
        t.expect_error(ValueError, "driver:soft_bounds_once", w, d, lo, hi, 0.1, 3)
    t.compare("driver:soft_bounds_once", w, d, -1e-3, 1.0, 0.1, 3, **TOL)  # just inside


# ---------------------------------------------------------------------------------------------
# 10.2 The expected update.

EXPECTED = chapter.question(
    "expected_update",
    points=1,
    functions=["expected_update"],
    title="10.2 The expected change",
    hint="The noise-free step of 10.1 before clipping: (1 + up_down) delta (1 - w / w_max) "
    "where delta > 0, (1 - up_down) delta (1 - w / w_min) where delta < 0, 0 where delta == 0; "
    "the change, not the new weight.",
)


@EXPECTED.case(public=True)
def expected_small(t, rng):
    w = np.array([-0.5, 0.0, 0.25, 0.75])
    t.compare("expected_update", w, np.array([0.1, -0.1, 0.0, -0.05]), -1.0, 1.0, **TOL)


@EXPECTED.case()
def expected_random(t, rng):
    for shape, lo, hi, a in [((6,), -1.0, 1.0, 0.0), ((3, 5), -0.4, 1.5, 0.2), ((2,), -3, 1, -0.5)]:
        w = interior(rng, shape, lo, hi)
        delta = rng.normal(0, 0.2, size=shape)
        delta.flat[0] = 0.0
        t.compare("expected_update", w, delta, lo, hi, up_down=a, **TOL)


@EXPECTED.case()
def expected_not_clipped(t, rng):
    # a step that would leave [w_min, w_max] is returned as it is (clipping is not its business)
    w = np.array([0.8, -0.8, 0.0])
    t.compare("expected_update", w, np.array([5.0, -5.0, 3.0]), -1.0, 1.0, **TOL)
    t.compare("expected_update", interior(rng, (4, 1), -1, 1), rng.normal(size=(1, 3)), -1, 1)


# ---------------------------------------------------------------------------------------------
# 10.3 The implied L2 strength.

IMPLIED = chapter.question(
    "implied_l2",
    points=1,
    functions=["implied_l2"],
    title="10.3 The implied L2 strength",
    hint="lambda = mean_abs_grad / tau entry by entry: one strength per weight, of the shape "
    "of mean_abs_grad (not one averaged number).",
)


@IMPLIED.case(public=True)
def implied_small(t, rng):
    t.compare("implied_l2", np.array([0.2, 0.5, 1.0]), 0.5, **TOL)


@IMPLIED.case()
def implied_random(t, rng):
    t.compare("implied_l2", rng.exponential(size=(17, 10)), float(rng.uniform(0.2, 3)), **TOL)
    t.compare("implied_l2", float(rng.exponential()), 0.7, **TOL)
    t.compare("implied_l2", np.array([0.0, 3.0]), 2.0, **TOL)


# ---------------------------------------------------------------------------------------------
# 10.4 Analog SGD.

SGD = chapter.question(
    "analog_sgd",
    points=3,
    functions=["analog_sgd", "soft_bounds_update"],
    title="10.4 Analog SGD",
    hint="rng = np.random.default_rng(seed) once; w = zeros of shape (d,) or (d, k) as y is 1-D "
    "or 2-D; each step i = rng.integers(n), g = x_i (x_i . w - y_i) (np.outer when y is 2-D), "
    "w = soft_bounds_update(w, -lr * g, w_min, w_max, noise_std, rng). Record w at step 0 and "
    "every record_every steps: shape (num_steps // record_every + 1, *w.shape).",
)


def regression(rng, n, d, k=None, scale=0.5):
    X = rng.normal(size=(n, d))
    shape = (d,) if k is None else (d, k)
    y = X @ rng.normal(0, scale, size=shape) + 0.2 * rng.normal(size=(n,) + shape[1:])
    return X, y


@SGD.case(public=True)
def sgd_small(t, rng):
    X, y = regression(rng, 10, 2)
    t.compare("analog_sgd", X, y, 0.05, 30, -1.0, 1.0, 0.3, 7, **TOL)


@SGD.case(public=True)
def sgd_two_outputs(t, rng):
    X, y = regression(rng, 12, 3, k=2)
    t.compare("analog_sgd", X, y, 0.05, 20, -0.5, 0.5, 0.2, 1, record_every=5, **TOL)


@SGD.case()
def sgd_random(t, rng):
    for n, d, k in [(40, 5, None), (25, 4, 3), (1, 3, None)]:
        X, y = regression(rng, n, d, k)
        seed = int(rng.integers(2**31))
        t.compare("analog_sgd", X, y, 0.02, 150, -0.8, 0.6, 0.4, seed, record_every=7, **TOL)


@SGD.case()
def sgd_without_noise_and_record_every(t, rng):
    X, y = regression(rng, 15, 3)
    t.compare("analog_sgd", X, y, 0.1, 40, -1.0, 1.0, 0.0, 4, **TOL)
    t.compare("analog_sgd", X, y, 0.1, 13, -1.0, 1.0, 0.5, 4, record_every=4, **TOL)
    t.compare("analog_sgd", X, y, 0.1, 0, -1.0, 1.0, 0.5, 4, **TOL)  # w0 alone


@SGD.case()
def sgd_hits_the_bounds(t, rng):
    # targets far outside [w_min, w_max] and a large step: the weights sit at the bounds
    X, y = regression(rng, 20, 2, k=2, scale=4.0)
    t.compare("analog_sgd", X, y, 0.5, 60, -0.3, 0.3, 0.8, 11, record_every=3, **TOL)
