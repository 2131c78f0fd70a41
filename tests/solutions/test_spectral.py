"""Chapter 6's reference against the trusted libraries (numpy.fft, torch) and plain loops."""

import numpy as np
import pytest
import torch

from solutions.spectral import (
    alias_frequency,
    fourier_amplitudes,
    fourier_features,
    learning_order,
    sum_of_sines,
)

# float64: an FFT of N samples of order 1 is accurate to about log2(N) * eps * sqrt(N) in each
# coefficient, below 1e-13 for the sizes here; 1e-10 is the tolerance the grader states.
TOL = 1e-10


def rfft_amplitudes(values):
    """Amplitudes of k = 0 ... floor(N/2) from numpy.fft.rfft, by the chapter's convention."""
    n = values.shape[-1]
    amp = 2 * np.abs(np.fft.rfft(values, axis=-1)) / n
    amp[..., 0] /= 2
    if n % 2 == 0:
        amp[..., -1] /= 2
    return amp


@pytest.mark.parametrize("n", [1, 2, 3, 8, 15, 64, 101, 200])
def test_fourier_amplitudes_match_rfft(n):
    """Does fourier_amplitudes give rfft's amplitudes at every k in [0, N/2], batched or not?"""
    rng = np.random.default_rng(n)
    values = rng.normal(size=(4, n))
    freqs = np.arange(n // 2 + 1)
    want = rfft_amplitudes(values)
    got = fourier_amplitudes(values, freqs)
    assert got.shape == (4, len(freqs)) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(fourier_amplitudes(values[1], freqs), want[1], rtol=0, atol=TOL)
    # Any order and repetition of freqs reads the same entries.
    pick = rng.integers(0, n // 2 + 1, size=7)
    np.testing.assert_allclose(fourier_amplitudes(values, pick), want[:, pick], rtol=0, atol=TOL)


def test_fourier_amplitudes_read_sines_constants_and_nyquist_exactly():
    """Does a unit sine read 1, a constant c read |c| and cos(pi N x) read 1, all else 0?"""
    n = 64
    x = np.arange(n) / n
    signals = np.stack([np.sin(2 * np.pi * 5 * x + 0.7), np.full(n, -3.0), np.cos(np.pi * n * x)])
    got = fourier_amplitudes(signals, np.arange(n // 2 + 1))
    want = np.zeros_like(got)
    want[0, 5], want[1, 0], want[2, n // 2] = 1.0, 3.0, 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize(("n", "bad"), [(8, [5]), (9, [5]), (8, [-1]), (8, [1.5]), (8, [[1]])])
def test_fourier_amplitudes_rejects_frequencies_outside_the_range(n, bad):
    """Is a frequency below 0, above N/2 or not an integer a ValueError?"""
    with pytest.raises(ValueError):
        fourier_amplitudes(np.ones(n), bad)


def test_fourier_amplitudes_accepts_both_ends_of_the_range():
    """Are k = 0 and k = N/2 (N even), k = (N-1)/2 (N odd) accepted?"""
    assert fourier_amplitudes(np.ones(8), [0, 4]).shape == (2,)
    assert fourier_amplitudes(np.ones(9), [0, 4]).shape == (2,)


def test_fourier_amplitudes_leaves_values_alone():
    """Is the caller's array unchanged after the call?"""
    values = np.random.default_rng(0).normal(size=(3, 16))
    before = values.copy()
    fourier_amplitudes(values, [0, 3, 8])
    np.testing.assert_array_equal(values, before)


def test_sum_of_sines_matches_a_loop_and_reads_back():
    """Does sum_of_sines equal the explicit sum, keep x's shape, and give back its amplitudes?"""
    rng = np.random.default_rng(1)
    freqs = np.array([2, 4, 6, 9])
    amps, phases = rng.uniform(0.5, 2, size=4), rng.uniform(0, 2 * np.pi, size=4)
    x = rng.uniform(size=(3, 5))
    want = sum(a * np.sin(2 * np.pi * k * x + p) for k, a, p in zip(freqs, amps, phases))
    got = sum_of_sines(x, freqs, amps, phases)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    grid = np.arange(200) / 200
    read = fourier_amplitudes(sum_of_sines(grid, freqs, amps, phases), freqs)
    np.testing.assert_allclose(read, amps, rtol=0, atol=TOL)


def test_alias_frequency_is_the_rfft_peak():
    """Is alias_frequency(k, N) where rfft puts the peak of cos(2 pi k j / N), any sign of k?"""
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(1, 80))
        k = int(rng.integers(-500, 500))
        samples = np.cos(2 * np.pi * k * np.arange(n) / n)
        peak = int(np.argmax(np.abs(np.fft.rfft(samples))))
        got = alias_frequency(k, n)
        assert isinstance(got, int) and 0 <= got <= n // 2
        assert got == peak, (k, n)


def test_alias_frequency_edges():
    """Are k = N/2 (its own alias), k = N (a constant) and the mirror N - r right?"""
    assert alias_frequency(30, 32) == 2
    assert alias_frequency(16, 32) == 16
    assert alias_frequency(32, 32) == 0
    assert alias_frequency(-3, 32) == 3
    assert alias_frequency(17, 32) == 15
    assert alias_frequency(7, 15) == 7 and alias_frequency(8, 15) == 7


def test_fourier_features_match_torch():
    """Does fourier_features equal [cos, sin] of 2 pi x B^T computed by torch, cos block first?"""
    rng = np.random.default_rng(3)
    x, B = rng.uniform(size=(50, 2)), rng.normal(scale=10.0, size=(16, 2))
    x0, B0 = x.copy(), B.copy()
    got = fourier_features(x, B)
    z = 2 * torch.pi * torch.tensor(x) @ torch.tensor(B).T
    want = torch.cat([torch.cos(z), torch.sin(z)], dim=1).numpy()
    assert got.shape == (50, 32) and got.dtype == np.float64
    # Arguments up to ~2 pi * 40: the two sides round them differently by a few ulps (1e-13).
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(B, B0)
    # Each row lies on the unit circle pairwise: cos^2 + sin^2 = 1.
    np.testing.assert_allclose(got[:, :16] ** 2 + got[:, 16:] ** 2, 1.0, rtol=0, atol=1e-14)


def loop_learning_order(h, threshold):
    out = []
    for k in range(h.shape[1]):
        hits = [t for t in range(h.shape[0]) if h[t, k] >= threshold]
        out.append(hits[0] if hits else -1)
    return out


def test_learning_order_matches_a_loop():
    """Does learning_order give the first row reaching the threshold, -1 if none, on random data?"""
    rng = np.random.default_rng(4)
    for _ in range(50):
        h = rng.uniform(size=(int(rng.integers(1, 30)), int(rng.integers(1, 8))))
        t = float(rng.uniform(0.3, 1.0))
        got = learning_order(h, t)
        assert got.dtype.kind == "i"
        np.testing.assert_array_equal(got, loop_learning_order(h, t))


def test_learning_order_counts_equality_and_first_crossing():
    """Does a value equal to the threshold count, the first crossing win, and -1 mean never?"""
    h = np.array([[0.1, 0.5, 0.9, 0.0], [0.6, 0.2, 0.1, 0.49], [0.2, 0.7, 0.95, 0.4999]])
    np.testing.assert_array_equal(learning_order(h), [1, 0, 0, -1])
    np.testing.assert_array_equal(learning_order(h, threshold=0.95), [-1, -1, 2, -1])
