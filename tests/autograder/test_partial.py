"""Partial credit: a question's points split over its cases, each passing on its own."""

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
