"""Does the SQLite gradebook keep every grade exactly, replace it atomically, and export the CSV?"""

import csv
import sqlite3

import pytest

from autograder import gradebook as gb
from autograder import spec
from autograder.runner import QuestionResult, Report
from autograder.spec import Chapter

CH = Chapter("fake", number=9, notebook="book/ch09_fake/exercises.ipynb")
CH.question("a", points=2, functions=["a"], hint="hint a")
CH.question("b", points=1, functions=["b"], hint="hint b")
CH.question("g", points=3, functions=["g"], hint="hint g", gpu=True)


def report(outcomes, seed=0):
    results = []
    for q, outcome in zip(CH.questions, outcomes):
        score = q.points if outcome == spec.PASSED else 0
        results.append(
            QuestionResult(
                q.id,
                q.id,
                q.points,
                score,
                outcome,
                "" if score else "why <it> failed",
                q.hint,
                q.gpu,
                2,
            )
        )
    return Report("fake", seed, results, {"python": "3.11", "isolation": "isolation on: ..."})


def record(student, outcomes, hash_="h1", status=gb.GRADED):
    r = report(outcomes)
    return gb.Record(
        student,
        "fake",
        hash_,
        status,
        f"{student}/ch09_fake.ipynb",
        gb.now_utc(),
        1.5,
        r,
        gb.possible_points(r, require_gpu=False, cuda=False),
        gb.uncounted_questions(r, require_gpu=False, cuda=False),
    )


ALL = [spec.PASSED, spec.PASSED, spec.NOT_RUN_GPU]


def test_records_round_trip(tmp_path):
    """Is a stored record read back with every question's fields intact?"""
    with gb.Gradebook(tmp_path / "g.sqlite") as book:
        book.record(record("ann", [spec.PASSED, spec.FAILED, spec.NOT_RUN_GPU]))
        (got,) = book.records("ann")
    assert got.report.outcomes == {"a": spec.PASSED, "b": spec.FAILED, "g": spec.NOT_RUN_GPU}
    assert [r.score for r in got.report.results] == [2, 0, 0]
    assert got.report.results[1].message == "why <it> failed"
    assert got.report.results[1].hint == "hint b" and got.report.results[2].gpu
    assert got.possible == 3 and got.score == 2
    assert got.report.environment["python"] == "3.11"
    assert got.hash == "h1" and got.seconds == 1.5
    assert got.uncounted == ("g",)


def test_regrade_replaces_and_a_failed_write_changes_nothing(tmp_path):
    """Does a re-grade replace the old rows, and does an error mid-write leave the old grade?"""
    with gb.Gradebook(tmp_path / "g.sqlite") as book:
        book.record(record("ann", [spec.FAILED, spec.FAILED, spec.NOT_RUN_GPU], "old"))
        book.record(record("ann", ALL, "new"))
        assert [r.hash for r in book.records()] == ["new"]
        broken = record("ann", [spec.FAILED, spec.FAILED, spec.FAILED], "broken")
        broken.report.results.append(broken.report.results[0])  # duplicate question: fails
        with pytest.raises(sqlite3.IntegrityError):
            book.record(broken)
        (kept,) = book.records()
    assert kept.hash == "new" and kept.score == 3


def test_grader_errors_are_never_final(tmp_path):
    """Is a notebook the grader failed on graded again next time (its hash not trusted)?"""
    with gb.Gradebook(tmp_path / "g.sqlite") as book:
        book.record(record("ann", ALL, "h", status=gb.GRADER_ERROR))
        book.record(record("bob", ALL, "h"))
        assert book.hash_of("ann", "fake") is None
        assert book.hash_of("bob", "fake") == "h"
        assert book.hash_of("carl", "fake") is None


def test_submission_hash_tracks_notebook_code_and_settings(tmp_path):
    """Does the content hash change with the notebook's bytes, the grading code and the seed,
    and only with them?"""
    nb = tmp_path / "ch09_fake.ipynb"
    nb.write_bytes(b'{"cells": []}')
    base = gb.submission_hash(nb, "v1", {"seed": 0})
    assert gb.submission_hash(nb, "v1", {"seed": 0}) == base
    assert gb.submission_hash(nb, "v2", {"seed": 0}) != base
    assert gb.submission_hash(nb, "v1", {"seed": 1}) != base
    assert gb.submission_hash(None, "v1", {"seed": 0}) != base
    nb.write_bytes(b'{"cells": [] }')
    assert gb.submission_hash(nb, "v1", {"seed": 0}) != base


def test_grading_code_version_covers_questions_and_solutions():
    """Is each chapter's grading-code version stable, and different between chapters?"""
    from autograder.questions import chapter_ids

    ids = chapter_ids()
    versions = {cid: gb.grading_code_version(cid) for cid in ids}
    assert versions == {cid: gb.grading_code_version(cid) for cid in ids}
    assert len(set(versions.values())) == len(ids)


def test_possible_leaves_out_gpu_questions_only_without_require_gpu():
    """Do GPU questions that could not run drop out of `possible`, unless --require-gpu?"""
    r = report([spec.PASSED, spec.PASSED, spec.NOT_RUN_GPU])
    assert gb.possible_points(r, require_gpu=False) == 3
    assert gb.possible_points(r, require_gpu=True) == 6
    never_ran = report([spec.ERROR, spec.ERROR, spec.ERROR])  # e.g. a malformed notebook
    assert gb.uncounted_questions(never_ran, require_gpu=False, cuda=False) == ("g",)
    assert gb.possible_points(never_ran, require_gpu=False, cuda=False) == 3
    assert gb.possible_points(never_ran, require_gpu=False, cuda=True) == 6


def test_export_csv_has_one_row_per_student_and_prefixed_columns(tmp_path):
    """Does grades.csv list each student once, in order, with chapter-prefixed question columns?"""
    with gb.Gradebook(tmp_path / "g.sqlite") as book:
        book.record(record("bob", [spec.PASSED, spec.FAILED, spec.NOT_RUN_GPU]))
        book.record(record("ann", ALL))
        book.export_csv(tmp_path / "grades.csv", ["ann", "bob", "cy"], [CH])
    with open(tmp_path / "grades.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "fake.a", "fake.b", "fake.g", "total", "possible"]
    assert rows[1] == ["ann", "2", "1", "0", "3", "3"]
    assert rows[2] == ["bob", "2", "0", "0", "2", "3"]
    assert rows[3] == ["cy", "", "", "", "0", "0"]  # never graded: empty, not zero


def test_write_atomic_leaves_old_file_on_failure(tmp_path):
    """If writing fails half-way, is the previous file untouched and no temporary left?"""
    path = tmp_path / "results.json"
    gb.write_atomic(path, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        gb.write_atomic(path, Boom())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_newer_schema_is_refused(tmp_path):
    """Does the grader refuse a gradebook written with another schema, rather than mix them?"""
    path = tmp_path / "g.sqlite"
    gb.Gradebook(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    with pytest.raises(RuntimeError, match="schema"):
        gb.Gradebook(path)


def test_the_kernels_environment_is_cleaned_to_allowed_keys():
    """Of what a kernel reports, are only versions and determinism flags kept, strings capped,
    and its word on isolation and the GPU dropped (the grader's own facts win)?"""
    from autograder import gradebook as gb

    kernel = {
        "python": "3.11.9",
        "numpy": float("nan"),
        "torch": "2" * 10_000,
        "gpu": ["a", "list"],
        "cuda": False,
        "isolated": True,
        "isolation": "bubblewrap; trust me",
        "torch_deterministic": "yes",
        "cudnn_benchmark": False,
        **{f"pad{i}": "x" for i in range(100)},
    }
    clean = gb.clean_kernel_environment(kernel)
    assert clean == {
        "python": "3.11.9",
        "torch": "2" * 186 + " ... (cut)",
        "cudnn_benchmark": False,
    }
    host = gb.host_environment(7, "ISOLATION OFF: no bubblewrap")
    stored = gb.clean_environment({**clean, **host, "kernel_restarts": 2})
    assert stored["isolation"] == "ISOLATION OFF: no bubblewrap" and stored["seed"] == 7
    assert stored["cuda"] is gb.host_cuda() and "isolated" not in stored
