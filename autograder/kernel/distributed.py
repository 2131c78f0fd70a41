"""Kernel-side driver for chapter 9: runs the notebook's ``ring_allreduce`` on forked ranks.

``ring_on_ranks`` forks p processes from the kernel (fork, not spawn: a notebook-defined
function exists only in this process's ``__main__``), joins them into a gloo group on loopback
through a ``file://`` store in a fresh temporary folder, and calls ``ring_allreduce`` on each
rank's tensor. A profile hook on every rank records the outermost ``send``/``isend`` calls of
``torch.distributed`` (``send`` calls ``isend`` inside: one message, not two) with their sizes,
and any collective. Everything returned is plain data; the expected sum is the grader's own.
"""

import datetime
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist

PG_TIMEOUT = 10.0  # seconds: gloo's own timeout on every rank (a deadlocked send raises then)
DEADLINE = 8.0  # seconds the parent waits for all ranks before it kills them
DTYPES = {"float64": torch.float64, "float32": torch.float32}
C10D = "torch.distributed.distributed_c10d"
SENDS = frozenset({"send", "isend"})
# Calls that are not point to point (barrier is allowed: it moves no data of the tensor).
COLLECTIVES = frozenset(
    "all_reduce all_reduce_coalesced reduce broadcast all_gather all_gather_into_tensor "
    "all_gather_object reduce_scatter reduce_scatter_tensor all_to_all all_to_all_single "
    "gather scatter batch_isend_irecv broadcast_object_list".split()
)
OTHER_COLLECTIVE_MODULES = ("torch.distributed._functional_collectives", "torch.distributed.nn")


class _Traffic:
    """Profile hook: sizes of the outermost send/isend calls and names of collectives."""

    def __init__(self):
        self.sizes, self.collectives, self.inside = [], [], None

    def __call__(self, frame, event, arg):
        if self.inside is not None:
            if event == "return" and frame is self.inside:
                self.inside = None
            return
        if event != "call":
            return
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str):
            return
        name = frame.f_code.co_name
        if module == C10D and name in SENDS:
            tensor = frame.f_locals.get("tensor")
            self.sizes.append(int(tensor.numel()) if isinstance(tensor, torch.Tensor) else -1)
            self.inside = frame
        elif (module == C10D and name in COLLECTIVES) or module.startswith(
            OTHER_COLLECTIVE_MODULES
        ):
            self.collectives.append(f"{module}.{name}")
            self.inside = frame


def _rank_main(ns, rank, p, folder, array, dtype, conn):
    """One rank: join the group, run the notebook's ring, send back plain data, exit."""
    try:
        torch.set_num_threads(1)  # a forked rank with several OpenMP threads can hang
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
        dist.init_process_group(
            "gloo",
            init_method=f"file://{folder}/store",
            rank=rank,
            world_size=p,
            timeout=datetime.timedelta(seconds=PG_TIMEOUT),
        )
        tensor = torch.tensor(array, dtype=dtype)
        traffic = _Traffic()
        sys.setprofile(traffic)
        try:
            out = ns["ring_allreduce"](tensor)
        finally:
            sys.setprofile(None)
        reply = {
            "returned_self": out is tensor,
            "values": tensor.detach().numpy().copy(),
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "messages": traffic.sizes,
            "collectives": traffic.collectives,
        }
        conn.send(("ok", reply))
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 -- the reply is sent; nothing left to report
            pass
    except BaseException as exc:  # noqa: BLE001 -- the student's error, reported as data
        mro = [c.__name__ for c in type(exc).__mro__]
        conn.send(("error", {"type": type(exc).__name__, "mro": mro, "message": str(exc)[:400]}))
    finally:
        os._exit(0)


def _raise_like(rank, info):
    """Re-raise a rank's error as the built-in exception class it derives from."""
    import builtins

    for name in info["mro"]:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            break
    else:
        cls = RuntimeError
    try:
        exc = cls(f"on rank {rank}: {info['type']}: {info['message']}")
    except Exception:  # noqa: BLE001 -- a built-in class that needs other arguments
        exc = RuntimeError(f"on rank {rank}: {info['type']}: {info['message']}")
    raise exc


def ring_on_ranks(ns, data, dtype):
    """Run the notebook's ``ring_allreduce`` on ``len(data)`` forked ranks, rank r holding
    ``data[r]`` as a tensor of ``dtype`` ("float32" or "float64").

    Returns ``{"timed_out": bool, "ranks": [...]}`` with, per rank, ``returned_self`` (the
    call returned its argument), ``values`` (the argument after the call), ``dtype``,
    ``messages`` (element counts of its outermost send/isend calls, in order) and
    ``collectives`` (qualified names of collective calls). ``timed_out``: some rank had not
    answered within DEADLINE seconds (all ranks are then killed; ``ranks`` is empty). An
    exception on a rank is raised here as the built-in class it derives from.
    """
    arrays = [np.asarray(a) for a in data]
    p = len(arrays)
    if not 1 <= p <= 8:
        raise ValueError("ring_on_ranks runs 1 to 8 ranks")
    torch_dtype = DTYPES[dtype]
    ctx = multiprocessing.get_context("fork")
    folder = tempfile.mkdtemp(prefix="descent-ring-")
    pipes = [ctx.Pipe(duplex=False) for _ in range(p)]
    procs = [
        ctx.Process(target=_rank_main, args=(ns, r, p, folder, arrays[r], torch_dtype, pipes[r][1]))
        for r in range(p)
    ]
    replies = [None] * p
    try:
        for proc in procs:
            proc.start()
        for _, send_end in pipes:
            send_end.close()  # only the ranks write: a rank that dies gives EOF, not a hang
        deadline = time.monotonic() + DEADLINE
        for r, (recv_end, _) in enumerate(pipes):
            try:
                ready = recv_end.poll(max(0.0, deadline - time.monotonic()))
                replies[r] = recv_end.recv() if ready else None
            except EOFError:
                replies[r] = (
                    "error",
                    {
                        "type": "RuntimeError",
                        "mro": ["RuntimeError"],
                        "message": "the rank's process died",
                    },
                )
            if replies[r] is None:
                return {"timed_out": True, "ranks": []}
    finally:
        for proc in procs:
            proc.join(timeout=1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for recv_end, _ in pipes:
            recv_end.close()
        shutil.rmtree(folder, ignore_errors=True)
    for r, (status, reply) in enumerate(replies):
        if status != "ok":
            _raise_like(r, reply)
    return {"timed_out": False, "ranks": [reply for _, reply in replies]}
