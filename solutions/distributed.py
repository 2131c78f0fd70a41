"""Reference implementations for chapter 9: data parallelism and the ring all-reduce."""

import numpy as np
import torch
import torch.distributed as dist


def ring_allreduce(tensor):
    """Sum ``tensor`` over the ranks of the default process group, in place, with the ring.

    ``tensor`` is a contiguous float tensor of any shape, the same shape and dtype on every
    rank. Its flattened view is cut into p chunks with ``torch.tensor_split`` (the first
    ``n % p`` one element longer). Reduce-scatter, steps k = 0, ..., p-2: rank r sends chunk
    (r-k) % p to rank r+1, receives chunk (r-k-1) % p from rank r-1 and adds it to its own;
    afterwards rank r holds the full sum of chunk (r+1) % p. All-gather, steps k = 0, ..., p-2:
    rank r sends chunk (r+1-k) % p and overwrites chunk (r-k) % p with what it receives. Every
    rank sends 2(p-1) messages and ends with a bitwise-identical result. Only point-to-point
    calls (isend / recv); p = 1 returns at once. Returns ``tensor``.

    Exercise 9.1 in book/ch09_distributed/exercises.ipynb.
    """
    p, r = dist.get_world_size(), dist.get_rank()
    if p == 1:
        return tensor
    if not tensor.is_contiguous():
        raise ValueError("ring_allreduce needs a contiguous tensor (its flat view is chunked)")
    chunks = torch.tensor_split(tensor.view(-1), p)
    right, left = (r + 1) % p, (r - 1) % p
    longest = max(c.numel() for c in chunks)
    scratch = torch.empty(longest, dtype=tensor.dtype)
    for k in range(p - 1):  # reduce-scatter
        mine = chunks[(r - k - 1) % p]
        incoming = scratch[: mine.numel()]
        request = dist.isend(chunks[(r - k) % p], right)
        dist.recv(incoming, left)
        request.wait()
        mine.add_(incoming)
    for k in range(p - 1):  # all-gather: chunk (r+1-k) % p is final here; receive the next one
        request = dist.isend(chunks[(r + 1 - k) % p], right)
        dist.recv(chunks[(r - k) % p], left)
        request.wait()
    return tensor


def simulate_ring_allreduce(buffers):
    """The ring all-reduce of ``ring_allreduce`` on p equal-shaped arrays, in one process.

    ``buffers`` is a list of p >= 1 arrays of one shape (rank r's input is ``buffers[r]``; they
    are not modified). Each step computes every rank's message first, then delivers them all,
    as the ranks do at once; the chunks and the order of the additions are those of
    ``ring_allreduce``, so in float64 the results equal it bit for bit.

    Returns ``(results, sent)``: ``results`` a list of p float64 arrays of the input shape (all
    equal), ``sent`` a list of p ints, the elements rank r sends,
    ``2n - c[(r+1) % p] - c[(r+2) % p]`` with c the chunk sizes.

    Exercise 9.2 in book/ch09_distributed/exercises.ipynb.
    """
    arrays = [np.array(b, dtype=np.float64) for b in buffers]
    p = len(arrays)
    if p == 0:
        raise ValueError("simulate_ring_allreduce needs at least one buffer")
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError("every buffer must have the same shape")
    chunks = [np.array_split(a.reshape(-1), p) for a in arrays]  # views into the copies
    sent = [0] * p
    for k in range(p - 1):  # reduce-scatter: rank r sends chunk (r-k) % p to r+1
        messages = [chunks[r][(r - k) % p].copy() for r in range(p)]
        for r in range(p):
            sent[r] += messages[r].size
            chunks[(r + 1) % p][(r - k) % p] += messages[r]
    for k in range(p - 1):  # all-gather: rank r sends chunk (r+1-k) % p, the receiver overwrites
        messages = [chunks[r][(r + 1 - k) % p].copy() for r in range(p)]
        for r in range(p):
            sent[r] += messages[r].size
            chunks[(r + 1) % p][(r + 1 - k) % p][...] = messages[r]
    return [a.reshape(shape) for a in arrays], [int(s) for s in sent]


def allreduce_time(num_bytes, p, alpha, beta):
    """The alpha-beta model of the ring all-reduce: ``2(p-1) alpha + 2(p-1)/p num_bytes beta``.

    ``alpha`` (seconds) is the latency of one message, ``beta`` (seconds per byte) the inverse
    bandwidth; the ring sends 2(p-1) messages of num_bytes / p bytes per rank, one after the
    other. Vectorized over ``num_bytes`` (a number or an array; the result has its shape).

    Exercise 9.3 in book/ch09_distributed/exercises.ipynb.
    """
    num_bytes = np.asarray(num_bytes, dtype=np.float64)
    steps = 2 * (p - 1)
    out = steps * alpha + steps / p * num_bytes * beta
    return float(out) if out.ndim == 0 else out


def fit_alpha_beta(sizes_bytes, times, p):
    """``(alpha, beta)`` minimizing the squared relative error of ``allreduce_time``:

    sum over i of ((2(p-1) alpha + 2(p-1)/p s_i beta - t_i) / t_i)^2,

    a linear least-squares problem in (alpha, beta) with the rows divided by t_i. Plain least
    squares would weigh the largest message (largest t) almost alone. Needs p >= 2 and at least
    two distinct sizes. Returns two Python floats.

    Exercise 9.4 in book/ch09_distributed/exercises.ipynb.
    """
    s = np.asarray(sizes_bytes, dtype=np.float64).reshape(-1)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if s.shape != t.shape or p < 2:
        raise ValueError("sizes_bytes and times must have the same length, and p >= 2")
    steps = 2 * (p - 1)
    A = np.stack([np.full_like(s, steps), steps / p * s], axis=1) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return float(alpha), float(beta)


def run_ranks(fn, p, *args, timeout=60.0):
    """Run ``fn(rank, p, *args)`` on p forked ranks of a gloo group on loopback; a list of the
    p return values (picklable), in rank order.

    Each rank uses one thread, ``GLOO_SOCKET_IFNAME=lo`` and a ``file://`` store in a fresh
    temporary folder (no port to pick); its process-group timeout is 10 s. A rank that raises
    makes this raise RuntimeError with its message; ranks still running after ``timeout``
    seconds are killed. Not graded: the launcher of the page, the tests and the benchmark.
    """
    import datetime
    import multiprocessing
    import os
    import shutil
    import tempfile
    import time

    ctx = multiprocessing.get_context("fork")
    folder = tempfile.mkdtemp(prefix="descent-ranks-")
    pipes = [ctx.Pipe(duplex=False) for _ in range(p)]

    def rank_main(rank, conn):
        try:
            torch.set_num_threads(1)
            os.environ["GLOO_SOCKET_IFNAME"] = "lo"
            dist.init_process_group(
                "gloo",
                init_method=f"file://{folder}/store",
                rank=rank,
                world_size=p,
                timeout=datetime.timedelta(seconds=10),
            )
            value = fn(rank, p, *args)
            dist.barrier()
            dist.destroy_process_group()
            conn.send(("ok", value))
        except BaseException as exc:  # noqa: BLE001 -- reported to the parent, then exit
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            os._exit(0)

    procs = [ctx.Process(target=rank_main, args=(r, pipes[r][1])) for r in range(p)]
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + timeout
        results = []
        for r, (recv_end, _) in enumerate(pipes):
            if not recv_end.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"rank {r} did not finish within {timeout:g} s")
            status, value = recv_end.recv()
            if status != "ok":
                raise RuntimeError(f"rank {r}: {value}")
            results.append(value)
        return results
    finally:
        for proc in procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)
