"""Grader-side comparison of plain-data results, with tolerances chosen by dtype."""

import builtins
import math

import numpy as np

# (rtol, atol) by the precision the result is computed in.
TOLERANCES = {
    np.dtype(np.float16): (1e-3, 1e-3),
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-7, 1e-9),
}


def tolerance_for(reference):
    """The tolerance the reference's dtype justifies (integers and booleans compare exactly).

    Only the reference decides: a student who returns float16 or float32 where the reference
    works in float64 is held to float64's tolerance, never loosened to their own dtype's.
    """
    dt = np.asarray(reference).dtype
    if dt.kind == "c":
        dt = np.dtype(np.float32) if dt == np.dtype(np.complex64) else np.dtype(np.float64)
    return TOLERANCES.get(dt, (0.0, 0.0) if dt.kind in "biu" else (1e-7, 1e-9))


# A student's own text (dict keys, strings, exception messages) is shown only as a short excerpt:
# a function can record the hidden inputs it was called with and hand them back as text.
EXCERPT_CHARS = 80


def excerpt(text, limit=EXCERPT_CHARS):
    """``text`` cut to ``limit`` characters, on one line, printable: safe to show a student."""
    try:
        text = str(text)
    except Exception:  # noqa: BLE001 -- a hostile __str__
        return "<unreadable>"
    text = "".join(c if c.isprintable() else " " for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(x):
    return isinstance(x, int | float | complex | np.number | bool) and not isinstance(x, str)


def assert_close(got, want, rtol=None, atol=None, what="result", _path="", names=None):
    """Raise AssertionError, with a message safe to show students, unless ``got`` ~ ``want``.

    ``want`` sets the structure: a tuple or list must match in length, a dict in keys, arrays in
    shape. Messages name where the mismatch is and how large, never the expected values.
    ``names`` (optional) names the returned values as the exercise does: a sequence, one name per
    item of a tuple or list (``("dx", "dgamma", "dbeta")``), or a dict from key to name; a
    mismatch is then reported as ``dgamma: ...`` rather than ``result[1]: ...``.
    """
    where = f"{what}{_path}"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            raise AssertionError(f"{where}: expected a dict, got {type(got).__name__}")
        if set(got) != set(want):
            # Name only the expected keys that are missing (they come from the reference); of
            # the student's own keys, say how many are unexpected, never what they are.
            missing = [k for k in want if k not in got]
            extra = sum(k not in want for k in got)
            names = excerpt(", ".join(repr(k) for k in missing), 120) if missing else ""
            raise AssertionError(
                f"{where}: keys differ from the expected ones"
                + (f"; missing {names}" if missing else "")
                + (f"; {extra} unexpected key(s)" if extra else "")
            )
        for k in want:
            if isinstance(names, dict) and k in names:
                assert_close(got[k], want[k], rtol, atol, names[k])
            else:
                assert_close(got[k], want[k], rtol, atol, what, f"{_path}[{k!r}]")
        return
    if isinstance(want, tuple | list) and not _is_number(got):
        if not isinstance(got, tuple | list):
            raise AssertionError(
                f"{where}: expected a {type(want).__name__}, got {type(got).__name__}"
            )
        if len(got) != len(want):
            raise AssertionError(f"{where}: length {len(got)} != expected {len(want)}")
        named = isinstance(names, tuple | list) and len(names) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            if named:
                assert_close(g, w, rtol, atol, names[i])
            else:
                assert_close(g, w, rtol, atol, what, f"{_path}[{i}]")
        return
    if isinstance(want, str) or want is None:
        if got != want:
            raise AssertionError(f"{where}: wrong value")
        return
    if isinstance(got, str | dict) or got is None:
        raise AssertionError(f"{where}: expected a number or array, got {type(got).__name__}")
    try:
        g = np.asarray(got)
        w = np.asarray(want)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{where}: not an array ({type(exc).__name__})") from None
    if g.dtype.kind not in "biufc":
        raise AssertionError(f"{where}: expected numbers, got dtype {g.dtype}")
    if g.shape != w.shape:
        raise AssertionError(f"{where}: shape {g.shape} != expected {w.shape}")
    r0, a0 = tolerance_for(w)
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    g64 = g.astype(np.complex128 if g.dtype.kind == "c" or w.dtype.kind == "c" else np.float64)
    w64 = w.astype(g64.dtype)
    same_nan = np.isnan(g64) & np.isnan(w64)
    finite_bad = ~np.isclose(g64, w64, rtol=rtol, atol=atol, equal_nan=True) & ~same_nan
    if finite_bad.any():
        # Relative to the expected magnitude, and only its order of magnitude: the exact error
        # would give the expected value away (got - error), the order only says how far off.
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.abs(g64 - w64) / (np.abs(w64) + max(atol, 1e-300))
        err = np.where(np.isnan(err), np.inf, err)
        idx = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
        worst = float(err[idx]) if err.ndim else float(err)
        loc = f" at index {tuple(int(i) for i in idx)}" if idx else ""
        n_bad = int(finite_bad.sum())
        raise AssertionError(
            f"{where}: {n_bad} of {max(g.size, 1)} values differ; the largest relative error "
            f"is {_order_of_magnitude(worst)}{loc} (rtol={rtol:g}, atol={atol:g})"
        )


def _order_of_magnitude(x):
    """``x`` as a power of ten (``about 1e-03``), or ``infinite`` when one side holds a NaN or an
    infinity and the other does not."""
    if not np.isfinite(x):
        return "infinite (a NaN or an infinity on one side only)"
    return f"about 1e{int(np.round(np.log10(max(x, 1e-300)))):+03d}"


def isclose_scalar(got, want, rtol=1e-7, atol=0.0):
    """A scalar comparison that never trusts the student's objects (floats only)."""
    return math.isclose(float(got), float(want), rel_tol=rtol, abs_tol=atol)


BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def builtin_exception(mro):
    """The first built-in exception class among the names in ``mro`` (a student's exception's
    class names), or ``"an exception"``: the one part of an exception that no student chose."""
    for name in mro if isinstance(mro, list | tuple) else ():
        if isinstance(name, str) and name in BUILTIN_EXCEPTIONS:
            return name
    return "an exception"
