"""Chapter 6's graded questions: Fourier amplitudes, sums of sines, aliasing, features, order."""

import numpy as np

from autograder.spec import Chapter

chapter = Chapter("spectral", number=6, notebook="book/ch06_spectral/exercises.ipynb")

# The kernel's harness fails a call that changes an argument in place (the prompts say inputs
# are left unchanged). float64 throughout: an FFT or a sum of a few hundred sines of order-1 values
# is exact to ~1e-13, so 1e-10 (relative and absolute, stated in the prompts) leaves room for
# any float64 formulation and none for float32 (~1e-7).
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _grid(n):
    return np.arange(n) / n


# ---------------------------------------------------------------------------------------------
# 6.1 Fourier amplitudes

AMP = chapter.question(
    "fourier_amplitudes",
    points=2,
    functions=["fourier_amplitudes"],
    title="6.1 Fourier amplitudes",
    hint="F = np.fft.fft(values, axis=-1); the amplitude of k is 2|F_k|/N, except |F_k|/N at "
    "k = 0 and at k = N/2 (those have no mirror image N - k); raise ValueError for any k "
    "outside [0, N/2] or not an integer; do not modify values.",
)


@AMP.case(public=True)
def sine_constant_nyquist(t, rng):
    x = _grid(16)
    signals = np.stack([np.sin(2 * np.pi * 3 * x), np.full(16, 2.5), np.cos(np.pi * 16 * x)])
    t.compare("fourier_amplitudes", signals, list(range(9)), **TOL)
    t.compare("fourier_amplitudes", signals[0], [3, 0, 8], **TOL)


@AMP.case()
def random_signals(t, rng):
    for n in [7, 8, 64, 101, 200]:
        values = rng.normal(size=(3, n))
        t.compare("fourier_amplitudes", values, np.arange(n // 2 + 1), **TOL)
        pick = rng.integers(0, n // 2 + 1, size=6)  # any order, repeats allowed
        t.compare("fourier_amplitudes", values[0], pick, **TOL)
        t.compare("fourier_amplitudes", values[:1], [int(k) for k in pick], **TOL)


@AMP.case()
def sum_of_sines_read_back(t, rng):
    n = 200
    freqs = np.arange(2, 21, 2)
    phases = rng.uniform(0, 2 * np.pi, size=freqs.size)
    amps = rng.uniform(0.2, 2.0, size=freqs.size)
    y = sum(a * np.sin(2 * np.pi * k * _grid(n) + p) for k, a, p in zip(freqs, amps, phases))
    t.compare("fourier_amplitudes", y + rng.normal(scale=0.1, size=n), freqs, **TOL)


@AMP.case()
def ends_of_the_range(t, rng):
    # k = N/2 exists only for even N (factor 1); for odd N the top frequency (N-1)/2 has factor 2.
    for n in [10, 11, 2, 3]:
        x = _grid(n)
        v = 0.7 * np.cos(np.pi * n * x) + rng.normal(size=n)
        t.compare("fourier_amplitudes", v, [0, n // 2], **TOL)


@AMP.case()
def outside_the_range(t, rng):
    for n in [10, 11]:
        v = rng.normal(size=n)
        t.expect_error(ValueError, "fourier_amplitudes", v, [1, n // 2 + 1])
        t.expect_error(ValueError, "fourier_amplitudes", v, np.array([-1, 2]))
    t.expect_error(ValueError, "fourier_amplitudes", rng.normal(size=8), [1.5])


# ---------------------------------------------------------------------------------------------
# 6.2 Sum of sines

SINES = chapter.question(
    "sum_of_sines",
    points=1,
    functions=["sum_of_sines"],
    title="6.2 A sum of sines",
    hint="sum over k of A_k * sin(2 * pi * k * x + phi_k), evaluated at every entry of x; the "
    "result has the shape of x (broadcast x[..., None] against the K frequencies, sum the "
    "last axis).",
)


@SINES.case(public=True)
def two_sines(t, rng):
    t.compare("sum_of_sines", _grid(8), [1, 3], [1.0, 0.5], [0.0, np.pi / 2], **TOL)


@SINES.case()
def random_shapes(t, rng):
    for shape in [(50,), (3, 4), (1,)]:
        x = rng.uniform(size=shape)
        K = int(rng.integers(1, 12))
        freqs = rng.integers(0, 40, size=K)
        amps, phases = rng.normal(size=K), rng.uniform(0, 2 * np.pi, size=K)
        t.compare("sum_of_sines", x, freqs, amps, phases, **TOL)


@SINES.case()
def chapter_target(t, rng):
    freqs = list(range(2, 21, 2))
    phases = rng.uniform(0, 2 * np.pi, size=10)
    t.compare("sum_of_sines", _grid(200), freqs, [1.0] * 10, phases, **TOL)


# ---------------------------------------------------------------------------------------------
# 6.3 Aliasing

ALIAS = chapter.question(
    "alias_frequency",
    points=1,
    functions=["alias_frequency"],
    title="6.3 The alias of a frequency",
    hint="r = k % N (Python's % is never negative for N > 0), then min(r, N - r): the samples "
    "cannot tell k from k + N, nor r from N - r; the answer lies in [0, N/2].",
)


@ALIAS.case(public=True)
def thirty_at_thirty_two(t, rng):
    for k in [30, 5, 16]:
        t.compare("alias_frequency", k, 32)


@ALIAS.case()
def edges_of_the_fold(t, rng):
    # Both sides of N/2 and of N, even and odd N, and N = 1 (every frequency is a constant).
    for n in [32, 33]:
        for k in [n // 2 - 1, n // 2, n // 2 + 1, n - 1, n, n + 1, 2 * n, 0]:
            t.compare("alias_frequency", k, n)
    t.compare("alias_frequency", 7, 1)


@ALIAS.case()
def negative_frequencies(t, rng):
    for k, n in [(-3, 32), (-16, 32), (-30, 32), (-64, 32), (-7, 15)]:
        t.compare("alias_frequency", k, n)


@ALIAS.case()
def random_frequencies(t, rng):
    for _ in range(40):
        n = int(rng.integers(1, 120))
        k = int(rng.integers(-1000, 1000))
        t.compare("alias_frequency", k, n)


# ---------------------------------------------------------------------------------------------
# 6.4 Fourier features

FEAT = chapter.question(
    "fourier_features",
    points=2,
    functions=["fourier_features"],
    title="6.4 Fourier features",
    hint="z = 2 * pi * x @ B.T has shape (n, m); return np.concatenate([np.cos(z), np.sin(z)], "
    "axis=1): the cosine block first, shape (n, 2m); do not modify x or B.",
)


@FEAT.case(public=True)
def three_points(t, rng):
    x = np.array([[0.0], [0.25], [0.5]])
    B = np.array([[1.0], [2.0]])
    t.compare("fourier_features", x, B, **TOL)


@FEAT.case()
def random_sizes(t, rng):
    for n, d, m, sigma in [(20, 1, 64, 10.0), (7, 2, 16, 5.0), (5, 3, 1, 1.0), (1, 2, 4, 30.0)]:
        x = rng.uniform(size=(n, d))
        t.compare("fourier_features", x, rng.normal(scale=sigma, size=(m, d)), **TOL)


@FEAT.case()
def more_frequencies_than_points(t, rng):
    x = rng.uniform(size=(3, 2))
    t.compare("fourier_features", x, rng.normal(scale=2.0, size=(9, 2)), **TOL)


# ---------------------------------------------------------------------------------------------
# 6.5 Learning order

ORDER = chapter.question(
    "learning_order",
    points=2,
    functions=["learning_order"],
    title="6.5 When is each frequency learned?",
    hint="For every column, the first row t with amplitude_history[t, k] >= threshold (a value "
    "equal to the threshold counts), or -1 if there is none; np.argmax of a boolean column is "
    "0 both when row 0 is the first True and when there is no True at all.",
)


@ORDER.case(public=True)
def small_history(t, rng):
    h = np.array([[0.1, 0.5, 0.9, 0.0], [0.6, 0.2, 0.1, 0.3], [0.2, 0.7, 0.95, 0.4]])
    t.compare("learning_order", h)
    t.compare("learning_order", h, threshold=0.95)


@ORDER.case()
def equality_and_never(t, rng):
    h = rng.uniform(0.0, 0.4, size=(30, 6))
    h[rng.integers(1, 30), 0] = 0.5  # exactly the threshold
    h[rng.integers(0, 30), 1] = np.nextafter(0.5, 0.0)  # just below it: never
    h[0, 2] = 0.8  # at once, then below again
    h[rng.integers(1, 30) :, 3] = 0.9  # from some row on
    t.compare("learning_order", h)
    t.compare("learning_order", h, 0.4)


@ORDER.case()
def training_like_curves(t, rng):
    steps = np.arange(150)[:, None]
    centres = rng.uniform(5, 200, size=8)  # some beyond the horizon: never learned
    h = 1.0 / (1.0 + np.exp(-(steps - centres) / 8.0)) + rng.normal(scale=0.05, size=(150, 8))
    t.compare("learning_order", h)
    t.compare("learning_order", h, threshold=0.9)


@ORDER.case()
def random_histories(t, rng):
    for T, K in [(1, 4), (40, 1), (25, 10)]:
        h = rng.uniform(size=(T, K))
        t.compare("learning_order", h, threshold=float(rng.uniform(0.5, 1.0)))
