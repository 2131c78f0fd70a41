"""Chapter 5's graded questions: symmetries, minimum-norm and ridge solutions, Lasso, penalties."""

import numpy as np

from autograder import spec
from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("regularization", number=5, notebook="book/ch05_regularization/exercises.ipynb")

SKLEARN = ("sklearn",)


def check(t, name, *args, names=None, rtol=None, atol=None):
    """Compare the student's ``name(*args)`` with the reference's (the kernel's harness fails a
    call that changes its inputs). ``names`` labels a returned tuple as the prompt does."""
    want = t.reference(name, *args)
    got = t.student(name, *args)
    if names is not None:
        if not (isinstance(got, tuple | list) and len(got) == len(names)):
            raise AssertionError(f"{name}: expected a tuple ({', '.join(names)})")
        got, want = dict(zip(names, got)), dict(zip(names, want))
    assert_close(got, want, rtol=rtol, atol=atol, what=name)
    return got


def random_net(rng, d, h, k):
    return rng.normal(size=(h, d)), rng.normal(size=h), rng.normal(size=(k, h))


def lasso_problem(rng, n, d, noise=0.1):
    X = rng.normal(size=(n, d))
    w = np.where(rng.uniform(size=d) < 0.3, rng.normal(size=d), 0.0)
    return X, X @ w + noise * rng.normal(size=n)


def alpha_max(X, y):
    """The smallest alpha for which w = 0 solves the Lasso: ||X^T y||_inf / n."""
    return float(np.max(np.abs(X.T @ y)) / X.shape[0])


# ---------------------------------------------------------------------------------------------
# 5.1 and 5.2: the rescaling symmetry of a ReLU layer and the balance it leaves invariant.

RESCALE = chapter.question(
    "rescale_hidden_units",
    points=1,
    functions=["rescale_hidden_units"],
    title="5.1 Rescaling hidden units",
    hint="Row i of W1 and b1[i] are multiplied by c[i], column i of W2 divided by it: "
    "c[:, None] * W1, c * b1, W2 / c[None, :]. Return new arrays and raise ValueError when any "
    "c[i] <= 0.",
)
RESCALE_NAMES = ("W1", "b1", "W2")


@RESCALE.case(public=True)
def rescale_small(t, rng):
    W1 = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    W2 = np.array([[1.0, 2.0, -1.0]])
    check(t, "rescale_hidden_units", W1, b1, W2, np.array([2.0, 0.5, 3.0]), names=RESCALE_NAMES)


@RESCALE.case(public=True)
def rescale_rejects_zero(t, rng):
    W1, b1, W2 = random_net(rng, 2, 3, 1)
    t.expect_error(ValueError, "rescale_hidden_units", W1, b1, W2, np.array([1.0, 0.0, 2.0]))


@RESCALE.case()
def rescale_random_shapes(t, rng):
    for d, h, k in [(1, 1, 1), (4, 6, 3), (7, 2, 5)]:
        W1, b1, W2 = random_net(rng, d, h, k)
        c = np.exp(rng.normal(scale=2.0, size=h))
        check(t, "rescale_hidden_units", W1, b1, W2, c, names=RESCALE_NAMES)


@RESCALE.case()
def rescale_edges(t, rng):
    W1, b1, W2 = random_net(rng, 3, 4, 2)
    # Just inside the rule: tiny and huge positive scales are fine.
    c = np.array([1e-8, 1e8, 1.0, 0.25])
    check(t, "rescale_hidden_units", W1, b1, W2, c, names=RESCALE_NAMES)
    t.expect_error(ValueError, "rescale_hidden_units", W1, b1, W2, np.array([1.0, 2.0, -0.5, 1.0]))
    t.expect_error(ValueError, "rescale_hidden_units", W1, b1, W2, np.array([1.0, 2.0, 3.0, -0.0]))


BALANCE = chapter.question(
    "hidden_unit_balance",
    points=1,
    functions=["hidden_unit_balance"],
    title="5.2 Balance of each hidden unit",
    hint="a_i = ||W2[:, i]||^2 - ||W1[i]||^2 - b1[i]^2: the bias counts with the incoming "
    "weights. Return an array of shape (h,).",
)


@BALANCE.case(public=True)
def balance_small(t, rng):
    W1 = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    W2 = np.array([[1.0, 2.0, -1.0], [0.0, 1.0, 2.0]])
    check(t, "hidden_unit_balance", W1, b1, W2)


@BALANCE.case()
def balance_random_shapes(t, rng):
    for d, h, k in [(1, 1, 1), (5, 8, 3), (2, 16, 1)]:
        W1, b1, W2 = random_net(rng, d, h, k)
        check(t, "hidden_unit_balance", W1, b1, W2)


@BALANCE.case()
def balance_large_biases(t, rng):
    W1, b1, W2 = random_net(rng, 3, 5, 2)
    check(t, "hidden_unit_balance", W1, 3.0 * b1, W2)


# ---------------------------------------------------------------------------------------------
# 5.3 and 5.4: the minimum-norm solution and the ridge path.

MINNORM = chapter.question(
    "min_norm_solution",
    points=2,
    functions=["min_norm_solution"],
    title="5.3 Minimum-norm least squares",
    hint="Use the thin SVD X = U diag(s) V^T and w = V diag(1/s) U^T y over the singular values "
    "s_i > 1e-15 * s_max only (the others count as 0; X = 0 gives w = 0). The normal equations "
    "are singular when X has rank below d.",
)


def low_rank(rng, n, d, r):
    """A random (n, d) matrix of rank r (its other singular values are rounding, < 1e-15)."""
    return rng.normal(size=(n, r)) @ rng.normal(size=(r, d))


@MINNORM.case(public=True)
def min_norm_small(t, rng):
    X = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])  # wide: infinitely many solutions
    check(t, "min_norm_solution", X, np.array([1.0, -1.0]))
    X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # rank 1
    check(t, "min_norm_solution", X, np.array([1.0, 0.0, 2.0]))


@MINNORM.case()
def min_norm_full_rank(t, rng):
    for n, d in [(20, 5), (5, 20), (8, 8)]:
        check(t, "min_norm_solution", rng.normal(size=(n, d)), rng.normal(size=n))


@MINNORM.case()
def min_norm_rank_deficient(t, rng):
    for n, d, r in [(12, 8, 3), (8, 12, 5), (10, 10, 9), (30, 20, 1)]:
        check(t, "min_norm_solution", low_rank(rng, n, d, r), rng.normal(size=n))


@MINNORM.case()
def min_norm_ill_conditioned(t, rng):
    # Smallest singular value 1e-6 of the largest: kept, and the normal equations lose about
    # 12 of 16 digits on it.
    U, _ = np.linalg.qr(rng.normal(size=(15, 6)))
    V, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    X = (U * np.logspace(0, -6, 6)) @ V.T
    check(t, "min_norm_solution", X, rng.normal(size=15))


@MINNORM.case()
def min_norm_zero_matrix(t, rng):
    check(t, "min_norm_solution", np.zeros((4, 3)), rng.normal(size=4))


RIDGE = chapter.question(
    "ridge_path",
    points=2,
    functions=["ridge_path"],
    forbidden=SKLEARN,
    title="5.4 The ridge path",
    hint="Row j is (X^T X + n lambda_j I)^(-1) X^T y (the penalty (lambda/2)||w||^2 next to "
    "(1/2n)||Xw - y||^2: n once). With the thin SVD it is V diag(s / (s^2 + n lambda)) U^T y, "
    "accurate even for lambda = 1e-10; raise ValueError unless every lambda > 0.",
)


@RIDGE.case(public=True)
def ridge_small(t, rng):
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    check(t, "ridge_path", X, np.array([1.0, 2.0, 3.0]), np.array([0.01, 1.0]))


@RIDGE.case(public=True)
def ridge_rejects_zero(t, rng):
    t.expect_error(ValueError, "ridge_path", np.eye(3), np.ones(3), np.array([1.0, 0.0]))


@RIDGE.case()
def ridge_random(t, rng):
    lambdas = np.logspace(-4, 1, 6)
    for n, d in [(40, 10), (10, 40), (1, 3)]:
        check(t, "ridge_path", rng.normal(size=(n, d)), rng.normal(size=n), lambdas)


@RIDGE.case()
def ridge_tiny_lambda_wide(t, rng):
    # n < d, lambda 1e-10: X^T X + n lambda I has condition number ~1e10; solving it directly
    # is off by ~1e-6, the SVD formula is not.
    X, y = rng.normal(size=(20, 50)), rng.normal(size=20)
    check(t, "ridge_path", X, y, np.array([1e-10, 1e-6]))


@RIDGE.case()
def ridge_rank_deficient(t, rng):
    check(t, "ridge_path", low_rank(rng, 15, 10, 4), rng.normal(size=15), np.array([1e-3, 0.3]))


@RIDGE.case()
def ridge_edges(t, rng):
    X, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    check(t, "ridge_path", X, y, np.array([1e-12]))  # just inside: positive
    t.expect_error(ValueError, "ridge_path", X, y, np.array([0.1, -1e-3]))
    t.expect_error(ValueError, "ridge_path", X, y, np.array([0.0]))


# ---------------------------------------------------------------------------------------------
# 5.5 to 5.7: soft thresholding, ISTA, and the Lasso's optimality conditions.

SOFT = chapter.question(
    "soft_threshold",
    points=1,
    functions=["soft_threshold"],
    title="5.5 Soft thresholding",
    hint="sign(x) * max(|x| - t, 0) elementwise: entries with |x| <= t become 0, the others move "
    "t towards 0. Same shape as x; raise ValueError when t < 0 (t = 0 returns x).",
)


@SOFT.case(public=True)
def soft_small(t, rng):
    check(t, "soft_threshold", np.array([-3.0, -0.5, 0.0, 0.2, 1.0, 4.0]), 0.7)


@SOFT.case(public=True)
def soft_rejects_negative(t, rng):
    t.expect_error(ValueError, "soft_threshold", np.ones(3), -0.1)


@SOFT.case()
def soft_shapes(t, rng):
    check(t, "soft_threshold", rng.normal(size=(4, 5)), 0.3)
    check(t, "soft_threshold", rng.normal(size=(2, 3, 2)), 1.5)
    check(t, "soft_threshold", rng.normal(size=7), 10.0)  # everything to 0


@SOFT.case()
def soft_edges(t, rng):
    x = rng.normal(size=6)
    check(t, "soft_threshold", x, 0.0)  # t = 0 is allowed and changes nothing
    check(t, "soft_threshold", np.array([-0.5, 0.5, 0.25, -1.0]), 0.5)  # |x| = t goes to 0
    t.expect_error(ValueError, "soft_threshold", x, -1e-12)


ISTA = chapter.question(
    "ista",
    points=3,
    functions=["ista"],
    forbidden=SKLEARN,
    title="5.6 ISTA for the Lasso",
    hint="Start from w = 0; M = the largest eigenvalue of X^T X / n (np.linalg.norm(X, 2)**2 / n); "
    "each step is a gradient step of size 1/M on (1/2n)||Xw - y||^2, then soft thresholding at "
    "alpha / M (not alpha). Return the iterate after exactly num_steps steps.",
)
ISTA_TOL = {"rtol": 1e-9, "atol": 1e-11}  # float64; the prompt promises agreement to 1e-9


@ISTA.case(public=True)
def ista_one_and_seven_steps(t, rng):
    X = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    y = np.array([1.0, -1.0, 2.0, 0.5])
    for steps in (1, 7):
        check(t, "ista", X, y, 0.1, steps, **ISTA_TOL)


@ISTA.case()
def ista_before_convergence(t, rng):
    X, y = lasso_problem(rng, 50, 20)
    alpha = 0.2 * alpha_max(X, y)
    for steps in (1, 7, 60):
        check(t, "ista", X, y, alpha, steps, **ISTA_TOL)


@ISTA.case()
def ista_wide(t, rng):
    X, y = lasso_problem(rng, 15, 40)
    check(t, "ista", X, y, 0.1 * alpha_max(X, y), 25, **ISTA_TOL)


@ISTA.case()
def ista_converged(t, rng):
    X, y = lasso_problem(rng, 60, 15)
    check(t, "ista", X, y, 0.3 * alpha_max(X, y), 1000, **ISTA_TOL)


@ISTA.case()
def ista_edges(t, rng):
    X, y = lasso_problem(rng, 30, 10)
    am = alpha_max(X, y)
    # alpha >= alpha_max: exactly 0 after every step; just below, not.
    check(t, "ista", X, y, 1.001 * am, 5, rtol=0, atol=0)
    check(t, "ista", X, y, 0.95 * am, 5, **ISTA_TOL)
    check(t, "ista", X, y, 0.0, 20, **ISTA_TOL)  # alpha = 0: gradient descent with step 1/M
    check(t, "ista", X, y, 0.1 * am, 0, rtol=0, atol=0)  # no steps: the start, w = 0


KKT = chapter.question(
    "lasso_kkt_violation",
    points=2,
    functions=["lasso_kkt_violation"],
    forbidden=SKLEARN,
    title="5.7 The Lasso's optimality conditions",
    hint="g = X^T (y - X w) / n. Where w_j != 0 the condition is g_j = alpha * sign(w_j) "
    "(violation |g_j - alpha sign(w_j)|, sign included); where w_j = 0 it is |g_j| <= alpha "
    "(violation max(|g_j| - alpha, 0)). Return the largest violation as a float.",
)


@KKT.case(public=True)
def kkt_by_hand(t, rng):
    X = np.eye(2) * np.sqrt(2.0)
    y = np.array([1.0, 0.1]) * np.sqrt(2.0)
    for w, alpha in [([0.5, 0.0], 0.3), ([0.7, 0.0], 0.3), ([0.95, 0.0], 0.05), ([-0.2, 0.0], 0.3)]:
        check(t, "lasso_kkt_violation", X, y, np.array(w), alpha)


@KKT.case()
def kkt_mixed_signs(t, rng):
    X, y = lasso_problem(rng, 40, 12)
    w = np.where(rng.uniform(size=12) < 0.5, rng.normal(size=12), 0.0)
    for alpha in (0.01, 0.3, 2.0):
        check(t, "lasso_kkt_violation", X, y, w, alpha)


@KKT.case()
def kkt_at_zero(t, rng):
    X, y = lasso_problem(rng, 30, 8)
    am = alpha_max(X, y)
    check(t, "lasso_kkt_violation", X, y, np.zeros(8), 1.01 * am)  # optimal: 0
    check(t, "lasso_kkt_violation", X, y, np.zeros(8), 0.5 * am)


@KKT.case()
def kkt_negative_coordinates(t, rng):
    X, y = lasso_problem(rng, 25, 6)
    w = -np.abs(rng.normal(size=6))
    check(t, "lasso_kkt_violation", X, y, w, 0.2)


# ---------------------------------------------------------------------------------------------
# 5.8 and 5.9: an orthogonality penalty, and dropout's penalty in closed form.

ORTH = chapter.question(
    "orthogonality_penalty",
    points=2,
    functions=["orthogonality_penalty"],
    forbidden=spec.AUTOGRAD,
    title="5.8 Orthogonality penalty",
    hint="For W of shape (m, n) the penalty is ||W^T W - I||_F^2 with I the n x n identity (not "
    "W W^T), and its gradient is 4 W (W^T W - I). Return (value as a float, gradient).",
)
ORTH_NAMES = ("value", "grad")


@ORTH.case(public=True)
def orth_small(t, rng):
    check(t, "orthogonality_penalty", np.array([[1.0, 0.5], [0.0, 2.0]]), names=ORTH_NAMES)


@ORTH.case()
def orth_shapes(t, rng):
    for m, n in [(8, 5), (5, 5), (3, 6), (1, 1), (1, 4)]:
        check(t, "orthogonality_penalty", rng.normal(size=(m, n)), names=ORTH_NAMES)


@ORTH.case()
def orth_at_orthonormal_columns(t, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(7, 4)))
    check(t, "orthogonality_penalty", Q, names=ORTH_NAMES, rtol=1e-7, atol=1e-12)


DROPOUT = chapter.question(
    "dropout_expected_loss",
    points=2,
    functions=["dropout_expected_loss"],
    title="5.9 Dropout's expected loss",
    hint="With inverted masks x_ij m_ij / (1 - p), the expected loss is "
    "(1/2n)||Xw - y||^2 + (p / (1 - p)) * sum_j w_j^2 ||X[:, j]||^2 / (2n): the factor "
    "1/(1 - p) matters. Raise ValueError unless 0 <= p < 1; return a float.",
)


@DROPOUT.case(public=True)
def dropout_small(t, rng):
    X = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    y = np.array([1.0, 0.0, 2.0])
    w = np.array([0.5, -0.25])
    for p in (0.0, 0.5):
        check(t, "dropout_expected_loss", X, y, w, p)


@DROPOUT.case(public=True)
def dropout_rejects_one(t, rng):
    t.expect_error(ValueError, "dropout_expected_loss", np.eye(2), np.ones(2), np.ones(2), 1.0)


@DROPOUT.case()
def dropout_random(t, rng):
    for n, d in [(30, 6), (5, 12), (1, 1)]:
        X, w = rng.normal(size=(n, d)), rng.normal(size=d)
        y = X @ w + rng.normal(size=n)
        for p in (0.1, 0.3, 0.9):
            check(t, "dropout_expected_loss", X, y, w, p)


@DROPOUT.case()
def dropout_edges(t, rng):
    X, y, w = rng.normal(size=(8, 3)), rng.normal(size=8), rng.normal(size=3)
    check(t, "dropout_expected_loss", X, y, w, 0.0)
    check(t, "dropout_expected_loss", X, y, w, 0.999)  # just inside p < 1
    for bad in (-0.1, 1.0, 1.5):
        t.expect_error(ValueError, "dropout_expected_loss", X, y, w, bad)
