"""Hostile submissions (issue 3, item 8) are contained and score no more than their honest work.

Most cases use ``toy``, a two-question chapter defined here (fast to grade, independent of the
book's chapters); the "solved notebook with a fatal cell appended" cases use chapter 1's real
notebook when it has exercise cells. The suite runs in whatever containment the host gives
(``DESCENT_CGROUPS=off`` makes it run as on a host without writable cgroups), and
``test_class_survives_a_hostile_student`` runs a small class in both modes. No case sends
anything off the machine: the network cases use 127.0.0.1 only, and the name lookup runs only
once the kernel has shown it has no interface but ``lo`` and no resolver.
"""

import json
import os
import sys
import types
from pathlib import Path

import nbformat
import pytest

from autograder import spec
from autograder.grading import chapter_from_path, grade_notebook
from autograder.kernel_target import KernelPool
from autograder.notebook import is_exercise, repo_path, solve
from autograder.questions import get_chapter
from autograder.sandbox import (
    CGROUPS_ENV,
    Sandbox,
    bwrap_available,
    cgroups_available,
    processes_of,
)

SANDBOX_MARKS = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here"),
]


def sandboxed(test):
    """Marks for a test that grades in the real sandbox (several seconds per kernel)."""
    for mark in SANDBOX_MARKS:
        test = mark(test)
    return test


TOY_REFERENCE = """
import numpy as np


def square(x):
    return np.asarray(x, dtype=float) ** 2


def add(a, b):
    return a + b
"""
HONEST = [
    "import numpy as np",
    "def square(x):\n    return np.asarray(x, dtype=float) ** 2",
    "def add(a, b):\n    return a + b",
]
WRONG = [
    "import numpy as np",
    "def square(x):\n    return np.asarray(x, dtype=float) * 3",
    "def add(a, b):\n    return a - b",
]


def _toy_chapter():
    module = types.ModuleType("solutions.toy")
    exec(compile(TOY_REFERENCE, "<toy reference>", "exec"), module.__dict__)  # noqa: S102
    sys.modules["solutions.toy"] = module  # runner.reference_target imports solutions.<id>
    chapter = spec.Chapter("toy", number=99, notebook="tests/toy.ipynb")
    square = chapter.question("square", points=2, functions=["square"], hint="x ** 2")

    @square.case(public=True)
    def random_vector(t, rng):
        t.compare("square", rng.normal(size=5))

    @square.case()
    def integers(t, rng):
        t.compare("square", [1, 2, 3])

    add = chapter.question("add", points=1, functions=["add"], hint="a + b")

    @add.case()
    def floats(t, rng):
        t.compare("add", float(rng.normal()), 2.5)

    return chapter


@pytest.fixture(scope="module")
def toy():
    return _toy_chapter()


@pytest.fixture(scope="module")
def pool():
    """Kernels started ahead: the next one boots (and imports torch) while a test grades."""
    if not bwrap_available():
        pytest.skip("no sandbox here")
    with KernelPool(1) as kernels:
        yield kernels


def write_notebook(path, cells, tags=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    for index, tag in (tags or {}).items():
        nb.cells[index].metadata["tags"] = [tag]
    nbformat.write(nb, path)
    return path


def grade(pool, toy, tmp_path, cells, timeout=20):
    path = write_notebook(tmp_path / "ch99_toy.ipynb", cells)
    return grade_notebook(path, toy, timeout=timeout, kernel=pool.take())


def statuses(report):
    return [c["status"] for c in report.cells]


# -- notebooks that cannot be run: a report, never an exception (no kernel is started) ---------
@pytest.mark.parametrize(
    "why, content",
    [
        ("empty", b""),
        ("malformed", b'{"cells": [ {"cell_type": "code", "source": "x = 1"'),
        ("not a notebook", b'{"hello": "world"}'),
        ("cells not a list", b'{"cells": {"a": 1}}'),
        ("binary", bytes(range(256)) * 10),
        ("bad source", json.dumps({"cells": [{"cell_type": "code", "source": 42}]}).encode()),
    ],
)
def test_unusable_notebook_gets_a_clear_row(toy, tmp_path, why, content):
    """Does an empty or malformed file get an `error` row per question, not a crash? (A notebook
    with many cells is graded: no cell count zeroes honest work.)"""
    path = tmp_path / "ch99_toy.ipynb"
    path.write_bytes(content)
    report = grade_notebook(path, toy)
    assert report.error
    assert report.outcomes == {"square": spec.ERROR, "add": spec.ERROR}
    assert report.score == 0 and report.possible() == 3
    assert all("could not be run" in r.message for r in report.results)
    assert report.isolation


def test_missing_notebook_gets_a_clear_row(toy, tmp_path):
    """Does a student who submitted nothing get a row saying so?"""
    report = grade_notebook(tmp_path / "ch99_toy.ipynb", toy)
    assert report.outcomes == {"square": spec.ERROR, "add": spec.ERROR}
    assert "not found" in report.error


def test_chapter_from_file_name():
    """Is the chapter read from `ch01_descent.ipynb` and from `ch01_descent/exercises.ipynb`?"""
    assert chapter_from_path("work/alice/ch01_descent.ipynb") == "descent"
    assert chapter_from_path("book/ch03_adaptive/exercises.ipynb") == "adaptive"
    assert chapter_from_path("notes.ipynb") is None


# -- honest work, cheating, and fatal cells, in the sandbox -------------------------------------
@sandboxed
def test_honest_toy_scores_full(pool, toy, tmp_path):
    """Does an honest toy notebook score 3/3 in the sandbox, with isolation on?"""
    report = grade(pool, toy, tmp_path, HONEST)
    assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}, report.results
    assert report.isolation.startswith("bubblewrap; ")
    assert report.environment["seed"] == 0 and report.environment["torch"]
    # The deterministic settings the preamble applies are recorded with the grade.
    env = report.environment
    assert env["torch_deterministic"] and env["cudnn_deterministic"] and not env["cudnn_benchmark"]


CHEATS = {
    "isclose-allclose-patched": """
import math, numpy, numpy.testing, torch
math.isclose = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
""",
    "eq-always-true": """
class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


class EqualFloat(float):
    __eq__ = AlwaysEqual.__eq__
    __ne__ = AlwaysEqual.__ne__
    __hash__ = float.__hash__


def square(x):
    return AlwaysEqual()


def add(a, b):
    return EqualFloat(0.0)
""",
    "import-solutions": """
def square(x):
    import solutions.toy
    return solutions.toy.square(x)

def add(a, b):
    from solutions.toy import add as reference
    return reference(a, b)
""",
}


@sandboxed
@pytest.mark.parametrize("why", sorted(CHEATS))
def test_cheating_scores_only_honest_work(pool, toy, tmp_path, why):
    """Does patching comparisons, returning always-equal objects or importing the reference
    earn nothing beyond the (wrong) work in the notebook?"""
    report = grade(pool, toy, tmp_path, WRONG + [CHEATS[why]])
    assert report.score == 0, report.results
    assert set(report.outcomes.values()) <= {spec.FAILED, spec.ERROR}


@sandboxed
def test_reading_solutions_and_other_students_fails(pool, toy, tmp_path):
    """Can a submission read solutions/ by path or another student's notebook? (No.)"""
    bob = tmp_path / "submissions" / "bob"
    bob.mkdir(parents=True)
    (bob / "ch99_toy.ipynb").write_text("the other student's answers")
    steal = repo_path("solutions/descent.py")
    cells = WRONG + [
        f"""
def square(x):
    open({str(steal)!r}).read()
    return np.asarray(x, dtype=float) ** 2

def add(a, b):
    open({str(bob / "ch99_toy.ipynb")!r}).read()
    return a + b
"""
    ]
    report = grade(pool, toy, tmp_path, cells)
    assert report.outcomes == {"square": spec.ERROR, "add": spec.ERROR}, report.results
    assert all("FileNotFoundError" in r.message for r in report.results)


@sandboxed
def test_writing_into_results_fails(pool, toy, tmp_path):
    """Can a submission overwrite the gradebook or results? (No; its honest work still counts.)"""
    results = tmp_path / "RESULTS"
    results.mkdir()
    (results / "grades.csv").write_text("student,total\nalice,3\n")
    (results / "gradebook.sqlite").write_bytes(b"SQLite format 3\x00")
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    attack = f"""
import os
for name in ("grades.csv", "gradebook.sqlite", "mallory.json"):
    try:
        with open(os.path.join({str(results)!r}, name), "w") as f:
            f.write("mallory,100")
    except OSError as exc:
        print("blocked:", exc)
"""
    report = grade(pool, toy, tmp_path, HONEST + [attack])
    assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before


FATAL = {
    "os._exit": ("import os\nos._exit(0)", {"died"}),
    "sys.exit": ("import sys\nsys.exit()", {"error", "ok"}),
    "infinite loop": ("while True:\n    pass", {"timeout"}),
    "memory bomb": ("import numpy as np\nx = np.ones(5 * 2**30 // 8)", {"out of memory"}),
    "fork bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"timeout", "out of memory"},
    ),
    "1 GB printed": (
        "import sys\nline = 'z' * 1023 + '\\n'\nfor _ in range(2**20):\n    sys.stdout.write(line)",
        {"ok", "timeout"},
    ),
    "10 GB file": (
        "block = b'x' * 2**24\nwith open('big.bin', 'wb') as f:\n"
        "    for _ in range(640):\n        f.write(block)",
        {"error"},
    ),
    "connect 127.0.0.1": (
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=3)",
        {"error"},
    ),
    "name lookup": (  # only once the kernel shows no way out: nothing can leave the machine
        "import os, socket\n"
        "assert [n for _, n in socket.if_nameindex()] == ['lo']\n"
        "assert not os.path.exists('/etc/resolv.conf')\n"
        "socket.getaddrinfo('descent-hostile-test.invalid', 80)",
        {"error"},
    ),
}


@sandboxed
def test_fatal_cells_in_the_middle_cost_nothing_later(pool, toy, tmp_path):
    """When a cell kills the kernel or hangs, are later cells still run and graded?"""
    cells = [HONEST[0], FATAL["os._exit"][0], HONEST[1], FATAL["infinite loop"][0], HONEST[2]]
    report = grade(pool, toy, tmp_path, cells, timeout=10)
    assert statuses(report) == ["ok", "died", "ok", "timeout", "ok"]
    assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}
    assert report.environment["kernel_restarts"] == 2


@sandboxed
def test_fatal_calls_cost_only_their_question(pool, toy, tmp_path):
    """A graded function that hangs, exhausts memory or exits: only its question is lost?"""
    cases = [  # (source, outcome, seconds per call: reclaim can take a while before the OOM)
        ("def square(x):\n    while True:\n        pass", spec.TIMEOUT, 10),
        ("def square(x):\n    return np.ones(5 * 2**30 // 8)", spec.OUT_OF_MEMORY, 60),
        ("def square(x):\n    import os\n    os._exit(3)", spec.CRASHED, 10),
    ]
    for source, outcome, timeout in cases:
        report = grade(pool, toy, tmp_path, [HONEST[0], source, HONEST[2]], timeout=timeout)
        assert report.outcomes == {"square": outcome, "add": spec.PASSED}, (source, report.results)


@sandboxed
def test_failed_definition_is_explained(pool, toy, tmp_path):
    """Does a missing function's message name the cell that should have defined it?"""
    cells = [HONEST[0], HONEST[1] + "\nraise RuntimeError('oops')", HONEST[2] + "\nzzz"]
    report = grade(pool, toy, tmp_path, cells)
    assert statuses(report) == ["ok", "error", "error"]
    # both were defined before their cell raised: an error after the definition costs nothing
    assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}
    hang = "while True:\n    pass\n\n\ndef square(x):\n    return x"
    report = grade(pool, toy, tmp_path, [HONEST[0], hang, HONEST[2]], timeout=5)
    by_id = {r.id: r for r in report.results}
    assert by_id["square"].outcome == spec.ERROR
    assert "cell 2" in by_id["square"].message and "time limit" in by_id["square"].message


@sandboxed
def test_pool_kernel_grades_one_submission(toy, tmp_path):
    """Does a kernel taken from the pool grade a submission, and is it closed afterwards?"""
    with KernelPool(1, Sandbox.detect()) as pool:
        kernel = pool.take()
        report = grade_notebook(
            write_notebook(tmp_path / "ch99_toy.ipynb", HONEST), toy, kernel=kernel
        )
        assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}
        assert not kernel.alive()
        assert len(pool._ready) == 1


# -- chapter 1: a solved notebook with each fatal cell appended still scores full marks --------
def _solved_chapter_one(tmp_path_factory):
    chapter = get_chapter("descent")
    nb = nbformat.read(repo_path(chapter.notebook), as_version=4)
    if not any(is_exercise(c) for c in nb.cells):
        pytest.skip("chapter 1's notebook has no exercise cells yet")
    return chapter, solve(nb, "descent")


@pytest.fixture(scope="module")
def chapter_one(tmp_path_factory):
    return _solved_chapter_one(tmp_path_factory)


@sandboxed
@pytest.mark.parametrize("why", list(FATAL))
def test_solved_notebook_with_fatal_cell_scores_full(pool, chapter_one, tmp_path, why):
    """Does appending a fatal cell to a solved chapter 1 notebook leave full marks?"""
    chapter, nb = chapter_one
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    source, expected = FATAL[why]
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / "ch01_descent.ipynb"
    nbformat.write(nb, path)
    report = grade_notebook(path, timeout=30, kernel=pool.take())
    assert report.chapter == "descent"
    assert report.cells[-1]["status"] in expected, report.cells[-1]
    assert report.score == report.possible() == chapter.points, report.results


# -- a class with one hostile student, with cgroups and as on a host without them --------------
HOSTILE_CELLS = [
    "fork bomb",
    "memory bomb",
    "os._exit",
    "infinite loop",
    "1 GB printed",
    "10 GB file",
]


@sandboxed
@pytest.mark.parametrize("mode", ["cgroups", "no-cgroups"])
def test_class_survives_a_hostile_student(toy, tmp_path, monkeypatch, mode):
    """With a student whose notebook holds every fatal cell between her honest ones, does the
    student graded after her keep full marks, does she keep what her honest cells earn, and is
    nothing of her kernels (processes, groups) left afterwards?"""
    if mode == "no-cgroups":
        monkeypatch.setenv(CGROUPS_ENV, "off")
    elif not cgroups_available():
        pytest.skip(f"no writable cgroups here (or {CGROUPS_ENV}=off)")
    sandbox = Sandbox.detect()
    assert sandbox.isolation.startswith("bubblewrap; ")
    mallory = [HONEST[0]]
    for why, honest in zip(HOSTILE_CELLS, HONEST[1:] * 3, strict=False):
        mallory += [FATAL[why][0], honest]
    students = {"mallory": mallory, "bob": HONEST}  # bob's kernel starts while mallory's run
    reports, uids, groups = {}, set(), _kernel_groups()
    with KernelPool(1, sandbox) as pool:
        for name, cells in students.items():
            folder = tmp_path / name
            folder.mkdir()
            kernel = pool.take()
            uids.add(getattr(kernel.cgroup, "uid", None))
            path = write_notebook(folder / "ch99_toy.ipynb", cells)
            reports[name] = grade_notebook(path, toy, timeout=8, kernel=kernel)
    assert reports["bob"].score == 3, reports["bob"].results
    hostile = reports["mallory"]
    assert hostile.outcomes == {"square": spec.PASSED, "add": spec.PASSED}, hostile.results
    fatal = [c["status"] for c in hostile.cells[1::2]]
    assert all(status != "ok" for status in fatal[:4]), fatal  # each bomb cost only its cell
    assert hostile.environment["kernel_restarts"] >= 3
    for uid in uids - {None}:
        assert processes_of(uid) == [], f"processes of kernel uid {uid} survived"
    assert _kernel_groups() <= groups  # every group made for these kernels was removed


def _kernel_groups():
    """The kernel cgroups of this grader process that exist now (v1 and v2 folders)."""
    from autograder import cgroups

    version, where = cgroups.choose()
    folders = list(where.values()) if version == "v1" else [where] if version == "v2" else []
    mine = f"{cgroups.PREFIX}{os.getpid()}-"
    return {str(p) for f in folders for p in Path(f).glob(mine + "*")}
