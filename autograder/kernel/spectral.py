"""Kernel-side drivers for chapter 6: call a function and check it left its array inputs alone."""

import numpy as np


class InputModified(Exception):
    """The function under test changed one of its array arguments in place."""


def _call_unchanged(ns, name, params, args, kwargs):
    """``ns[name](*args, **kwargs)``, raising InputModified if an array argument changed.

    ``params`` names the positional arguments as the exercise does, for the message. Each array
    argument is handed over as a fresh array (not a view of the grader's data), then compared
    with a copy kept aside.
    """
    args = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    kept = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    value = ns[name](*args, **kwargs)
    for param, arg, copy in zip(params, args, kept):
        if copy is not None and not (
            arg.shape == copy.shape and np.array_equal(arg, copy, equal_nan=True)
        ):
            raise InputModified(
                f"{name} changed its argument `{param}` in place; the task asks you to leave "
                "the inputs unchanged (work on a copy)"
            )
    return value


def fourier_amplitudes(ns, *args, **kwargs):
    """The notebook's ``fourier_amplitudes``, its ``values`` and ``freqs`` left unchanged."""
    return _call_unchanged(ns, "fourier_amplitudes", ["values", "freqs"], args, kwargs)


def sum_of_sines(ns, *args, **kwargs):
    """The notebook's ``sum_of_sines``, its four array arguments left unchanged."""
    params = ["x", "freqs", "amplitudes", "phases"]
    return _call_unchanged(ns, "sum_of_sines", params, args, kwargs)


def fourier_features(ns, *args, **kwargs):
    """The notebook's ``fourier_features``, ``x`` and ``B`` left unchanged."""
    return _call_unchanged(ns, "fourier_features", ["x", "B"], args, kwargs)


def learning_order(ns, *args, **kwargs):
    """The notebook's ``learning_order``, ``amplitude_history`` left unchanged."""
    return _call_unchanged(ns, "learning_order", ["amplitude_history"], args, kwargs)
