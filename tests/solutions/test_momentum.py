"""Chapter 2 references checked against the libraries that do the same job."""

import math

import numpy as np
import pytest
import torch

from solutions.momentum import (
    cosine_schedule,
    heavy_ball,
    max_stable_lr,
    nesterov,
    polyak_parameters,
    power_iteration,
    proximal_point,
)


def random_spd(rng, d, lam_min=0.1, lam_max=10.0):
    """A random symmetric positive definite matrix with eigenvalues spread in [lam_min, lam_max]."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lams = np.concatenate([[lam_min, lam_max], rng.uniform(lam_min, lam_max, d - 2)])
    return (Q * lams) @ Q.T


def logcosh_problem(rng, n=12, d=5):
    """A smooth non-quadratic loss sum(log cosh(A x - c)) with its gradient, NumPy and torch."""
    A = rng.standard_normal((n, d))
    c = rng.standard_normal(n)
    return A, c


def torch_sgd_trajectory(A, c, x0, lr, num_steps, **sgd_kwargs):
    """Iterates of torch.optim.SGD on sum(log cosh(A x - c)), float64, starting at x0."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    A_t, c_t = torch.from_numpy(A), torch.from_numpy(c)
    opt = torch.optim.SGD([x], lr=lr, **sgd_kwargs)
    out = [x.detach().clone()]
    for _ in range(num_steps):
        opt.zero_grad()
        torch.log(torch.cosh(A_t @ x - c_t)).sum().backward()
        opt.step()
        out.append(x.detach().clone())
    return torch.stack(out).numpy()


def logcosh_grad(A, c):
    return lambda x: A.T @ np.tanh(A @ x - c)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
def test_heavy_ball_matches_torch_sgd(beta):
    """Do 100 heavy-ball steps equal torch.optim.SGD(momentum=beta) in float64?"""
    rng = np.random.default_rng(0)
    A, c = logcosh_problem(rng)
    x0 = rng.standard_normal(A.shape[1])
    ours = heavy_ball(logcosh_grad(A, c), x0, 0.02, beta, 100)
    theirs = torch_sgd_trajectory(A, c, x0, 0.02, 100, momentum=beta)
    assert ours.shape == (101, A.shape[1])
    # Same operations in the same order in float64: only the last bits may differ.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
def test_nesterov_matches_torch_sgd(beta):
    """Do 100 Nesterov steps equal torch.optim.SGD(momentum=beta, nesterov=True) in float64?"""
    rng = np.random.default_rng(1)
    A, c = logcosh_problem(rng)
    x0 = rng.standard_normal(A.shape[1])
    ours = nesterov(logcosh_grad(A, c), x0, 0.02, beta, 100)
    kwargs = {"momentum": beta, "nesterov": True} if beta > 0 else {}
    theirs = torch_sgd_trajectory(A, c, x0, 0.02, 100, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_heavy_ball_equals_the_lr_inside_form():
    """With a constant lr, is v <- beta v + g, x <- x - lr v the same as u <- beta u + lr g,
    x <- x - u?"""
    rng = np.random.default_rng(2)
    H = random_spd(rng, 6)
    b = rng.standard_normal(6)
    x0 = rng.standard_normal(6)
    lr, beta = 0.05, 0.8
    ours = heavy_ball(lambda x: H @ x + b, x0, lr, beta, 50)
    x, u, other = x0.copy(), np.zeros(6), [x0.copy()]
    for _ in range(50):
        u = beta * u + lr * (H @ x + b)
        x = x - u
        other.append(x)
    # The two forms round differently (lr is applied before or after the sum): float64 noise.
    np.testing.assert_allclose(ours, np.stack(other), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 4, 20])
def test_power_iteration_matches_eigvalsh(d):
    """Does power iteration find eigvalsh's eigenvalue of largest magnitude, with a unit vector?"""
    rng = np.random.default_rng(d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lams = rng.uniform(-1.0, 1.0, d)
    lams[0] = 3.0  # a clear gap: |lambda_2 / lambda_1| <= 1/3
    A = (Q * lams) @ Q.T
    value, vector = power_iteration(lambda v: A @ v, d, 100, seed=0)
    eig = np.linalg.eigvalsh(A)
    want = eig[np.argmax(np.abs(eig))]
    # (1/3)^100 convergence: the Rayleigh quotient is exact to float64 rounding.
    assert value == pytest.approx(want, rel=1e-12)
    assert np.linalg.norm(vector) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(A @ vector, value * vector, atol=1e-10)


def test_power_iteration_keeps_the_sign_of_a_negative_eigenvalue():
    """Is a dominant negative eigenvalue returned negative (not as its absolute value)?"""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    A = (Q * np.array([-4.0, 1.0, 0.5, -0.3, 2.0])) @ Q.T
    value, _ = power_iteration(lambda v: A @ v, 5, 200, seed=1)
    assert value == pytest.approx(np.linalg.eigvalsh(A)[0], rel=1e-12)


def test_power_iteration_is_reproducible():
    """Does the same seed give the same answer, bit for bit, after few iterations?"""
    A = np.diag([3.0, 2.0, 1.0])
    a = power_iteration(lambda v: A @ v, 3, 3, seed=7)
    b = power_iteration(lambda v: A @ v, 3, 3, seed=7)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_power_iteration_with_hessian_vector_products():
    """Does power iteration driven by torch.func HVPs find the top Hessian eigenvalue of a net?"""
    torch.manual_seed(0)
    X = torch.randn(30, 3, dtype=torch.float64)
    y = torch.randn(30, 1, dtype=torch.float64)
    shapes = [(4, 3), (4,), (1, 4), (1,)]
    sizes = [math.prod(s) for s in shapes]
    theta = torch.randn(sum(sizes), dtype=torch.float64) * 0.7

    def loss(flat):
        W1, b1, W2, b2 = (p.reshape(s) for p, s in zip(flat.split(sizes), shapes))
        return 0.5 * ((torch.tanh(X @ W1.T + b1) @ W2.T + b2 - y) ** 2).mean()

    def hvp(v):
        v = torch.from_numpy(v)
        return torch.func.jvp(torch.func.grad(loss), (theta,), (v,))[1].numpy()

    value, _ = power_iteration(hvp, theta.numel(), 500, seed=0)
    hessian = torch.autograd.functional.hessian(loss, theta).numpy()
    eig = np.linalg.eigvalsh(hessian)
    # Convergence depends on the unknown gap of this Hessian; 1e-6 relative is ample for 500 steps.
    assert value == pytest.approx(eig[np.argmax(np.abs(eig))], rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_max_stable_lr_is_the_threshold(seed):
    """On a random quadratic, does GD converge at 0.99x max_stable_lr and diverge at 1.01x?"""
    rng = np.random.default_rng(seed)
    H = random_spd(rng, 8, 0.5, 20.0)
    b = rng.standard_normal(8)
    x_star = np.linalg.solve(H, -b)
    lr_max = max_stable_lr(H)
    assert lr_max == pytest.approx(2.0 / np.linalg.eigvalsh(H)[-1], rel=1e-12)

    def distance_after(lr, num_steps=3000):
        x = np.zeros(8)
        for _ in range(num_steps):
            x = x - lr * (H @ x + b)
        return np.linalg.norm(x - x_star) / np.linalg.norm(x_star)

    # Along the top eigenvector, the error is multiplied by |1 - lr lam_max| = 0.98 or 1.02 per
    # step: 0.98^3000 ~ 1e-26 and 1.02^3000 ~ 1e26.
    assert distance_after(0.99 * lr_max) < 1e-8
    assert distance_after(1.01 * lr_max) > 1e8


def test_max_stable_lr_rejects_a_non_symmetric_matrix():
    """Is a non-symmetric H refused with a ValueError?"""
    with pytest.raises(ValueError, match="symmetric"):
        max_stable_lr(np.array([[1.0, 2.0], [0.0, 1.0]]))


def test_polyak_parameters_reach_the_optimal_rate():
    """With Polyak's (lr, beta) on a kappa = 100 quadratic, is the measured linear rate within 2%
    of (sqrt(kappa) - 1) / (sqrt(kappa) + 1)?"""
    mu, L = 1.0, 100.0
    kappa = L / mu
    rng = np.random.default_rng(0)
    d = 20
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lams = np.concatenate([[mu, L], rng.uniform(mu, L, d - 2)])
    H = (Q * lams) @ Q.T
    lr, beta = polyak_parameters(mu, L)
    assert lr == pytest.approx(4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, rel=1e-15)
    assert beta == pytest.approx(((math.sqrt(L) - 1) / (math.sqrt(L) + 1)) ** 2, rel=1e-15)
    xs = heavy_ball(lambda x: H @ x, rng.standard_normal(d), lr, beta, 300)
    err = np.linalg.norm(xs, axis=1)  # the minimizer is 0
    # Geometric-mean rate over steps 100..300, after the transient (the iteration matrix has
    # Jordan blocks at the extreme eigenvalues, so the error is ~ k rho^k: the fit over a long
    # window keeps the polynomial factor's effect under 1%).
    measured = (err[300] / err[100]) ** (1 / 200)
    theory = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert measured == pytest.approx(theory, rel=0.02)
    # And it beats gradient descent's best rate (kappa - 1) / (kappa + 1) by far.
    assert measured < 0.9 * (kappa - 1) / (kappa + 1)


def test_polyak_parameters_rejects_bad_curvatures():
    """Is mu > L or mu <= 0 refused?"""
    with pytest.raises(ValueError):
        polyak_parameters(2.0, 1.0)
    with pytest.raises(ValueError):
        polyak_parameters(0.0, 1.0)


def test_proximal_point_is_stable_at_a_huge_step_and_matches_each_closed_form():
    """At lr = 100 / lam_max, does proximal point converge, each step being the argmin?"""
    rng = np.random.default_rng(4)
    H = random_spd(rng, 6, 0.5, 50.0)
    b = rng.standard_normal(6)
    lr = 100.0 / np.linalg.eigvalsh(H)[-1]
    xs = proximal_point(H, b, rng.standard_normal(6), lr, 200)
    assert xs.shape == (201, 6)
    x_star = np.linalg.solve(H, -b)
    # Along each eigen-direction the error is multiplied by 1 / (1 + lr lam) < 1: monotone decay.
    errors = np.linalg.norm(xs - x_star, axis=1)
    assert np.all(np.diff(errors) <= 1e-12)
    assert errors[-1] < 1e-6 * errors[0]
    # Each step's closed form: x_{k+1} = (H + I / lr)^{-1} (x_k / lr - b), an independent solve.
    for k in range(200):
        step = np.linalg.solve(H + np.eye(6) / lr, xs[k] / lr - b)
        np.testing.assert_allclose(xs[k + 1], step, rtol=1e-9, atol=1e-12)
        # And it is a stationary point of the proximal objective: H x + b + (x - x_k) / lr = 0.
        residual = H @ xs[k + 1] + b + (xs[k + 1] - xs[k]) / lr
        assert np.linalg.norm(residual) < 1e-8 * (1 + np.linalg.norm(xs[k]) / lr)


def test_explicit_step_at_the_same_lr_diverges():
    """For contrast: does gradient descent at lr = 100 / lam_max blow up on the same problem?"""
    rng = np.random.default_rng(4)
    H = random_spd(rng, 6, 0.01, 50.0)
    lr = 100.0 / np.linalg.eigvalsh(H)[-1]
    x = rng.standard_normal(6)
    for _ in range(20):
        x = x - lr * (H @ x)
    assert np.linalg.norm(x) > 1e20


@pytest.mark.parametrize(("total_steps", "min_lr"), [(10, 0.0), (100, 0.0), (37, 1e-3)])
def test_cosine_schedule_matches_cosine_annealing_lr(total_steps, min_lr):
    """Without warm-up, does cosine_schedule equal torch's CosineAnnealingLR at every step?"""
    base_lr = 0.1
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=min_lr)
    theirs = []
    for _ in range(total_steps + 1):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [cosine_schedule(s, total_steps, base_lr, min_lr=min_lr) for s in range(total_steps + 1)]
    # torch updates the lr recursively, accumulating float64 rounding over the steps.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_cosine_schedule_warmup_is_linear_and_reaches_base_lr():
    """Does warm-up climb base_lr/w, 2 base_lr/w, ..., base_lr, then decay to min_lr at the end?"""
    lrs = [cosine_schedule(s, 20, 1.0, min_lr=0.1, warmup_steps=4) for s in range(21)]
    np.testing.assert_allclose(lrs[:5], [0.25, 0.5, 0.75, 1.0, 1.0], rtol=1e-15)
    assert lrs[-1] == pytest.approx(0.1, rel=1e-15)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_cosine_schedule_with_warmup_matches_torch_linear_then_cosine():
    """Does warm-up + cosine equal torch's LambdaLR built from the same formula's pieces?"""
    total, warmup, base_lr = 30, 5, 0.3
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    theirs = []
    for _ in range(total):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [cosine_schedule(s, total, base_lr, warmup_steps=warmup) for s in range(total)]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_max_stable_lr_is_inf_only_for_zero_curvature():
    """Is every step stable (inf) for H = 0, while a tiny positive lambda_max stays finite?"""
    assert max_stable_lr(np.zeros((3, 3))) == math.inf
    assert max_stable_lr(np.diag([0.0, 1e-6])) == pytest.approx(2e6, rel=1e-12)


@pytest.mark.parametrize("num_iters", [0, 1, 3])
def test_power_iteration_before_convergence_is_the_normalized_power(num_iters):
    """After k iterations, is the vector A^k v0 / ||A^k v0|| and the value its Rayleigh quotient
    (computed here from a matrix power, independently of the loop)?"""
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = (Q * np.array([3.0, -2.9, 2.8, -2.6, 0.9, -0.5, 0.2, 0.1])) @ Q.T
    v0 = np.random.default_rng(4).standard_normal(8)
    v = np.linalg.matrix_power(A, num_iters) @ v0
    v = v / np.linalg.norm(v)
    value, vector = power_iteration(lambda u: A @ u, 8, num_iters, seed=4)
    np.testing.assert_allclose(vector, v, rtol=0, atol=1e-13)
    assert value == pytest.approx(float(v @ A @ v), rel=1e-12)


@pytest.mark.parametrize("warmup_steps", [10, 11, -1])
def test_cosine_schedule_rejects_a_warmup_that_leaves_no_decay(warmup_steps):
    """Is warmup_steps outside [0, total_steps) refused, whatever the step?"""
    with pytest.raises(ValueError):
        cosine_schedule(0, 10, 0.1, warmup_steps=warmup_steps)
    assert cosine_schedule(9, 10, 0.1, min_lr=0.01, warmup_steps=9) == pytest.approx(0.1)
    assert cosine_schedule(10, 10, 0.1, min_lr=0.01, warmup_steps=9) == pytest.approx(0.01)
