"""Chapter 4's graded questions: batch norm, condition numbers, initializers, layer statistics."""

import numpy as np
from scipy import stats

from autograder import spec
from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("normalization", number=4, notebook="book/ch04_normalization/exercises.ipynb")

# ---------------------------------------------------------------------------------------------
# 4.1 and 4.2: batch normalization. The cache is the student's own structure: it never leaves
# the kernel. The forward is graded on y alone, the backward through the student's forward.

BN_X = np.array([[1.0, 2.0, -1.0], [3.0, 0.0, -1.5], [0.0, 5.0, -0.5], [4.0, 1.0, -2.0]])
BN_GAMMA = np.array([1.0, 2.0, 0.5])
BN_BETA = np.array([0.0, -1.0, 3.0])
BN_DY = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -1.0], [-2.0, 1.5, 0.0], [0.0, 0.5, 1.0]])


def compare(t, target, *args, what, names=None, rtol=None, atol=None, **kwargs):
    """``t.compare`` with the result named as the prompt names it (``what``, ``names``)."""
    want = t.reference(target, *args, **kwargs)
    got = t.student(target, *args, **kwargs)
    assert_close(got, want, rtol=rtol, atol=atol, what=what, names=names)
    return got


BN_Y = "y (from batchnorm_forward)"
BN_GRADS = ("dx", "dgamma", "dbeta")


def _bn_inputs(rng, n, d, scale=None):
    """A batch with features of very different means and scales, and random gamma, beta, dy."""
    loc = rng.normal(scale=10.0, size=d)
    scale = rng.uniform(0.1, 5.0, size=d) if scale is None else np.full(d, scale)
    x = loc + scale * rng.normal(size=(n, d))
    gamma, beta = rng.normal(size=d), rng.normal(size=d)
    return x, gamma, beta, rng.normal(size=(n, d))


FWD = chapter.question(
    "batchnorm_forward",
    points=2,
    functions=["batchnorm_forward"],
    forbidden=spec.AUTOGRAD + ("torch.nn",),
    title="4.1 Batch normalization, forward",
    hint="Normalize each column with its batch mean and its biased batch variance (divide by n, "
    "as np.var does by default); eps goes inside the square root; return (y, cache), y in x's "
    "dtype (float32 in, float32 out).",
)


@FWD.case(public=True)
def four_by_three(t, rng):
    compare(t, "driver:batchnorm_output", BN_X, BN_GAMMA, BN_BETA, what=BN_Y)


@FWD.case()
def random_shapes(t, rng):
    for n, d in [(8, 5), (32, 1), (2, 7), (100, 16)]:
        x, gamma, beta, _ = _bn_inputs(rng, n, d)
        compare(t, "driver:batchnorm_output", x, gamma, beta, what=BN_Y)


@FWD.case()
def eps_is_used(t, rng):
    # Features with a variance comparable to eps: where eps goes matters.
    x, gamma, beta, _ = _bn_inputs(rng, 16, 4, scale=0.05)
    compare(t, "driver:batchnorm_output", x, gamma, beta, eps=0.1, what=BN_Y)
    compare(t, "driver:batchnorm_output", x, gamma, beta, eps=1e-3, what=BN_Y)


@FWD.case()
def constant_feature(t, rng):
    x, gamma, beta, _ = _bn_inputs(rng, 10, 3)
    x[:, 1] = 7.0  # zero variance: the output is beta there, and nothing is NaN
    compare(t, "driver:batchnorm_output", x, gamma, beta, what=BN_Y)


@FWD.case()
def float32_in_float32_out(t, rng):
    # Moderate means and scales, so that any sound way of computing the variance in float32
    # stays within float32's tolerance (rtol 1e-5, atol 1e-6); y must keep x's dtype.
    x = (rng.normal(size=3) + rng.uniform(0.5, 2.0, 3) * rng.normal(size=(24, 3))).astype("f4")
    gamma, beta = rng.normal(size=3).astype("f4"), rng.normal(size=3).astype("f4")
    want = t.reference("driver:batchnorm_output_dtype", x, gamma, beta)
    got = t.student("driver:batchnorm_output_dtype", x, gamma, beta)
    assert got[1] == "float32", f"{BN_Y}: float32 inputs must give float32 output"
    assert_close(got[0], want[0], what=BN_Y)


BWD = chapter.question(
    "batchnorm_backward",
    points=3,
    functions=["batchnorm_forward", "batchnorm_backward"],
    forbidden=spec.AUTOGRAD + ("torch.nn",),
    title="4.2 Batch normalization, backward",
    hint="It is graded through YOUR forward: backward receives your own cache, so fix 4.1 first. "
    "Every row's mean and variance depend on every x_i, so dx has two batch-mean terms besides "
    "gamma * dy / sigma; check your result against torch.autograd on a small batch.",
)


BACKWARD = "driver:batchnorm_gradients"


@BWD.case(public=True)
def four_by_three_backward(t, rng):
    compare(t, BACKWARD, BN_X, BN_GAMMA, BN_BETA, BN_DY, what="gradients", names=BN_GRADS)


@BWD.case()
def random_shapes_backward(t, rng):
    for n, d in [(8, 5), (32, 1), (2, 7), (100, 16)]:
        x, gamma, beta, dy = _bn_inputs(rng, n, d)
        compare(t, BACKWARD, x, gamma, beta, dy, what="gradients", names=BN_GRADS)


@BWD.case()
def eps_is_used_backward(t, rng):
    x, gamma, beta, dy = _bn_inputs(rng, 16, 4, scale=0.05)
    compare(t, BACKWARD, x, gamma, beta, dy, eps=0.1, what="gradients", names=BN_GRADS)


@BWD.case()
def constant_upstream_gradient(t, rng):
    # dy the same in every row: dx must vanish (shifting every x_i by the same amount
    # changes nothing), while dbeta = n * dy_row.
    x, gamma, beta, _ = _bn_inputs(rng, 12, 3)
    dy = np.tile(rng.normal(size=3), (12, 1))
    compare(t, BACKWARD, x, gamma, beta, dy, what="gradients", names=BN_GRADS)


# ---------------------------------------------------------------------------------------------
# 4.3 and 4.4: condition numbers.

COND = chapter.question(
    "condition_number",
    points=1,
    functions=["condition_number"],
    title="4.3 Condition number",
    hint="Use the singular values (np.linalg.svd with compute_uv=False), not the eigenvalues; "
    "return float('inf') when sigma_min is 0 or at most sigma_max * max(A.shape) * machine "
    "epsilon (the tolerance of np.linalg.matrix_rank).",
)


@COND.case(public=True)
def small_matrices(t, rng):
    t.compare("condition_number", np.diag([10.0, 1.0]))
    t.compare("condition_number", np.array([[0.0, -1.0], [1.0, 0.0]]))  # a rotation
    t.compare("condition_number", np.array([[1.0, 2.0], [2.0, 4.0]]))  # singular


@COND.case()
def random_square(t, rng):
    for d in [1, 2, 5, 8]:
        t.compare("condition_number", rng.normal(size=(d, d)))


@COND.case()
def not_symmetric(t, rng):
    # Both eigenvalues are 1, yet the matrix stretches some directions 10^4 times more.
    t.compare("condition_number", np.array([[1.0, 100.0], [0.0, 1.0]]))
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    V, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    t.compare("condition_number", U @ np.diag([1e4, 30.0, 2.0, 1.0]) @ V.T)


@COND.case()
def singular(t, rng):
    t.compare("condition_number", np.zeros((3, 3)))
    A = rng.normal(size=(4, 4))
    A[2] = 0.0
    t.compare("condition_number", A)
    u, v = rng.integers(1, 9, size=5).astype(float), rng.integers(1, 9, size=5).astype(float)
    t.compare("condition_number", np.outer(u, v))  # rank 1, though rounding hides the zeros


def signed_permutation(rng, d):
    """A random permutation matrix with random signs: orthogonal, and exact in floating point."""
    return np.eye(d)[rng.permutation(d)] * rng.choice([-1.0, 1.0], size=d)


def near_threshold(rng, d, factor, dtype=np.float64):
    """A (d, d) matrix whose sigma_min is ``factor`` times the singular tolerance of 4.3/4.4,
    sigma_max * d * eps: below it (factor < 1) the answer is inf, above it a finite ratio.

    Built as P diag(s) Q with signed permutations, so every SVD routine returns s exactly up
    to one ulp, far from the factor 2 separating either side from the threshold."""
    s = rng.uniform(0.5, 4.0, size=d)
    s[0] = 4.0
    s[-1] = 4.0 * d * np.finfo(dtype).eps * factor
    A = signed_permutation(rng, d) @ np.diag(rng.permutation(s)) @ signed_permutation(rng, d)
    return A.astype(dtype)


@COND.case()
def both_sides_of_the_tolerance(t, rng):
    for d in (2, 5):
        t.compare("condition_number", near_threshold(rng, d, 0.5))  # inf
        t.compare("condition_number", near_threshold(rng, d, 4.0))  # about 1 / (4 d eps)


JAC = chapter.question(
    "jacobian_condition_number",
    points=2,
    functions=["jacobian_condition_number"],
    title="4.4 Condition number of a Jacobian",
    hint="torch.autograd.functional.jacobian(f, x) gives the (d, d) matrix "
    "J[i, j] = d f_i / d x_j; then proceed as in 4.3 (singular values; inf when sigma_min <= "
    "sigma_max * d * eps) with eps = torch.finfo(J.dtype).eps, J's own dtype (1.2e-7 for "
    "float32), without calling condition_number; return a Python float.",
)


def kappa(t, *args, **kwargs):
    """The student's and the reference's condition number of one function's Jacobian."""
    return compare(t, "driver:jacobian_kappa", *args, what="jacobian_condition_number", **kwargs)


@JAC.case(public=True)
def diagonal_and_tanh(t, rng):
    kappa(t, "linear", {"W": np.diag([2.0, 0.5])}, np.ones(2), rtol=1e-6)
    W = np.array([[1.0, 0.5], [-0.3, 2.0]])
    params = {"W": W, "b": np.array([0.1, -0.2])}
    kappa(t, "tanh_layer", params, np.array([0.3, -0.4]), rtol=1e-6)


@JAC.case()
def random_layers(t, rng):
    for d in [1, 3, 6]:
        W = rng.normal(size=(d, d)) / np.sqrt(d)
        x = rng.normal(size=d)
        kappa(t, "linear", {"W": W}, x, rtol=1e-6)
        params = {"W": W, "b": rng.normal(scale=0.3, size=d)}
        kappa(t, "tanh_layer", params, x, rtol=1e-6)


@JAC.case()
def normalized_stretch(t, rng):
    # A stretch along a random direction, then normalization with a batch's statistics.
    theta = rng.uniform(0.2, 1.3)
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    W = R @ np.diag([10.0, 1.0]) @ R.T
    batch = rng.normal(size=(64, 2))
    x = rng.normal(size=2)
    for mode in ["per_feature", "whiten"]:
        params = {"W": W, "batch": batch, "mode": mode, "eps": 1e-5}
        kappa(t, "normalized_layer", params, x, rtol=1e-6)


@JAC.case()
def singular_jacobian(t, rng):
    W = rng.normal(size=(3, 3))
    W[1] = 0.0
    kappa(t, "linear", {"W": W}, rng.normal(size=3))


@JAC.case()
def near_singular_jacobians(t, rng):
    # A rank-1 map with rounding-size noise: sigma_min is tiny but not 0, the answer is inf.
    u, v = rng.normal(size=4), rng.normal(size=4)
    W = np.outer(u, v) + 1e-17 * rng.normal(size=(4, 4))
    kappa(t, "linear", {"W": W}, rng.normal(size=4))
    # Both sides of the tolerance sigma_max * d * eps, in float64 ...
    for factor in (0.5, 4.0):
        W = near_threshold(rng, 3, factor)
        kappa(t, "linear", {"W": W}, rng.normal(size=3), rtol=1e-6)


@JAC.case()
def float32_uses_float32_eps(t, rng):
    # ... and in float32, where eps is torch.finfo(torch.float32).eps = 1.2e-7: a sigma_min of
    # 0.5 d eps_32 sigma_max is singular there, though float64's eps would call it regular.
    for factor in (0.5, 4.0):
        W = near_threshold(rng, 3, factor, np.float32)
        x = rng.normal(size=3)
        kappa(t, "linear", {"W": W}, x, dtype="float32", rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# 4.5 and 4.6: initializers, graded statistically (the sampling calls may differ, the
# distribution may not). Thresholds: 6 standard errors and a KS p-value of 1e-6, so a correct
# sampler fails with probability below 1e-5 and the seeds are fixed per case anyway.

SE_LIMIT = 6.0
KS_P_LIMIT = 1e-6


def _draws(t, name, fan_in, fan_out, seed, repeats=1):
    draws = np.asarray(t.student("driver:init_draws", name, fan_in, fan_out, seed, repeats))
    assert draws.dtype.kind == "f", f"{name}: expected floating-point weights, got {draws.dtype}"
    assert draws.shape[1:] == (fan_out, fan_in), (
        f"{name}({fan_in}, {fan_out}, rng): shape {draws.shape[1:]} != expected (fan_out, fan_in)"
    )
    assert np.isfinite(draws).all(), f"{name}: weights must be finite"
    return draws.ravel()


def _check_moments(name, w, var):
    """Sample mean 0 and sample variance ``var`` within SE_LIMIT standard errors."""
    n = w.size
    z_mean = w.mean() / np.sqrt(var / n)
    assert abs(z_mean) < SE_LIMIT, f"{name}: the sample mean is {abs(z_mean):.1f} SE away from 0"
    # Var(w**2) = E w**4 - var**2, estimated from the sample itself.
    se_var = np.sqrt(max(np.var(w**2), 1e-300) / n)
    z_var = (np.mean(w**2) - var) / se_var
    assert abs(z_var) < SE_LIMIT, (
        f"{name}: the sample variance is {abs(z_var):.1f} standard errors from the required one"
    )


def _check_same_and_different_seeds(t, name):
    a = _draws(t, name, 6, 4, seed=123)
    b = _draws(t, name, 6, 4, seed=123)
    c = _draws(t, name, 6, 4, seed=124)
    assert np.array_equal(a, b), f"{name}: the same seed must give the same weights (use rng)"
    assert not np.array_equal(a, c), f"{name}: different seeds must give different weights"


XAV = chapter.question(
    "xavier_uniform",
    points=1,
    functions=["xavier_uniform"],
    title="4.5 Xavier/Glorot uniform initialization",
    hint="U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), shape (fan_out, fan_in), drawn with "
    "rng.uniform (never np.random or torch's global generator).",
)


def _xavier_bound(fan_in, fan_out):
    return np.sqrt(6.0 / (fan_in + fan_out))


def _check_xavier(t, fan_in, fan_out, seed, repeats):
    w = _draws(t, "xavier_uniform", fan_in, fan_out, seed, repeats)
    a = _xavier_bound(fan_in, fan_out)
    assert np.abs(w).max() <= a * (1 + 1e-12), "xavier_uniform: weights outside [-a, a]"
    _check_moments("xavier_uniform", w, a**2 / 3)
    p = stats.kstest(w, "uniform", args=(-a, 2 * a)).pvalue
    assert p > KS_P_LIMIT, f"xavier_uniform: not uniform on [-a, a] (KS p-value {p:.1e})"


@XAV.case(public=True)
def xavier_shape_bounds_seeds(t, rng):
    w = _draws(t, "xavier_uniform", 3, 5, seed=0)
    assert np.abs(w).max() <= _xavier_bound(3, 5) * (1 + 1e-12), "weights outside [-a, a]"
    _check_same_and_different_seeds(t, "xavier_uniform")


@XAV.case()
def xavier_distribution(t, rng):
    _check_xavier(t, 200, 600, int(rng.integers(2**31)), 2)
    _check_xavier(t, 700, 50, int(rng.integers(2**31)), 3)


@XAV.case()
def xavier_tiny_fans(t, rng):
    _check_xavier(t, 1, 2, int(rng.integers(2**31)), 20_000)


@XAV.case()
def xavier_seeds(t, rng):
    _check_same_and_different_seeds(t, "xavier_uniform")


HE = chapter.question(
    "he_normal",
    points=1,
    functions=["he_normal"],
    title="4.6 He/Kaiming normal initialization",
    hint="N(0, 2 / fan_in): standard deviation sqrt(2 / fan_in), shape (fan_out, fan_in), drawn "
    "with rng.normal (never np.random or torch's global generator).",
)


def _check_he(t, fan_in, fan_out, seed, repeats):
    w = _draws(t, "he_normal", fan_in, fan_out, seed, repeats)
    std = np.sqrt(2.0 / fan_in)
    _check_moments("he_normal", w, std**2)
    p = stats.kstest(w, "norm", args=(0.0, std)).pvalue
    assert p > KS_P_LIMIT, f"he_normal: not normal with the required spread (KS p-value {p:.1e})"


@HE.case(public=True)
def he_shape_and_seeds(t, rng):
    _draws(t, "he_normal", 3, 5, seed=0)
    _check_same_and_different_seeds(t, "he_normal")


@HE.case()
def he_distribution(t, rng):
    _check_he(t, 200, 600, int(rng.integers(2**31)), 2)
    _check_he(t, 700, 50, int(rng.integers(2**31)), 3)


@HE.case()
def he_tiny_fans(t, rng):
    _check_he(t, 1, 3, int(rng.integers(2**31)), 20_000)


# ---------------------------------------------------------------------------------------------
# 4.7: activation statistics through depth.

LAYERS = chapter.question(
    "layer_variances",
    points=2,
    functions=["layer_variances"],
    title="4.7 Activation variance through depth",
    hint="h = activation(h @ W.T) layer after layer, starting from X; record np.var(h) over all "
    "entries AFTER the activation; check the activation name first and raise ValueError for an "
    "unknown one before any work (even when weights is empty).",
)


def _weights(rng, widths, std=None):
    return [
        rng.normal(scale=std or np.sqrt(1.0 / a), size=(b, a)) for a, b in zip(widths, widths[1:])
    ]


@LAYERS.case(public=True)
def two_relu_layers(t, rng):
    X = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0], [2.0, 0.5, 1.5], [-1.0, -1.0, 0.0]])
    W1 = np.array([[0.5, -1.0, 0.2], [1.0, 0.3, -0.4]])
    W2 = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.0], [0.2, 1.0]])
    t.compare("layer_variances", X, [W1, W2], "relu")


@LAYERS.case()
def every_activation(t, rng):
    widths = [8, 16, 5, 12, 3, 9]
    X = rng.normal(size=(50, widths[0]))
    W = _weights(rng, widths)
    for act in ["relu", "tanh", "sigmoid", "linear"]:
        t.compare("layer_variances", X, W, act)


@LAYERS.case()
def ten_layers_small_init(t, rng):
    X = rng.normal(size=(64, 20))
    t.compare("layer_variances", X, _weights(rng, [20] * 11, std=0.01), "tanh")
    t.compare("layer_variances", X, _weights(rng, [20] * 11, std=0.5), "relu")


@LAYERS.case()
def unknown_activation(t, rng):
    X = rng.normal(size=(5, 3))
    t.expect_error(ValueError, "layer_variances", X, _weights(rng, [3, 4]), "softplus")


@LAYERS.case()
def no_layers(t, rng):
    # The name is checked before any work: with no layers there is nothing else to fail on.
    X = rng.normal(size=(5, 3))
    t.compare("layer_variances", X, [], "tanh")  # an empty array
    t.expect_error(ValueError, "layer_variances", X, [], "softplus")
