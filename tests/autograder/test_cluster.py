"""Does ``grade --cluster`` give exactly what the threaded run gives, losing and duplicating
nothing when a Dask worker dies, and refusing workers that run other grading code?

Every test starts a ``distributed.LocalCluster`` (``--cluster local:N``, on 127.0.0.1 only).
Fake-chapter tests use tests/autograder/test_cli.py's class and fake grade function; the first
test grades chapter 1 for real, in sandboxed kernels on the workers.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import cli, cluster
from tests.autograder import test_cli as tc

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
MARKER = "DESCENT_TEST_KILL_MARKER"  # a file: its absence makes the next carol grade kill


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(cli, "known_chapters", lambda: [tc.FAKE, tc.OTHER])
    monkeypatch.setattr(cli, "default_grade_fn", lambda: tc.fake_grade)


def kill_worker_once(path, chapter_id=None, **kwargs):
    """On a worker: the first time carol's notebook arrives, the worker process is SIGKILLed."""
    marker = Path(os.environ[MARKER])
    if Path(path).name == "ch09_fake.ipynb" and b"expected a minimum" in Path(path).read_bytes():
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return tc.fake_grade(path, chapter_id, **kwargs)


def slow_grade(path, chapter_id=None, **kwargs):
    time.sleep(1.0)
    return tc.fake_grade(path, chapter_id, **kwargs)


def rows(out):
    """The gradebook's rows, without what depends on timing (when, how long)."""
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        db.row_factory = sqlite3.Row
        subs = []
        for row in db.execute("SELECT * FROM submissions ORDER BY student, chapter"):
            row = dict(row)
            del row["graded_at"], row["seconds"]
            details = json.loads(row.pop("details"))
            details.pop("execution_time", None)
            for cell in details.get("cells", []):
                cell.pop("seconds", None)
            subs.append((row, details))
        results = [tuple(r) for r in db.execute("SELECT * FROM results ORDER BY 1, 2, 3")]
        flags = [tuple(r) for r in db.execute("SELECT * FROM flags ORDER BY 1, 2, 3, 4, 5")]
    return subs, results, flags


def grade(sub, out, *extra):
    return cli.main(["grade", str(sub), "--out", str(out), "--seed", "5", *extra])


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, fake, monkeypatch, capsys):
    """When a worker process is SIGKILLed while it grades, is its notebook graded on another,
    once, with every grade as in the threaded run; and does a re-run skip everything?"""
    sub = tc.make_class(tmp_path)
    monkeypatch.setenv(MARKER, str(tmp_path / "killed"))
    monkeypatch.setattr(cli, "default_grade_fn", lambda: kill_worker_once)
    assert grade(sub, tmp_path / "dask", "--cluster", "local:2") == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "killed").exists()  # the worker did die mid-notebook
    assert "14 notebooks graded, 0 unchanged" in printed
    # the worker that died is replaced by a new one (a new address): one to three took part
    assert re.search(r"Graded on [123] Dask worker\(s\) of a local Dask cluster", printed)
    monkeypatch.setattr(cli, "default_grade_fn", lambda: tc.fake_grade)
    assert grade(sub, tmp_path / "threads", "--workers", "2") == 0
    assert rows(tmp_path / "dask") == rows(tmp_path / "threads")
    grades = (tmp_path / "dask" / "grades.csv").read_text()
    assert grades == (tmp_path / "threads" / "grades.csv").read_text()
    capsys.readouterr()
    assert grade(sub, tmp_path / "dask", "--cluster", "local:1") == 0
    assert "0 notebooks graded, 14 unchanged" in capsys.readouterr().out


def test_a_worker_with_other_grading_code_is_refused(tmp_path, fake, monkeypatch, capsys):
    """Does a worker whose Descent version differs from the client's stop the run before any
    notebook is graded, with a message naming both versions?"""
    sub = tc.make_class(tmp_path)
    real = cluster.descent_version()
    monkeypatch.setattr(cluster, "descent_version", lambda: "0.0.0-other")
    assert grade(sub, tmp_path / "out", "--cluster", "local:1") == 1
    err = capsys.readouterr().err
    assert f"runs Descent {real}, this client runs 0.0.0-other" in err
    assert "refusing to grade" in err
    with sqlite3.connect(tmp_path / "out" / "gradebook.sqlite") as db:
        graded = "SELECT COUNT(*) FROM submissions WHERE status = 'graded'"
        assert db.execute(graded).fetchone() == (0,)
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_a_bad_cluster_address_is_a_clear_error(tmp_path, fake, capsys):
    """Is ``local:0`` refused with a message rather than a traceback?"""
    sub = tc.make_class(tmp_path)
    assert grade(sub, tmp_path / "out", "--cluster", "local:0") == 1
    assert "write local:N" in capsys.readouterr().err


CTRL_C_SCRIPT = """
import sys
from autograder import cli
from tests.autograder import test_cli, test_cluster

if __name__ == "__main__":  # Dask's worker processes import this file again
    cli.known_chapters = lambda: [test_cli.FAKE, test_cli.OTHER]
    cli.default_grade_fn = lambda: test_cluster.slow_grade
    cli.host_has_cuda = lambda: False
    sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_finishes_what_the_workers_are_grading(tmp_path):
    """After Ctrl-C on the client, are the notebooks being graded finished and stored, the run
    ended with status 130, and does a re-run grade only the rest, to the same grades?"""
    sub, out = tc.make_class(tmp_path), tmp_path / "results"
    script = tmp_path / "grade_on_cluster.py"
    script.write_text(CTRL_C_SCRIPT)
    argv = [sys.executable, str(script), "grade", str(sub), "--out", str(out), "--seed", "5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [*argv, "--cluster", "local:2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while tc.graded_rows(out / "gradebook.sqlite") < 9 and time.monotonic() < deadline:
        time.sleep(0.05)  # 7 rows for missing notebooks come first, then graded ones
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finishing the" in err
    kept = tc.graded_rows(out / "gradebook.sqlite")
    assert 9 <= kept < 14
    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{14 - kept} notebooks graded, {kept} unchanged" in again.stdout
    clean = tmp_path / "clean"
    argv[argv.index(str(out))] = str(clean)
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "grades.csv").read_text() == (clean / "grades.csv").read_text()


# -- chapter 1 for real: sandboxed kernels on the workers ---------------------------------------


def real_class(root):
    """Chapter 1: solved, hostile (wrong, markup in its error), a fatal cell, malformed, missing."""
    from autograder import notebook
    from autograder.questions import get_chapter

    chapter = get_chapter("descent")
    solved = notebook.solve(nbformat.read(REPO / chapter.notebook, as_version=4), "descent")
    first = chapter.questions[0].functions[0]
    hostile = notebook.make_fixture(
        "descent",
        {first: f"def {first}(*args, **kwargs):\n    raise ValueError({tc.HOSTILE!r})\n"},
    )
    fatal = nbformat.from_dict(json.loads(json.dumps(solved)))
    fatal.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(0)"))
    sub = root / "submissions"
    for student, nb in [("solved", solved), ("hostile", hostile)]:
        (sub / student).mkdir(parents=True)
        nbformat.write(nb, sub / student / "ch01_descent.ipynb")
    (sub / "fatal").mkdir()
    nbformat.write(fatal, sub / "fatal" / "ch01_descent.ipynb")
    (sub / "malformed").mkdir()
    (sub / "malformed" / "ch01_descent.ipynb").write_text('{"cells": [')
    (sub / "missing").mkdir()
    return chapter, sub


@pytest.mark.sandbox
@tc.real
def test_cluster_grades_chapter_one_as_the_threads_do(tmp_path, capsys):
    """With the same seed, do ``--cluster local:2`` and the threaded run write the same
    grades.csv and gradebook rows for chapter 1, hostile and fatal-cell submissions included?"""
    chapter, sub = real_class(tmp_path)
    assert grade(sub, tmp_path / "dask", "--cluster", "local:2") == 0
    printed = capsys.readouterr().out
    assert "Dask worker(s) of a local Dask cluster (local:2)" in printed
    assert grade(sub, tmp_path / "threads", "--workers", "2") == 0
    assert rows(tmp_path / "dask") == rows(tmp_path / "threads")
    grades = {r["student"]: r for r in tc.read_csv(tmp_path / "dask" / "grades.csv")}
    assert grades == {r["student"]: r for r in tc.read_csv(tmp_path / "threads" / "grades.csv")}
    assert float(grades["solved"]["total"]) == float(grades["fatal"]["total"]) == chapter.points
    lost = [c for c in list(grades["solved"])[1:] if grades["hostile"][c] != grades["solved"][c]]
    assert lost == [f"descent.{chapter.questions[0].id}", "total"]
    for student in ["malformed", "missing"]:
        assert float(grades[student]["total"]) == 0
    html = (tmp_path / "dask" / "hostile" / "feedback.html").read_text()
    assert tc.HOSTILE not in html


def test_dask_is_imported_only_with_cluster():
    """Does a plain command line (and the threaded executor) leave Dask unimported?"""
    code = (
        "import sys\nfrom autograder import cli, executors\ncli.build_parser()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
