"""Do the questions tell right from wrong? Fast, in-process twins of the sandboxed grading tests.

Trusted code only: these exec our own reference and fixture notebooks in this process.
"""

import pytest

from autograder import notebook, spec
from autograder.questions import all_chapters, get_chapter
from autograder.runner import grade_namespace
from tests.autograder.fixtures_support import declared_fixtures

GRADED = [c.id for c in all_chapters()]


@pytest.fixture(autouse=True)
def fresh_torch_defaults():
    """Each notebook starts as in a fresh kernel: torch's default dtype is process state that a
    notebook's first cell may change (chapters 1, 2, 4 and 5 set float64), so restore it."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(before)


def notebook_namespace(nb):
    """Run every code cell except the check() cell in a fresh namespace (trusted notebooks)."""
    import matplotlib

    # Not os.environ["MPLBACKEND"]: that would leak into the kernels of the book build, started
    # later by this same test process, and pages would lose their figures.
    matplotlib.use("Agg")
    ns = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type == "code" and not notebook.is_check(cell) and not notebook.is_gpu(cell):
            exec(compile(cell.source, "<cell>", "exec"), ns)  # noqa: S102
    import matplotlib.pyplot as plt

    plt.close("all")
    return ns


def expected(chapter, fails=()):
    """Outcomes of a submission that gets exactly ``fails`` wrong (GPU questions not run)."""
    no_gpu = {q.id: spec.NOT_RUN_GPU for q in chapter.questions if q.gpu}
    return {
        q.id: no_gpu.get(q.id, spec.FAILED if q.id in fails else spec.PASSED)
        for q in chapter.questions
    }


@pytest.mark.parametrize("chapter_id", GRADED)
@pytest.mark.parametrize("seed", [0, 1, 424242, 2**31 - 1])  # any run seed: see cli.grade
def test_reference_module_passes_every_question(chapter_id, seed):
    """Does the reference itself pass every case, public and hidden, for different seeds?"""
    import importlib

    chapter = get_chapter(chapter_id)
    ns = vars(importlib.import_module(chapter.reference))
    report = grade_namespace(chapter, ns, seed=seed, cuda=False)
    assert report.outcomes == expected(chapter), [r.message for r in report.results]


@pytest.mark.parametrize(
    ("chapter_id", "why", "wrong"),
    [pytest.param(c, w, x, id=f"{c}-fail-{w}") for c, w, x in declared_fixtures()],
)
def test_wrong_implementation_fails_exactly_its_questions(chapter_id, why, wrong):
    """Does each deliberately wrong notebook fail its questions, and only those?"""
    chapter = get_chapter(chapter_id)
    ns = notebook_namespace(notebook.make_fixture(chapter_id, wrong.replace))
    report = grade_namespace(chapter, ns, cuda=False)
    got = {
        k: (spec.FAILED if v in (spec.FAILED, spec.ERROR) else v)
        for k, v in report.outcomes.items()
    }
    assert got == expected(chapter, wrong.fails), [r.message for r in report.results]


def test_every_question_has_a_wrong_implementation():
    """Is every graded question proven able to fail by at least one wrong implementation?"""
    covered = {(c, q) for c, _, w in declared_fixtures() for q in w.fails}
    missing = [
        f"{c.id}.{q.id}" for c in all_chapters() for q in c.questions if (c.id, q.id) not in covered
    ]
    assert not missing, f"questions with no failing fixture: {missing}"


SHORTCUTS = [(c, w, x) for c, w, x in declared_fixtures() if x.shortcut]


def test_there_are_shortcut_fixtures():
    """Is the forbidden-module rule proven on at least one fixture per mechanism?"""
    assert {c for c, _, _ in SHORTCUTS} >= {"descent", "momentum", "adaptive", "normalization"}


@pytest.mark.parametrize(
    ("chapter_id", "why", "wrong"),
    [pytest.param(c, w, x, id=f"{c}-shortcut-{w}") for c, w, x in SHORTCUTS],
)
def test_shortcut_fails_only_because_of_the_forbidden_module(chapter_id, why, wrong, monkeypatch):
    """With nothing forbidden, does the shortcut pass (its numbers are right), so that the
    forbidden-module rule, and nothing else, is what fails it? And does the message say so?"""
    chapter = get_chapter(chapter_id)
    ns = notebook_namespace(notebook.make_fixture(chapter_id, wrong.replace))
    report = grade_namespace(chapter, ns, cuda=False)
    for r in report.results:
        if r.id in wrong.fails and r.outcome != spec.NOT_RUN_GPU:
            assert r.outcome == spec.FAILED and "write it yourself" in r.message, r.message
    for q in chapter.questions:
        monkeypatch.setattr(q, "forbidden", ())
    assert grade_namespace(chapter, ns, cuda=False).outcomes == expected(chapter)


def _messages(chapter_id, replace, seed=0):
    chapter = get_chapter(chapter_id)
    ns = notebook_namespace(notebook.make_fixture(chapter_id, replace))
    return {r.id: r for r in grade_namespace(chapter, ns, seed=seed, cuda=False).results}


def test_changed_inputs_fail_with_the_argument_named():
    """Does a function that steps the caller's x0 in place fail (not error), on the public case,
    with a message naming x0 as the prompt does?"""
    from tests.autograder.fixtures.descent import WRONG

    result = _messages("descent", WRONG["gd-overwrites-x0"].replace)["gradient_descent"]
    assert result.outcome == spec.FAILED
    assert "changed its input" in result.message and "`x0`" in result.message, result.message


def test_messages_name_returned_values_and_the_students_code():
    """Is a wrong dgamma reported as dgamma (not batchnorm_gradients[1]), and an exception from
    a class the grader's driver runs reported as the student's, under the class's name?"""
    wrong_dgamma = """
def batchnorm_backward(dy, cache):
    x_hat, inv_std, gamma = cache
    dx = gamma * inv_std * (dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0))
    return dx, 2 * (dy * x_hat).sum(axis=0), dy.sum(axis=0)
"""
    result = _messages("normalization", {"batchnorm_backward": wrong_dgamma})["batchnorm_backward"]
    assert result.message.startswith("four_by_three_backward: dgamma:"), result.message
    import inspect

    import solutions.adaptive

    # the reference, except that step(closure) raises: only the hidden closure case calls it so
    raising = inspect.getsource(solutions.adaptive.RMSprop).replace(
        "        loss = None\n",
        '        if closure is not None:\n            raise RuntimeError("state not ready")\n'
        "        loss = None\n",
        1,
    )
    result = _messages("adaptive", {"RMSprop": raising})["rmsprop"]
    assert result.outcome == spec.ERROR
    assert "your `RMSprop` raised RuntimeError when the grader's test code called it" in (
        result.message
    ), result.message
    assert "optimizer_trajectory" not in result.message
