"""Chapter 5's reference against the trusted libraries (numpy, scikit-learn, torch.autograd)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, Ridge, lasso_path

from solutions.regularization import (
    dropout_expected_loss,
    hidden_unit_balance,
    ista,
    lasso_kkt_violation,
    min_norm_solution,
    orthogonality_penalty,
    rescale_hidden_units,
    ridge_path,
    soft_threshold,
)


def net(X, W1, b1, W2, b2):
    """relu(X W1^T + b1) W2^T + b2."""
    return np.maximum(X @ W1.T + b1, 0.0) @ W2.T + b2


def small_net(seed, d=3, h=6, k=2):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(h, d)),
        rng.normal(size=h),
        rng.normal(size=(k, h)),
        rng.normal(size=k),
    )


def lasso_problem(seed, n=80, d=30, correlated=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if correlated:
        # Neighbouring columns share most of their signal: a badly conditioned Lasso.
        X = X + 3.0 * np.roll(X, 1, axis=1) + 3.0 * np.roll(X, 2, axis=1)
    w_true = np.where(rng.uniform(size=d) < 0.3, rng.normal(size=d), 0.0)
    return X, X @ w_true + 0.1 * rng.normal(size=n)


def alpha_max(X, y):
    return np.max(np.abs(X.T @ y)) / X.shape[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rescaled_net_computes_the_same_function(seed):
    """Does the rescaled net give the same outputs to 1e-12, with the inputs left unchanged?"""
    W1, b1, W2, b2 = small_net(seed)
    rng = np.random.default_rng(seed + 100)
    c = np.exp(rng.normal(size=b1.size))
    X = rng.normal(size=(50, W1.shape[1]))
    copies = [a.copy() for a in (W1, b1, W2, c)]
    V1, c1, V2 = rescale_hidden_units(W1, b1, W2, c)
    np.testing.assert_allclose(net(X, V1, c1, V2, b2), net(X, W1, b1, W2, b2), rtol=0, atol=1e-12)
    for before, after in zip(copies, (W1, b1, W2, c)):
        assert np.array_equal(before, after)
    assert not np.allclose(V1, W1)  # it did rescale


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_rescale_rejects_nonpositive_scales(bad):
    """Is a scale c_i <= 0 (or NaN) refused with ValueError?"""
    W1, b1, W2, _ = small_net(0)
    c = np.ones(b1.size)
    c[2] = bad
    with pytest.raises(ValueError):
        rescale_hidden_units(W1, b1, W2, c)


def test_balance_is_invariant_under_permutation_and_changes_under_rescaling():
    """Is the balance the per-unit formula, permuted with the units and moved by rescaling?"""
    W1, b1, W2, _ = small_net(3)
    a = hidden_unit_balance(W1, b1, W2)
    want = [W2[:, i] @ W2[:, i] - W1[i] @ W1[i] - b1[i] ** 2 for i in range(b1.size)]
    np.testing.assert_allclose(a, want, rtol=1e-14, atol=1e-14)
    perm = np.random.default_rng(0).permutation(b1.size)
    np.testing.assert_allclose(hidden_unit_balance(W1[perm], b1[perm], W2[:, perm]), a[perm])
    c = np.full(b1.size, 2.0)
    V1, c1, V2 = rescale_hidden_units(W1, b1, W2, c)
    np.testing.assert_allclose(
        hidden_unit_balance(V1, c1, V2), np.sum(W2**2, 0) / 4 - 4 * (np.sum(W1**2, 1) + b1**2)
    )


def two_layer_data(seed, n=64):
    """A 2-16-1 ReLU net and 64 points of sin 2x (with a second feature cos 3x)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-2, 2, n)
    X = np.stack([x, np.cos(3 * x)], axis=1)
    params = [rng.normal(size=(16, 2)), rng.normal(size=16), rng.normal(size=(1, 16)) / 4]
    return X, np.sin(2 * x)[:, None], params


def mse_gradients(X, y, W1, b1, W2):
    """Gradients of (1/2n) ||relu(X W1^T + b1) W2^T - y||^2 with respect to W1, b1, W2."""
    Z = X @ W1.T + b1
    H = np.maximum(Z, 0.0)
    R = (H @ W2.T - y) / X.shape[0]
    gZ = (R @ W2) * (Z > 0)
    return gZ.T @ X, gZ.sum(axis=0), R.T @ H


def gd(X, y, params, lr, num_steps, lam=0.0):
    """Gradient descent with weight decay lam on every parameter (bias included)."""
    for _ in range(num_steps):
        grads = mse_gradients(X, y, *params)
        params = [p - lr * (g + lam * p) for p, g in zip(params, grads)]
    return params


def test_hand_gradients_of_the_two_layer_net_match_autograd():
    """Are the hand-written gradients the tests use autograd's, to 1e-12?"""
    X, y, params = two_layer_data(0)
    ts = [torch.tensor(p, requires_grad=True) for p in params]
    out = torch.relu(torch.tensor(X) @ ts[0].T + ts[1]) @ ts[2].T
    (((out - torch.tensor(y)) ** 2).mean() / 2).backward()
    for ours, t in zip(mse_gradients(X, y, *params), ts):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=0, atol=1e-12)


def test_balance_drifts_by_order_lr_under_gradient_descent():
    """Under GD to time t = 10, does the balance (bias included) drift < 1e-3 at lr 1e-3, and
    about ten times more at lr 1e-2 (drift O(lr))?"""
    drifts = {}
    for lr in (1e-2, 1e-3):
        X, y, params = two_layer_data(1)
        a0 = hidden_unit_balance(*params)
        a1 = hidden_unit_balance(*gd(X, y, params, lr, round(10 / lr)))
        drifts[lr] = np.abs(a1 - a0).max()
    assert drifts[1e-3] < 1e-3
    assert 4 < drifts[1e-2] / drifts[1e-3] < 25


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_weight_decay_contracts_every_balance_at_rate_two_lambda(lam):
    """With weight decay lam, is every balance multiplied by (1 - lr lam)^2 per step, i.e. does the
    fitted decay rate per unit time match 2 lam within 2%?"""
    X, y, params = two_layer_data(2)
    lr, steps = 1e-2, 1000
    a0 = hidden_unit_balance(*params)
    a1 = hidden_unit_balance(*gd(X, y, params, lr, steps, lam))
    big = np.abs(a0) > 0.1  # fit the rate where the balance is not near 0
    rate = -np.log(a1[big] / a0[big]) / (lr * steps)
    np.testing.assert_allclose(rate / (2 * lam), 1.0, rtol=0.02)


@pytest.mark.parametrize(
    ("n", "d", "rank"), [(20, 50, 20), (50, 20, 20), (30, 30, 12), (40, 25, 1)]
)
def test_min_norm_solution_matches_pinv(n, d, rank):
    """Does min_norm_solution equal numpy's pinv(X) @ y, rank-deficient X included?"""
    rng = np.random.default_rng(n + d + rank)
    X = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))
    y = rng.normal(size=n)
    np.testing.assert_allclose(
        min_norm_solution(X, y), np.linalg.pinv(X) @ y, rtol=1e-10, atol=1e-10
    )


def test_min_norm_solution_of_zero_matrix_is_zero():
    """Is the minimum-norm solution for X = 0 the zero vector (not NaN)?"""
    assert np.array_equal(min_norm_solution(np.zeros((4, 3)), np.ones(4)), np.zeros(3))


def test_normal_equations_fail_where_the_svd_does_not():
    """On a rank-deficient X, are the normal equations far off while min_norm_solution is not?"""
    rng = np.random.default_rng(19)
    X = rng.normal(size=(30, 8)) @ rng.normal(size=(8, 30))
    y = rng.normal(size=30)
    want = np.linalg.pinv(X) @ y
    try:
        normal = np.linalg.solve(X.T @ X, X.T @ y)
        assert np.linalg.norm(normal - want) > np.linalg.norm(want)
    except np.linalg.LinAlgError:
        pass
    np.testing.assert_allclose(min_norm_solution(X, y), want, atol=1e-10)


@pytest.mark.parametrize(("n", "d"), [(60, 10), (20, 50)])
def test_ridge_path_matches_sklearn(n, d):
    """Is row j of ridge_path sklearn's Ridge(alpha=n*lambda_j, no intercept, svd) to 1e-8?"""
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    lambdas = np.logspace(-4, 1, 7)
    path = ridge_path(X, y, lambdas)
    assert path.shape == (7, d)
    for lam, row in zip(lambdas, path):
        model = Ridge(alpha=n * lam, fit_intercept=False, solver="svd").fit(X, y)
        np.testing.assert_allclose(row, model.coef_, rtol=0, atol=1e-8)


def test_ridge_tends_to_pinv_as_lambda_vanishes():
    """At lambda = 1e-10 and n < d, is the ridge solution pinv(X) y to 1e-6?"""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(20, 50)), rng.normal(size=20)
    np.testing.assert_allclose(
        ridge_path(X, y, [1e-10])[0], np.linalg.pinv(X) @ y, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("bad", [[0.1, 0.0], [-1.0], [np.nan]])
def test_ridge_rejects_nonpositive_lambdas(bad):
    """Is any lambda <= 0 (or NaN) refused with ValueError?"""
    with pytest.raises(ValueError):
        ridge_path(np.eye(3), np.ones(3), bad)


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    """Does soft_threshold minimize t|z| + (z - x)^2 / 2 (checked on a fine grid), keep shapes,
    and refuse t < 0?"""
    x = np.array([[-3.0, -0.5, 0.0], [0.2, 1.0, 4.0]])
    t = 0.7
    z = soft_threshold(x, t)
    assert z.shape == x.shape
    grid = np.linspace(-6, 6, 120_001)
    for xi, zi in zip(x.ravel(), z.ravel()):
        best = grid[np.argmin(t * np.abs(grid) + (grid - xi) ** 2 / 2)]
        assert abs(best - zi) < 2e-4
    np.testing.assert_array_equal(soft_threshold(x, 0.0), x)
    with pytest.raises(ValueError):
        soft_threshold(x, -1e-3)


def independent_ista(X, y, alpha, num_steps):
    """ISTA written a second way: the step 1/L from the eigenvalues, the prox by clipping."""
    n = X.shape[0]
    L = np.linalg.eigvalsh(X.T @ X / n)[-1]
    w = np.zeros(X.shape[1])
    for _ in range(num_steps):
        z = w + X.T @ (y - X @ w) / (n * L)
        w = z - np.clip(z, -alpha / L, alpha / L)
    return w


@pytest.mark.parametrize("num_steps", [0, 1, 7, 60])
def test_ista_iterates_match_an_independent_loop(num_steps):
    """Are ISTA's iterates after 0, 1, 7 and 60 steps those of an independent loop, to 1e-9?"""
    X, y = lasso_problem(0)
    alpha = 0.2 * alpha_max(X, y)
    np.testing.assert_allclose(
        ista(X, y, alpha, num_steps), independent_ista(X, y, alpha, num_steps), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("frac", [0.05, 0.3, 0.9])
def test_ista_converges_to_sklearn_lasso_on_well_conditioned_problems(frac):
    """With n >= 2d Gaussian X, does 1,000-step ISTA equal sklearn's Lasso to 1e-8, KKT < 1e-9?"""
    X, y = lasso_problem(int(frac * 100), n=80, d=30)
    alpha = frac * alpha_max(X, y)
    w = ista(X, y, alpha, 1000)
    model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(w, model.coef_, rtol=0, atol=1e-8)
    assert lasso_kkt_violation(X, y, w, alpha) < 1e-9


def test_ista_is_slow_on_correlated_problems_with_small_alpha():
    """Is 'ISTA reaches 1e-6' false in general: correlated X, alpha = 0.01 alpha_max, 10,000 steps
    still leave a KKT violation above 1e-3, and does it fall roughly like 1/k?"""
    X, y = lasso_problem(7, n=40, d=100, correlated=True)
    alpha = 0.01 * alpha_max(X, y)
    k1, k2 = 2500, 10_000
    v1 = lasso_kkt_violation(X, y, ista(X, y, alpha, k1), alpha)
    v2 = lasso_kkt_violation(X, y, ista(X, y, alpha, k2), alpha)
    assert v2 > 1e-3
    assert v2 < v1


def test_ista_gives_exactly_zero_above_alpha_max():
    """For alpha >= ||X^T y||_inf / n, is every ISTA iterate exactly 0?"""
    X, y = lasso_problem(3)
    am = alpha_max(X, y)
    for steps in (1, 50):
        assert np.array_equal(ista(X, y, am * 1.0000001, steps), np.zeros(X.shape[1]))
    assert np.any(ista(X, y, 0.99 * am, 50) != 0)


def test_kkt_violation_is_zero_at_sklearns_lasso_path():
    """Is the KKT violation tiny along sklearn's lasso_path and large at a wrong point?"""
    X, y = lasso_problem(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        alphas, coefs, _ = lasso_path(X, y, alphas=5, eps=0.05, tol=1e-14, max_iter=100_000)
    for alpha, w in zip(alphas, coefs.T):
        assert lasso_kkt_violation(X, y, w, alpha) < 1e-8
    w = coefs[:, -1].copy()
    w[np.flatnonzero(w)[0]] *= 1.5
    assert lasso_kkt_violation(X, y, w, alphas[-1]) > 1e-3


def test_kkt_violation_by_hand():
    """Do the two kinds of coordinates follow the stated rules on a hand-made case?"""
    X = np.eye(2) * np.sqrt(2)  # X^T X / n = I, g = X^T y / 2 - w
    y = np.array([1.0, 0.1]) * np.sqrt(2)
    # g = (1 - w_0, 0.1 - w_1). At w = (0.5, 0), alpha 0.3: |0.5 - 0.3| = 0.2, max(0.1 - 0.3, 0) = 0
    assert lasso_kkt_violation(X, y, np.array([0.5, 0.0]), 0.3) == pytest.approx(0.2)
    # at w = (0.7, 0) both conditions hold
    assert lasso_kkt_violation(X, y, np.array([0.7, 0.0]), 0.3) == pytest.approx(0.0, abs=1e-15)
    # at alpha 0.05 the zero coordinate violates by 0.1 - 0.05
    assert lasso_kkt_violation(X, y, np.array([0.95, 0.0]), 0.05) == pytest.approx(0.05)


@pytest.mark.parametrize("shape", [(8, 5), (5, 5), (3, 6)])
def test_orthogonality_gradient_matches_autograd(shape):
    """Are the value and the gradient of ||W^T W - I||_F^2 autograd's, to 1e-10?"""
    W = np.random.default_rng(shape[0]).normal(size=shape)
    value, grad = orthogonality_penalty(W)
    Wt = torch.tensor(W, requires_grad=True)
    loss = ((Wt.T @ Wt - torch.eye(shape[1], dtype=torch.float64)) ** 2).sum()
    loss.backward()
    assert isinstance(value, float)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(grad, Wt.grad.numpy(), rtol=0, atol=1e-10)


def test_orthogonality_descent_reaches_orthonormal_columns_only_when_tall():
    """Does GD (lr 0.01, 2,000 steps) make a tall W's singular values 1 to 1e-12, while a wide W
    keeps a penalty of at least n - m?"""
    rng = np.random.default_rng(0)
    for m, n in [(8, 5), (3, 6)]:
        W = rng.normal(size=(m, n)) / np.sqrt(m)
        for _ in range(2000):
            W = W - 0.01 * orthogonality_penalty(W)[1]
        value = orthogonality_penalty(W)[0]
        if m >= n:
            np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), 1.0, atol=1e-12)
        else:
            assert value >= n - m - 1e-9


@pytest.mark.parametrize("per_sample", [True, False])
def test_dropout_expected_loss_matches_monte_carlo(per_sample):
    """Does the closed form equal a Monte Carlo average over 20,000 inverted-dropout masks (per
    sample, or one mask shared by the batch) within 5 standard errors?"""
    rng = np.random.default_rng(0)
    n, d, p = 30, 6, 0.3
    X, w = rng.normal(size=(n, d)), rng.normal(size=d)
    y = X @ w + rng.normal(size=n)
    draws = 20_000
    shape = (draws, n, d) if per_sample else (draws, 1, d)
    masks = (rng.uniform(size=shape) >= p) / (1 - p)
    losses = (((X[None] * masks) @ w - y) ** 2).mean(axis=1) / 2
    se = losses.std() / np.sqrt(draws)
    assert abs(losses.mean() - dropout_expected_loss(X, y, w, p)) < 5 * se


def test_dropout_edges():
    """Is p = 0 the plain loss, and are p < 0 and p >= 1 refused?"""
    rng = np.random.default_rng(1)
    X, y, w = rng.normal(size=(10, 3)), rng.normal(size=10), rng.normal(size=3)
    plain = np.mean((X @ w - y) ** 2) / 2
    assert dropout_expected_loss(X, y, w, 0.0) == pytest.approx(plain, rel=1e-14)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            dropout_expected_loss(X, y, w, bad)
