"""``check()`` in the student release: the public cases replayed from recorded plain data.

At release time (``autograder/release.py``) every public case was run with the reference in
the student's place and recorded as a *tape*: each call it made into the notebook (target and
arguments) and each comparison it made on the result (the reference's value, tolerances, how
the value is named). Replaying a tape calls the student's functions with the same arguments,
through the same kernel harness (drivers, forbidden-module watch, unchanged-argument check),
and compares with the same ``assert_close``; ``runner.grade_question`` scores it, so the table,
points and hints are those of ``check()`` in the repository.
"""

import json
import sys
from pathlib import Path

from autograder import spec, wire
from autograder.check import CheckReport
from autograder.compare import assert_close
from autograder.runner import LocalTarget, Report, grade_question

DATA = Path(__file__).resolve().parent / "data"
GPU_NOT_RECORDED = "not checked in the student release (needs a GPU); graded by the instructor"


def _exception_type(name):
    """A class named ``name``: the harness matches an expected exception by class name."""
    import builtins

    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return type(name, (Exception,), {})


def replay_case(tape):
    """A case function (``fn(t, rng)``) that replays ``tape``, a list of recorded events."""
    raises = {e["call"]: e["exc"] for e in tape if e["op"] == "raises"}

    def run(t, rng):
        results = {}
        for event in tape:
            op = event["op"]
            if op == "call":
                i, target = event["index"], event["target"]
                args, kwargs = event["args"], event["kwargs"]
                if i in raises:
                    t.expect_error(_exception_type(raises[i]), target, *args, **kwargs)
                else:
                    results[i] = t.student(target, *args, **kwargs)
            elif op == "close":
                want = results[event["want_call"]] if "want_call" in event else event["want"]
                assert_close(
                    results[event["call"]],
                    want,
                    rtol=event.get("rtol"),
                    atol=event.get("atol"),
                    what=event.get("what", "result"),
                    _path=event.get("path", ""),
                    names=event.get("names"),
                )

    return run


def load_chapter(chapter_id, data=DATA):
    """The chapter's questions as :class:`spec.Question`, with replaying cases."""
    folder = Path(data) / chapter_id
    meta_path = folder / "chapter.json"
    if not meta_path.is_file():
        raise LookupError(f"no chapter named {chapter_id!r} in this release")
    meta = json.loads(meta_path.read_text())
    chapter = spec.Chapter(meta["id"], meta["number"], meta["notebook"])
    for q in meta["questions"]:
        question = chapter.question(
            q["id"],
            q["points"],
            q["functions"],
            q["hint"],
            gpu=q["gpu"],
            timeout=q["timeout"],
            title=q["title"],
            forbidden=tuple(q["forbidden"]),
            partial=q.get("partial", False),
        )
        for c in q["cases"]:
            if c.get("tape") is None:
                continue
            tape = wire.load(str(folder / c["tape"]), tensors=True)
            question.cases.append(
                spec.Case(c["name"], replay_case(tape), True, points=c.get("points"))
            )
        question.recorded = q.get("recorded", True)
    return chapter


def check(chapter_id, namespace=None, *, seed=0, data=DATA):
    """Run the public cases of ``chapter_id`` on the functions defined in this notebook."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals  # the notebook's own namespace
    chapter = load_chapter(chapter_id, data)
    student = LocalTarget(chapter.id, namespace)
    report = Report(chapter.id, seed, environment=student.harness.environment())
    for question in chapter.questions:
        if question.gpu and student.cuda and not question.recorded:
            report.results.append(_not_recorded(question))
            continue
        report.results.append(grade_question(question, student, None, seed, hidden=False))
    return CheckReport(report)


def _not_recorded(question):
    from autograder.runner import QuestionResult

    return QuestionResult(
        question.id,
        question.title or question.id,
        question.points,
        0.0,
        spec.NOT_RUN_GPU,
        GPU_NOT_RECORDED,
        question.hint,
        question.gpu,
        0,
    )
