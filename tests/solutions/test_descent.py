"""Chapter 1's reference against trusted libraries: numpy.linalg, torch.autograd, torch.optim."""

import numpy as np
import pytest
import torch

from solutions.descent import (
    central_difference,
    gradient_descent,
    minibatch_sgd,
    mlp_gradients,
    quadratic_minimizer,
    relative_error,
)

EPS64 = np.finfo(np.float64).eps
KEYS = ("W1", "b1", "W2", "b2")


def random_spd(rng, d, eigenvalues):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * np.asarray(eigenvalues)) @ Q.T


def random_mlp(rng, n=7, d=3, h=5, k=2):
    params = {
        "W1": rng.normal(size=(h, d)),
        "b1": rng.normal(size=h),
        "W2": rng.normal(size=(k, h)),
        "b2": rng.normal(size=k),
    }
    return params, rng.normal(size=(n, d)), rng.normal(size=(n, k))


def torch_mlp_loss(W1, b1, W2, b2, X, y):
    """L = (1/n) sum_i 0.5 ||W2 tanh(W1 x_i + b1) + b2 - y_i||^2, in torch."""
    F = torch.tanh(X @ W1.T + b1) @ W2.T + b2
    return 0.5 * ((F - y) ** 2).sum(dim=1).mean()


# --- 1.1 quadratic_minimizer -----------------------------------------------------------------


def test_quadratic_minimizer_matches_numpy_solve():
    """Does x* solve H x = -b as numpy.linalg.solve does, for several sizes, in float64?"""
    rng = np.random.default_rng(0)
    for d in (1, 2, 5, 30):
        H = random_spd(rng, d, np.logspace(0, 3, d))
        b = rng.normal(size=d)
        # cond(H) <= 1e3, so both solutions agree to about cond * eps.
        np.testing.assert_allclose(quadratic_minimizer(H, b), np.linalg.solve(H, -b), rtol=1e-11)


def test_quadratic_minimizer_is_a_minimum():
    """Is the gradient zero at x*, and is the quadratic larger at random nearby points?"""
    rng = np.random.default_rng(1)
    H = random_spd(rng, 4, [0.5, 1.0, 2.0, 8.0])
    b = rng.normal(size=4)
    x = quadratic_minimizer(H, b)
    q = lambda v: 0.5 * v @ H @ v + b @ v  # noqa: E731
    np.testing.assert_allclose(H @ x + b, 0.0, atol=1e-13)
    assert all(q(x + 1e-3 * rng.normal(size=4)) > q(x) for _ in range(100))


@pytest.mark.parametrize(
    ("H", "why"),
    [
        ([[1.0, 2.0], [2.0, 1.0]], "indefinite"),
        ([[1.0, 2.0], [2.0, 4.0]], "singular"),
        ([[2.0, 1.0], [0.0, 2.0]], "not symmetric"),
        ([[-1.0, 0.0], [0.0, -2.0]], "negative definite"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "not square"),
    ],
)
def test_quadratic_minimizer_rejects_bad_H(H, why):
    """Does a matrix with no unique minimizer raise ValueError with a message saying why?"""
    with pytest.raises(ValueError, match="H"):
        quadratic_minimizer(np.array(H), np.ones(2))


# --- 1.2 gradient_descent --------------------------------------------------------------------


def test_gradient_descent_with_lr_one_over_L_reaches_the_minimizer():
    """With lr = 1/L on a quadratic of condition 10, is x* reached to 1e-8 in 400 steps?"""
    rng = np.random.default_rng(2)
    H = random_spd(rng, 5, np.linspace(1.0, 10.0, 5))
    b = rng.normal(size=5)
    L = np.linalg.eigvalsh(H).max()
    xs = gradient_descent(lambda x: H @ x + b, np.zeros(5), 1.0 / L, 400)
    # The error contracts by (1 - mu/L) = 0.9 per step: 0.9**400 ~ 5e-19, far below 1e-8.
    assert np.max(np.abs(xs[-1] - quadratic_minimizer(H, b))) < 1e-8


def test_gradient_descent_equals_torch_sgd():
    """Do the iterates equal torch.optim.SGD (no momentum) on the same quadratic, in float64?"""
    rng = np.random.default_rng(3)
    H = random_spd(rng, 4, [1.0, 2.0, 5.0, 9.0])
    b = rng.normal(size=4)
    x0 = rng.normal(size=4)
    ours = gradient_descent(lambda x: H @ x + b, x0, 0.1, 50)

    Ht, bt = torch.from_numpy(H), torch.from_numpy(b)
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.1)
    theirs = [x.detach().clone()]
    for _ in range(50):
        opt.zero_grad()
        (0.5 * x @ Ht @ x + bt @ x).backward()
        opt.step()
        theirs.append(x.detach().clone())
    # Same arithmetic up to summation order in H x: rounding only.
    np.testing.assert_allclose(ours, torch.stack(theirs).numpy(), rtol=0, atol=1e-12)


def test_gradient_descent_shape_and_first_row():
    """Is the result (num_steps + 1, d) with x0 first, and x0 itself left unchanged?"""
    x0 = np.array([1.0, -2.0, 3.0])
    xs = gradient_descent(lambda x: 2 * x, x0, 0.25, 3)
    assert xs.shape == (4, 3)
    np.testing.assert_array_equal(xs[0], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(xs[1], 0.5 * x0)  # x - 0.25 * 2x, exact in binary
    np.testing.assert_array_equal(x0, [1.0, -2.0, 3.0])
    assert gradient_descent(lambda x: x, x0, 0.1, 0).shape == (1, 3)


# --- 1.3 mlp_gradients -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d", "h", "k"), [(1, 1, 1, 1), (7, 3, 5, 2), (32, 10, 16, 4)])
def test_mlp_gradients_equal_torch_autograd(n, d, h, k):
    """Do the hand-written gradients equal torch.autograd's in float64 to 1e-10?"""
    rng = np.random.default_rng(4)
    params, X, y = random_mlp(rng, n, d, h, k)
    ours = mlp_gradients(params, X, y)
    tensors = [torch.tensor(params[key], requires_grad=True) for key in KEYS]
    torch_mlp_loss(*tensors, torch.from_numpy(X), torch.from_numpy(y)).backward()
    for key, p in zip(KEYS, tensors):
        assert ours[key].shape == params[key].shape
        np.testing.assert_allclose(ours[key], p.grad.numpy(), rtol=0, atol=1e-10)


class HandMLPLoss(torch.autograd.Function):
    """The MLP loss whose backward pass is ``mlp_gradients``, so gradcheck can test it."""

    @staticmethod
    def forward(ctx, W1, b1, W2, b2, X, y):
        ctx.save_for_backward(W1, b1, W2, b2, X, y)
        return torch_mlp_loss(W1, b1, W2, b2, X, y)

    @staticmethod
    def backward(ctx, grad_output):
        W1, b1, W2, b2, X, y = ctx.saved_tensors
        params = {key: p.detach().numpy() for key, p in zip(KEYS, (W1, b1, W2, b2))}
        grads = mlp_gradients(params, X.numpy(), y.numpy())
        return (*(grad_output * torch.from_numpy(grads[key]) for key in KEYS), None, None)


def test_mlp_gradients_pass_torch_gradcheck():
    """Does torch.autograd.gradcheck accept mlp_gradients as the backward of the loss?"""
    rng = np.random.default_rng(5)
    params, X, y = random_mlp(rng)
    inputs = [torch.tensor(params[key], requires_grad=True) for key in KEYS]
    inputs += [torch.from_numpy(X), torch.from_numpy(y)]
    assert torch.autograd.gradcheck(HandMLPLoss.apply, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_mlp_gradients_do_not_use_autograd():
    """Are the gradients plain NumPy arrays computed without torch?"""
    rng = np.random.default_rng(6)
    grads = mlp_gradients(*random_mlp(rng))
    assert set(grads) == set(KEYS)
    assert all(isinstance(g, np.ndarray) and g.dtype == np.float64 for g in grads.values())


# --- 1.4 central_difference ------------------------------------------------------------------


def test_central_difference_error_is_order_h_squared():
    """On sum(sin x), does the error stay below h^2/6 max|f'''| plus rounding, shrinking 4x per
    halving of h?"""
    rng = np.random.default_rng(7)
    x = rng.normal(size=6)
    exact = np.cos(x)
    f = lambda v: np.sum(np.sin(v))  # noqa: E731
    errors = []
    for h in (1e-1, 5e-2, 2.5e-2, 1.25e-2):
        err = np.max(np.abs(central_difference(f, x, h) - exact))
        # Truncation h^2/6 |f'''| with |f'''| <= 1, plus rounding of order eps |f| / h.
        assert err <= h**2 / 6 + 10 * EPS64 * 6 / h
        errors.append(err)
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 4.0, rtol=0.01)


def test_central_difference_is_exact_on_quadratics_up_to_rounding():
    """Is the central difference of a quadratic exact (f''' = 0) even for a large h?"""
    rng = np.random.default_rng(8)
    H = random_spd(rng, 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    b = rng.normal(size=5)
    x = rng.normal(size=5)
    g = central_difference(lambda v: 0.5 * v @ H @ v + b @ v, x, 0.5)
    np.testing.assert_allclose(g, H @ x + b, rtol=0, atol=1e-13)


def test_central_difference_matches_mlp_gradients():
    """Does central differencing the MLP loss agree with backprop to the accuracy h allows?"""
    rng = np.random.default_rng(9)
    params, X, y = random_mlp(rng, n=5, d=2, h=3, k=2)
    flat = np.concatenate([params[key].ravel() for key in KEYS])
    shapes = [params[key].shape for key in KEYS]

    def loss(theta):
        p, i = {}, 0
        for key, shape in zip(KEYS, shapes):
            p[key] = theta[i : i + int(np.prod(shape))].reshape(shape)
            i += int(np.prod(shape))
        F = np.tanh(X @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
        return 0.5 * np.mean(np.sum((F - y) ** 2, axis=1))

    grads = mlp_gradients(params, X, y)
    exact = np.concatenate([grads[key].ravel() for key in KEYS])
    # h = 1e-5 is near eps^(1/3): the relative error should be near eps^(2/3) ~ 4e-11.
    assert relative_error(central_difference(loss, flat, 1e-5), exact) < 1e-8


def test_empirical_best_h_in_float64_is_near_cube_root_of_eps():
    """Does the h minimizing the central-difference error in float64 lie in [1e-6, 5e-5]?"""
    rng = np.random.default_rng(10)
    hs = np.logspace(-10, -1, 181)
    best = []
    for f, df in ((np.sin, np.cos), (np.exp, np.exp)):
        x = rng.normal(size=8)
        exact = df(x)
        errors = [
            relative_error(central_difference(lambda v, f=f: np.sum(f(v)), x, h), exact) for h in hs
        ]
        best.append(hs[int(np.argmin(errors))])
    # eps^(1/3) ~ 6e-6; the optimum (3 eps |f| / |f'''|)^(1/3) moves with the function's scale.
    assert all(1e-6 <= h <= 5e-5 for h in best), best


def test_forward_difference_is_worse_than_central():
    """At the best h of each, is central differencing at least 100x more accurate than forward?"""
    x = np.array([0.3, 1.1])
    f = lambda v: np.sum(np.exp(v))  # noqa: E731
    hs = np.logspace(-12, -1, 111)
    forward = [
        relative_error(
            np.array([(f(x + h * e) - f(x)) / h for e in np.eye(2)]),
            np.exp(x),
        )
        for h in hs
    ]
    central = [relative_error(central_difference(f, x, h), np.exp(x)) for h in hs]
    assert min(central) * 100 < min(forward)


# --- 1.5 relative_error ----------------------------------------------------------------------


def test_relative_error_properties():
    """Is relative_error symmetric, scale-invariant, zero on equal inputs, and 0 for two zeros?"""
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=5), rng.normal(size=5)
    assert relative_error(a, b) == pytest.approx(relative_error(b, a), rel=1e-15)
    assert relative_error(1e-8 * a, 1e-8 * b) == pytest.approx(relative_error(a, b), rel=1e-12)
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, np.zeros(5)) == 1.0
    assert relative_error(a, 2 * a) == pytest.approx(0.5, rel=1e-15)


def test_relative_error_matches_numpy_norms():
    """Is it ||a - b|| / max(||a||, ||b||) as numpy.linalg.norm computes it?"""
    a, b = np.array([3.0, 4.0]), np.array([3.0, 4.5])
    want = np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b))
    assert relative_error(a, b) == pytest.approx(want, rel=1e-15)


# --- 1.6 minibatch_sgd -----------------------------------------------------------------------


def regression(rng, n=40, d=4):
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)


def test_minibatch_sgd_full_batch_equals_gradient_descent():
    """With batch_size = n, is mini-batch SGD full-batch gradient descent, epoch by epoch?"""
    rng = np.random.default_rng(12)
    X, y = regression(rng)
    n = len(y)
    w, losses = minibatch_sgd(X, y, n, 0.1, 25, seed=0)
    xs = gradient_descent(lambda v: X.T @ (X @ v - y) / n, np.zeros(4), 0.1, 25)
    # The permutation only reorders the sum in X^T (X w - y): rounding-level differences.
    np.testing.assert_allclose(w, xs[-1], rtol=0, atol=1e-12)
    want = [0.5 * np.mean((X @ v - y) ** 2) for v in xs[1:]]
    np.testing.assert_allclose(losses, want, rtol=1e-12)


def test_minibatch_sgd_equals_torch_sgd_with_same_batches():
    """Does it equal torch.optim.SGD on 0.5 * mse_loss, fed the same batches, in float64?"""
    rng = np.random.default_rng(13)
    X, y = regression(rng, n=23)
    w, losses = minibatch_sgd(X, y, 5, 0.05, 3, seed=7)

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    wt = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([wt], lr=0.05)
    order_rng = np.random.default_rng(7)
    theirs = []
    for _ in range(3):
        order = torch.from_numpy(order_rng.permutation(23))
        for batch in torch.split(order, 5):  # sizes 5, 5, 5, 5, 3
            opt.zero_grad()
            (0.5 * torch.nn.functional.mse_loss(Xt[batch] @ wt, yt[batch])).backward()
            opt.step()
        theirs.append(0.5 * torch.nn.functional.mse_loss(Xt @ wt, yt).item())
    np.testing.assert_allclose(w, wt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(losses, theirs, rtol=1e-12)


def test_minibatch_sgd_converges_to_least_squares():
    """With batch size 1 and a decent number of epochs, is the loss near lstsq's optimum?"""
    rng = np.random.default_rng(14)
    X, y = regression(rng, n=60)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    best = 0.5 * np.mean((X @ w_star - y) ** 2)
    _, losses = minibatch_sgd(X, y, 1, 0.01, 60, seed=0)
    # Constant-step SGD stalls at a noise floor of order lr * (gradient noise): within 10%.
    assert best <= losses[-1] < 1.1 * best


def test_minibatch_sgd_same_seed_same_result_and_validation():
    """Is the result a function of the seed, and is batch_size < 1 rejected?"""
    rng = np.random.default_rng(15)
    X, y = regression(rng, n=10)
    w1, l1 = minibatch_sgd(X, y, 3, 0.05, 4, seed=3)
    w2, l2 = minibatch_sgd(X, y, 3, 0.05, 4, seed=3)
    w3, _ = minibatch_sgd(X, y, 3, 0.05, 4, seed=4)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.array_equal(w1, w3)
    assert l1.shape == (4,)
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_sgd(X, y, 0, 0.05, 1, seed=0)
