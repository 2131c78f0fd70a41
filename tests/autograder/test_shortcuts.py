"""The forbidden-module rule (``Question.forbidden``), at the level of the kernel harness.

A graded function that calls into a forbidden module, or a submodule of one, fails with a
``LibraryShortcut`` naming the call; anything else it calls, including modules whose names only
share a prefix, is fine. The chapters' shortcut fixtures prove the rule on real notebooks
(``test_fixtures_inprocess.py``); these tests pin down its edges.
"""

import sys

import pytest

from autograder import runner, spec


def module_function(module_name, source, name):
    """A function whose globals say it lives in ``module_name`` (as a library's functions do)."""
    namespace = {"__name__": module_name}
    exec(compile(source, f"<{module_name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


LIB = module_function("fakelib.optim.adam", "def step(x):\n    return x + 1\n", "step")
LOOKALIKE = module_function("fakelib.optim.adamw", "def step(x):\n    return x + 2\n", "step")


def student(**functions):
    return runner.LocalTarget("toy", functions, cuda=False)


def test_a_call_into_a_forbidden_module_is_a_shortcut():
    """Does a function that calls fakelib.optim.adam.step fail, naming the call and the rule?"""
    target = student(f=lambda x: LIB(x))
    with pytest.raises(spec.StudentError) as info:
        target.call("f", [1], {}, None, ("fakelib.optim",))
    assert info.value.info["type"] == spec.SHORTCUT
    message = info.value.info["message"]
    assert "fakelib.optim.adam.step" in message and "without fakelib.optim" in message


def test_a_module_that_only_shares_a_prefix_is_allowed():
    """Is fakelib.optim.adamw allowed when fakelib.optim.adam is forbidden?"""
    target = student(f=lambda x: LOOKALIKE(x))
    assert target.call("f", [1], {}, None, ("fakelib.optim.adam",)) == 3
    with pytest.raises(spec.StudentError):
        student(f=lambda x: LIB(x)).call("f", [1], {}, None, ("fakelib.optim.adam",))


def test_nothing_forbidden_changes_nothing():
    """With no forbidden modules, does the same call simply return its value?"""
    assert student(f=lambda x: LIB(x)).call("f", [1], {}, None, ()) == 2


def test_the_profile_hook_is_removed_afterwards():
    """Is the interpreter's profile hook restored after the call, even when the call raises?"""

    def boom(x):
        LIB(x)
        raise ValueError("the student's own error")

    before = sys.getprofile()
    with pytest.raises(spec.StudentError) as info:
        student(f=boom).call("f", [1], {}, None, ("fakelib",))
    assert info.value.info["type"] == "ValueError"  # the function's own error comes first
    assert sys.getprofile() is before


def test_a_shortcut_fails_the_question_with_its_message():
    """Is a shortcut graded as failed (a wrong answer), with a message that says why?"""
    chapter = spec.Chapter("toy", number=99, notebook="tests/toy.ipynb")
    q = chapter.question("f", points=1, functions=["f"], hint="by hand", forbidden=("fakelib",))

    @q.case(public=True)
    def one(t, rng):
        assert t.student("f", 1) == 2

    result = runner.grade_question(q, student(f=lambda x: LIB(x)), None, seed=0)
    assert result.outcome == spec.FAILED and result.score == 0
    assert "your code calls fakelib.optim.adam.step" in result.message
    honest = runner.grade_question(q, student(f=lambda x: x + 1), None, seed=0)
    assert honest.outcome == spec.PASSED
