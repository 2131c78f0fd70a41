"""Chapter 9's graded questions: the ring all-reduce on ranks, its simulation, the alpha-beta
model and its fit."""

import numpy as np

from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("distributed", number=9, notebook="book/ch09_distributed/exercises.ipynb")

# A sum of p <= 4 terms in the ring's order or any other: a few ulps of the largest term.
# The prompt promises 1e-5 (float32) and 1e-12 (float64), relative to the largest input.
RING_TOL = {"float32": 1e-5, "float64": 1e-12}


# ---------------------------------------------------------------------------------------------
# 9.1 The ring all-reduce on p ranks.

RING = chapter.question(
    "ring_allreduce",
    points=4,
    functions=["ring_allreduce"],
    title="9.1 The ring all-reduce",
    hint="chunks = torch.tensor_split(tensor.view(-1), p). Reduce-scatter, k = 0..p-2: isend "
    "chunk (r-k)%p to r+1, recv chunk (r-k-1)%p from r-1 into a scratch buffer and add it. "
    "All-gather, k = 0..p-2: isend chunk (r+1-k)%p, recv straight into chunk (r-k)%p. Wait on "
    "each isend; a blocking send on every rank deadlocks. Return the tensor itself.",
)


def check_ring(t, rng, p, shape, dtype):
    """Run the notebook's ring on p ranks with random inputs and check values, identity across
    ranks, in-place, messages and the absence of collectives."""
    data = [rng.normal(size=shape).astype(dtype) for _ in range(p)]
    got = t.student("driver:ring_on_ranks", data, dtype)
    if not isinstance(got, dict) or not isinstance(got.get("ranks"), list):
        raise AssertionError("ring_allreduce: the run could not be checked")
    what = f"ring_allreduce on p={p}, shape {shape}, {dtype}"
    if got.get("timed_out"):
        raise AssertionError(
            f"{what}: the ranks did not finish within 8 s (a deadlock? a blocking send waits "
            "for its matching recv: use isend and wait on it after the recv)"
        )
    ranks = got["ranks"]
    if len(ranks) != p:
        raise AssertionError(f"{what}: expected {p} ranks to answer, got {len(ranks)}")
    for r, rank in enumerate(ranks):
        if rank.get("collectives"):
            name = str(rank["collectives"][0]).rsplit(".", 1)[-1][:40]
            raise AssertionError(
                f"{what}: rank {r} called the collective {name}; the exercise asks you to "
                "write it yourself with send/recv/isend/irecv only (a shortcut)"
            )
    n = int(np.prod(shape))
    sent = [[int(s) for s in rank.get("messages", [])] for rank in ranks]
    total = sum(sum(sizes) for sizes in sent)
    if total != 2 * (p - 1) * n:
        raise AssertionError(
            f"{what}: the ranks sent {total} elements in all; the ring sends 2(p-1)n = "
            f"{2 * (p - 1) * n}: (p-1)n in each half"
        )
    allowed = {n // p, -(-n // p)}
    for r, sizes in enumerate(sent):
        if p > 1 and len(sizes) != 2 * (p - 1):
            raise AssertionError(
                f"{what}: rank {r} sent {len(sizes)} message(s); the ring sends 2(p-1) = "
                f"{2 * (p - 1)}, one chunk per step"
            )
        if p == 1 and sizes:
            raise AssertionError(f"{what}: with one rank there is nothing to send")
        wrong = [s for s in sizes if s not in allowed]
        if wrong:
            raise AssertionError(
                f"{what}: rank {r} sent a message of {wrong[0]} elements; each message is one "
                f"chunk of n/p, {' or '.join(str(a) for a in sorted(allowed))} elements here"
            )

    want = np.sum(np.stack(data).astype(np.float64), axis=0)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    tol = RING_TOL[dtype]
    first = None
    for r, rank in enumerate(ranks):
        if rank.get("returned_self") is not True:
            raise AssertionError(f"{what}: rank {r} did not return the tensor it was given")
        values = np.asarray(rank.get("values"))
        if rank.get("dtype") != dtype or values.shape != tuple(shape):
            raise AssertionError(
                f"{what}: rank {r}'s tensor became {rank.get('dtype')} {values.shape}; keep its "
                "dtype and shape"
            )
        assert_close(values, want, rtol=tol, atol=tol * scale, what=f"{what}: rank {r}'s sum")
        if first is None:
            first = values
        elif not np.array_equal(values, first):
            raise AssertionError(
                f"{what}: rank {r}'s result differs from rank 0's; after the all-gather every "
                "rank holds the same bits"
            )


@RING.case(public=True)
def ring_three_ranks_uneven(t, rng):
    check_ring(t, rng, 3, (10,), "float64")  # 10 = 4 + 3 + 3; p >= 3: traffic tells rings apart


@RING.case(public=True)
def ring_two_ranks(t, rng):
    check_ring(t, rng, 2, (10,), "float32")


@RING.case()
def ring_four_ranks_2d(t, rng):
    check_ring(t, rng, 4, (3, int(rng.integers(4, 9))), "float32")


@RING.case()
def ring_fewer_elements_than_ranks(t, rng):
    check_ring(t, rng, 4, (int(rng.integers(1, 4)),), "float64")  # some chunks are empty


@RING.case()
def ring_one_rank_and_three_float32(t, rng):
    check_ring(t, rng, 1, (5,), "float32")
    check_ring(t, rng, 3, (int(rng.integers(20, 40)),), "float32")


# ---------------------------------------------------------------------------------------------
# 9.2 The ring, simulated in one process.

SIMULATE = chapter.question(
    "simulate_ring_allreduce",
    points=2,
    functions=["simulate_ring_allreduce"],
    title="9.2 The ring, simulated",
    hint="Copy the buffers to float64 and split each flat copy with np.array_split(a, p). At "
    "each step build all p messages first (copies), then deliver them: add in the "
    "reduce-scatter, overwrite in the all-gather. Count the elements each rank sends: "
    "2n - c[(r+1)%p] - c[(r+2)%p].",
)


def check_simulation(t, buffers):
    want = t.reference("simulate_ring_allreduce", buffers)
    got = t.student("simulate_ring_allreduce", buffers)
    if not (isinstance(got, list | tuple) and len(got) == 2):
        raise AssertionError("simulate_ring_allreduce: return (results, sent), a pair")
    results, sent = got
    if not isinstance(results, list | tuple) or len(results) != len(buffers):
        raise AssertionError(f"simulate_ring_allreduce: expected {len(buffers)} result arrays")
    # The order of additions is the ring's: float64 agrees to the last bits; 1e-12 relative.
    scale = max(1.0, float(np.max(np.abs(want[0])))) if np.size(want[0]) else 1.0
    names = [f"results[{r}]" for r in range(len(buffers))]
    assert_close(list(results), want[0], rtol=1e-12, atol=1e-12 * scale, names=names)
    assert_close(list(sent), want[1], rtol=0, atol=0, what="sent (elements per rank)")


@SIMULATE.case(public=True)
def simulate_three_ranks(t, rng):
    check_simulation(t, [rng.normal(size=7) for _ in range(3)])


@SIMULATE.case()
def simulate_random(t, rng):
    for p, shape in [(2, (6,)), (4, (3, 5)), (5, (13,)), (1, (4,))]:
        check_simulation(t, [rng.normal(size=shape) for _ in range(p)])


@SIMULATE.case()
def simulate_fewer_elements_than_ranks(t, rng):
    check_simulation(t, [rng.normal(size=2) for _ in range(5)])
    check_simulation(t, [rng.integers(-9, 9, size=(2, 2)).astype(np.float32) for _ in range(3)])


# ---------------------------------------------------------------------------------------------
# 9.3 The alpha-beta model.

TIME = chapter.question(
    "allreduce_time",
    points=1,
    functions=["allreduce_time"],
    title="9.3 The alpha-beta model",
    hint="2 * (p - 1) * alpha + 2 * (p - 1) / p * num_bytes * beta, with num_bytes a number or "
    "an array (np.asarray).",
)


@TIME.case(public=True)
def time_scalar(t, rng):
    t.compare("allreduce_time", 4e6, 4, 50e-6, 1e-9, rtol=1e-12, atol=0)


@TIME.case()
def time_vectorized(t, rng):
    sizes = 10.0 ** rng.uniform(2, 8, size=7)
    for p in (1, 2, int(rng.integers(3, 65))):
        alpha, beta = 10.0 ** rng.uniform(-6, -4), 10.0 ** rng.uniform(-10, -8)
        t.compare("allreduce_time", sizes, p, alpha, beta, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# 9.4 Fitting alpha and beta.

FIT = chapter.question(
    "fit_alpha_beta",
    points=2,
    functions=["fit_alpha_beta"],
    title="9.4 Fitting alpha and beta",
    hint="Weighted linear least squares: rows [2(p-1), 2(p-1)/p * s_i] divided by t_i, target "
    "1 (np.linalg.lstsq). This minimizes the squared relative errors, not the absolute ones.",
)


def fit_data(rng, p, noise):
    sizes = np.logspace(3, 7, 9) * 4 * rng.uniform(0.8, 1.25)
    alpha, beta = 10.0 ** rng.uniform(-5, -4), 10.0 ** rng.uniform(-9.5, -8.5)
    steps = 2 * (p - 1)
    times = (steps * alpha + steps / p * sizes * beta) * np.exp(noise * rng.normal(size=9))
    return sizes, times


@FIT.case(public=True)
def fit_noisy_two_ranks(t, rng):
    # The least-squares optimum is well conditioned: 1e-8 relative covers any solver.
    t.compare("fit_alpha_beta", *fit_data(rng, 2, 0.3), 2, rtol=1e-8, atol=0)


@FIT.case()
def fit_exact_and_noisy(t, rng):
    t.compare("fit_alpha_beta", *fit_data(rng, 4, 0.0), 4, rtol=1e-8, atol=0)
    for p in (2, 3, 8):
        t.compare("fit_alpha_beta", *fit_data(rng, p, 0.4), p, rtol=1e-8, atol=0)
