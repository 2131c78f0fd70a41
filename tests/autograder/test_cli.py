"""Does ``python -m autograder grade`` grade a whole class, resumably, failing only on its errors?

Most tests grade a fake chapter with a fake, in-process grade function (fast, and independent of
the sandbox); those marked ``sandbox`` grade chapter 1 for real, in sandboxed kernels.
"""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import cli, spec
from autograder.runner import QuestionResult, Report
from autograder.spec import Chapter

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert('pwned')</script>"

FAKE = Chapter("fake", number=9, notebook="book/ch09_fake/exercises.ipynb")
FAKE.question("first", points=2, functions=["first"], hint="Read section 9.1.", title="9.1 First")
FAKE.question("second", points=1, functions=["second"], hint="Mind the sign & the <b>order</b>.")
FAKE.question("on_gpu", points=1, functions=["on_gpu"], hint="Use CUDA.", gpu=True)
OTHER = Chapter("other", number=10, notebook="book/ch10_other/exercises.ipynb")
OTHER.question("first", points=1, functions=["first"], hint="Another chapter's question.")


def fake_notebook(answers):
    """A notebook whose first cell says how the fake grader should score each question."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(json.dumps(answers))]
    return nbformat.writes(nb)


def fake_grade(
    path, chapter_id=None, *, seed=0, hidden=True, timeout=None, sandbox=None, require_gpu=False
):
    """Stands in for ``grading.grade_notebook``: outcomes come from the notebook's first cell."""
    chapter = {"fake": FAKE, "other": OTHER}[chapter_id]
    try:
        nb = nbformat.read(path, as_version=4)
        answers = json.loads(nb.cells[0].source) if nb.cells else {}
    except ValueError:  # like grading.grade_notebook: a report, never an exception
        answers = {q.id: spec.ERROR for q in chapter.questions}
        answers.update(
            {
                f"{q.id}_message": "the notebook could not be run: malformed notebook"
                for q in chapter.questions
            }
        )
    results = []
    for q in chapter.questions:
        if q.gpu:
            outcome, message = spec.NOT_RUN_GPU, "not run: no GPU"
        else:
            outcome = answers.get(q.id, spec.ERROR)
            message = answers.get(f"{q.id}_message", "" if outcome == spec.PASSED else "wrong")
        score = q.points if outcome == spec.PASSED else 0
        results.append(
            QuestionResult(
                q.id, q.title or q.id, q.points, score, outcome, message, q.hint, q.gpu, 1
            )
        )
    environment = {
        "python": "3.11",
        "numpy": "2",
        "torch": "2.13.0",
        "cuda": False,
        "gpu": None,
        "isolated": False,
        "isolation": "ISOLATION OFF: no bubblewrap",
    }
    return Report(chapter_id, seed, results, environment)


SOLVED = {"first": spec.PASSED, "second": spec.PASSED}
WRONG = {"first": spec.PASSED, "second": spec.FAILED, "second_message": "expected a minimum"}


def make_class(root):
    """A small class: solved, blank, one wrong, one missing notebook, one malformed, one hostile."""
    sub = root / "submissions"
    notebooks = {
        "alice": {
            "ch09_fake.ipynb": fake_notebook(SOLVED),
            "ch10_other.ipynb": fake_notebook({"first": spec.PASSED}),
        },
        "bob": {"ch09_fake.ipynb": fake_notebook({})},  # blank: every question errors
        "carol": {"ch09_fake.ipynb": fake_notebook(WRONG)},
        "dave": {},  # submitted nothing
        "erin": {"ch09_fake.ipynb": "{ this is not json"},
        "mallory": {
            "ch09_fake.ipynb": fake_notebook(
                {
                    "first": spec.ERROR,
                    "first_message": f"ValueError: {HOSTILE}",
                    "second": spec.PASSED,
                }
            )
        },
    }
    for student, files in notebooks.items():
        (sub / student).mkdir(parents=True)
        for name, text in files.items():
            (sub / student / name).write_text(text)
    # frank uses the book's layout: ch09_fake/exercises.ipynb
    (sub / "frank" / "ch09_fake").mkdir(parents=True)
    (sub / "frank" / "ch09_fake" / "exercises.ipynb").write_text(fake_notebook(SOLVED))
    # Not students: hidden folders, odd names, loose files.
    (sub / ".ipynb_checkpoints").mkdir()
    (sub / ".ipynb_checkpoints" / "ch09_fake.ipynb").write_text(fake_notebook(SOLVED))
    (sub / "bad name;rm").mkdir()
    (sub / "bad name;rm" / "ch09_fake.ipynb").write_text(fake_notebook(SOLVED))
    (sub / "notes.txt").write_text("not a student")
    return sub


@pytest.fixture
def fake(monkeypatch):
    """Grade the fake chapters with the fake grade function; count the calls."""
    calls = []

    def grade(path, chapter_id=None, **kwargs):
        calls.append((Path(path).parent.name, chapter_id))
        return fake_grade(path, chapter_id, **kwargs)

    monkeypatch.setattr(cli, "known_chapters", lambda: [FAKE, OTHER])
    monkeypatch.setattr(cli, "default_grade_fn", lambda: grade)
    return calls


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def grade(sub, out, *extra):
    return cli.main(["grade", str(sub), "--out", str(out), "--workers", "2", *extra])


def test_grades_every_student_with_one_row_each(tmp_path, fake, capsys):
    """Does every student folder get one complete row, whatever its notebooks look like?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin", "frank", "mallory"]
    columns = list(read_csv(out / "grades.csv")[0])
    assert columns == [
        "student",
        "fake.first",
        "fake.second",
        "fake.on_gpu",
        "other.first",
        "total",
        "possible",
    ]
    # The GPU question did not run (no CUDA): it scores 0 and is left out of `possible`.
    assert rows["alice"]["total"] == "4" and rows["alice"]["possible"] == "4"
    assert rows["frank"]["total"] == "3" and rows["frank"]["possible"] == "4"
    assert rows["bob"]["total"] == "0"
    assert (rows["carol"]["fake.first"], rows["carol"]["fake.second"]) == ("2", "0")
    assert rows["dave"]["total"] == "0" and rows["dave"]["possible"] == "4"
    assert rows["erin"]["total"] == "0"
    assert rows["mallory"]["total"] == "1"
    # Hidden folders and odd names are never graded; the fake kernel ran once per notebook.
    graded = sorted(fake)
    assert graded == sorted(
        [
            ("alice", "fake"),
            ("alice", "other"),
            ("bob", "fake"),
            ("carol", "fake"),
            ("ch09_fake", "fake"),
            ("erin", "fake"),
            ("mallory", "fake"),
        ]
    )
    assert not (out / "bad name;rm").exists() and not (out / ".ipynb_checkpoints").exists()
    captured = capsys.readouterr()
    assert "bad name;rm" in captured.err
    assert captured.out.splitlines()[0].startswith("WARNING: isolation was OFF")


def test_missing_and_malformed_notebooks_get_clear_rows(tmp_path, fake, capsys):
    """Is a missing notebook one line, "not handed in" (not an error and a hint per question),
    counted apart from errors in the summary, and does an unreadable one say why?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    dave = json.loads((out / "dave" / "results.json").read_text())
    assert [t["name"] for t in dave["tests"]] == ["fake: not handed in", "other: not handed in"]
    fake_test, other_test = dave["tests"]
    assert "dave/ch09_fake.ipynb" in fake_test["output"] and "hint" not in fake_test["output"]
    assert "dave/ch10_other.ipynb" in other_test["output"]
    assert fake_test["score"] == 0.0 and fake_test["max_score"] == 3.0  # GPU question left out
    assert set(dave["extra_data"]["outcomes"].values()) == {"not handed in"}
    page = (out / "dave" / "feedback.html").read_text()
    assert page.count("not handed in") == 2 and "hint:" not in page and "<table>" not in page
    summary = capsys.readouterr().out
    assert "other            mean 0.14 / 1, full marks 1, not handed in 6, could not be run 0" in (
        summary
    )
    assert "outcomes: passed 1\n" in summary  # the six missing notebooks are not six errors
    erin = json.loads((out / "erin" / "results.json").read_text())
    assert all(
        "malformed notebook" in t["output"]
        for t in erin["tests"]
        if t["extra_data"]["chapter"] == "fake" and t["extra_data"]["question"] != "on_gpu"
    )
    # Bob, Carol and the others submitted no chapter 10: it is "missing" for them, not absent.
    bob = json.loads((out / "bob" / "results.json").read_text())
    assert bob["extra_data"]["outcomes"]["other.first"] == "not handed in"


def leaks_seed(value, seed):
    """Does a JSON value hold a key naming the seed or a hash, or an int or str equal to it?"""
    if isinstance(value, dict):
        return any(k in ("seed", "hash") or leaks_seed(v, seed) for k, v in value.items())
    if isinstance(value, list):
        return any(leaks_seed(v, seed) for v in value)
    return (type(value) is int and value == seed) or value == str(seed)


def test_results_json_follows_gradescope_schema(tmp_path, fake):
    """Has every results.json the keys and types Gradescope reads, with our extras?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out, "--seed", "7") == 0
    for student in ["alice", "bob", "carol", "dave", "erin", "frank", "mallory"]:
        data = json.loads((out / student / "results.json").read_text())
        assert isinstance(data["score"], float)
        assert isinstance(data["execution_time"], int)
        # Dave's notebooks never reached a kernel: no student code ran.
        warned = data["output"].splitlines()[0].startswith("WARNING: isolation was OFF")
        assert warned == (student != "dave")
        # One test per question of each chapter handed in, one per chapter not handed in.
        assert len(data["tests"]) == (2 if student == "dave" else 4)
        for test in data["tests"]:
            assert set(test) >= {"name", "output", "visibility"}
            assert isinstance(test["name"], str) and isinstance(test["output"], str)
            if test["extra_data"]["outcome"] == spec.NOT_RUN_GPU:
                # Not counted: neither passed nor failed in Gradescope (no status, no score).
                assert "status" not in test and "score" not in test and "max_score" not in test
                continue
            assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
            assert test["status"] in ("passed", "failed")
            assert test["visibility"] == "visible"
            assert test["extra_data"]["outcome"] in (*spec.OUTCOMES, "not handed in")
        extra = data["extra_data"]
        # The seed (7) and content hashes stay in the gradebook: no key names them and no
        # integer or string in the student's file is the seed (timestamps may hold a 7).
        assert not leaks_seed(data, 7), f"{student}'s results.json shows the seed"
        assert set(extra["versions"]) >= {"python", "numpy", "torch"}
        assert "gpu" in extra and "isolation" in extra
        assert sum(t.get("score", 0.0) for t in data["tests"]) == data["score"]
    alice = json.loads((out / "alice" / "results.json").read_text())
    assert alice["score"] == 4.0
    (gpu,) = [t for t in alice["tests"] if t["extra_data"].get("question") == "on_gpu"]
    assert "max_score" not in gpu and gpu["output"] == "not run (no GPU): not counted"


def test_feedback_html_escapes_hostile_messages(tmp_path, fake):
    """Is a student's `<script>` error message shown as text, never as markup?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    page = (out / "mallory" / "feedback.html").read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "Mind the sign &amp; the &lt;b&gt;order&lt;/b&gt;." not in page  # passed: no hint
    assert page.splitlines()[0].startswith("<!-- WARNING: isolation was OFF")
    carol = (out / "carol" / "feedback.html").read_text()
    assert "Mind the sign &amp; the &lt;b&gt;order&lt;/b&gt;." in carol
    assert "expected a minimum" in carol


def test_rerun_skips_graded_submissions_and_force_regrades(tmp_path, fake, capsys):
    """Does a second run grade nothing unchanged, re-grade what changed, and all with --force?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    first_csv = (out / "grades.csv").read_text()
    n = len(fake)
    capsys.readouterr()
    assert grade(sub, out) == 0
    assert len(fake) == n  # nothing re-graded
    assert "0 notebooks graded" in capsys.readouterr().out
    assert (out / "grades.csv").read_text() == first_csv
    # Carol fixes her notebook: only she is graded again.
    (sub / "carol" / "ch09_fake.ipynb").write_text(fake_notebook(SOLVED))
    assert grade(sub, out) == 0
    assert fake[n:] == [("carol", "fake")]
    assert {r["student"]: r["total"] for r in read_csv(out / "grades.csv")}["carol"] == "3"
    # A new seed is new content: everything is graded again, as with --force.
    del fake[:]
    assert grade(sub, out, "--seed", "1") == 0
    assert len(fake) == n
    del fake[:]
    assert grade(sub, out, "--seed", "1", "--force") == 0
    assert len(fake) == n


def recorded_seed(out, student="alice"):
    """The seed a student's grade was made with: in the gradebook, never in their files."""
    assert "seed" not in (out / student / "feedback.html").read_text()
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        (seed,) = db.execute(
            "SELECT seed FROM submissions WHERE student = ? AND chapter = 'fake'", (student,)
        ).fetchone()
    return seed


def test_each_results_folder_gets_a_fresh_seed_kept_for_reruns(tmp_path, fake, capsys):
    """Without --seed, does a new RESULTS folder draw its own seed, recorded and printed, and a
    re-run into it reuse that seed (grading nothing again)? Does --seed replace it?"""
    sub = make_class(tmp_path)
    first, second = tmp_path / "term1", tmp_path / "term2"
    assert grade(sub, first) == 0
    seed = recorded_seed(first)
    assert isinstance(seed, int) and f"random test inputs: {seed}" in capsys.readouterr().out
    n = len(fake)
    assert grade(sub, first) == 0
    assert len(fake) == n and recorded_seed(first) == seed
    assert grade(sub, second) == 0
    assert recorded_seed(second) != seed  # equal with probability 2**-31
    assert grade(sub, first, "--seed", "7") == 0
    assert len(fake) == 3 * n and recorded_seed(first) == recorded_seed(first, "carol") == 7
    with sqlite3.connect(first / "gradebook.sqlite") as db:
        assert {s for (s,) in db.execute("SELECT DISTINCT seed FROM submissions")} == {7}
    assert grade(sub, first) == 0  # 7 is now this folder's seed: nothing to grade again
    assert len(fake) == 3 * n


def test_interrupted_run_loses_nothing(tmp_path, fake, monkeypatch):
    """After a run stops half-way (Ctrl-C), does the re-run grade only what was left?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    real = cli.default_grade_fn()
    seen = []

    def flaky(path, chapter_id=None, **kwargs):
        if len(seen) == 3:
            raise KeyboardInterrupt
        seen.append(path)
        return real(path, chapter_id, **kwargs)

    monkeypatch.setattr(cli, "default_grade_fn", lambda: flaky)
    assert cli.main(["grade", str(sub), "--out", str(out), "--workers", "1"]) == 130
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        kept = db.execute("SELECT notebook FROM submissions WHERE status = 'graded'").fetchall()
    assert len(seen) == 3
    assert set(seen) <= {row[0] for row in kept}  # every notebook graded before the stop is kept
    monkeypatch.setattr(cli, "default_grade_fn", lambda: real)
    del fake[:]
    assert grade(sub, out) == 0
    assert len(fake) == 7 - 3  # seven notebooks reach a kernel; three were already graded
    clean = tmp_path / "clean"
    assert grade(sub, clean) == 0
    assert (out / "grades.csv").read_text() == (clean / "grades.csv").read_text()


KILL_SCRIPT = """
import sys, time
from autograder import cli
from tests.autograder import test_cli

def slow(path, chapter_id=None, **kwargs):
    time.sleep(0.4)
    return test_cli.fake_grade(path, chapter_id, **kwargs)

cli.known_chapters = lambda: [test_cli.FAKE, test_cli.OTHER]
cli.default_grade_fn = lambda: slow
cli.host_has_cuda = lambda: False  # spares the child importing torch
sys.exit(cli.main(sys.argv[1:]))
"""


def graded_rows(db_path):
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_run_loses_nothing(tmp_path):
    """If the grading process is killed (SIGKILL) mid-run, is the gradebook intact and complete
    after a re-run?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    script = tmp_path / "grade_slowly.py"
    script.write_text(KILL_SCRIPT)
    argv = [sys.executable, str(script), "grade", str(sub), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while graded_rows(out / "gradebook.sqlite") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = graded_rows(out / "gradebook.sqlite")
    assert 5 <= before < 14  # 7 students x 2 chapters: killed half-way
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{14 - before} notebooks graded, {before} unchanged" in done.stdout
    assert len(read_csv(out / "grades.csv")) == 7
    assert not list(out.rglob(".*.tmp"))  # no temporary file left behind


def run_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_exit_status_is_nonzero_only_for_the_graders_own_errors(tmp_path, fake):
    """Does `grade` refuse a missing SUBMISSIONS, RESULTS inside SUBMISSIONS and an unwritable
    RESULTS with a message, yet exit 0 for a class that scores nothing?"""
    sub = make_class(tmp_path)
    done = run_cli("grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    done = run_cli("grade", str(sub), "--out", str(sub / "results"))
    assert done.returncode == 1 and "inside SUBMISSIONS" in done.stderr
    assert not (sub / "results").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_cli("grade", str(sub), "--out", str(blocker / "results"))
    assert done.returncode == 1 and "cannot write" in done.stderr
    done = run_cli("grade", str(sub))
    assert done.returncode == 2  # --out is required
    # Everyone fails: still a successful run.
    for notebook in sub.glob("*/ch09_fake.ipynb"):
        notebook.write_text(fake_notebook({}))
    assert grade(sub, tmp_path / "results") == 0


def test_a_grader_failure_is_reported_and_retried(tmp_path, fake, monkeypatch):
    """If the grader itself fails on one notebook, does the run finish, exit 1, and try again?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    real = cli.default_grade_fn()

    def broken_for_bob(path, chapter_id=None, **kwargs):
        if Path(path).parent.name == "bob":
            raise RuntimeError("kernel pool exhausted")
        return real(path, chapter_id, **kwargs)

    monkeypatch.setattr(cli, "default_grade_fn", lambda: broken_for_bob)
    assert grade(sub, out) == 1
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert len(rows) == 7 and rows["alice"]["total"] == "4"
    bob = json.loads((out / "bob" / "results.json").read_text())
    assert "grader failed" in bob["tests"][0]["output"]
    monkeypatch.setattr(cli, "default_grade_fn", lambda: real)
    del fake[:]
    assert grade(sub, out) == 0
    assert fake == [("bob", "fake")]


def test_symlinked_notebooks_and_folders_are_not_followed(tmp_path, fake):
    """Can a student submit a link to someone else's notebook or folder? (No.)"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    (sub / "trudy").mkdir()
    os.symlink(sub / "alice" / "ch09_fake.ipynb", sub / "trudy" / "ch09_fake.ipynb")
    os.symlink(sub / "alice", sub / "alice2")
    assert grade(sub, out) == 0
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert "alice2" not in rows
    assert rows["trudy"]["total"] == "0"
    trudy = json.loads((out / "trudy" / "results.json").read_text())
    assert "symbolic link" in trudy["tests"][0]["output"]


def test_list_prints_one_line_per_chapter(fake, capsys):
    """Does `list` print chapter id, notebook path and points, one chapter per line?"""
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["fake", "book/ch09_fake/exercises.ipynb", "4"],
        ["other", "book/ch10_other/exercises.ipynb", "1"],
    ]


def test_chapter_is_inferred_from_either_notebook_name(fake):
    """Do `book/ch09_fake/exercises.ipynb` and `ch09_fake.ipynb` both mean chapter 'fake'?"""
    assert cli.infer_chapter("book/ch09_fake/exercises.ipynb", [FAKE, OTHER]) is FAKE
    assert cli.infer_chapter("work/ch10_other.ipynb", [FAKE, OTHER]) is OTHER
    with pytest.raises(cli.GraderError, match="--chapter"):
        cli.infer_chapter("homework.ipynb", [FAKE, OTHER])


def test_check_prints_the_public_table(tmp_path, fake, capsys):
    """Does `check` grade one notebook on the public cases only and print a table?"""
    path = tmp_path / "ch09_fake.ipynb"
    path.write_text(fake_notebook(WRONG))
    seen = {}

    def public_only(path, chapter_id=None, **kwargs):
        seen.update(kwargs)
        return fake_grade(path, chapter_id, **kwargs)

    assert cli.cmd_check(cli.build_parser().parse_args(["check", str(path)]), public_only) == 0
    assert seen["hidden"] is False
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("WARNING: isolation was OFF")
    assert any("second" in line and "failed" in line for line in out)
    assert not any("needs review" in line for line in out)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import threading"))
    nbformat.write(nb, path)
    assert cli.cmd_check(cli.build_parser().parse_args(["check", str(path)]), public_only) == 0
    out = capsys.readouterr().out.splitlines()
    assert "needs review: cell 2 line 1: threads or processes: threading" in out


# -- the real thing: chapter 1 in sandboxed kernels -----------------------------------------------


def chapter_one_ready():
    try:
        from autograder.grading import grade_notebook  # noqa: F401
        from autograder.questions import get_chapter

        get_chapter("descent")
    except (ImportError, LookupError):
        return False
    return True


real = pytest.mark.skipif(
    not chapter_one_ready(), reason="needs autograder.grading and chapter 1's questions"
)


@pytest.fixture(scope="module")
def real_class(tmp_path_factory):
    """Chapter 1 graded for real: solved, blank, one wrong, one missing, one malformed."""
    from autograder import notebook
    from autograder.questions import get_chapter

    root = tmp_path_factory.mktemp("real")
    chapter = get_chapter("descent")
    book_nb = REPO / chapter.notebook
    sub = root / "submissions"
    for student in ["solved", "blank", "wrong", "missing", "malformed"]:
        (sub / student).mkdir(parents=True)
    done = run_cli("solve", str(book_nb), "--out", str(sub / "solved" / "ch01_descent.ipynb"))
    assert done.returncode == 0, done.stderr
    (sub / "blank" / "ch01_descent.ipynb").write_bytes(book_nb.read_bytes())
    first = chapter.questions[0]
    wrong = notebook.make_fixture(
        "descent",
        {first.functions[0]: f"def {first.functions[0]}(*args, **kwargs):\n    return 0.0\n"},
    )
    nbformat.write(wrong, sub / "wrong" / "ch01_descent.ipynb")
    (sub / "malformed" / "ch01_descent.ipynb").write_text('{"cells": [')
    out = root / "results"
    done = run_cli("grade", str(sub), "--out", str(out), "--workers", "2")
    return chapter, sub, out, done


@pytest.mark.slow
@pytest.mark.sandbox
@real
def test_real_class_grades_chapter_one(real_class):
    """On chapter 1 in real kernels: full marks when solved, 0 when blank or missing or malformed,
    and exactly the broken question lost for the wrong one?"""
    chapter, sub, out, done = real_class
    assert done.returncode == 0, done.stderr
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert sorted(rows) == ["blank", "malformed", "missing", "solved", "wrong"]
    columns = [f"descent.{q.id}" for q in chapter.questions]
    assert list(read_csv(out / "grades.csv")[0]) == ["student", *columns, "total", "possible"]
    assert float(rows["solved"]["total"]) == float(rows["solved"]["possible"]) > 0
    for student in ["blank", "missing", "malformed"]:
        assert float(rows[student]["total"]) == 0
    first = f"descent.{chapter.questions[0].id}"
    lost = [c for c in columns if rows["wrong"][c] != rows["solved"][c]]
    assert lost == [first]
    data = json.loads((out / "solved" / "results.json").read_text())
    assert data["score"] == float(rows["solved"]["total"])
    assert data["extra_data"]["versions"]["torch"]
    isolated = data["extra_data"]["isolation"]["isolated"]
    assert data["output"].startswith("WARNING: isolation was OFF") == (not isolated)
    assert read_csv(out / "review.csv") == []  # the reference-solved notebook is not flagged
    assert "needs review" not in done.stdout


@pytest.mark.slow
@pytest.mark.sandbox
@real
def test_real_rerun_skips_everything(real_class):
    """Does a second real run start no kernel at all and leave the grades unchanged?"""
    chapter, sub, out, done = real_class
    before = (out / "grades.csv").read_text()
    again = run_cli("grade", str(sub), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "0 notebooks graded, 5 unchanged" in again.stdout
    assert (out / "grades.csv").read_text() == before


@pytest.mark.slow
@pytest.mark.sandbox
@real
def test_real_list_and_check(real_class):
    """Do `list` and `check` work on the real chapter 1?"""
    chapter, sub, out, done = real_class
    listed = run_cli("list")
    assert listed.returncode == 0
    assert ["descent", chapter.notebook, f"{chapter.points:g}"] in [
        line.split() for line in listed.stdout.splitlines()
    ]
    checked = run_cli("check", str(sub / "solved" / "ch01_descent.ipynb"))
    assert checked.returncode == 0, checked.stderr
    assert "Public checks for chapter 'descent'" in checked.stdout


def test_solve_fills_every_exercise_from_the_reference(tmp_path):
    """Does `solve` write the chapter 1 notebook with no stub left, inferring the chapter from
    either name, and refuse a name it cannot place?"""
    from autograder import notebook
    from autograder.questions import get_chapter

    book_nb = REPO / get_chapter("descent").notebook
    copy = tmp_path / "ch01_descent.ipynb"
    copy.write_bytes(book_nb.read_bytes())
    for source, args in [(book_nb, []), (copy, []), (copy, ["--chapter", "descent"])]:
        out = tmp_path / "out" / "solved.ipynb"
        assert cli.main(["solve", str(source), "--out", str(out), *args]) == 0
        nb = nbformat.read(out, as_version=4)
        exercises = [c for c in nb.cells if notebook.is_exercise(c)]
        assert exercises and not any("NotImplementedError" in c.source for c in exercises)
    odd = tmp_path / "homework.ipynb"
    odd.write_bytes(book_nb.read_bytes())
    assert cli.main(["solve", str(odd), "--out", str(tmp_path / "x.ipynb")]) == 1


# -- what the kernel reports is data: one hostile record never stops the class's reports ---------


def hostile_grade(path, chapter_id=None, **kwargs):
    """``fake_grade``, except that mallory's kernel reports garbage: a list for the GPU name,
    NaN for numpy's version, padding, a 15 MB failure message, and that it was isolated."""
    report = fake_grade(path, chapter_id, **kwargs)
    if Path(path).parent.name == "mallory":
        report.environment.update(
            {
                "gpu": ["not", "a", "string"],
                "numpy": float("nan"),
                "torch": {"nested": [1, 2]},
                "isolated": True,
                **{f"pad{i}": "x" * 10_000 for i in range(1000)},
            }
        )
        report.results[0].message = "boom " * 3_000_000  # 15 MB
        report.results[0].score = float("nan")
        report.execution_time = float("inf")
        report.cells = [{"index": "one", "status": ["x"], "message": "m" * 10**6}, 42]
    return report


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_hostile_kernel_report_is_contained(tmp_path, fake, monkeypatch, capsys):
    """Does a kernel that reports a list as its GPU, NaN as a version, 10 MB of padding, a 15 MB
    message and `isolated: True` leave every report written, strict JSON, small, and still
    warning that isolation was off?"""
    monkeypatch.setattr(cli, "default_grade_fn", lambda: hostile_grade)
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    assert len(read_csv(out / "grades.csv")) == 7
    for student in ["alice", "bob", "carol", "dave", "erin", "frank", "mallory"]:
        data = strict_json(out / student / "results.json")
        assert data["tests"]
    mallory = out / "mallory"
    assert (mallory / "results.json").stat().st_size < 100_000
    assert (mallory / "feedback.html").stat().st_size < 100_000
    data = strict_json(mallory / "results.json")
    assert data["output"].startswith("WARNING: isolation was OFF")  # `isolated: True` ignored
    assert data["extra_data"]["gpu"] is None and data["extra_data"]["versions"]["numpy"] is None
    environment = data["extra_data"]["chapters"]["fake"]["environment"]
    assert not any(key.startswith("pad") or key == "isolated" for key in environment)
    assert data["score"] == 1.0  # the NaN score counts as 0, the passed question as 1
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        (stored,) = db.execute(
            "SELECT length(environment) FROM submissions WHERE student = 'mallory' "
            "AND chapter = 'fake'"
        ).fetchone()
    assert stored < 2000


def test_a_bad_record_stored_by_an_older_grader_cannot_stop_later_runs(tmp_path, fake):
    """If the gradebook already holds a record no grader should have written (NaN, lists, text
    that is not JSON, a 15 MB message), does every later run still write every report?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        db.execute(
            "UPDATE submissions SET environment = ?, details = 'not json', score = 'NaN'"
            " WHERE student = 'carol'",
            ('{"gpu": ["x"], "numpy": NaN, "isolated": true, "isolation": 7}',),
        )
        db.execute(
            "UPDATE results SET message = ?, outcome = 'pwned', score = 1e999, points = -1"
            " WHERE student = 'carol'",
            ("boom " * 3_000_000,),
        )
    for extra in ([], ["--force"]):
        assert grade(sub, out, *extra) == 0
        carol = strict_json(out / "carol" / "results.json")
        assert carol["output"].startswith("WARNING")
        assert (out / "carol" / "feedback.html").stat().st_size < 100_000
        assert len(read_csv(out / "grades.csv")) == 7


def test_one_students_report_failing_does_not_stop_the_others(tmp_path, fake, monkeypatch):
    """If making one student's reports fails (a grader bug), do the others still get theirs, that
    student a valid file saying so, and the run exit 1 naming them?"""
    real = cli.reports.feedback_html

    def broken_for_bob(student, records, *args, **kwargs):
        if student == "bob":
            raise TypeError("unhashable type: 'list'")
        return real(student, records, *args, **kwargs)

    monkeypatch.setattr(cli.reports, "feedback_html", broken_for_bob)
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 1
    assert len(read_csv(out / "grades.csv")) == 7
    assert strict_json(out / "bob" / "results.json")["extra_data"]["report_failed"] is True
    assert "<table>" in (out / "alice" / "feedback.html").read_text()


def test_gpu_availability_is_the_hosts(tmp_path, fake, monkeypatch):
    """On a machine with CUDA, does a GPU question a kernel said it could not run still count
    (0 of its points), instead of leaving `possible`?"""
    monkeypatch.setattr(cli, "host_has_cuda", lambda: True)
    sub, out = make_class(tmp_path), tmp_path / "results"
    assert grade(sub, out) == 0
    rows = {r["student"]: r for r in read_csv(out / "grades.csv")}
    assert rows["alice"]["total"] == "4" and rows["alice"]["possible"] == "5"
    alice = strict_json(out / "alice" / "results.json")
    (gpu,) = [t for t in alice["tests"] if t["extra_data"].get("question") == "on_gpu"]
    assert gpu["status"] == "failed" and gpu["max_score"] == 1.0


def test_review_flags_reach_the_instructor_only(tmp_path, fake, capsys):
    """Is a notebook whose code tampers with the watch listed in review.csv, the gradebook and
    the summary, and absent from that student's own files?"""
    sub, out = make_class(tmp_path), tmp_path / "results"
    nb = nbformat.read(sub / "carol" / "ch09_fake.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nsys.setprofile(None)"))
    nbformat.write(nb, sub / "carol" / "ch09_fake.ipynb")
    assert grade(sub, out) == 0
    review = read_csv(out / "review.csv")
    assert [(r["student"], r["chapter"], r["cell"], r["rule"]) for r in review] == [
        ("carol", "fake", "2", "profile or trace hook"),
        ("carol", "fake", "2", "profile or trace hook"),
    ] or {(r["student"], r["rule"]) for r in review} == {("carol", "profile or trace hook")}
    summary = capsys.readouterr().out
    assert (
        "needs review: 1 notebook(s)" in summary and "carol fake: profile or trace hook" in summary
    )
    for name in ["results.json", "feedback.html"]:
        text = (out / "carol" / name).read_text()
        assert "setprofile" not in text and "review" not in text
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        assert db.execute("SELECT DISTINCT student, rule FROM flags").fetchall() == [
            ("carol", "profile or trace hook")
        ]
