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
compares in the grader) and ``rng`` (a NumPy generator seeded from the run's seed, the question
id and the case's index). A case passes when it returns without raising.
"""

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
    cases: list = field(default_factory=list)

    def case(self, public=False, name=None):
        """Decorator adding a case; hidden (grader-only) unless ``public``."""

        def add(fn):
            self.cases.append(Case(name or fn.__name__, fn, public))
            return fn

        return add

    def seed_for(self, run_seed, index):
        return [int(run_seed), zlib.crc32(self.id.encode()), index]

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
