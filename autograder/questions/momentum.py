"""Chapter 2's graded questions: stability, power iteration, momentum, implicit steps, schedules."""

import math

import numpy as np

from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("momentum", number=2, notebook="book/ch02_momentum/exercises.ipynb")


def random_symmetric(rng, eigenvalues):
    """A random symmetric matrix with the given eigenvalues, and its eigenvectors (columns)."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    d = eigenvalues.size
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * eigenvalues) @ Q.T, Q


def random_spd(rng, d, lam_min=0.5, lam_max=10.0):
    """A random symmetric positive definite (d, d) matrix with spectrum in [lam_min, lam_max]."""
    if d == 1:
        return np.array([[lam_max]])
    lams = np.concatenate([[lam_min, lam_max], rng.uniform(lam_min, lam_max, d - 2)])
    return random_symmetric(rng, rng.permutation(lams))[0]


def compare(t, target, *args, what, names=None, rtol=None, atol=None, **kwargs):
    """``t.compare`` with the result named as the prompt names it (``what``, ``names``)."""
    want = t.reference(target, *args, **kwargs)
    got = t.student(target, *args, **kwargs)
    assert_close(got, want, rtol=rtol, atol=atol, what=what, names=names)
    return got


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "max_stable_lr",
    points=1,
    functions=["max_stable_lr"],
    title="2.1 The largest stable step",
    hint="Along an eigenvector with eigenvalue lambda, one step multiplies the error by "
    "1 - lr * lambda; which eigenvalue limits lr? np.linalg.eigvalsh sorts its output. When "
    "lambda_max is 0 (H = 0) every step is stable: return math.inf.",
)


@Q.case(public=True)
def diagonal_2x2(t, rng):
    t.compare("max_stable_lr", np.diag([1.0, 4.0]))


@Q.case(public=True)
def coupled_2x2(t, rng):
    # eigenvalues 1 and 3: the diagonal (2, 2) does not show the largest one
    t.compare("max_stable_lr", np.array([[2.0, 1.0], [1.0, 2.0]]))


@Q.case()
def random_sizes(t, rng):
    for d in (1, 3, 10):
        t.compare("max_stable_lr", random_spd(rng, d, 0.1, rng.uniform(1.0, 100.0)))


@Q.case()
def singular_psd(t, rng):
    H, _ = random_symmetric(rng, [0.0, 0.0, rng.uniform(0.5, 5.0), 0.2])
    t.compare("max_stable_lr", H)


@Q.case()
def zero_matrix_and_tiny_curvature(t, rng):
    # lambda_max = 0 exactly: every step size is stable, math.inf. Just beside it, a tiny but
    # positive lambda_max still has the finite limit 2 / lambda_max.
    d = int(rng.integers(1, 5))
    t.compare("max_stable_lr", np.zeros((d, d)))
    t.compare("max_stable_lr", np.diag(np.r_[0.0, 1e-6, np.zeros(d - 1)]))


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "power_iteration",
    points=2,
    functions=["power_iteration"],
    title="2.2 Power iteration",
    hint="Repeat v <- matvec(v) / ||matvec(v)|| exactly num_iters times from the normalized "
    "start. The eigenvalue is the Rayleigh quotient v @ matvec(v) of the final unit v (not of "
    "the one before the last step): it keeps the sign, which a norm would lose.",
)

POWER = "driver:power_iteration_on_matrix"
POWER_NAMES = ("eigenvalue", "eigenvector")
# The iterate after a few steps is fixed by the prompt; float64 rounding in a different but
# equivalent normalization moves it by ~1e-15, far below what one step more or less changes.
EXACT = dict(rtol=1e-9, atol=1e-12)


def check_eigenpair(t, A, num_iters, seed):
    """The student's (eigenvalue, eigenvector) against numpy's, the vector up to its sign."""
    got = t.student("driver:power_iteration_on_matrix", A, num_iters, seed)
    assert isinstance(got, tuple | list) and len(got) == 2, "return (eigenvalue, eigenvector)"
    value, vector = float(got[0]), np.asarray(got[1], dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(A)
    i = int(np.argmax(np.abs(eigenvalues)))
    want = eigenvalues[i]
    assert_close(value, want, rtol=1e-8, atol=1e-10, what="eigenvalue")
    assert vector.shape == (A.shape[0],), f"eigenvector: shape {vector.shape} != ({A.shape[0]},)"
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-8, "eigenvector: not a unit vector"
    alignment = abs(float(vector @ eigenvectors[:, i]))
    assert alignment > 1 - 1e-8, "eigenvector: not parallel to the dominant eigenvector"


@Q.case(public=True)
def two_by_two(t, rng):
    # eigenvalues 3 (along (1, 1)) and 1
    check_eigenpair(t, np.array([[2.0, 1.0], [1.0, 2.0]]), 60, 0)


@Q.case()
def random_spectra(t, rng):
    for d in (1, 4, 12):
        lams = rng.uniform(-0.6, 0.6, d)
        lams[0] = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 20.0)
        A, _ = random_symmetric(rng, lams)
        check_eigenpair(t, A, 100, int(rng.integers(1000)))


@Q.case()
def dominant_negative_eigenvalue(t, rng):
    A, _ = random_symmetric(rng, [-5.0, 2.0, 1.0, -1.0, 0.5])
    check_eigenpair(t, A, 120, int(rng.integers(1000)))


@Q.case()
def after_three_iterations(t, rng):
    # Far from convergence (eigenvalues near +-3), the iterate is fixed by the prompt's start
    # and loop: a quotient of the previous vector, or one iteration fewer, shows here.
    lams = np.r_[3.0, -2.9, 2.8, -2.6, rng.uniform(-1.0, 1.0, 4)]
    A, _ = random_symmetric(rng, rng.permutation(lams))
    seed = int(rng.integers(1000))
    compare(t, POWER, A, 3, seed, what="power_iteration", names=POWER_NAMES, **EXACT)


@Q.case()
def zero_and_one_iterations(t, rng):
    A, _ = random_symmetric(rng, rng.uniform(-2.0, 2.0, 5))
    for num_iters in (0, 1):
        args = (A, num_iters, int(rng.integers(1000)))
        compare(t, POWER, *args, what="power_iteration", names=POWER_NAMES, **EXACT)


@Q.case()
def same_seed_same_answer(t, rng):
    A, _ = random_symmetric(rng, [3.0, 2.5, 1.0])
    first = t.student("driver:power_iteration_on_matrix", A, 5, 11)
    second = t.student("driver:power_iteration_on_matrix", A, 5, 11)
    assert_close(first, second, rtol=0, atol=0, what="a second call with the same seed")


# ---------------------------------------------------------------------------------------------
ON_QUADRATIC = "driver:momentum_on_quadratic"


def momentum_question(method, number, title, hint):
    q = chapter.question(
        method,
        points=2,
        functions=[method],
        title=f"{number} {title}",
        hint=hint,
        forbidden=("torch.optim",),  # the iterates must equal torch.optim.SGD's, without it
    )

    @q.case(public=True)
    def ill_conditioned_2d(t, rng):
        H, b = np.diag([1.0, 10.0]), np.array([1.0, -1.0])
        compare(t, ON_QUADRATIC, method, H, b, np.zeros(2), 0.05, 0.9, 20, what=method)

    @q.case()
    def random_quadratics(t, rng):
        for d, beta in ((1, 0.5), (3, 0.0), (7, 0.95)):
            H = random_spd(rng, d, 0.1, 10.0)
            args = (H, rng.normal(size=d), rng.normal(size=d), 0.1, beta, 40)
            compare(t, ON_QUADRATIC, method, *args, what=method)

    @q.case()
    def nonquadratic(t, rng):
        A, c = rng.normal(size=(15, 5)), rng.normal(size=15)
        args = (A, c, rng.normal(size=5), 0.01, float(rng.uniform(0.5, 0.95)), 60)
        compare(t, "driver:momentum_on_logcosh", method, *args, what=method)

    @q.case()
    def zero_steps(t, rng):
        args = (np.eye(3), np.ones(3), rng.normal(size=3), 0.1, 0.9, 0)
        compare(t, ON_QUADRATIC, method, *args, what=method)

    return q


momentum_question(
    "heavy_ball",
    "2.3",
    "Heavy-ball momentum",
    "PyTorch keeps v <- beta * v + g (v starts at 0) and steps x <- x - lr * v. Return every "
    "iterate, x0 first, as copies: a row must not change after it is stored.",
)
momentum_question(
    "nesterov",
    "2.4",
    "Nesterov momentum",
    "Update v <- beta * v + g as for the heavy ball, then step along the look-ahead direction "
    "g + beta * v with the new v (PyTorch's nesterov=True).",
)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "polyak_parameters",
    points=1,
    functions=["polyak_parameters"],
    title="2.5 Polyak's optimal parameters",
    hint="Both formulas use sqrt(L) and sqrt(mu); beta is the square of the optimal rate. "
    "Return a tuple (lr, beta) of floats.",
)


POLYAK, POLYAK_NAMES = "polyak_parameters", ("lr", "beta")


@Q.case(public=True)
def kappa_100(t, rng):
    compare(t, "polyak_parameters", 1.0, 100.0, what=POLYAK, names=POLYAK_NAMES)


@Q.case()
def random_curvatures(t, rng):
    for _ in range(3):
        mu = float(10 ** rng.uniform(-3, 1))
        L = mu * float(10 ** rng.uniform(0.5, 6))
        compare(t, "polyak_parameters", mu, L, what=POLYAK, names=POLYAK_NAMES)


@Q.case()
def equal_curvatures(t, rng):
    # beta = 0, lr = 1 / L: a one-step solve
    compare(t, "polyak_parameters", 2.5, 2.5, what=POLYAK, names=POLYAK_NAMES)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "proximal_point",
    points=2,
    functions=["proximal_point"],
    title="2.6 Implicit Euler: the proximal point method",
    hint="Set the gradient of 0.5 x^T H x + b^T x + ||x - x_k||^2 / (2 lr) to zero and solve the "
    "linear system for x (np.linalg.solve); do not take a gradient step.",
)


@Q.case(public=True)
def small_2x2(t, rng):
    H, b = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([1.0, -2.0])
    t.compare("proximal_point", H, b, np.array([3.0, 3.0]), 0.5, 10)


@Q.case()
def stiff_huge_step(t, rng):
    H = random_spd(rng, 5, 0.01, 1000.0)
    lr = 100.0 / np.linalg.eigvalsh(H)[-1]
    t.compare("proximal_point", H, rng.normal(size=5), rng.normal(size=5), lr, 30)


@Q.case()
def random_sizes_and_steps(t, rng):
    for d in (1, 4, 9):
        H = random_spd(rng, d, 0.1, 5.0)
        lr = float(rng.uniform(0.01, 3.0))
        t.compare("proximal_point", H, rng.normal(size=d), rng.normal(size=d), lr, 15)


@Q.case()
def singular_and_zero_steps(t, rng):
    H, _ = random_symmetric(rng, [0.0, 1.0, 4.0])
    # I + lr H stays invertible when H is singular: each step is still well defined.
    t.compare("proximal_point", H, rng.normal(size=3), rng.normal(size=3), 0.7, 8)
    t.compare("proximal_point", H, rng.normal(size=3), rng.normal(size=3), 0.7, 0)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "cosine_schedule",
    points=2,
    functions=["cosine_schedule"],
    forbidden=("torch.optim",),
    title="2.7 Cosine schedule with warm-up",
    hint="Steps count from 0, so warm-up step 0 already uses base_lr / warmup_steps and step "
    "warmup_steps - 1 uses base_lr; the cosine then runs over total_steps - warmup_steps steps. "
    "Raise ValueError unless 0 <= warmup_steps < total_steps.",
)

SCHEDULE = "cosine_schedule"


@Q.case(public=True)
def no_warmup(t, rng):
    compare(t, "driver:cosine_schedule_defaults", 10, 0.1, what=SCHEDULE)


@Q.case(public=True)
def with_warmup(t, rng):
    compare(t, "driver:cosine_schedule_values", 12, 1.0, 0.0, 4, what=SCHEDULE)


@Q.case()
def random_settings(t, rng):
    for _ in range(3):
        total = int(rng.integers(5, 200))
        warmup = int(rng.integers(1, total))
        base_lr = float(10 ** rng.uniform(-4, 0))
        min_lr = float(rng.choice([0.0, base_lr * rng.uniform(0, 0.5)]))
        args = (total, base_lr, min_lr, warmup)
        compare(t, "driver:cosine_schedule_values", *args, what=SCHEDULE)


@Q.case()
def one_warmup_step_and_floor(t, rng):
    compare(t, "driver:cosine_schedule_values", 7, 0.5, 0.05, 1, what=SCHEDULE)
    compare(t, "driver:cosine_schedule_values", 50, 0.3, 0.01, 0, what=SCHEDULE)
    got = t.student("cosine_schedule", 50, 50, 0.3, min_lr=0.01)
    assert math.isclose(float(got), 0.01, rel_tol=1e-9), "the last step should reach min_lr"


@Q.case()
def warmup_bounds(t, rng):
    # The last valid warm-up (warmup_steps = total_steps - 1 leaves one cosine step, which is
    # base_lr), then invalid ones: with warmup_steps >= total_steps no step is left to decay.
    total = int(rng.integers(2, 30))
    compare(t, "driver:cosine_schedule_values", total, 0.4, 0.02, total - 1, what=SCHEDULE)
    for warmup in (total, total + 3, -1):
        t.expect_error(ValueError, "cosine_schedule", 0, total, 0.4, warmup_steps=warmup)
