"""Grading on a Dask cluster: ``python -m autograder grade ... --cluster ADDRESS | local:N``.

The client (this process) keeps everything a run guarantees on one machine: it alone writes the
gradebook, one transaction per notebook (``cli.ClassRun``). Each task carries one notebook's
bytes to a worker, which grades it in a sandboxed kernel of its own (a kernel pool per worker
process, one kernel started ahead) and sends back the plain-data report. No shared file system
is needed.

* Handshake: before the first task, every worker reports its Descent version and the content
  hash of each chapter's grading code (``gradebook.grading_code_version``); any difference from
  the client's refuses the run, naming the worker and what differs. Every task checks it again on
  its worker, so a worker that joins later cannot slip in.
* At most one task per worker thread is in flight, so that Ctrl-C finds only notebooks that
  are actually being graded: the first Ctrl-C submits nothing more and waits for those, the
  second abandons them (their results, if any come, are dropped).
* A task lost with its worker (killed, out of memory, disconnected) is submitted again, at most
  ``RETRIES`` times; after that the notebook is a grader-error row, graded again by a re-run. A
  kernel that crashes is not a lost worker: it is the student's "crashed" outcome, in the report.
* Nothing here is imported unless ``--cluster`` is given (Dask is imported only by this module).
"""

import os
import signal
import tempfile
import threading
import tomllib
from pathlib import Path

from autograder import gradebook as gb
from autograder.executors import grade_file, outcome
from autograder.runner import QuestionResult, Report

RETRIES = 2  # submissions again of a task whose worker was lost
REPO = Path(__file__).resolve().parents[1]


def descent_version():
    """The version in the repository's pyproject.toml ("unknown" without one)."""
    try:
        with open(REPO / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def identity(chapter_ids):
    """What must be equal on the client and on each worker: the version and the grading code."""
    return {
        "version": descent_version(),
        "chapters": {cid: gb.grading_code_version(cid) for cid in chapter_ids},
    }


def difference(worker, theirs, ours):
    """A sentence naming how a worker's identity differs from the client's ("" if it doesn't)."""
    if not isinstance(theirs, dict):
        return f"worker {worker} did not say which grader it runs ({theirs!r:.200})"
    if theirs.get("version") != ours["version"]:
        return (
            f"worker {worker} runs Descent {theirs.get('version')!s:.50}, this client runs "
            f"{ours['version']}"
        )
    chapters = theirs.get("chapters") or {}
    changed = sorted(c for c in ours["chapters"] if chapters.get(c) != ours["chapters"][c])
    if changed:
        return (
            f"worker {worker} has different grading code for chapter(s) {', '.join(changed)} "
            "(question files, reference solutions, kernel drivers or the grader itself)"
        )
    return ""


def refusal(differences):
    return (
        "the cluster's workers must run the same grading code as this client; refusing to "
        f"grade: {'; '.join(differences)}. Install the same commit of the repository on every "
        "worker and restart the workers"
    )


# -- on the worker ---------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool = []  # this worker process's KernelPool, started on its first real notebook


def dask_setup(worker=None):
    """Worker preload (``local:N``): a Ctrl-C in the terminal reaches the client, not workers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _kernel_grade(grade_fn):
    """``grade_fn``; for real grading, with a kernel from this worker's pool (one ahead)."""
    from autograder import grading

    if grade_fn is not grading.grade_notebook:
        return grade_fn
    from autograder.kernel_target import KernelPool

    with _pool_lock:
        if not _pool:
            _pool.append(KernelPool(size=1))
        pool = _pool[0]

    def grade(path, chapter_id, **options):
        return grading.grade_notebook(path, chapter_id, kernel=pool.take(), **options)

    return grade


def close_pool():
    """Close this worker's kernel pool (the run is over; the kernel started ahead is not used)."""
    with _pool_lock:
        pools, _pool[:] = list(_pool), []
    for pool in pools:
        pool.close()
    return len(pools)


def grade_task(name, data, chapter_id, options, grade_fn, expected):
    """One notebook on a worker: its bytes written to a private folder, graded, plain data back."""
    from distributed import get_worker

    worker = get_worker().address
    mine = identity(expected["chapters"])
    differs = difference(worker, mine, expected)
    if differs:
        return {"refused": differs, "worker": worker}
    with tempfile.TemporaryDirectory(prefix="descent-grade-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        report, seconds, error = grade_file(_kernel_grade(grade_fn), path, chapter_id, options)
    return {
        "report": None if report is None else report.to_dict(),
        "seconds": seconds,
        "error": error,
        "worker": worker,
    }


# -- on the client ---------------------------------------------------------------------------


def report_from_dict(data):
    """A runner.Report from a worker's plain data (the gradebook cleans it again when stored)."""
    results = [QuestionResult(**r) for r in data["results"]]
    report = Report(data["chapter"], data["seed"], results, dict(data["environment"]))
    for key in ("isolation", "error", "cells", "execution_time", "require_gpu"):
        setattr(report, key, data[key])
    return report


def start(address, fail):
    """``(client, cluster)``: connect to ``address``, or start ``local:N`` on 127.0.0.1."""
    from distributed import Client, LocalCluster

    cluster = None
    if address.startswith("local:"):
        n = address.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise fail(f"--cluster {address}: write local:N with N a number of workers, 1 or more")
        cluster = LocalCluster(
            n_workers=int(n),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # nothing listens beyond this machine
            dashboard_address=None,  # no dashboard; its HTTP server on a free loopback port
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            worker_dashboard_address=None,
            preload=["autograder.cluster"],
            silence_logs=50,
        )
        address = cluster.scheduler_address
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise fail(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    return client, cluster


class DaskExecutor:
    """Notebooks graded on Dask workers; ``cli.ClassRun`` stores what comes back."""

    def __init__(self, address, grade_fn, chapter_ids, fail):
        self.address, self.grade_fn, self.fail = address, grade_fn, fail
        self.expected = identity(chapter_ids)
        self.client = self.cluster = None
        self.running = {}  # future -> (job, attempt)
        self.queue = []
        self.workers = set()  # addresses of the workers that graded a notebook
        self.options = {}

    def __enter__(self):
        self.client, self.cluster = start(self.address, self.fail)
        try:
            self.client.wait_for_workers(1, timeout=120)
            found = self.client.run(identity, list(self.expected["chapters"]))
        except Exception as exc:
            self.__exit__()
            raise self.fail(f"the cluster at {self.address} has no usable worker: {exc}") from None
        differences = [
            d for w, i in sorted(found.items()) if (d := difference(w, i, self.expected))
        ]
        if differences:
            self.__exit__()
            raise self.fail(refusal(differences))
        return self

    def __exit__(self, *exc):
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            if self.running:
                client.cancel(list(self.running))
            try:
                client.run(close_pool)
            except Exception:  # noqa: BLE001, S110 -- a worker gone: its kernels went with it
                pass
            client.close()
        if cluster is not None:
            cluster.close()

    def _submit(self, job, attempt):
        data = job.notebook.read_bytes()
        future = self.client.submit(
            grade_task,
            job.notebook.name,
            data,
            job.chapter.id,
            self.options,
            self.grade_fn,
            self.expected,
            key=f"grade-{job.student}-{job.chapter.id}-{attempt}-{os.urandom(4).hex()}",
            pure=False,
        )
        self.running[future] = (job, attempt)

    def _fill(self):
        """One task per worker thread (at least one: the scheduler holds it until one joins)."""
        slots = max(1, sum(self.client.nthreads().values()))
        while self.queue and len(self.running) < slots:
            self._submit(self.queue.pop(0), 0)

    def _settle(self, future):
        """``(job, outcome)`` of a finished task, or None when it was submitted again."""
        job, attempt = self.running.pop(future)
        try:
            answer = future.result()
        except Exception as exc:  # noqa: BLE001 -- the worker was lost (or the task cancelled)
            if attempt < RETRIES:
                self._submit(job, attempt + 1)
                return None
            error = f"lost {attempt + 1} worker(s) grading it ({type(exc).__name__}: {exc})"
            return job, outcome(job, None, 0.0, error, self.options["seed"])
        if "refused" in answer:
            raise self.fail(refusal([answer["refused"]]))
        self.workers.add(answer["worker"])
        report, error = None, answer["error"]
        if answer["report"] is not None:
            try:
                report = report_from_dict(answer["report"])
            except (KeyError, TypeError, ValueError) as exc:
                error = f"unreadable report from {answer['worker']}: {type(exc).__name__}"
        return job, outcome(
            job, report, answer["seconds"], error, self.options["seed"], answer["worker"]
        )

    def _wait(self, refill):
        from distributed import wait

        while self.running:
            done = wait(list(self.running), return_when="FIRST_COMPLETED").done
            for future in done:
                settled = self._settle(future)
                if refill:
                    self._fill()
                if settled is not None:
                    yield settled

    def grade(self, jobs, options):
        self.options = dict(options)
        self.queue = list(jobs)
        self._fill()
        yield from self._wait(refill=True)

    def stop(self):
        self.queue = []
        return len(self.running)

    def finishing(self):
        yield from self._wait(refill=False)

    def abandon(self):
        if self.client is not None and self.running:
            self.client.cancel(list(self.running))
        self.running = {}

    def summary(self):
        if self.cluster is not None or self.address.startswith("local:"):
            where = f"a local Dask cluster ({self.address})"
        else:
            where = f"the Dask scheduler at {self.address}"
        return f"Graded on {len(self.workers)} Dask worker(s) of {where}."
