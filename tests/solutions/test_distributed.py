"""The chapter 9 reference against torch.distributed (gloo on loopback, forked ranks)."""

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401 -- imported before the fork: DDP imports it, for seconds per rank
import torch.distributed as dist

from solutions.distributed import (
    allreduce_time,
    fit_alpha_beta,
    ring_allreduce,
    run_ranks,
    simulate_ring_allreduce,
)


def _inputs(rank, shape, dtype, seed):
    gen = torch.Generator().manual_seed(1000 * seed + rank)
    return torch.randn(shape, generator=gen, dtype=dtype)


def _ring_and_gloo(rank, p, shape, dtype, seed):
    x = _inputs(rank, shape, dtype, seed)
    ours = x.clone()
    out = ring_allreduce(ours)
    theirs = x.clone()
    dist.all_reduce(theirs)
    return out is ours, ours.numpy(), theirs.numpy(), x.numpy()


CASES = [
    (2, (10,), torch.float32),
    (3, (10,), torch.float64),  # n not divisible by p
    (4, (2,), torch.float64),  # n < p: two chunks are empty
    (4, (5, 7), torch.float32),  # 2-D
    (3, (1000,), torch.float32),
]


@pytest.mark.parametrize(("p", "shape", "dtype"), CASES)
def test_ring_matches_gloo_all_reduce(p, shape, dtype):
    """Does the ring's in-place sum equal gloo's all_reduce on every rank, identical across
    ranks bit for bit, and return its own argument?"""
    got = run_ranks(_ring_and_gloo, p, shape, dtype, 7, timeout=30)
    inputs = np.stack([g[3] for g in got]).astype(np.float64)
    # float32: a sum of p <= 4 terms in another order differs by a few ulps of the largest.
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for returned_self, ours, theirs, _ in got:
        assert returned_self
        assert ours.shape == shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * p)
        np.testing.assert_allclose(ours, inputs.sum(axis=0), rtol=tol, atol=tol * p)
        np.testing.assert_array_equal(ours, got[0][1])


def _ring_float64(rank, p, shape, seed):
    x = _inputs(rank, shape, torch.float64, seed)
    return x.numpy().copy(), ring_allreduce(x).numpy()


@pytest.mark.parametrize(("p", "shape"), [(1, (5,)), (2, (9,)), (3, (4, 5)), (4, (3,))])
def test_simulation_equals_the_ring_bitwise(p, shape):
    """Does the one-process simulation add in the ring's order (float64 results equal to the
    last bit) and count each rank's elements as 2n - c[r+1] - c[r+2]?"""
    got = run_ranks(_ring_float64, p, shape, 3, timeout=30)
    inputs = [g[0] for g in got]
    results, sent = simulate_ring_allreduce(inputs)
    for (_, ring), sim in zip(got, results):
        np.testing.assert_array_equal(sim, ring)
    n = int(np.prod(shape))
    c = [len(a) for a in np.array_split(np.zeros(n), p)]
    assert sent == [2 * n - c[(r + 1) % p] - c[(r + 2) % p] for r in range(p)]
    assert sum(sent) == 2 * (p - 1) * n


def test_simulation_leaves_inputs_and_counts_traffic():
    """Are the inputs left as they were, and is the traffic 2(p-1)/p n per rank when p | n?"""
    rng = np.random.default_rng(0)
    bufs = [rng.normal(size=12) for _ in range(4)]
    before = [b.copy() for b in bufs]
    results, sent = simulate_ring_allreduce(bufs)
    for b, b0 in zip(bufs, before):
        np.testing.assert_array_equal(b, b0)
    assert sent == [18] * 4  # 2 * 3 / 4 * 12
    np.testing.assert_allclose(results[2], np.sum(before, axis=0), rtol=1e-14)


def test_allreduce_time_formula():
    """Is the model 2(p-1) alpha + 2(p-1)/p bytes beta, vectorized, and 0 at p = 1?"""
    sizes = np.array([0.0, 4e3, 4e6])
    got = allreduce_time(sizes, 4, 50e-6, 1e-9)
    np.testing.assert_allclose(got, 6 * 50e-6 + 1.5 * sizes * 1e-9, rtol=1e-15)
    assert allreduce_time(1e6, 1, 1.0, 1.0) == 0.0
    assert isinstance(allreduce_time(8, 2, 1.0, 1.0), float)


def test_fit_recovers_the_model_and_weighs_errors_relatively():
    """Does the fit recover alpha and beta from exact model times, and on noisy times find the
    minimum of the squared relative errors that scipy's least_squares finds (below that of
    ordinary least squares)?"""
    from scipy.optimize import least_squares

    sizes = np.logspace(3, 7, 9) * 4
    exact = allreduce_time(sizes, 2, 60e-6, 0.9e-9)
    alpha, beta = fit_alpha_beta(sizes, exact, 2)
    assert alpha == pytest.approx(60e-6, rel=1e-10) and beta == pytest.approx(0.9e-9, rel=1e-10)
    rng = np.random.default_rng(1)
    noisy = exact * np.exp(0.3 * rng.normal(size=sizes.size))
    a, b = fit_alpha_beta(sizes, noisy, 2)
    A = np.stack([2 * np.ones_like(sizes), sizes], axis=1)
    a_ols, b_ols = np.linalg.lstsq(A, noisy, rcond=None)[0]
    rel = np.abs(allreduce_time(sizes, 2, a, b) / noisy - 1)
    rel_ols = np.abs(allreduce_time(sizes, 2, a_ols, b_ols) / noisy - 1)
    assert np.sum(rel**2) <= np.sum(rel_ols**2)
    # Scaled unknowns (alpha in 10 us, beta in ns/B) so that the solver's tolerances mean something.
    res = least_squares(
        lambda v: allreduce_time(sizes, 2, v[0] * 1e-5, v[1] * 1e-9) / noisy - 1,
        [1.0, 1.0],
        xtol=1e-14,
        ftol=1e-14,
        gtol=1e-14,
    )
    assert a == pytest.approx(res.x[0] * 1e-5, rel=1e-6)
    assert b == pytest.approx(res.x[1] * 1e-9, rel=1e-6)


def _train(rank, p, steps, mode):
    """50 SGD steps of a float64 linear-tanh model on the rank's shard of a fixed batch (p = 1:
    the full batch); ``mode`` "ddp" wraps it in DistributedDataParallel, "ring" averages one
    flattened gradient buffer with ring_allreduce."""
    torch.manual_seed(0)
    X = torch.randn(48, 5, dtype=torch.float64)
    y = torch.randn(48, 1, dtype=torch.float64)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).double()
    net = torch.nn.parallel.DistributedDataParallel(model) if mode == "ddp" else model
    Xs, ys = X.chunk(p)[rank], y.chunk(p)[rank]
    for _ in range(steps):
        model.zero_grad()
        torch.nn.functional.mse_loss(net(Xs), ys).backward()
        if mode == "ring":
            flat = torch.cat([q.grad.reshape(-1) for q in model.parameters()])
            ring_allreduce(flat).div_(p)
            offset = 0
            for q in model.parameters():
                q.grad.copy_(flat[offset : offset + q.numel()].view_as(q))
                offset += q.numel()
        with torch.no_grad():  # plain SGD by hand: torch.optim's first step imports for seconds
            for q in model.parameters():
                q -= 0.1 * q.grad
    return [q.detach().numpy().copy() for q in model.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("p", [2, 4])
@pytest.mark.parametrize("mode", ["ddp", "ring"])
def test_data_parallel_equals_full_batch(p, mode):
    """Do DDP and a ring-averaged flat gradient on p equal shards train the same model as one
    process on the full batch (float64, to rounding), with replicas bitwise equal?"""
    (single,) = run_ranks(_train, 1, 50, "none", timeout=60)
    replicas = run_ranks(_train, p, 50, mode, timeout=60)
    for replica in replicas:
        for a, b, c in zip(replica, single, replicas[0]):
            # 50 steps of float64 rounding on O(1) values: ~1e-15, far inside 1e-12.
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(a, c)
