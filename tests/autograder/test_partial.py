"""Partial credit: a question's points split over its cases, each passing on its own."""

from pathlib import Path

import pytest

from autograder import spec
from autograder.runner import grade_namespace
from autograder.spec import Chapter


def make_chapter(partial, points=None):
    chapter = Chapter("descent", number=1, notebook="book/ch01_descent/exercises.ipynb")
    q = chapter.question(
        "relative_error", points=3, functions=["relative_error"], hint="h", partial=partial
    )
    import numpy as np

    for i, scale in enumerate((1.0, 0.0, 5.0)):

        def case(t, rng, scale=scale):
            a = np.array([3.0, 4.0])
            t.compare("relative_error", a, scale * a + 1.0)

        q.case(public=True, name=f"case{i}", points=None if points is None else points[i])(case)
    return chapter


def wrong_relative_error(a, b):
    """Right only when b is all ones (the second case): the other two cases fail."""
    import numpy as np

    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b))) * (
        1.0 if np.allclose(b, 1.0) else 2.0
    )


@pytest.mark.parametrize(("points", "want"), [(None, 1.0), ((0.5, 2.0, 0.5), 2.0)])
def test_partial_question_scores_passing_cases(points, want):
    """Does a partial question score the share of the one passing case, equal or declared?"""
    report = grade_namespace(
        make_chapter(True, points), {"relative_error": wrong_relative_error}, cuda=False
    )
    (r,) = report.results
    assert r.outcome == spec.FAILED and r.score == pytest.approx(want)
    assert r.message.startswith("1 of 3 cases passed")


def test_all_or_nothing_stays_the_default():
    """Does the same submission score 0 on an all-or-nothing question?"""
    report = grade_namespace(
        make_chapter(False), {"relative_error": wrong_relative_error}, cuda=False
    )
    assert report.results[0].score == 0 and report.results[0].outcome == spec.FAILED


def test_case_points_must_add_up():
    """Are per-case points that exceed the question's refused?"""
    with pytest.raises(ValueError):
        make_chapter(True, (2.0, 2.0, 2.0)).questions[0].case_points()
    with pytest.raises(ValueError):
        make_chapter(False, (1.0, 1.0, 1.0))


def right_relative_error(a, b):
    import numpy as np

    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b)))


def test_a_class_run_keeps_partial_points_in_every_file(tmp_path, monkeypatch):
    """Do grades.csv, results.json and feedback.html give 1 of 3 points for one case of three?"""
    import csv
    import json

    import nbformat

    from autograder import cli

    chapter = make_chapter(True)
    functions = {"alice": right_relative_error, "bob": wrong_relative_error}

    def grade(path, chapter_id=None, *, seed=0, **kwargs):
        student = {"relative_error": functions[Path(path).parent.name]}
        return grade_namespace(chapter, student, seed=seed, cuda=False)

    monkeypatch.setattr(cli, "known_chapters", lambda: [chapter])
    sub, out = tmp_path / "submissions", tmp_path / "results"
    for student in functions:
        (sub / student).mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), sub / student / "ch01_descent.ipynb")
    assert cli.grade_class(sub, out, grade_fn=grade, progress=False) == 0

    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert float(rows["bob"]["descent.relative_error"]) == pytest.approx(1.0)
    assert float(rows["bob"]["total"]) == pytest.approx(1.0)
    assert float(rows["bob"]["possible"]) == float(rows["alice"]["total"]) == 3.0

    bob = json.loads((out / "bob" / "results.json").read_text())
    (test,) = bob["tests"]
    assert (test["score"], test["max_score"], test["status"]) == (1.0, 3.0, "failed")
    assert "1 of 3 cases passed" in test["output"] and bob["score"] == 1.0
    (test,) = json.loads((out / "alice" / "results.json").read_text())["tests"]
    assert (test["score"], test["max_score"], test["status"]) == (3.0, 3.0, "passed")

    assert "1 of 3 cases, 1 / 3 points" in (out / "bob" / "feedback.html").read_text()
    assert "cases, " not in (out / "alice" / "feedback.html").read_text()


def test_feedback_shows_the_fraction_of_a_partial_question():
    """Does feedback.html say "2 of 3 cases, 1.33 / 2 points", and nothing new otherwise?"""
    from autograder import gradebook as gb
    from autograder import reports
    from autograder.runner import QuestionResult, Report

    def result(qid, score, outcome, message):
        return QuestionResult(qid, qid, 2.0, score, outcome, message, "h")

    report = Report(
        "descent",
        0,
        [
            result("partial", 4 / 3, spec.FAILED, "2 of 3 cases passed; case2: wrong"),
            result("whole", 0.0, spec.FAILED, "case1: wrong"),
            result("done", 2.0, spec.PASSED, ""),
        ],
        {"isolated": True, "isolation": "bubblewrap"},
    )
    record = gb.Record("bob", "descent", "h", gb.GRADED, None, "now", 0.0, report, 6.0, (), ())
    page = reports.feedback_html("bob", [record])
    assert "2 of 3 cases, 1.33 / 2 points" in page
    assert ">0 / 2<" in page and ">2 / 2<" in page
    assert page.count(" cases, ") == 1
