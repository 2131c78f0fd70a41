"""Ring all-reduce (chapter 9's reference) against gloo's all_reduce, on loopback.

    .venv/bin/python benchmarks/allreduce.py            # forks p = 2 and 4 ranks itself
    torchrun --standalone --nproc-per-node 4 benchmarks/allreduce.py   # ranks from torchrun

Prints, for float32 tensors of 1e3 to 1e7 elements, the fastest of a few repetitions of each
(ring and gloo alternated, so that both see the same load) and their ratio. A benchmark, never
a test: timings on a shared machine move by tens of percent between runs.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from solutions.distributed import ring_allreduce, run_ranks  # noqa: E402

SIZES = [int(s) for s in np.logspace(3, 7, 9)]


def reps_for(n):
    return 15 if n <= 1e5 else 5 if n <= 1e6 else 3


def measure(rank, p):
    """(ring seconds, gloo seconds) per size: minima over repetitions, slowest rank."""
    warm = torch.ones(1000)
    ring_allreduce(warm)
    dist.all_reduce(warm)
    rows = []
    for n in SIZES:
        x = torch.ones(n)
        best = [np.inf, np.inf]
        for _ in range(reps_for(n)):
            for which, fn in enumerate((ring_allreduce, dist.all_reduce)):
                dist.barrier()
                start = time.perf_counter()
                fn(x)
                best[which] = min(best[which], time.perf_counter() - start)
        rows.append(best)
    return rows


def report(p, per_rank):
    times = np.max(np.array(per_rank), axis=0)  # (sizes, 2): the slowest rank decides
    print(f"p = {p}      floats    ring ms    gloo ms  ring/gloo")
    for n, (ring, gloo) in zip(SIZES, times):
        print(f"{'':8s}{n:10.0e} {ring * 1e3:10.3f} {gloo * 1e3:10.3f} {ring / gloo:10.2f}")


def main():
    if "TORCHRUN_JOB_ID" in os.environ or "LOCAL_RANK" in os.environ:
        torch.set_num_threads(1)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", init_method="env://")
        rows = measure(dist.get_rank(), dist.get_world_size())
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, rows)
        if dist.get_rank() == 0:
            report(dist.get_world_size(), gathered)
        dist.destroy_process_group()
        return
    start = time.perf_counter()
    for p in (2, 4):
        report(p, run_ranks(measure, p, timeout=300))
    print(f"wall {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
