"""Every chapter, graded as a whole notebook in the sandboxed kernel (where the machine has one).

For each chapter whose book notebook has exercise cells: the reference-solved notebook scores
full marks, the blank notebook scores 0 with a row per question, and every wrong implementation
declared in ``tests/autograder/fixtures/<chapter>.py`` fails exactly its questions. (The fast
in-process twin of the last check is ``test_fixtures_inprocess.py``.)
"""

import functools

import nbformat
import pytest

from autograder import spec
from autograder.grading import grade_notebook
from autograder.kernel_target import KernelPool
from autograder.notebook import is_exercise, make_fixture, repo_path, solve
from autograder.questions import all_chapters
from tests.autograder.fixtures_support import declared_fixtures

pytestmark = pytest.mark.slow


def _has_exercises(chapter):
    try:
        nb = nbformat.read(repo_path(chapter.notebook), as_version=4)
    except (OSError, ValueError):
        return False
    return any(is_exercise(c) for c in nb.cells)


CHAPTERS = {c.id: c for c in all_chapters() if _has_exercises(c)}
FIXTURES = [(ch, why, wrong) for ch, why, wrong in declared_fixtures() if ch in CHAPTERS]


@functools.cache
def _cuda():
    import torch

    return torch.cuda.is_available()


def expected_full(chapter):
    """Outcomes of a perfect submission here: GPU questions are not run without CUDA."""
    return {
        q.id: spec.NOT_RUN_GPU if q.gpu and not _cuda() else spec.PASSED for q in chapter.questions
    }


@pytest.fixture(scope="module")
def pool():
    """Kernels started ahead: the next one boots (and imports torch) while a test grades."""
    with KernelPool(1) as kernels:
        yield kernels


def grade(pool, nb, chapter, folder, name):
    path = folder / name
    nbformat.write(nb, path)
    return grade_notebook(path, chapter.id, kernel=pool.take())


@pytest.mark.parametrize("chapter_id", sorted(CHAPTERS))
def test_solved_notebook_scores_full_marks(pool, chapter_id, tmp_path):
    """Does the reference-solved book notebook score every point it can here?"""
    chapter = CHAPTERS[chapter_id]
    nb = solve(nbformat.read(repo_path(chapter.notebook), as_version=4), chapter_id)
    report = grade(pool, nb, chapter, tmp_path, f"{chapter_id}-pass-solved.ipynb")
    assert report.outcomes == expected_full(chapter), [
        (r.id, r.outcome, r.message) for r in report.results if r.outcome != spec.PASSED
    ]
    assert report.score == report.possible()
    assert report.isolation


@pytest.mark.parametrize("chapter_id", sorted(CHAPTERS))
def test_blank_notebook_scores_zero(pool, chapter_id, tmp_path):
    """Does the untouched book notebook score 0, with a row for every question?"""
    chapter = CHAPTERS[chapter_id]
    nb = nbformat.read(repo_path(chapter.notebook), as_version=4)
    report = grade(pool, nb, chapter, tmp_path, f"{chapter_id}-fail-blank.ipynb")
    assert [r.id for r in report.results] == [q.id for q in chapter.questions]
    assert report.score == 0
    assert spec.PASSED not in report.outcomes.values()


@pytest.mark.parametrize(
    "chapter_id, why, wrong", FIXTURES, ids=[f"{c}-fail-{w}" for c, w, _ in FIXTURES]
)
def test_wrong_implementation_fails_exactly_its_questions(pool, chapter_id, why, wrong, tmp_path):
    """Does each declared wrong implementation fail its questions and pass all the others?"""
    chapter = CHAPTERS[chapter_id]
    nb = make_fixture(chapter_id, wrong.replace)
    report = grade(pool, nb, chapter, tmp_path, f"{chapter_id}-fail-{why}.ipynb")
    expected = expected_full(chapter)
    for qid in wrong.fails:
        assert report.outcomes[qid] not in (spec.PASSED, spec.NOT_RUN_GPU) or (
            expected[qid] == spec.NOT_RUN_GPU
        ), (qid, report.outcomes[qid])
    others = {q: o for q, o in report.outcomes.items() if q not in wrong.fails}
    assert others == {q: o for q, o in expected.items() if q not in wrong.fails}, [
        (r.id, r.outcome, r.message) for r in report.results if r.id not in wrong.fails
    ]
