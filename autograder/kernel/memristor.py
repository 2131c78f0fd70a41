"""Kernel-side driver for chapter 10: soft_bounds_update takes a generator, which cannot travel
as data, so the driver builds ``default_rng(seed)`` in the kernel and hands it on.

Two calls in a row share the generator (the second starts from the first's result), and one
``rng.random()`` after them tells whether each call drew exactly one array of normals.
"""

import numpy as np


class RuleBroken(Exception):
    """The notebook's code broke a rule its prompt states (the grader reports it as failed)."""


def soft_bounds_twice(ns, w, delta, w_min, w_max, noise_std, seed, up_down=0.0):
    """``(w1, w2, u)``: two ``soft_bounds_update`` calls on one generator, then its next uniform."""
    rng = np.random.default_rng(int(seed))
    f = ns["soft_bounds_update"]
    shape = np.broadcast_shapes(np.shape(w), np.shape(delta))
    w1 = f(w, delta, w_min, w_max, noise_std, rng, up_down=up_down)
    w1 = np.asarray(w1, dtype=np.float64)
    if w1.shape != shape:
        raise RuleBroken(f"soft_bounds_update returned shape {w1.shape}; expected {shape}")
    w2 = np.asarray(f(w1.copy(), delta, w_min, w_max, noise_std, rng, up_down=up_down))
    return w1, w2.astype(np.float64), float(rng.random())


def soft_bounds_once(ns, w, delta, w_min, w_max, noise_std, seed, up_down=0.0):
    """One ``soft_bounds_update`` call on ``default_rng(seed)`` (for the ValueError cases)."""
    rng = np.random.default_rng(int(seed))
    f = ns["soft_bounds_update"]
    return np.asarray(f(w, delta, w_min, w_max, noise_std, rng, up_down=up_down), dtype=float)
