"""Run a chapter's cases against a student target and a reference target; score in the grader.

A *target* answers ``call(target, args, kwargs, timeout)`` with plain data, ``defined(name)``,
``missing_reason(name)`` and has a ``cuda`` flag. :class:`LocalTarget` runs in this process (for
``check()`` and the reference); the sandboxed kernel target lives in ``autograder/sandbox``.
"""

import importlib
import os
import re
import shutil
import tempfile
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder import spec, wire
from autograder.compare import builtin_exception, excerpt

KERNEL_DIR = Path(__file__).parent / "kernel"
MESSAGE_CHARS = 160  # of a student's own text shown in a public case's message


def kernel_sources(chapter_id):
    """The source injected into a kernel: (wire + harness, drivers of the chapter or "")."""
    harness = (Path(wire.__file__).read_text(), (KERNEL_DIR / "harness.py").read_text())
    drivers_path = KERNEL_DIR / f"{chapter_id}.py"
    drivers = drivers_path.read_text() if drivers_path.exists() else ""
    return "\n\n".join(harness), drivers


def make_harness(chapter_id, namespace):
    """Build a Harness exactly as the kernel does: exec the sources in fresh modules."""
    harness_src, drivers_src = kernel_sources(chapter_id)
    hmod = types.ModuleType("_descent_harness")
    exec(compile(harness_src, "<descent-harness>", "exec"), hmod.__dict__)  # noqa: S102
    dmod = types.ModuleType(f"_descent_drivers_{chapter_id}")
    exec(compile(drivers_src, f"<descent-drivers-{chapter_id}>", "exec"), dmod.__dict__)  # noqa: S102
    return hmod.Harness(dmod, namespace)


class LocalTarget:
    """Calls functions of ``namespace`` in this process, with arguments and results round-tripped
    through the wire so both sides see the same plain-data types."""

    def __init__(self, chapter_id, namespace, cuda=None):
        self.namespace = namespace
        self.harness = make_harness(chapter_id, namespace)
        if cuda is None:
            cuda = self.harness.environment()["cuda"]
        self.cuda = cuda

    def defined(self, name):
        return name in self.namespace

    def missing_reason(self, name):
        return f"`{name}` is not defined: run the cell that defines it"

    def call(self, target, args, kwargs, timeout, forbid=()):
        folder = tempfile.mkdtemp(prefix="descent-call-")
        try:
            wire.dump(request(target, args, kwargs, forbid), os.path.join(folder, "request"))
            self.harness.call(folder)
            return read_status(folder, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def request(target, args, kwargs, forbid=()):
    """What the kernel harness is asked to run, as plain data."""
    return {"target": target, "args": list(args), "kwargs": dict(kwargs), "forbid": list(forbid)}


def read_status(folder, target):
    """Turn a finished request folder into a value or a StudentError (grader side)."""
    import json

    path = os.path.join(folder, "status.json")
    if not os.path.isfile(path) or os.path.getsize(path) > 1_000_000:
        raise spec.StudentError({"type": "RuntimeError", "mro": [], "message": "no result"}, target)
    with open(path) as f:
        status = json.load(f)
    if not isinstance(status, dict) or status.get("ok") is not True:
        info = status.get("error") if isinstance(status, dict) else None
        if not isinstance(info, dict):
            info = {"type": "RuntimeError", "mro": [], "message": "malformed status"}
        info = {
            "type": str(info.get("type", "?"))[:200],
            "mro": [str(m)[:200] for m in info.get("mro", [])][:20]
            if isinstance(info.get("mro"), list)
            else [],
            "message": str(info.get("message", ""))[:2000],
        }
        raise spec.StudentError(info, target)
    return wire.load(os.path.join(folder, "result"))


@dataclass
class QuestionResult:
    id: str
    title: str
    points: float
    score: float
    outcome: str
    message: str
    hint: str
    gpu: bool = False
    cases_run: int = 0


@dataclass
class Report:
    chapter: str
    seed: int
    results: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    # Filled by grading.grade_notebook (sandboxed grading of a whole notebook):
    isolation: str = ""  # one line; every printed report starts with it
    error: str = ""  # why the notebook could not be run at all (malformed, missing, ...)
    cells: list = field(default_factory=list)  # per code cell: index, status, message, seconds
    execution_time: float = 0.0  # seconds, kernel start to last question
    require_gpu: bool = False

    @property
    def outcomes(self):
        return {r.id: r.outcome for r in self.results}

    @property
    def score(self):
        return sum(r.score for r in self.results)

    def possible(self, require_gpu=None):
        require_gpu = self.require_gpu if require_gpu is None else require_gpu
        return sum(r.points for r in self.results if require_gpu or r.outcome != spec.NOT_RUN_GPU)

    def to_dict(self):
        return {
            "chapter": self.chapter,
            "seed": self.seed,
            "environment": self.environment,
            "results": [asdict(r) for r in self.results],
            "isolation": self.isolation,
            "error": self.error,
            "cells": list(self.cells),
            "execution_time": self.execution_time,
            "require_gpu": self.require_gpu,
        }


# Raised by the kernel harness when a call changed an argument the
# grader passed: the course's rule is that functions leave their inputs unchanged. Graded as
# FAILED, like SHORTCUT: the answer may be right, the function still broke a stated rule.
INPUT_MODIFIED = "InputModified"
# Raised by a driver when the notebook's code breaks another rule its prompt states (e.g. calls
# another exercise's function where the prompt asks for a self-contained one).
RULE_BROKEN = "RuleBroken"
RULES = (spec.SHORTCUT, INPUT_MODIFIED, RULE_BROKEN)


def _student_error_message(err, public=True, functions=()):
    """What a student is told about an exception from their code. Its message and class name
    are the student's own text (a function can put its hidden inputs there): a public case shows
    a short excerpt; a hidden case shows only the built-in exception class it derives from.

    A driver (``driver:<name>``) is the grader's code calling the notebook's ``functions``: the
    message names those, and says the error came from them as the grader called them."""
    t, m = err.info.get("type"), err.info.get("message", "")
    name = err.target.removeprefix("driver:")
    by_driver = err.target.startswith("driver:") and bool(functions)
    if by_driver:
        name = "/".join(functions)
    if err.is_a(NotImplementedError):
        return f"`{name}` raised NotImplementedError: not implemented yet"
    if t == INPUT_MODIFIED:
        if not public:
            return (
                "your code changed an argument it was given, in place; the exercise asks you to "
                "leave the caller's inputs unchanged (work on a copy)"
            )
        return f"your code changed its input: {excerpt(m, MESSAGE_CHARS)}"
    if t == RULE_BROKEN:
        if not public:
            return "your code breaks a rule the exercise's prompt states (check() names it)"
        return f"your code {excerpt(m, MESSAGE_CHARS)}"
    if by_driver:
        called = "when the grader's test code called it"
        kind = builtin_exception(err.info.get("mro"))
        if not public:
            return f"your `{name}` raised {kind} {called} (messages are not shown for hidden cases)"
        kind = re.sub(r"[^A-Za-z0-9_.]", "", str(t))[:60] or kind
        return f"your `{name}` raised {kind} {called}: {excerpt(m, MESSAGE_CHARS)}".rstrip(": ")
    if t == spec.SHORTCUT:  # raised by the harness around a driver or function: name no driver
        if not public:
            return "your code calls a module this exercise forbids (check() names it)"
        return f"your code {excerpt(m, MESSAGE_CHARS)}"
    if not public:
        kind = builtin_exception(err.info.get("mro"))
        return f"`{name}` raised {kind} (messages are not shown for hidden cases)"
    kind = re.sub(r"[^A-Za-z0-9_.]", "", str(t))[:60] or builtin_exception(err.info.get("mro"))
    return f"`{name}` raised {kind}: {excerpt(m, MESSAGE_CHARS)}".strip().removesuffix(":")


def _run_case(question, case, index, trial, seed):
    """Run one case: None when it passes, else (outcome, message)."""
    label = case.name if case.public else f"hidden case {case.name}"
    try:
        case.fn(trial, question.rng_for(seed, index))
    except AssertionError as exc:
        return spec.FAILED, f"{label}: {exc}"
    except spec.StudentError as err:
        outcome = spec.FAILED if err.info.get("type") in RULES else spec.ERROR
        return outcome, f"{label}: {_student_error_message(err, case.public, question.functions)}"
    except spec.StudentTimeout as exc:
        return spec.TIMEOUT, f"{label}: {exc}"
    except spec.KernelDied as exc:
        return exc.outcome, f"{label}: {exc}"
    except wire.WireError as exc:
        why = excerpt(exc, MESSAGE_CHARS) if case.public else "not plain data"
        return spec.FAILED, f"{label}: the result cannot be graded: {why}"
    except Exception as exc:  # noqa: BLE001 -- e.g. indexing a result of the wrong type
        last = traceback.format_exception_only(exc)[-1].strip()
        why = excerpt(last, MESSAGE_CHARS) if case.public else type(exc).__name__
        return spec.FAILED, f"{label}: the result could not be checked ({why})"
    return None


# After one of these a partial question runs no further case: the kernel is gone or stuck, and
# each further case would only spend its time limit again.
_FATAL = (spec.TIMEOUT, spec.CRASHED, spec.OUT_OF_MEMORY)


def grade_question(question, student, reference, seed, hidden=True):
    """Run one question's cases. All-or-nothing by default: every case must pass for the points
    (the first problem ends it). A ``partial`` question runs every case and scores the passing
    cases' shares; its outcome is ``passed`` only when all pass, else the first problem's."""

    def result(outcome, message="", n=0, score=None):
        if score is None:
            score = question.points if outcome == spec.PASSED else 0
        return QuestionResult(
            question.id,
            question.title or question.id,
            question.points,
            score,
            outcome,
            message,
            question.hint,
            question.gpu,
            n,
        )

    if question.gpu and not student.cuda:
        return result(spec.NOT_RUN_GPU, "not run: no GPU")
    for name in question.functions:
        if not student.defined(name):
            return result(spec.ERROR, student.missing_reason(name))
    trial = spec.Trial(student, reference, question.timeout, question.forbidden)
    selected = [(i, c) for i, c in enumerate(question.cases) if hidden or c.public]
    if not question.partial:
        for n, (index, case) in enumerate(selected, 1):
            problem = _run_case(question, case, index, trial, seed)
            if problem is not None:
                return result(*problem, n)
        return result(spec.PASSED, "", len(selected))
    shares = question.case_points()
    run_weight = sum(shares[i] for i, _ in selected)
    passed_weight, passed, first, n = 0.0, 0, None, 0
    for index, case in selected:
        n += 1
        problem = _run_case(question, case, index, trial, seed)
        if problem is None:
            passed_weight += shares[index]
            passed += 1
            continue
        first = first or problem
        if problem[0] in _FATAL:
            break
    if first is None:
        return result(spec.PASSED, "", n)
    # check() runs only the public cases: its score is their fraction of the question's points.
    score = question.points * passed_weight / run_weight if run_weight > 0 else 0.0
    message = f"{passed} of {len(selected)} cases passed; {first[1]}"
    return result(first[0], message, n, score=round(score, 6))


def reference_target(chapter):
    module = importlib.import_module(chapter.reference)
    return LocalTarget(chapter.id, vars(module), cuda=None)


def _chapter(chapter):
    # Imported here: the student release ships this module without autograder.questions.
    from autograder.questions import get_chapter

    return get_chapter(chapter) if isinstance(chapter, str) else chapter


def grade_target(chapter, student, *, seed=0, hidden=True, environment=None):
    """Grade every question of a chapter (an id or a Chapter) against ``student``."""
    chapter = _chapter(chapter)
    reference = reference_target(chapter)
    report = Report(chapter.id, seed, environment=environment or {})
    for question in chapter.questions:
        report.results.append(grade_question(question, student, reference, seed, hidden))
    return report


def grade_namespace(chapter, namespace, *, seed=0, hidden=True, cuda=None):
    """Grade functions held in a dict, in this process (unsandboxed: for trusted code and tests)."""
    chapter = _chapter(chapter)
    student = LocalTarget(chapter.id, namespace, cuda=cuda)
    return grade_target(
        chapter, student, seed=seed, hidden=hidden, environment=student.harness.environment()
    )
