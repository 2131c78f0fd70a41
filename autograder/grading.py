"""Grade one submitted notebook in a fresh sandboxed kernel: run its cells, then its questions.

The pipeline, in order (each stage needs the one before it):

1. read the notebook defensively (missing, empty, malformed: a report, never an exception);
   no rule on the number of cells or their outputs costs honest work: every code cell is run
   (empty ones need no kernel), and a single cell too long to be code is skipped and said so;
2. start (or take from a :class:`~autograder.kernel_target.KernelPool`) a sandboxed kernel;
3. run the code cells in order, except the ``check`` cell; a cell that errors is recorded and
   the run goes on; a cell that times out, runs out of memory or kills the kernel is skipped:
   the kernel is restarted and the good cells so far are run again;
4. inject the grading harness and grade every question through the kernel transport
   (``runner.grade_target``): every comparison and score is computed here, in the grader.

One :class:`~autograder.kernel_target.Budget` per notebook bounds stages 2 to 4 together: the
first run of the cells may use ``Limits.total_timeout`` (900 s), and everything (cells, replays
after restarts, kernel starts, question calls) at most :data:`BUDGET_FACTOR` times that, with
at most :data:`~autograder.kernel_target.MAX_RESTARTS` kernel restarts. Whatever the budget no
longer allows is the student's outcome ("not run: ..."), never the grader's failure.
"""

import ast
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from autograder import gradebook as gb
from autograder import notebook as nbtools
from autograder import runner, spec
from autograder.kernel_target import Budget, BudgetSpent, Kernel, KernelTarget
from autograder.questions import get_chapter
from autograder.sandbox import Sandbox

# The file may hold large outputs (figures) the grader never reads; only sources are kept.
MAX_NOTEBOOK_BYTES = 256 * 2**20
MAX_CELL_CHARS = 1_000_000  # a longer cell is not run (said so); the others still are
BUDGET_FACTOR = 2  # a notebook's whole budget, in units of Limits.total_timeout
PREAMBLE = """
import random as _r, numpy as _np, torch as _t
_r.seed({seed}); _np.random.seed({seed}); _t.manual_seed({seed})
_t.backends.cudnn.deterministic = True
_t.backends.cudnn.benchmark = False
_t.use_deterministic_algorithms(True, warn_only=True)
del _r, _np, _t
"""  # run before the student's cells, with spec.KERNEL_SEED (never the run seed: the kernel
# holds nothing from which hidden inputs follow); their own seeds (set later) stand. warn_only:
# an op with no deterministic version warns instead of raising (warnings never cost points);
# cuBLAS's determinism comes from CUBLAS_WORKSPACE_CONFIG in the kernel's environment.


class NotebookError(ValueError):
    """The submission cannot be run as a notebook (the message says why, for the student)."""


@dataclass
class Cell:
    index: int  # position among all the notebook's cells (0-based)
    source: str
    names: list  # top-level functions and classes it defines
    status: str = "not run"  # ok, error, timeout, out of memory, died, skipped, not run
    message: str = ""
    seconds: float = 0.0

    @property
    def runnable(self):
        """Does the kernel run it? (Not the check cell, an empty cell or one that cannot be.)"""
        return self.status == "not run" and bool(self.source.strip())

    def record(self):
        return {
            "index": self.index,
            "status": self.status,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "defines": list(self.names),
        }


def chapter_from_path(path):
    """``ch01_descent.ipynb`` or ``ch01_descent/exercises.ipynb`` -> ``"descent"`` (or None)."""
    path = Path(path)
    for name in (path.stem, path.parent.name):
        match = re.fullmatch(r"ch\d+_([a-z0-9_]+)", name)
        if match:
            return match.group(1)
    return None


def read_code_cells(path):
    """The notebook's code cells as :class:`Cell` objects; NotebookError if it is not usable."""
    path = Path(path)
    try:
        if not path.is_file():
            raise NotebookError(f"notebook not found: {path.name}")
        size = path.stat().st_size
        if size == 0:
            raise NotebookError("the notebook file is empty")
        if size > MAX_NOTEBOOK_BYTES:
            raise NotebookError(f"the notebook file is too large ({size} bytes)")
        text = path.read_bytes().decode("utf-8")
        doc = json.loads(text)
    except NotebookError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotebookError(f"the notebook is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise NotebookError("the file is not a Jupyter notebook (no list of cells)")
    cells = []
    for index, raw in enumerate(doc["cells"]):
        if not isinstance(raw, dict) or raw.get("cell_type") != "code":
            continue
        metadata = raw.get("metadata")
        tags = metadata.get("tags") if isinstance(metadata, dict) else None
        raw = {
            "cell_type": "code",
            "metadata": {
                "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            },
        }
        source = doc["cells"][index].get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookError(f"cell {index} has a malformed source")
        if len(source) > MAX_CELL_CHARS:
            cell = Cell(index, "", [], "skipped")
            cell.message = f"not run: {len(source)} characters, more than {MAX_CELL_CHARS:,}"
            cells.append(cell)
            continue
        cell = Cell(index, source, nbtools.defined_names(source))
        if not _sendable(source):
            cell.status = "error"
            cell.message = "not run: it holds characters that are not valid text (a lone surrogate)"
            cell.names = []
        elif nbtools.is_check(raw) or calls_check(source):
            cell.status, cell.message = "skipped", "check() is not run by the grader"
        elif not source.strip():
            cell.status = "ok"  # nothing to run
        cells.append(cell)
    return cells


def _sendable(source):
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def calls_check(source):
    """Does the cell import the autograder or call ``check(...)``? (Not run when grading.)"""
    tree = nbtools.parse(source)
    if tree is None:
        return False
    try:
        nodes = list(ast.walk(tree))
    except (RecursionError, MemoryError):
        return False
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "autograder":
            return True
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "autograder" for a in node.names
        ):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "check":
                return True
    return False


class CellRunner:
    """Runs a submission's cells in a kernel and can bring a restarted kernel back to that state.

    ``total_timeout`` bounds the first run of the cells; ``kernel.budget`` (if set) bounds it
    and everything after it, replays included.
    """

    def __init__(self, kernel, cells, seed, cell_timeout, total_timeout):
        self.kernel = kernel
        self.cells = cells
        self.seed = seed  # the run seed: never sent to the kernel (see spec.KERNEL_SEED)
        self.cell_timeout = cell_timeout
        self.total_timeout = total_timeout
        self.stopped = ""  # why the kernel could not be brought back (the budget ran out)
        self._ran = [c for c in cells if c.runnable]  # what run_all ran; replays run the good ones

    def preamble(self):
        self.kernel.execute(PREAMBLE.format(seed=spec.KERNEL_SEED), self.cell_timeout)

    def _spent(self):
        budget = self.kernel.budget
        return budget.why() if budget is not None and budget.spent else ""

    def run_all(self):
        self.preamble()
        started = time.perf_counter()
        for cell in self._ran:
            why = self.stopped or self._spent()
            if not why and time.perf_counter() - started > self.total_timeout:
                why = f"the notebook used up its {self.total_timeout:g} s"
            if why:
                cell.status, cell.message = "skipped", f"not run: {why}"
                continue
            done = self.kernel.execute(cell.source, self.cell_timeout)
            cell.status, cell.seconds = done.status, done.seconds
            cell.message = done.describe(self.cell_timeout) if done.status != "ok" else ""
            if done.fatal:
                self.recover()

    def good(self):
        return [c for c in self._ran if c.status in ("ok", "error")]

    def recover(self):
        """Restart the kernel and re-run the cells that ran (ok or with an error) so far.

        Each restart and each replayed cell draws on the kernel's budget; when it allows no
        more, the kernel stays stopped and :attr:`stopped` says why.
        """
        while True:
            try:
                self.kernel.restart()
            except BudgetSpent as exc:
                self.stopped = str(exc)
                return False
            self.preamble()
            for cell in self.good():
                done = self.kernel.execute(cell.source, self.cell_timeout)
                if done.fatal:  # it behaved differently this time: drop it and start again
                    cell.status = done.status
                    cell.message = done.describe(self.cell_timeout) + " (when run again)"
                    break
            else:
                return True

    def describe_missing(self, name):
        defining = [c for c in self.cells if name in c.names]
        if not defining:
            return f"`{name}` is not defined in the notebook"
        cell = defining[-1]
        where = f"cell {cell.index + 1} (which defines `{name}`)"
        if cell.status == "ok":
            return f"`{name}` is not defined after running the notebook, although {where} ran"
        if cell.status in ("error",):
            return f"`{name}` is not defined: {where} {cell.message}"
        if cell.status in ("timeout", "out of memory", "died"):
            return f"`{name}` is not defined: {where} {cell.message} and was skipped"
        if self.stopped:
            return f"`{name}` is not defined: {where} could not be run again ({self.stopped})"
        return f"`{name}` is not defined: {where} was not run ({cell.message})"


def _all_errors(chapter, message):
    results = [
        runner.QuestionResult(
            q.id, q.title or q.id, q.points, 0, spec.ERROR, message, q.hint, q.gpu
        )
        for q in chapter.questions
    ]
    return results


def _host_cuda():
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def grade_notebook(
    path,
    chapter_id=None,
    *,
    seed=0,
    hidden=True,
    timeout=None,
    sandbox=None,
    require_gpu=False,
    kernel=None,
    budget=None,
):
    """Grade the notebook at ``path`` in a fresh sandboxed kernel; return a ``runner.Report``.

    ``chapter_id`` (an id or a Chapter) defaults to the one named by the file
    (``ch01_descent.ipynb``). ``timeout`` caps each cell and each call (seconds). ``sandbox``:
    None detects what this machine supports, False runs without isolation (still limited), or a
    :class:`~autograder.sandbox.Sandbox`. ``kernel``: a started kernel from a KernelPool (it is
    closed afterwards, never reused). ``budget``: wall-clock seconds for the whole notebook
    (default ``BUDGET_FACTOR * Limits.total_timeout``). Problems with the submission end up in
    the report.
    """
    started = time.perf_counter()
    if chapter_id is None:
        chapter_id = chapter_from_path(path)
        if chapter_id is None:
            raise LookupError(f"cannot tell the chapter from the file name {Path(path).name!r}")
    chapter = get_chapter(chapter_id) if isinstance(chapter_id, str) else chapter_id
    if kernel is not None:
        sandbox = kernel.sandbox
    elif sandbox is None:
        sandbox = Sandbox.detect()
    elif sandbox is False:
        sandbox = Sandbox.off()
    report = runner.Report(chapter.id, seed, isolation=sandbox.isolation, require_gpu=require_gpu)
    # Seed, isolation and the GPU are the grader's facts, never the kernel's word.
    report.environment = gb.host_environment(seed, sandbox.isolation)
    try:
        cells = read_code_cells(path)
    except NotebookError as exc:
        if kernel is not None:
            kernel.close()
        report.error = str(exc)
        report.results = _all_errors(chapter, f"the notebook could not be run: {exc}")
        report.execution_time = time.perf_counter() - started
        return report

    limits = sandbox.limits
    cell_timeout = timeout or limits.cell_timeout
    kernel = kernel or Kernel(sandbox).start()
    kernel.budget = Budget(budget or BUDGET_FACTOR * limits.total_timeout)
    try:
        kernel.wait_ready()
        cell_runner = CellRunner(kernel, cells, seed, cell_timeout, limits.total_timeout)
        cell_runner.run_all()
        report.cells = [c.record() for c in cells]
        if cell_runner.stopped:
            report.results = _all_errors(chapter, f"not graded: {cell_runner.stopped}")
            return report
        try:
            target = KernelTarget(
                kernel,
                chapter,
                prepare=lambda k: _replay(cell_runner),
                describe_missing=cell_runner.describe_missing,
                call_timeout=timeout,
                host_cuda=_host_cuda(),
            )
        except RuntimeError as exc:
            report.results = _all_errors(chapter, f"the notebook could not be graded: {exc}")
            return report
        graded = runner.grade_target(
            chapter, target, seed=seed, hidden=hidden, environment=target.environment
        )
        report.results = graded.results
        # The kernel's report is hostile data: only its allowed keys, typed and capped.
        report.environment = gb.clean_environment(
            {
                **gb.clean_kernel_environment(target.environment),
                **report.environment,
                "kernel_restarts": kernel.starts - 1,
            }
        )
        report.cells = [c.record() for c in cells]
        return report
    finally:
        report.execution_time = time.perf_counter() - started
        kernel.close()


def _replay(cell_runner):
    """After a call killed the kernel (already restarted): run the good cells again."""
    cell_runner.preamble()
    for cell in cell_runner.good():
        done = cell_runner.kernel.execute(cell.source, cell_runner.cell_timeout)
        if done.fatal:
            cell.status = done.status
            cell.message = done.describe(cell_runner.cell_timeout) + " (when run again)"
            if not cell_runner.recover():
                raise BudgetSpent(cell_runner.stopped)
            return
