"""Are grader-side comparisons strict where they must be, loose only by dtype, and discreet?"""

import numpy as np
import pytest

from autograder.compare import assert_close, tolerance_for


def test_tolerance_follows_the_dtype():
    """Is float32 given a looser tolerance than float64, and are integers compared exactly?"""
    r32, a32 = tolerance_for(np.float32(1))
    r64, a64 = tolerance_for(np.float64(1))
    assert r32 > r64 and a32 > a64
    assert tolerance_for(np.int64(1)) == (0.0, 0.0)


def test_the_students_dtype_never_loosens_the_tolerance():
    """Does returning float16 (or float32) against a float64 reference keep float64's tolerance,
    so that one-sided differences (error ~h) fail where central ones (error ~h**2) pass?"""
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=20), 1e-4
    want = np.cos(x)  # d/dx sin at x, float64
    forward = (np.sin(x + h) - np.sin(x)) / h  # O(h) = ~1e-4 error: not float64 work
    central = (np.sin(x + h) - np.sin(x - h)) / (2 * h)  # O(h**2) = ~1e-9
    for dtype in (np.float16, np.float32, np.float64):
        with pytest.raises(AssertionError, match=r"rtol=1e-07"):
            assert_close(forward.astype(dtype), want)
    assert_close(central, want, rtol=1e-7, atol=1e-8)
    assert tolerance_for(want) == tolerance_for(np.float64(0))


def test_float32_rounding_passes_but_a_real_error_fails():
    """Does a float32 result rounded from the float64 answer pass, and a 1e-3 error fail?"""
    want = np.linspace(-3.0, 3.0, 50)
    assert_close(want.astype(np.float32), want)
    with pytest.raises(AssertionError):
        assert_close(want + 1e-3, want)
    with pytest.raises(AssertionError):
        assert_close(want.astype(np.float32) * (1 + 1e-3), want)


def test_structure_must_match():
    """Are wrong types, shapes, lengths and keys all reported as failures?"""
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(AssertionError, match="length"):
        assert_close((1.0,), (1.0, 2.0))
    with pytest.raises(AssertionError, match="keys"):
        assert_close({"a": 1.0}, {"a": 1.0, "b": 2.0})
    with pytest.raises(AssertionError, match="expected a dict"):
        assert_close([1.0], {"a": 1.0})
    with pytest.raises(AssertionError, match="number or array"):
        assert_close("1.0", 1.0)
    with pytest.raises(AssertionError, match="numbers"):
        assert_close(np.array(["1"]), np.array([1.0]))
    with pytest.raises(AssertionError):
        assert_close(None, 0.0)


def test_nan_only_where_expected():
    """Does NaN pass where the reference has NaN, and fail where it has a number?"""
    assert_close(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf]), np.array([1e308]))


def test_failure_messages_never_reveal_expected_values():
    """Does a failure name where and by how much, but never the reference's numbers?"""
    want = np.array([3.14159265, 2.71828182])
    with pytest.raises(AssertionError) as info:
        assert_close(np.zeros(2), want, what="central_difference")
    message = str(info.value)
    assert "central_difference" in message and "2 of 2 values differ" in message
    assert "3.14" not in message and "2.718" not in message
    with pytest.raises(AssertionError) as info:
        assert_close({"W1": 0.0}, {"W1": 0.123456})
    assert "'W1'" in str(info.value) and "0.123" not in str(info.value)


def test_keys_chosen_by_the_student_are_never_echoed():
    """Can a function smuggle its (hidden) inputs out as dict keys? The message counts the
    unexpected keys and names only the reference's missing ones."""
    secret = {f"x={v!r}": 0.0 for v in np.random.default_rng(1).normal(size=21)}
    with pytest.raises(AssertionError) as info:
        assert_close(secret, {"W1": 0.0, "b1": 0.0})
    message = str(info.value)
    assert "21 unexpected key(s)" in message and "'W1'" in message and "'b1'" in message
    assert "x=" not in message and len(message) < 200


def test_explicit_tolerances_override_the_dtype():
    """Do rtol/atol given by a question replace the dtype's defaults, both ways?"""
    assert_close(1.001, 1.0, rtol=1e-2)
    with pytest.raises(AssertionError):
        assert_close(1.0 + 1e-12, 1.0, rtol=0, atol=0)
