"""The grader's channel to a student's kernel (issue 25, issue 12.3): nothing the kernel or the
notebook holds becomes the grader's failure, costs honest work, floods the grader's memory,
outlasts the notebook's budget or lets a student regenerate hidden inputs.

The fast tests need no kernel; those marked ``sandboxed`` grade in the real sandbox.
"""

import json
import os
import re
import threading
import time

import nbformat
import numpy as np
import pytest

from autograder import grading, kernel_target, spec
from autograder.check import check
from autograder.grading import PREAMBLE, grade_notebook, read_code_cells
from autograder.kernel_target import (
    MAX_RESTARTS,
    Budget,
    BudgetSpent,
    Kernel,
    KernelPool,
)
from autograder.notebook import defined_names, is_exercise, repo_path, solve
from autograder.questions import get_chapter
from autograder.runner import grade_question, reference_target
from autograder.sandbox import Sandbox, bwrap_available, cgroups_available

SANDBOX_MARKS = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here"),
    pytest.mark.skipif(not cgroups_available(), reason="cgroup v1 memory/pids not writable"),
]


def sandboxed(test):
    for mark in SANDBOX_MARKS:
        test = mark(test)
    return test


HONEST = [
    "import numpy as np",
    "def square(x):\n    return np.asarray(x, dtype=float) ** 2",
    "def add(a, b):\n    return a + b",
]


@pytest.fixture(scope="module")
def toy():
    """A two-question chapter (3 points) whose reference is the honest cells above."""
    import sys
    import types

    module = types.ModuleType("solutions.toy")
    exec(compile("\n\n".join(HONEST), "<toy reference>", "exec"), module.__dict__)  # noqa: S102
    sys.modules["solutions.toy"] = module  # runner.reference_target imports solutions.<id>
    chapter = spec.Chapter("toy", number=99, notebook="tests/toy.ipynb")
    square = chapter.question("square", points=2, functions=["square"], hint="x ** 2")

    @square.case(public=True)
    def random_vector(t, rng):
        t.compare("square", rng.normal(size=5))

    @square.case()
    def integers(t, rng):
        t.compare("square", rng.integers(-5, 5, size=3).tolist())

    add = chapter.question("add", points=1, functions=["add"], hint="a + b")

    @add.case()
    def floats(t, rng):
        t.compare("add", float(rng.normal()), 2.5)

    return chapter


def write_raw_notebook(path, sources):
    """A notebook written as plain JSON (escapes kept: lone surrogates survive)."""
    cells = [
        {"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None}
        for s in sources
    ]
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(doc, ensure_ascii=True))
    return path


LONE_SURROGATE = "x = '\ud800'\ndef square(x):\n    return x"
DEEP_NESTING = "y = " + "(" * 150_000 + "1" + ")" * 150_000
HUGE_EXPRESSION = "z = " + "1+" * 30_000 + "1"  # RecursionError in ast.parse
UNARY_CHAIN = "w = " + "-" * 200_000 + "1"


# -- no kernel: parsing student code is never the grader's failure -----------------------------
@pytest.mark.parametrize(
    "source", [LONE_SURROGATE, DEEP_NESTING, HUGE_EXPRESSION, UNARY_CHAIN, "a\x00b", "def f(:"]
)
def test_unparsable_source_defines_nothing_and_raises_nothing(source):
    """Does a cell that makes ast.parse raise anything (MemoryError, RecursionError, a lone
    surrogate, a null byte) simply define no names and not count as a check() call?"""
    assert defined_names(source) == []
    assert grading.calls_check(source) is False


def test_hostile_sources_become_cell_rows(tmp_path):
    """Are hostile cells read as cells of the student's (a lone surrogate: an error row, not
    run), while the honest cells around them keep their definitions?"""
    path = write_raw_notebook(
        tmp_path / "ch99_toy.ipynb", HONEST + [LONE_SURROGATE, DEEP_NESTING, HUGE_EXPRESSION]
    )
    cells = read_code_cells(path)
    assert [c.names for c in cells[:3]] == [[], ["square"], ["add"]]
    surrogate = cells[3]
    assert surrogate.status == "error" and "surrogate" in surrogate.message
    assert not surrogate.runnable and surrogate.names == []
    assert all(c.runnable for c in cells[4:])


def test_no_cell_count_rule(tmp_path):
    """Does a notebook with 5,000 trivial cells appended keep every cell, with a too-long cell
    skipped on its own (said so) instead of zeroing the notebook?"""
    sources = HONEST + [f"v{i} = {i}" for i in range(5000)]
    sources += ["x = 1  # " + "y" * (grading.MAX_CELL_CHARS + 1), "", "   \n"]
    path = write_raw_notebook(tmp_path / "ch99_toy.ipynb", sources)
    cells = read_code_cells(path)
    assert len(cells) == len(sources)
    assert sum(c.runnable for c in cells) == 3 + 5000
    long = cells[-3]
    assert long.status == "skipped" and f"{grading.MAX_CELL_CHARS:,}" in long.message
    assert [c.status for c in cells[-2:]] == ["ok", "ok"]  # empty: nothing to run


# -- no kernel: the budget -----------------------------------------------------------------------
def test_budget_caps_timeouts_and_restarts():
    """Does a Budget shorten time limits to what is left and refuse restarts past its cap?"""
    budget = Budget(30, restarts=2)
    assert 29 < budget.cap(120) <= 30 and budget.cap(5) == 5
    budget.restart()
    budget.restart()
    with pytest.raises(BudgetSpent, match="restarted 2 times"):
        budget.restart()
    spent = Budget(0.01)
    time.sleep(0.02)
    assert spent.spent and spent.cap(60) == 0
    with pytest.raises(BudgetSpent, match="time budget"):
        spent.restart()


# -- no kernel: hidden inputs follow from nothing a student sees ---------------------------------
def _inputs(question, seed, index):
    return question.rng_for(seed, index).integers(0, 2**62, size=4).tolist()


def test_hidden_inputs_are_keyed_by_the_run_seed():
    """Are hidden inputs the same for the same run seed (re-runs reproduce), different for
    another seed, and not those of the old public recipe [seed, crc32(id), index]?"""
    chapter = get_chapter("descent")
    for question in chapter.questions:
        for index, case in enumerate(question.cases):
            if case.public:
                continue
            same = _inputs(question, 2026, index)
            assert same == _inputs(question, 2026, index)
            assert same != _inputs(question, 2027, index)
            import zlib

            old = [2026, zlib.crc32(question.id.encode()), index]
            assert same != np.random.default_rng(old).integers(0, 2**62, size=4).tolist()


def test_public_inputs_are_those_check_uses():
    """Do public cases draw the same inputs at every run seed, the ones check() (seed 0) shows?"""
    chapter = get_chapter("descent")
    for question in chapter.questions:
        for index, case in enumerate(question.cases):
            if case.public:
                assert _inputs(question, 0, index) == _inputs(question, 987654, index)


def test_seed_entropy_is_an_hmac_of_the_seed():
    """Is a hidden case's seed material 256 bits of HMAC, with the run seed nowhere in it?"""
    question = get_chapter("descent").questions[0]
    hidden = next(i for i, c in enumerate(question.cases) if not c.public)
    words = question.seed_for(31337, hidden)
    assert len(words) == 4 and all(0 <= w < 2**64 for w in words)
    assert 31337 not in words and hidden not in words
    assert words == spec.hidden_entropy(31337, "case", question.id, hidden)


def test_kernel_preamble_does_not_carry_the_run_seed():
    """Is the kernel seeded with a constant that is no run seed (the preamble never names it)?"""
    code = PREAMBLE.format(seed=spec.KERNEL_SEED)
    assert f"seed({spec.KERNEL_SEED})" in code
    runner = grading.CellRunner(None, [], seed=424242, cell_timeout=1, total_timeout=1)

    class Recorder:
        budget = None
        sent = []

        def execute(self, code, timeout):
            self.sent.append(code)

    runner.kernel = Recorder()
    runner.preamble()
    assert "424242" not in Recorder.sent[0] and str(spec.KERNEL_SEED) in Recorder.sent[0]


def test_check_still_grades_public_cases():
    """Does check() still pass the reference on chapter 1's public cases?"""
    import solutions.descent as reference

    report = check("descent", vars(reference))
    assert all(o == spec.PASSED for o in report.outcomes.values()), report.outcomes


def test_reference_passes_hidden_cases_at_new_seeds():
    """Does the reference still pass every chapter 1 question with the HMAC-keyed inputs?"""
    chapter = get_chapter("descent")
    ref = reference_target(chapter)
    for seed in (0, 2026, 2**31 - 1):
        for question in chapter.questions:
            if question.gpu and not ref.cuda:
                continue
            result = grade_question(question, ref, ref, seed)
            assert result.outcome == spec.PASSED, (seed, result)


# -- in the sandbox --------------------------------------------------------------------------
def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """The grader's peak resident memory while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self):
        return self.peak - self.start


FLOOD = """
k = get_ipython().kernel
frame = b"x" * ({frame_mib} * 2**20)
for _ in range({messages}):
    k.iopub_socket.send_multipart([b"<IDS|MSG>", b"forged"] + [frame] * {frames})
import time
time.sleep(2)
print("flood done")
"""


@pytest.fixture(scope="module")
def kernel():
    if not (bwrap_available() and cgroups_available()):
        pytest.skip("no sandbox here")
    with Kernel(Sandbox.detect()) as k:
        k.start().wait_ready()
        yield k


@sandboxed
def test_flood_of_large_messages_leaves_the_grader_bounded(kernel):
    """Does a kernel sending 4 GiB as 32 messages of 16 frames of 8 MiB (forged signatures)
    leave the grader's memory bounded and the kernel usable afterwards?"""
    with PeakRss() as rss:
        done = kernel.execute(FLOOD.format(frame_mib=8, frames=16, messages=32), 120)
    assert done.status in ("ok", "out of memory"), done  # the kernel's own copies are its own
    assert rss.growth < 96 * 2**20, rss.growth
    if done.status != "ok":
        kernel.restart()
    # Output printed while the relay's subscriber reconnects after the flood is lost (ZeroMQ
    # drops what a publisher sends before the subscription is back); the shell channel is not.
    afters = []
    for _ in range(5):
        afters.append(kernel.execute("print(6 * 7)", 30))
        assert afters[-1].status == "ok", afters
        if afters[-1].output.strip() == "42":
            break
    assert afters[-1].output.strip() == "42", afters


@sandboxed
def test_one_message_larger_than_the_relay_costs_the_grader_nothing(monkeypatch):
    """Does one message larger than the relay's memory (8 frames of 100 MiB, the relay held to
    512 MiB here so that the kernel's own 2 GiB suffice) leave the grader's memory bounded and
    the kernel still answering (its output channel is the student's loss)?"""
    monkeypatch.setattr(kernel_target, "RELAY_MEMORY_BYTES", 512 * 2**20)
    with Kernel(Sandbox.detect(), warm=()) as kernel:
        kernel.start().wait_ready()
        with PeakRss() as rss:
            done = kernel.execute(FLOOD.format(frame_mib=100, frames=8, messages=1), 120)
        assert done.status in ("ok", "died"), done
        assert rss.growth < 96 * 2**20, rss.growth
        if done.status == "ok":
            assert kernel.execute("x = 1", 30).status == "ok"


@sandboxed
def test_a_dead_relay_stops_the_kernel(kernel):
    """When the relay is gone (killed at its memory limit by a flood), is the kernel stopped
    and the code reported as the student's flood, and does a restart bring both back?"""
    kernel.relay.kill()
    kernel.relay.wait()
    done = kernel.execute("print(1)", 30)
    assert done.status == "died" and done.fatal
    assert "more data than the grader accepts" in done.describe()
    assert not kernel.alive()
    kernel.restart()
    assert kernel.execute("print(6 * 7)", 30).output.strip() == "42"


@sandboxed
def test_connection_files_are_neutral(kernel):
    """Do connection files and sockets have random names that change on restart (no counter
    telling a cell how often the kernel was restarted), with no older one left to read?"""
    first = os.path.basename(kernel.km.connection_file)
    kernel.restart()
    second = os.path.basename(kernel.km.connection_file)
    assert re.fullmatch(r"[0-9a-f]{16}\.json", first) and first != second
    seen = kernel.execute(f"import os; print(sorted(os.listdir({kernel.ro!r})))", 30).output
    assert first not in seen and second in seen


@sandboxed
def test_kernel_is_not_seeded_with_the_run_seed(kernel, toy, tmp_path):
    """Does a graded notebook's kernel hold the fixed kernel seed, never the run seed?"""
    cells = HONEST + [
        "import torch, numpy\nSEEN = (torch.initial_seed(), int(numpy.random.get_state()[1][0]))"
    ]
    path = grading_notebook(tmp_path, cells)
    cell_runner = grading.CellRunner(kernel, read_code_cells(path), 987654, 30, 60)
    kernel.budget = None
    cell_runner.run_all()
    out = kernel.execute("print(SEEN)", 30).output
    assert f"({spec.KERNEL_SEED}, {spec.KERNEL_SEED})" in out and "987654" not in out


def grading_notebook(tmp_path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "ch99_toy.ipynb"
    nbformat.write(nb, path)
    return path


@sandboxed
def test_hostile_sources_cost_only_their_cells(toy, tmp_path):
    """Does a notebook holding a lone surrogate, 150,000 nested parentheses and a 30,000-term
    sum get a report (never a grader error) that still gives the honest cells full marks?"""
    path = write_raw_notebook(
        tmp_path / "ch99_toy.ipynb",
        HONEST + [LONE_SURROGATE, DEEP_NESTING, HUGE_EXPRESSION, UNARY_CHAIN],
    )
    report = grade_notebook(path, toy, timeout=30)
    assert report.outcomes == {"square": spec.PASSED, "add": spec.PASSED}, report.results
    statuses = [c["status"] for c in report.cells]
    assert statuses[:3] == ["ok"] * 3 and statuses[3] == "error"
    assert all(s in ("ok", "error", "timeout") for s in statuses[4:]), report.cells


HANG_AFTER_RESTART = """
import time
if time.time() > {t0} + {delay}:  # replays come later than the first run
    while True:
        pass
"""


@sandboxed
def test_cells_that_hang_only_when_replayed_stay_within_the_budget(toy, tmp_path):
    """Do six cells that hang only when replayed after a restart, with a fatal cell and a
    fatal call to force restarts, cost at most the notebook's budget, not a timeout each?"""
    delay = 12  # seconds: the first run of the cells is over by then, replays are not
    hang = HANG_AFTER_RESTART.format(t0=time.time(), delay=delay)
    cells = HONEST + [hang] * 6 + ["import os\nif time.time() > 0: os._exit(0)"]
    cells[1] = "import os, time\n" + cells[1] + "\nif time.time() > 1e11: os._exit(1)"
    path = grading_notebook(tmp_path, cells)
    budget, cell_timeout = 40, 10
    started = time.perf_counter()
    report = grade_notebook(path, toy, timeout=cell_timeout, budget=budget)
    seconds = time.perf_counter() - started
    # Without one budget: 6 cells x 10 s for each of up to 7 restarts, and the questions after.
    assert seconds < budget + 15, seconds
    assert report.environment.get("kernel_restarts", 0) <= MAX_RESTARTS
    assert report.score <= 3
    assert all(r.outcome in spec.OUTCOMES for r in report.results)
    assert all(r.message for r in report.results if r.outcome != spec.PASSED)


def _solved_chapter_one():
    chapter = get_chapter("descent")
    nb = nbformat.read(repo_path(chapter.notebook), as_version=4)
    if not any(is_exercise(c) for c in nb.cells):
        pytest.skip("chapter 1's notebook has no exercise cells yet")
    return chapter, solve(nb, "descent")


@sandboxed
def test_solved_notebook_with_5000_trivial_cells_scores_full(tmp_path):
    """Does a reference-solved chapter 1 notebook with 5,000 trivial cells appended (code,
    empty and markdown) score full marks, within its time budget?"""
    chapter, nb = _solved_chapter_one()
    for i in range(5000):
        kind = i % 5
        if kind == 3:
            nb.cells.append(nbformat.v4.new_markdown_cell(f"note {i}"))
        elif kind == 4:
            nb.cells.append(nbformat.v4.new_code_cell(""))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(f"trivial_{i} = {i}"))
    path = tmp_path / "ch01_descent.ipynb"
    nbformat.write(nb, path)
    with KernelPool(1) as pool:
        report = grade_notebook(path, timeout=60, kernel=pool.take())
    assert report.error == ""
    assert len(report.cells) > 4000
    assert report.score == report.possible() == chapter.points, report.results


def test_grader_memory_limit_is_applied_in_a_child():
    """Does limit_grader_memory lower RLIMIT_AS to what is mapped plus the documented base +
    1 GiB per kernel (in a child process, so this test session keeps its own limit), and never
    raise it?"""
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from autograder.kernel_target import limit_grader_memory as f\n"
        "from autograder.kernel_target import _mapped_bytes as m\n"
        "before = m()\n"
        "print(f(2) - before, resource.getrlimit(resource.RLIMIT_AS)[0] - before)\n"
        "hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**32, hard))\n"
        "print(f(8))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    expected = kernel_target.GRADER_BASE_BYTES + 2 * kernel_target.GRADER_PER_KERNEL_BYTES
    # (the child's mapping may grow by a little between the two readings)
    lowered, in_force, untouched = (int(v) for v in out)
    assert 0 <= lowered - expected < 2**26 and lowered == in_force
    assert untouched == 2**32


def test_command_line_grade_bounds_the_grader_but_not_cgroup_kernels(tmp_path):
    """Does `python -m autograder grade` (limit_memory) lower the grader's RLIMIT_AS, while a
    kernel in a cgroup gets the inherited hard limit back (the cgroup caps its memory)?"""
    import resource
    import subprocess
    import sys

    from autograder.cgroups import CgroupV1

    (tmp_path / "subs").mkdir()
    code = (
        "import resource, sys\n"
        "from autograder import cli\n"
        "rc = cli.main([sys.argv[1], sys.argv[2], '--out', sys.argv[3], '--workers', '1'],"
        " limit_memory=True)\n"
        "print(rc, resource.getrlimit(resource.RLIMIT_AS)[0])\n"
    )
    args = ["grade", str(tmp_path / "subs"), str(tmp_path / "results")]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    ).stdout.split()
    assert int(out[-1]) != resource.RLIM_INFINITY
    assert int(out[-1]) >= kernel_target.GRADER_BASE_BYTES + kernel_target.GRADER_PER_KERNEL_BYTES
    group = object.__new__(CgroupV1)  # only its type matters to rlimits()
    pairs = dict(Sandbox().rlimits(group))
    assert pairs["RLIMIT_AS"] == resource.getrlimit(resource.RLIMIT_AS)[1]
