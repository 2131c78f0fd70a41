"""How graded questions are declared: a chapter, its questions, and their test cases.

A question file (``autograder/questions/<chapter>.py``) looks like::

    chapter = Chapter("descent", number=1, notebook="book/ch01_descent/exercises.ipynb")
    Q = chapter.question("quadratic_minimizer", points=2, functions=["quadratic_minimizer"],
                         hint="Solve H x = -b; check symmetry and positive definiteness first.")

    @Q.case(public=True)
    def spd_3x3(t, rng):
        H, b = ...
        t.compare("quadratic_minimizer", H, b)

A case receives ``t`` (a :class:`Trial`: calls into the student's kernel and the reference,
compares in the grader) and ``rng`` (a NumPy generator, see :meth:`Question.seed_for`). A case
passes when it returns without raising.

Where the inputs come from: a public case's ``rng`` depends only on the question id and the
case's index (the inputs ``check()`` uses in JupyterLab are the ones graded). A hidden case's
``rng`` is keyed by the run seed, which lives only in the instructor's gradebook: its entropy is
HMAC-SHA256 of the question id and case index under a key stretched from the run seed
(PBKDF2), so the public question code and every input a student can see tell nothing about
the others, and guessing the seed costs a PBKDF2 per guess. The same run seed gives the same
inputs (re-runs are reproducible). The student's kernel is seeded with :data:`KERNEL_SEED`,
which has nothing to do with the run seed.
"""

import functools
import hashlib
import hmac
import zlib
from dataclasses import dataclass, field

import numpy as np

from autograder.compare import assert_close, builtin_exception

# Every question ends in exactly one of these.
PASSED = "passed"
FAILED = "failed"
ERROR = "error"
TIMEOUT = "timeout"
OUT_OF_MEMORY = "out of memory"
CRASHED = "crashed"
NOT_RUN_GPU = "not run (no GPU)"
OUTCOMES = (PASSED, FAILED, ERROR, TIMEOUT, OUT_OF_MEMORY, CRASHED, NOT_RUN_GPU)

DEFAULT_CALL_TIMEOUT = 60.0  # seconds per call into the student's kernel

PUBLIC_SEED = 0  # public cases draw from this, whatever the run seed (check()'s default seed)
KERNEL_SEED = 1729  # the student's kernel is seeded with this: fixed, unrelated to any run seed
_HIDDEN_SALT = b"descent hidden cases v1"
_HIDDEN_ROUNDS = 100_000  # PBKDF2 rounds: ~50 ms once per run seed, the same per guessed seed


@functools.lru_cache(maxsize=32)
def _hidden_key(run_seed):
    return hashlib.pbkdf2_hmac("sha256", str(int(run_seed)).encode(), _HIDDEN_SALT, _HIDDEN_ROUNDS)


def hidden_entropy(run_seed, *parts):
    """Seed material for a hidden input: HMAC-SHA256 of ``parts`` under the run seed's key.

    Four 64-bit words (a ``numpy.random.default_rng`` seed); the same run seed and parts give
    the same words, and nothing short of the run seed gives them.
    """
    message = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
    digest = hmac.new(_hidden_key(run_seed), message, hashlib.sha256).digest()
    return [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)]


# ``forbidden`` sets shared by several chapters (see Question.forbidden).
AUTOGRAD = ("torch.autograd", "torch.func", "torch._functorch")
# torch.optim's optimizers, but not torch.optim.optimizer: exercises subclass its Optimizer.
TORCH_OPTIMIZERS = tuple(
    f"torch.optim.{name}"
    for name in (
        "_adafactor _functional _multi_tensor _muon adadelta adagrad adam adamax adamw asgd "
        "lbfgs nadam radam rmsprop rprop sgd sparse_adam"
    ).split()
)


class StudentError(Exception):
    """The student's code raised; ``info`` is plain data from ``wire.describe_exception``."""

    def __init__(self, info, target=""):
        self.info = dict(info)
        self.target = target
        super().__init__(f"{target}: {self.info.get('type')}: {self.info.get('message')}")

    def is_a(self, exc_type):
        return exc_type.__name__ in self.info.get("mro", [])


# The exception type the kernel harness raises when a graded function calls a forbidden module.
SHORTCUT = "LibraryShortcut"


class StudentTimeout(Exception):
    """A call into the student's kernel ran past its time limit."""


class KernelDied(Exception):
    """The student's kernel died during a call; ``outcome`` is CRASHED or OUT_OF_MEMORY."""

    def __init__(self, message, outcome=CRASHED):
        self.outcome = outcome
        super().__init__(message)


@dataclass
class Case:
    name: str
    fn: object
    public: bool
    points: float | None = None  # its share of a partial question's points (None: equal shares)


@dataclass
class Question:
    id: str
    points: float
    functions: list
    hint: str
    gpu: bool = False
    timeout: float = DEFAULT_CALL_TIMEOUT
    title: str = ""
    # Modules the graded functions must not call into while a case runs (e.g. "torch.autograd"
    # for a gradient asked for by hand, "torch.optim.adam" for an Adam to be written): a call
    # into one, or into a submodule, fails the question with a message naming the call.
    forbidden: tuple = ()
    # Partial credit: with ``partial=True`` every case runs and passes or fails on its own, and
    # the question scores the passing cases' shares of ``points`` (see :meth:`case_points`).
    # The default is all-or-nothing: every case must pass, the first problem ends the question.
    partial: bool = False
    cases: list = field(default_factory=list)

    def case(self, public=False, name=None, points=None):
        """Decorator adding a case; hidden (grader-only) unless ``public``. ``points`` is the
        case's share of a partial question's points (the unassigned rest is split equally)."""
        if points is not None and not self.partial:
            raise ValueError(f"question {self.id!r}: per-case points need partial=True")

        def add(fn):
            self.cases.append(Case(name or fn.__name__, fn, public, points))
            return fn

        return add

    def case_points(self):
        """Each case's share of ``points``: its own ``points=``, or an equal part of what the
        cases with their own points leave."""
        fixed = sum(c.points for c in self.cases if c.points is not None)
        free = [c for c in self.cases if c.points is None]
        if fixed > self.points + 1e-9 or (not free and abs(fixed - self.points) > 1e-9):
            raise ValueError(
                f"question {self.id!r}: case points add up to {fixed:g}, not {self.points:g}"
            )
        share = (self.points - fixed) / len(free) if free else 0.0
        return [c.points if c.points is not None else share for c in self.cases]

    def seed_for(self, run_seed, index):
        """Seed of case ``index``'s inputs: public cases ignore ``run_seed`` (they are the
        inputs ``check()`` shows); hidden ones are keyed by it (see the module docstring)."""
        if 0 <= index < len(self.cases) and self.cases[index].public:
            return [PUBLIC_SEED, zlib.crc32(self.id.encode()), index]
        return hidden_entropy(run_seed, "case", self.id, index)

    def rng_for(self, run_seed, index):
        return np.random.default_rng(self.seed_for(run_seed, index))


@dataclass
class Chapter:
    """One chapter's graded notebook.

    ``notebook`` is relative to the repository root; the reference module is
    ``solutions.<id>`` and the trusted drivers are ``autograder/kernel/<id>.py`` (if present).
    """

    id: str
    number: int
    notebook: str
    questions: list = field(default_factory=list)

    @property
    def reference(self):
        return f"solutions.{self.id}"

    def question(self, id, points, functions, hint, **kwargs):
        if any(q.id == id for q in self.questions):
            raise ValueError(f"question {id!r} declared twice in chapter {self.id}")
        q = Question(id, points, list(functions), hint, **kwargs)
        self.questions.append(q)
        return q

    @property
    def points(self):
        return sum(q.points for q in self.questions)


class Trial:
    """What a case sees: ``student``/``reference`` calls and grader-side comparisons.

    ``target`` is a function name from the notebook, or ``"driver:<name>"`` for a driver in
    ``autograder/kernel/<chapter>.py``. Arguments and results are plain data (see wire.py).
    """

    def __init__(self, student, reference, timeout, forbidden=()):
        self._student = student
        self._reference = reference
        self.timeout = timeout
        self.forbidden = tuple(forbidden)
        self.cuda = bool(getattr(student, "cuda", False))

    def student(self, target, *args, **kwargs):
        return self._student.call(target, args, kwargs, self.timeout, self.forbidden)

    def reference(self, target, *args, **kwargs):
        # The reference is held to the same rule: a shortcut in it fails the project's tests.
        return self._reference.call(target, args, kwargs, None, self.forbidden)

    def compare(self, target, *args, rtol=None, atol=None, **kwargs):
        """Call both sides with the same arguments and assert the results are close."""
        want = self.reference(target, *args, **kwargs)
        got = self.student(target, *args, **kwargs)
        assert_close(got, want, rtol=rtol, atol=atol, what=target.removeprefix("driver:"))
        return got

    def expect_error(self, exc_type, target, *args, **kwargs):
        """Assert that the student's call raises ``exc_type`` (or a subclass)."""
        try:
            self.student(target, *args, **kwargs)
        except StudentError as err:
            if err.is_a(exc_type):
                return err
            # Only the built-in class: the message and class name are the student's own text.
            got = builtin_exception(err.info.get("mro"))
            raise AssertionError(f"expected {exc_type.__name__}, got {got}") from None
        raise AssertionError(f"expected {exc_type.__name__} to be raised, nothing was raised")
