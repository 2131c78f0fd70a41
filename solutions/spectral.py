"""Reference implementations for chapter 6: Fourier amplitudes, aliasing and Fourier features."""

import numpy as np


def fourier_amplitudes(values, freqs):
    """Amplitudes of the integer frequencies ``freqs`` in samples ``values`` taken at x_j = j/N.

    ``values`` has shape (N,) or (B, N) (one signal per row); ``freqs`` is a sequence of integers
    in [0, N/2] (``ValueError`` otherwise, before any work). With F = numpy.fft.fft(values) along
    the last axis, the amplitude of k is 2|F_k|/N for 0 < k < N/2 and |F_k|/N at k = 0 and at
    k = N/2, so that a unit sine reads 1, a constant c reads |c| and cos(pi N x) reads 1. Returns
    a float64 array of shape (..., len(freqs)); ``values`` is not modified.

    Exercise 6.1 in book/ch06_spectral/exercises.ipynb.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] == 0:
        raise ValueError(f"values must have shape (N,) or (B, N) with N > 0, got {values.shape}")
    n = values.shape[-1]
    k = np.asarray(freqs)
    if k.ndim != 1:
        raise ValueError(f"freqs must be a 1-D sequence of integers, got shape {k.shape}")
    if k.size and (k.dtype.kind not in "iuf" or np.any(k != np.round(k))):
        raise ValueError("freqs must be integers")
    k = k.astype(np.int64)
    if np.any(k < 0) or np.any(2 * k > n):
        raise ValueError(f"every frequency must lie in [0, N/2] = [0, {n / 2:g}]")
    F = np.fft.fft(values, axis=-1)
    # A real signal's energy at k splits between F_k and F_{N-k}; k = 0 and k = N/2 are their
    # own mirror images, so only the others get the factor 2.
    factor = np.where((k == 0) | (2 * k == n), 1.0, 2.0)
    return factor * np.abs(F[..., k]) / n


def sum_of_sines(x, freqs, amplitudes, phases):
    """sum_k A_k sin(2 pi k x + phi_k) at every point of ``x``, an array of the shape of ``x``.

    ``freqs``, ``amplitudes`` and ``phases`` are sequences of the same length K (float64).

    Exercise 6.2 in book/ch06_spectral/exercises.ipynb.
    """
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(freqs, dtype=np.float64)
    A = np.asarray(amplitudes, dtype=np.float64)
    phi = np.asarray(phases, dtype=np.float64)
    if not (k.shape == A.shape == phi.shape and k.ndim == 1):
        raise ValueError("freqs, amplitudes and phases must be 1-D and of the same length")
    # y(x) = sum_k A_k sin(2 pi k x + phi_k): one column per frequency, summed
    return (A * np.sin(2 * np.pi * x[..., None] * k + phi)).sum(axis=-1)


def alias_frequency(k, num_samples):
    """The frequency in [0, N/2] that the integer frequency ``k`` shows at N = ``num_samples``.

    Sampled at x_j = j/N, sin(2 pi k x) and cos(2 pi k x) agree with frequency r = k mod N (the
    samples repeat with period N in k) and r with N - r (its mirror image), so the answer is
    min(r, N - r), for k of any sign. Returns a Python int.

    Exercise 6.3 in book/ch06_spectral/exercises.ipynb.
    """
    k, n = int(k), int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be a positive integer, got {n}")
    r = k % n  # Python's % is never negative for n > 0
    return min(r, n - r)


def fourier_features(x, B):
    """Random Fourier features gamma(x) = [cos(2 pi x B^T), sin(2 pi x B^T)] (Tancik et al.).

    ``x`` has shape (n, d), ``B`` shape (m, d); returns a float64 array (n, 2m) whose first m
    columns are the cosines and last m the sines. Neither input is modified.

    Exercise 6.4 in book/ch06_spectral/exercises.ipynb.
    """
    x = np.asarray(x, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if x.ndim != 2 or B.ndim != 2 or x.shape[1] != B.shape[1]:
        raise ValueError(f"x must be (n, d) and B (m, d); got {x.shape} and {B.shape}")
    z = 2 * np.pi * (x @ B.T)  # (n, m): z_ij = 2 pi b_j . x_i
    return np.concatenate([np.cos(z), np.sin(z)], axis=1)


def learning_order(amplitude_history, threshold=0.5):
    """First row at which each column of ``amplitude_history`` (T, K) reaches ``threshold``.

    Returns an int array (K,): entry k is the smallest row index t with
    ``amplitude_history[t, k] >= threshold``, or -1 when no row reaches it. A row index, not a
    training step: the caller multiplies by its recording interval.

    Exercise 6.5 in book/ch06_spectral/exercises.ipynb.
    """
    h = np.asarray(amplitude_history, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"amplitude_history must be 2-D (T, K), got shape {h.shape}")
    reached = h >= threshold
    first = np.argmax(reached, axis=0)  # the first True; 0 also when there is none
    return np.where(reached.any(axis=0), first, -1).astype(np.int64)
