"""Chapter 4's reference against the trusted libraries (torch.nn.functional, autograd, numpy)."""

import numpy as np
import pytest
import torch
from scipy import stats

from solutions.normalization import (
    batchnorm_backward,
    batchnorm_forward,
    condition_number,
    he_normal,
    jacobian_condition_number,
    layer_variances,
    xavier_uniform,
)

# float64 throughout: batch norm is a handful of sums and one square root per feature, so the
# two implementations agree to a few ulps of values of order 1-10; 1e-10 leaves ample room.
BN_TOL = 1e-10
SHAPES = [(2, 1), (4, 3), (32, 8), (257, 5)]


def batch(shape, seed):
    rng = np.random.default_rng(seed)
    n, d = shape
    x = rng.normal(scale=10.0, size=d) + rng.uniform(0.1, 5.0, size=d) * rng.normal(size=(n, d))
    return x, rng.normal(size=d), rng.normal(size=d), rng.normal(size=(n, d))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_batchnorm_forward_matches_torch(shape, eps):
    """Does batchnorm_forward equal F.batch_norm(training=True) in float64?"""
    x, gamma, beta, _ = batch(shape, seed=shape[0])
    y, _ = batchnorm_forward(x, gamma, beta, eps=eps)
    want = torch.nn.functional.batch_norm(
        torch.tensor(x), None, None, torch.tensor(gamma), torch.tensor(beta), True, 0.1, eps
    )
    np.testing.assert_allclose(y, want.numpy(), rtol=0, atol=BN_TOL)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_batchnorm_backward_matches_autograd(shape, eps):
    """Does batchnorm_backward give autograd's dx, dgamma and dbeta in float64?"""
    x, gamma, beta, dy = batch(shape, seed=shape[0] + 1)
    _, cache = batchnorm_forward(x, gamma, beta, eps=eps)
    dx, dgamma, dbeta = batchnorm_backward(dy, cache)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    y = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    y.backward(torch.tensor(dy))
    for ours, theirs in [(dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=BN_TOL)


def test_batchnorm_constant_feature_gives_beta():
    """Is a zero-variance feature mapped to beta without NaNs?"""
    x = np.column_stack([np.full(6, 3.0), np.arange(6.0)])
    y, _ = batchnorm_forward(x, np.array([2.0, 1.0]), np.array([-1.0, 0.0]))
    np.testing.assert_array_equal(y[:, 0], -1.0)


@pytest.mark.parametrize("d", [1, 2, 5, 20])
def test_condition_number_matches_numpy(d):
    """Does condition_number agree with numpy.linalg.cond on random and ill-conditioned matrices?"""
    rng = np.random.default_rng(d)
    U, _ = np.linalg.qr(rng.normal(size=(d, d)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    for A in [rng.normal(size=(d, d)), U @ np.diag(np.logspace(0, 8, d)) @ V.T]:
        # SVD is backward stable: the ratio is accurate to ~kappa * eps relative, 1e-7 here.
        assert condition_number(A) == pytest.approx(np.linalg.cond(A), rel=1e-7)


def test_condition_number_is_inf_when_singular():
    """Is a singular matrix (exactly, or up to rounding) given condition number inf?"""
    assert condition_number(np.zeros((3, 3))) == np.inf
    assert condition_number(np.array([[1.0, 2.0], [2.0, 4.0]])) == np.inf
    assert condition_number(np.outer(np.arange(1.0, 6.0), np.arange(2.0, 7.0))) == np.inf


def test_jacobian_condition_number_matches_analytic_jacobians():
    """Does the autograd Jacobian's kappa equal kappa(W) and kappa(diag(1 - tanh^2) W)?"""
    rng = np.random.default_rng(0)
    W, b, x = rng.normal(size=(4, 4)), rng.normal(size=4), rng.normal(size=4)
    Wt, bt, xt = (torch.tensor(a) for a in (W, b, x))
    assert jacobian_condition_number(lambda v: Wt @ v, xt) == pytest.approx(
        np.linalg.cond(W), rel=1e-10
    )
    J = np.diag(1 - np.tanh(W @ x + b) ** 2) @ W
    got = jacobian_condition_number(lambda v: torch.tanh(Wt @ v + bt), xt)
    assert got == pytest.approx(np.linalg.cond(J), rel=1e-10)


def stretch_then_normalize(theta, mode):
    """A layer stretching by 10 along angle theta (1 across), then normalization with the
    statistics of an isotropic batch held fixed (eps = 0): the chapter's idealized example."""
    c, s = np.cos(theta), np.sin(theta)
    R = torch.tensor([[c, -s], [s, c]])
    S = R @ torch.diag(torch.tensor([10.0, 1.0], dtype=torch.float64)) @ R.T
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 2, generator=g, dtype=torch.float64)
    X = X - X.mean(0)
    X = X @ torch.linalg.inv(torch.linalg.cholesky(X.T @ X / len(X))).T  # covariance exactly I
    H = X @ S.T
    mu = H.mean(0)
    if mode == "per_feature":
        scale = torch.diag(1 / H.std(0, unbiased=False))
    else:  # whiten: C^(-1/2) with C the batch covariance of the layer's output
        evals, evecs = torch.linalg.eigh((H - mu).T @ (H - mu) / len(H))
        scale = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    return (lambda v: S @ v), (lambda v: scale @ (S @ v - mu))


def test_idealized_stretch_is_isotropic_after_normalization():
    """Does normalizing an axis-aligned stretch (or whitening any stretch) give kappa = 1?"""
    x = torch.tensor([0.3, -0.7], dtype=torch.float64)
    layer, normalized = stretch_then_normalize(0.0, "per_feature")
    assert jacobian_condition_number(layer, x) == pytest.approx(10.0, rel=1e-12)
    assert jacobian_condition_number(normalized, x) == pytest.approx(1.0, abs=1e-6)
    _, whitened = stretch_then_normalize(np.pi / 6, "whiten")
    assert jacobian_condition_number(whitened, x) == pytest.approx(1.0, abs=1e-6)


def test_per_feature_normalization_helps_without_reaching_one():
    """For a stretch along a diagonal direction, does per-feature BN lower kappa but not to 1?"""
    x = torch.zeros(2, dtype=torch.float64)
    layer, normalized = stretch_then_normalize(np.pi / 6, "per_feature")
    before, after = jacobian_condition_number(layer, x), jacobian_condition_number(normalized, x)
    assert before == pytest.approx(10.0, rel=1e-12)
    assert 1.5 < after < before


FANS = [(300, 100), (64, 64), (10, 500)]


@pytest.mark.parametrize(("fan_in", "fan_out"), FANS)
def test_xavier_uniform_matches_torch_init(fan_in, fan_out):
    """Do xavier_uniform's shape, bounds, variance and distribution match xavier_uniform_'s?"""
    ours = np.concatenate(
        [xavier_uniform(fan_in, fan_out, np.random.default_rng(s)) for s in [0, 1]]
    )
    torch.manual_seed(0)
    theirs = torch.nn.init.xavier_uniform_(torch.empty(2 * fan_out, fan_in)).numpy().astype(float)
    assert xavier_uniform(fan_in, fan_out, np.random.default_rng(0)).shape == (fan_out, fan_in)
    a = np.sqrt(6 / (fan_in + fan_out))
    # torch's bound uses its own fans (2 * fan_out rows here): rescale its draws to ours.
    theirs *= a / np.sqrt(6 / (fan_in + 2 * fan_out))
    assert np.abs(ours).max() <= a and np.abs(ours).max() > 0.99 * a
    assert_same_distribution(ours.ravel(), theirs.ravel())


@pytest.mark.parametrize(("fan_in", "fan_out"), FANS)
def test_he_normal_matches_torch_init(fan_in, fan_out):
    """Do he_normal's shape, variance and distribution match kaiming_normal_'s (ReLU, fan_in)?"""
    ours = np.concatenate([he_normal(fan_in, fan_out, np.random.default_rng(s)) for s in [0, 1]])
    torch.manual_seed(0)
    theirs = torch.nn.init.kaiming_normal_(torch.empty(2 * fan_out, fan_in), nonlinearity="relu")
    assert he_normal(fan_in, fan_out, np.random.default_rng(0)).shape == (fan_out, fan_in)
    assert_same_distribution(ours.ravel(), theirs.numpy().astype(float).ravel())


def assert_same_distribution(ours, theirs):
    """Two samples agree in variance within 6 standard errors and pass a two-sample KS test."""
    se = np.sqrt(np.var(ours**2) / ours.size + np.var(theirs**2) / theirs.size)
    assert abs(np.mean(ours**2) - np.mean(theirs**2)) < 6 * se
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-6


def test_initializers_use_the_generator():
    """Does the same seed give the same weights and a different seed different ones?"""
    for init in [xavier_uniform, he_normal]:
        a, b = (init(5, 7, np.random.default_rng(3)) for _ in range(2))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, init(5, 7, np.random.default_rng(4)))


def test_layer_variances_matches_torch_forward():
    """Does layer_variances equal the variances of a torch forward pass, for each activation?"""
    rng = np.random.default_rng(0)
    widths = [6, 9, 4, 7]
    X = rng.normal(size=(30, 6))
    Ws = [rng.normal(size=(b, a)) for a, b in zip(widths, widths[1:])]
    acts = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "linear": lambda z: z}
    for name, phi in acts.items():
        h, want = torch.tensor(X), []
        for W in Ws:
            h = phi(torch.nn.functional.linear(h, torch.tensor(W)))
            want.append(h.var(unbiased=False).item())
        np.testing.assert_allclose(layer_variances(X, Ws, name), want, rtol=1e-12)
    with pytest.raises(ValueError):
        layer_variances(X, Ws, "softplus")


def test_he_keeps_relu_variance_and_small_init_collapses():
    """In a 10-layer ReLU MLP, does He init keep the variance within 2x of layer 1's, while
    N(0, 0.01^2) weights shrink it more than 1000x?"""
    rng = np.random.default_rng(0)
    width, depth = 256, 10
    X = rng.normal(size=(512, width))
    he = layer_variances(X, [he_normal(width, width, rng) for _ in range(depth)], "relu")
    assert np.all(he / he[0] < 2) and np.all(he / he[0] > 0.5)
    small = [rng.normal(scale=0.01, size=(width, width)) for _ in range(depth)]
    tiny = layer_variances(X, small, "relu")
    assert tiny[-1] < tiny[0] / 1000


def test_batchnorm_forward_keeps_float32():
    """Does a float32 batch give a float32 y, equal to the float64 computation to float32
    precision (values of order 1: rtol 1e-5)?"""
    x, gamma, beta, _ = batch((16, 3), 7)
    x = (x - x.mean(0)) / 10
    y32, _ = batchnorm_forward(*(a.astype(np.float32) for a in (x, gamma, beta)))
    y64, _ = batchnorm_forward(x, gamma, beta)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_singular_tolerance_is_that_of_the_dtype(dtype):
    """Just below sigma_max * d * eps (eps of the dtype) is inf, just above is finite, for both
    condition numbers; in float32, 0.5 d eps_32 counts as singular although float64 would not."""
    eps = torch.finfo(dtype).eps
    for factor, singular in ((0.5, True), (4.0, False)):
        s = torch.tensor([4.0, 1.0, 4.0 * 3 * eps * factor], dtype=torch.float64)
        W = torch.diag(s).to(dtype)
        got = jacobian_condition_number(lambda v, W=W: W @ v, torch.ones(3, dtype=dtype))
        assert (got == np.inf) is singular
        if dtype == torch.float64:
            assert (condition_number(W.numpy()) == np.inf) is singular
            assert bool(np.linalg.matrix_rank(W.numpy()) < 3) is singular


def test_layer_variances_checks_the_name_before_any_work():
    """Is an unknown activation refused even with no layers, and no layers give an empty array?"""
    X = np.ones((4, 3))
    with pytest.raises(ValueError):
        layer_variances(X, [], "softplus")
    assert layer_variances(X, [], "relu").shape == (0,)
