"""Chapter 1's graded questions: descent, backpropagation, gradient checking, mini-batch SGD."""

import numpy as np

from autograder import spec
from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("descent", number=1, notebook="book/ch01_descent/exercises.ipynb")


def random_spd(rng, d, cond=10.0):
    """A random symmetric positive definite (d, d) matrix with condition number ``cond``."""
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    eigenvalues = np.logspace(0.0, np.log10(cond), d) if d > 1 else np.array([cond])
    H = (Q * eigenvalues) @ Q.T
    return (H + H.T) / 2  # exactly symmetric, so a strict symmetry test is fair too


def random_mlp(rng, n, d, h, k, scale=1.0):
    """Parameters, inputs and targets for the two-layer tanh network of exercise 1.3."""
    params = {
        "W1": scale * rng.normal(size=(h, d)) / np.sqrt(d),
        "b1": 0.1 * rng.normal(size=h),
        "W2": rng.normal(size=(k, h)) / np.sqrt(h),
        "b2": 0.1 * rng.normal(size=k),
    }
    return params, rng.normal(size=(n, d)), rng.normal(size=(n, k))


def compare(t, target, *args, what, names=None, rtol=None, atol=None, **kwargs):
    """``t.compare`` with the result named as the prompt names it (``what``, ``names``)."""
    want = t.reference(target, *args, **kwargs)
    got = t.student(target, *args, **kwargs)
    assert_close(got, want, rtol=rtol, atol=atol, what=what, names=names)
    return got


def stable_lr(X, fraction=0.5):
    """A step size below 1 / max_i ||x_i||^2, stable for any batch size on least squares."""
    return fraction / float(np.max(np.sum(X**2, axis=1)))


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "quadratic_minimizer",
    points=2,
    functions=["quadratic_minimizer"],
    title="1.1 Quadratic minimizer",
    hint="At the minimizer the gradient H x + b is zero; before solving, check that H is "
    "symmetric and positive definite (np.linalg.cholesky only reads one triangle).",
)


@Q.case(public=True)
def spd_2x2(t, rng):
    t.compare("quadratic_minimizer", np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([1.0, -1.0]))


@Q.case(public=True)
def indefinite_raises(t, rng):
    t.expect_error(
        ValueError, "quadratic_minimizer", np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2)
    )


@Q.case()
def random_sizes(t, rng):
    for d in (1, 3, 8):
        t.compare("quadratic_minimizer", random_spd(rng, d), rng.normal(size=d))


@Q.case()
def ill_conditioned(t, rng):
    t.compare("quadratic_minimizer", random_spd(rng, 6, cond=1e4), rng.normal(size=6))


@Q.case()
def not_symmetric_raises(t, rng):
    # Its lower triangle is that of 2 I, so a Cholesky factorization alone would accept it.
    t.expect_error(
        ValueError, "quadratic_minimizer", np.array([[2.0, 1.0], [0.0, 2.0]]), np.ones(2)
    )


@Q.case()
def singular_raises(t, rng):
    t.expect_error(
        ValueError, "quadratic_minimizer", np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2)
    )


@Q.case()
def negative_definite_raises(t, rng):
    t.expect_error(ValueError, "quadratic_minimizer", -random_spd(rng, 3), rng.normal(size=3))


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "gradient_descent",
    points=1,
    functions=["gradient_descent"],
    title="1.2 Gradient descent",
    hint="Return num_steps + 1 rows: x0 first, then each new iterate. Store a copy of x at "
    "every step, not the same array object.",
)


GD, GD_QUADRATIC = "gradient_descent", "driver:gd_on_quadratic"


@Q.case(public=True)
def quadratic_2d(t, rng):
    H, b = np.diag([1.0, 10.0]), np.zeros(2)
    compare(t, GD_QUADRATIC, H, b, np.array([1.0, 1.0]), 0.05, 5, what=GD)


@Q.case()
def random_quadratics(t, rng):
    for d, num_steps in ((1, 0), (1, 7), (4, 1), (5, 30)):
        H = random_spd(rng, d, cond=20.0)
        lr = float(rng.uniform(0.1, 1.9)) / 20.0
        compare(t, GD_QUADRATIC, H, rng.normal(size=d), rng.normal(size=d), lr, num_steps, what=GD)


@Q.case()
def nonlinear_gradients(t, rng):
    for name in ("tanh", "sin"):
        compare(t, "driver:gd_on_function", name, rng.normal(size=3), 0.3, 12, what=GD)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "mlp_gradients",
    points=3,
    functions=["mlp_gradients"],
    forbidden=spec.AUTOGRAD,
    title="1.3 Backpropagation by hand",
    hint="Go backward through F = A W2^T + b2, A = tanh(Z), Z = X W1^T + b1. Mind the factors "
    "in L = (1/n) sum 0.5 ||f(x_i) - y_i||^2, and that tanh'(z) = 1 - tanh(z)^2.",
)


@Q.case(public=True)
def tiny_network(t, rng):
    params = {
        "W1": np.array([[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1]]),
        "b1": np.array([0.1, 0.0, -0.2]),
        "W2": np.array([[0.7, -0.5, 0.3]]),
        "b2": np.array([0.05]),
    }
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -1.5], [2.0, 1.0]])
    y = np.array([[0.5], [-0.2], [0.1], [1.0]])
    t.compare("mlp_gradients", params, X, y)


@Q.case()
def random_shapes(t, rng):
    for n, d, h, k in ((1, 1, 1, 1), (5, 3, 4, 2), (17, 6, 8, 3)):
        params, X, y = random_mlp(rng, n, d, h, k)
        t.compare("mlp_gradients", params, X, y)


@Q.case()
def saturated_tanh(t, rng):
    params, X, y = random_mlp(rng, 9, 4, 5, 2, scale=6.0)
    t.compare("mlp_gradients", params, X, y)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "central_difference",
    points=2,
    functions=["central_difference"],
    title="1.4 Central differences",
    hint="Perturb one coordinate at a time, in both directions, by exactly h; the difference of "
    "the two values is divided by the distance between the two points.",
)


CD, CD_ON = "central_difference", "driver:central_difference_on"


@Q.case(public=True)
def sin_sum(t, rng):
    x = np.array([0.0, 0.5, 1.0])
    compare(t, CD_ON, "sin_sum", x, 1e-3, atol=1e-8, what=CD)


@Q.case()
def random_functions(t, rng):
    names = ("sin_sum", "quadratic", "quartic_coupled", "logsumexp", "rosenbrock")
    for name, d in zip(names, (1, 4, 3, 6, 2)):
        x = rng.normal(size=d)
        compare(t, CD_ON, name, x, 1e-4, atol=1e-8, what=CD)


@Q.case()
def large_steps(t, rng):
    # With a large h the O(h^2) error is big, so only the central formula itself matches.
    for name, h in (("sin_sum", 0.1), ("quartic_coupled", 0.5), ("quadratic", 1.0)):
        x = rng.normal(size=4)
        compare(t, CD_ON, name, x, h, rtol=1e-9, atol=1e-12, what=CD)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "relative_error",
    points=1,
    functions=["relative_error"],
    title="1.5 Relative error",
    hint="Divide the norm of the difference by the larger of the two norms, so that swapping "
    "the arguments gives the same number; two zero vectors agree perfectly.",
)


@Q.case(public=True)
def small_vectors(t, rng):
    t.compare("relative_error", np.array([3.0, 4.0]), np.array([3.0, 4.5]))
    t.compare("relative_error", np.array([0.0, 0.0]), np.array([0.0, 0.0]))


@Q.case()
def random_vectors(t, rng):
    for d in (1, 5, 40):
        a = rng.normal(size=d) * 10.0 ** rng.uniform(-6, 6)
        b = a * (1 + 1e-3 * rng.normal(size=d))
        t.compare("relative_error", a, b)
        t.compare("relative_error", b, a)


@Q.case()
def unequal_norms(t, rng):
    a = rng.normal(size=6)
    for factor in (0.1, 3.0, 0.0):
        got = t.student("relative_error", a, factor * a)
        assert_close(got, t.reference("relative_error", a, factor * a), what="relative_error")
        got = t.student("relative_error", factor * a, a)
        assert_close(got, t.reference("relative_error", factor * a, a), what="relative_error")


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "minibatch_sgd",
    points=3,
    functions=["minibatch_sgd"],
    title="1.6 Mini-batch SGD",
    hint="Make one generator before the epoch loop and call rng.permutation(n) once per epoch; "
    "walk through it in steps of batch_size, keeping the final, smaller batch.",
)


SGD, SGD_NAMES = "minibatch_sgd", ("w", "losses")


@Q.case(public=True)
def ten_rows(t, rng):
    X = np.column_stack([np.ones(10), np.linspace(-1.0, 1.0, 10), np.linspace(0.0, 0.5, 10)])
    y = 2.0 * X[:, 1] - 1.0 + 0.1 * np.cos(np.arange(10))
    compare(t, "minibatch_sgd", X, y, 4, 0.2, 3, 0, what=SGD, names=SGD_NAMES)


@Q.case(public=True)
def zero_batch_size_raises(t, rng):
    t.expect_error(ValueError, "minibatch_sgd", np.ones((4, 2)), np.ones(4), 0, 0.1, 1, 0)


@Q.case()
def random_problems(t, rng):
    for n, d, batch_size in ((1, 2, 1), (9, 3, 4), (30, 5, 1), (50, 4, 7), (20, 3, 20), (6, 2, 11)):
        X = rng.normal(size=(n, d))
        y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
        seed = int(rng.integers(2**31))
        compare(t, SGD, X, y, batch_size, stable_lr(X), 4, seed, what=SGD, names=SGD_NAMES)


@Q.case()
def last_batch_of_one(t, rng):
    X = rng.normal(size=(13, 3))
    y = rng.normal(size=13)
    seed = int(rng.integers(2**31))
    compare(t, SGD, X, y, 4, stable_lr(X, 0.9), 5, seed, what=SGD, names=SGD_NAMES)
