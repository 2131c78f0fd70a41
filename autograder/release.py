"""``python -m autograder release --out DIR``: what students get, without the solutions.

The release holds the exercise notebooks (named as ``make lab`` names them), a README for
students and a small check package, importable as ``autograder`` beside the notebooks, so that
their last cell, ``from autograder import check`` / ``check("<chapter>")``, runs unchanged.
That package holds no reference code, no question source and no hidden case: each public case
was run here, with the reference in the student's place, and recorded as a *tape* of plain data
(see ``autograder/student/replay.py``): the calls it made into the notebook, with their
arguments, and the comparisons it made, with the reference's values and the tolerances. The
trusted drivers of ``autograder/kernel/`` travel as they are: they build what cannot cross as
data and call the notebook's functions, and hold none of the reference's answers.

What a tape cannot hold is a case's own arithmetic on a student's result beyond
``assert_close`` (e.g. an eigenvector checked up to its sign): a result the case never passed
to ``assert_close`` as it was returned is compared with the reference's value instead, under
the reference dtype's tolerance. :func:`build` reports how many results were checked that way.
"""

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import nbformat

from autograder import compare, runner, spec, wire
from autograder.notebook import repo_path

PACKAGE = Path(__file__).resolve().parent
_ASSERT_CLOSE = compare.assert_close  # the real one, while a case's module sees the recorder
# The grader's modules the replay needs, copied as they are (none imports the questions).
SHIPPED = ("check.py", "compare.py", "runner.py", "spec.py", "wire.py")
STUDENT_README = """\
# Descent: exercises

One notebook per chapter, e.g. `ch01_descent.ipynb`. The chapters' explanations are on the
course site.

1. Python 3.11 with NumPy, PyTorch (CPU is enough), SciPy, matplotlib and JupyterLab:
   `python -m pip install -r requirements.txt`, then `jupyter lab` in this folder.
2. Fill in the cells that raise `NotImplementedError`, keeping names and signatures.
3. The last cell, `check("<chapter>")`, runs the public test cases on your functions and prints
   a table of points and hints. The `autograder` folder beside the notebooks is what it runs:
   keep it next to them. The hidden cases run only when your notebook is graded.
4. Hand in each notebook under its own name, e.g. `ch01_descent.ipynb`.

Cells tagged `gpu` skip themselves without CUDA and are not counted against you; `check()`
reports GPU questions as not run.
"""
# What the notebooks import; versions as the course pins them (requirements.lock).
STUDENT_PACKAGES = ("numpy", "scipy", "torch", "matplotlib", "jupyterlab", "torchdiffeq")


class ReleaseError(Exception):
    """The release cannot be built (an existing folder, a public case the reference fails)."""


@dataclass
class ChapterRelease:
    id: str
    cases: int = 0
    fallbacks: int = 0  # results compared with the reference's value (see the module docstring)
    gpu_questions: list = field(default_factory=list)


def _plain(value):
    """A deep copy: the case may change an array after passing it (the tape keeps the value)."""
    return copy.deepcopy(value)


class Recorder:
    """A stand-in for :class:`spec.Trial` that runs the reference as the student and records."""

    def __init__(self, reference, question):
        self._reference = reference
        self.question = question
        self.timeout = None
        self.forbidden = tuple(question.forbidden)
        self.cuda = False
        self.events = []
        self.calls = 0
        self._results = {}  # id(result) -> (call index, result), results kept alive

    def reference(self, target, *args, **kwargs):
        return self._reference.call(target, args, kwargs, None, self.forbidden)

    def student(self, target, *args, **kwargs):
        index = self.calls
        self.calls += 1
        event = {
            "op": "call",
            "index": index,
            "target": target,
            "args": _plain(list(args)),
            "kwargs": _plain(dict(kwargs)),
        }
        self.events.append(event)
        try:
            value = self._reference.call(target, args, kwargs, None, self.forbidden)
        except spec.StudentError as err:
            event["_error"] = err.info.get("type")
            raise
        event["_value"] = _plain(value)
        self._results[id(value)] = (index, value)
        return value

    def _call_of(self, value):
        found = self._results.get(id(value))
        return found[0] if found is not None and found[1] is value else None

    def close(self, got, want, rtol=None, atol=None, what="result", _path="", names=None):
        """``assert_close``, recorded when ``got`` is a result as the notebook returned it."""
        call = self._call_of(got)
        if call is not None:
            event = {"op": "close", "call": call, "rtol": rtol, "atol": atol, "what": what}
            event.update({"path": _path, "names": _plain(names)})
            other = self._call_of(want)
            if other is not None:
                event["want_call"] = other
            else:
                event["want"] = _plain(want)
            self.events.append(event)
        return _ASSERT_CLOSE(got, want, rtol, atol, what, _path, names)

    def compare(self, target, *args, rtol=None, atol=None, **kwargs):
        want = self.reference(target, *args, **kwargs)
        got = self.student(target, *args, **kwargs)
        self.close(got, want, rtol=rtol, atol=atol, what=target.removeprefix("driver:"))
        return got

    def expect_error(self, exc_type, target, *args, **kwargs):
        try:
            self.student(target, *args, **kwargs)
        except spec.StudentError as err:
            if err.is_a(exc_type):
                self.events.append(
                    {"op": "raises", "call": self.calls - 1, "exc": exc_type.__name__}
                )
                return err
            raise AssertionError(f"the reference raised {err.info.get('type')}") from None
        raise AssertionError(f"the reference did not raise {exc_type.__name__}")


def finish_tape(events, question):
    """The recorded events as stored: every result checked (see the module docstring), the
    reference's own values dropped. Returns (tape, number of results given a fallback)."""
    checked = {e["call"] for e in events if e["op"] in ("close", "raises")}
    checked |= {e["want_call"] for e in events if "want_call" in e}
    what = "/".join(question.functions)
    tape, fallbacks = [], 0
    for event in events:
        value, error = event.pop("_value", None), event.pop("_error", None)
        tape.append(event)
        if event["op"] != "call" or event["index"] in checked:
            continue
        fallbacks += 1
        if error is not None:
            tape.append({"op": "raises", "call": event["index"], "exc": error})
        else:
            name = event["target"].removeprefix("driver:") if what == "" else what
            tape.append({"op": "close", "call": event["index"], "want": value, "what": name})
    return tape, fallbacks


def record_case(question, case, index, reference):
    """Run one public case with the reference as the student; return its finished tape."""
    recorder = Recorder(reference, question)
    module = case.fn.__globals__  # the question module: its helpers see the recorder too
    original = module.get("assert_close")
    if original is not None:
        module["assert_close"] = recorder.close
    try:
        case.fn(recorder, question.rng_for(spec.PUBLIC_SEED, index))
    except AssertionError as exc:
        raise ReleaseError(
            f"the reference fails public case {question.id}/{case.name}: {exc}"
        ) from None
    finally:
        if original is not None:
            module["assert_close"] = original
    return finish_tape(recorder.events, question)


def _fresh_torch():
    """Each chapter is recorded from torch's default dtype, as in a fresh kernel."""
    try:
        import torch
    except ImportError:
        return
    torch.set_default_dtype(torch.float32)


def record_chapter(chapter, folder):
    """Write ``folder/chapter.json`` and one tape folder per public case."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    _fresh_torch()
    reference = runner.reference_target(chapter)
    info = ChapterRelease(chapter.id)
    questions = []
    for question in chapter.questions:
        shares = question.case_points() if question.partial else [None] * len(question.cases)
        meta = {
            "id": question.id,
            "title": question.title,
            "points": question.points,
            "functions": list(question.functions),
            "hint": question.hint,
            "gpu": question.gpu,
            "timeout": question.timeout,
            "forbidden": list(question.forbidden),
            "partial": question.partial,
            "recorded": not question.gpu,
            "cases": [],
        }
        if question.gpu:
            info.gpu_questions.append(question.id)
        for index, case in enumerate(question.cases):
            if not case.public:
                continue  # hidden cases: not a name, not a share, nothing
            entry = {"name": case.name, "points": shares[index], "tape": None}
            if not question.gpu:
                tape, fallbacks = record_case(question, case, index, reference)
                entry["tape"] = f"{question.id}.{len(meta['cases'])}"
                wire.dump(tape, str(folder / entry["tape"]))
                info.cases += 1
                info.fallbacks += fallbacks
            meta["cases"].append(entry)
        if question.partial:
            # check() scores the public cases' fraction: their shares, rescaled, are enough.
            total = sum(c["points"] for c in meta["cases"]) or 1.0
            for c in meta["cases"]:
                c["points"] = question.points * c["points"] / total
        questions.append(meta)
    doc = {"id": chapter.id, "number": chapter.number, "notebook": chapter.notebook}
    doc["questions"] = questions
    (folder / "chapter.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    return info


def _notebook_name(chapter):
    return f"{PurePath(chapter.notebook).parent.name}.ipynb"


def _requirements():
    pins = {}
    lock = repo_path("requirements.lock")
    if lock.is_file():
        for line in lock.read_text().splitlines():
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = line.strip() if version else None
    return "".join(f"{pins.get(p) or p}\n" for p in STUDENT_PACKAGES)


def build(out, chapters=None):
    """Write the student release into ``out`` (a new or empty folder); return what was done.

    ``chapters``: ids to include (default every graded chapter, in course order).
    """
    from autograder.questions import all_chapters, get_chapter

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} exists and is not an empty folder")
    selected = all_chapters() if chapters is None else [get_chapter(c) for c in chapters]
    out.mkdir(parents=True, exist_ok=True)
    package = out / "autograder"
    (package / "kernel").mkdir(parents=True)
    shutil.copyfile(PACKAGE / "student" / "package_init.py", package / "__init__.py")
    shutil.copyfile(PACKAGE / "student" / "replay.py", package / "replay.py")
    for name in SHIPPED:
        shutil.copyfile(PACKAGE / name, package / name)
    (package / "kernel" / "__init__.py").write_text('"""Trusted drivers (plain source)."""\n')
    shutil.copyfile(PACKAGE / "kernel" / "harness.py", package / "kernel" / "harness.py")
    done = []
    for chapter in selected:
        drivers = PACKAGE / "kernel" / f"{chapter.id}.py"
        if drivers.is_file():
            shutil.copyfile(drivers, package / "kernel" / drivers.name)
        nb = nbformat.read(repo_path(chapter.notebook), as_version=4)
        nbformat.write(nb, out / _notebook_name(chapter))
        done.append(record_chapter(chapter, package / "data" / chapter.id))
    (out / "README.md").write_text(STUDENT_README)
    (out / "requirements.txt").write_text(_requirements())
    return done


def main(args):
    """The ``release`` sub-command (``args.out``, ``args.chapter``)."""
    try:
        done = build(args.out, args.chapter or None)
    except (ReleaseError, LookupError) as exc:
        print(f"release: {exc}")
        return 1
    for info in done:
        extra = f", GPU questions not checked: {', '.join(info.gpu_questions)}"
        print(
            f"  {info.id:<16} {info.cases} public cases recorded"
            + (
                f", {info.fallbacks} results compared with the reference's value"
                * bool(info.fallbacks)
            )
            + (extra if info.gpu_questions else "")
        )
    print(f"student release written to {args.out}: hand out the whole folder")
    return 0


def add_parser(sub):
    """Register ``release`` on the CLI's sub-parsers."""
    p = sub.add_parser("release", help="the student release: notebooks and public checks only")
    p.add_argument("--out", required=True, type=Path, help="a new or empty folder")
    p.add_argument(
        "--chapter", action="append", default=[], help="only this chapter id (repeatable)"
    )
    return p
