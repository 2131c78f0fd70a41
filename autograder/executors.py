"""Where a grading run's notebooks meet their kernels: the interface ``cli.ClassRun`` uses, and
the threaded executor (sandboxed kernels started from this process, one thread per notebook).

An executor grades jobs and hands back, for each, an :class:`Outcome`; ``ClassRun`` alone stores
it. The Dask executor, for grading on a cluster, is :mod:`autograder.cluster`.

The interface (both executors follow it; a context manager):

* ``grade(jobs, options)``: an iterator of ``(job, outcome)``, each as soon as it is done; it
  raises the interruption (Ctrl-C) when one reaches it;
* ``stop()``: start nothing more; return how many notebooks are being graded;
* ``finishing()``: the ``(job, outcome)`` of those, as they finish;
* ``abandon()``: give up on them (a second Ctrl-C);
* ``summary()``: a line for the run's summary, or "".
"""

import contextlib
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import NamedTuple

from autograder import scan


class Outcome(NamedTuple):
    """One notebook's grading: its report, the seconds it took, the grader's own failure."""

    report: object
    seconds: float
    failure: str | None = None  # the grader failed (not the student): a grader error row
    worker: str = ""  # where it was graded (a Dask worker's address), "" in this process


def grade_file(grade_fn, path, chapter_id, options):
    """``(report, seconds, error)``: ``grade_fn`` on one notebook; ``error`` is the grader's own
    exception as text (then ``report`` is None)."""
    start = time.perf_counter()
    try:
        report, error = grade_fn(str(path), chapter_id, **options), None
    except Exception as exc:  # noqa: BLE001 -- the grader's own failure: recorded, retried later
        report, error = None, f"{type(exc).__name__}: {exc}"
    return report, time.perf_counter() - start, error


def outcome(job, report, seconds, error, seed, worker=""):
    """The Outcome of ``job``: an error report when the grader failed; the scan's flags added."""
    from autograder.cli import error_report

    failure = None
    if error is not None:
        kind = error.split(":", 1)[0]
        report = error_report(
            job.chapter,
            seed,
            f"the grader failed on this notebook ({kind}); it will be graded again on the next run",
        )
        failure = f"{job.student}/{job.notebook.name}: {error}"
    report.flags = scan.scan_notebook(job.notebook, job.chapter)
    return Outcome(report, seconds, failure, worker)


def with_kernel_pool(grade_fn, workers, total):
    """``grade_fn`` taking its kernel from a pool started ahead (real grading only).

    Each kernel grades one notebook and is closed after it. The pool stops starting
    replacements once every remaining notebook has a kernel, so no kernel starts for nothing.
    """
    size = min(workers, total)
    if grade_fn is None or size < 1:
        return grade_fn, contextlib.nullcontext()
    from autograder import grading

    if grade_fn is not grading.grade_notebook:
        return grade_fn, contextlib.nullcontext()
    from autograder.kernel_target import KernelPool

    pool = KernelPool(size=size)
    lock = threading.Lock()
    untaken = [total]

    def grade(path, chapter_id, **options):
        with lock:
            untaken[0] -= 1
            pool.size = min(pool.size, untaken[0])  # replacements only for notebooks to come
            kernel = pool.take()
        return grading.grade_notebook(path, chapter_id, kernel=kernel, **options)

    return grade, pool


def _run_one(grade_fn, job, options):
    """Grade one notebook in a worker thread; the scan's flags are added (autograder/scan.py)."""
    report, seconds, error = grade_file(grade_fn, job.notebook, job.chapter.id, options)
    return outcome(job, report, seconds, error, options["seed"])


class ThreadedExecutor:
    """``workers`` threads in this process, each grading one notebook at a time."""

    def __init__(self, workers, grade_fn):
        self.workers, self.grade_fn = workers, grade_fn
        self._pending = {}
        self._pool = self._kernels = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with self._kernels or contextlib.nullcontext():
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def grade(self, jobs, options):
        grade_fn, self._kernels = with_kernel_pool(self.grade_fn, self.workers, len(jobs))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grade")
        for job in jobs:
            self._pending[self._pool.submit(_run_one, grade_fn, job, options)] = job
        while self._pending:
            yield from self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)

    def _collect(self, done, reraise=True):
        """Every finished grade; then the first interruption (e.g. Ctrl-C in a thread)."""
        interruption = None
        for future in done:
            job = self._pending.pop(future)
            try:
                result = future.result()
            except BaseException as exc:  # noqa: BLE001 -- re-raised below
                interruption = interruption or exc
                continue
            yield job, result
        if interruption is not None and reraise:
            raise interruption

    def stop(self):
        for future in list(self._pending):
            if future.cancel():
                del self._pending[future]
        return len(self._pending)

    def finishing(self):
        yield from self._collect(wait(self._pending).done, reraise=False)

    def abandon(self):
        self._pending.clear()

    def summary(self):
        return ""
