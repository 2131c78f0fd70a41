"""Grade one submitted notebook in a fresh sandboxed kernel: run its cells, then its questions.

The pipeline, in order (each stage needs the one before it):

1. read the notebook defensively (missing, empty, malformed, huge: a report, never an exception);
2. start (or take from a :class:`~autograder.kernel_target.KernelPool`) a sandboxed kernel;
3. run the code cells in order, except the ``check`` cell; a cell that errors is recorded and
   the run goes on; a cell that times out, runs out of memory or kills the kernel is skipped:
   the kernel is restarted and the good cells so far are run again;
4. inject the grading harness and grade every question through the kernel transport
   (``runner.grade_target``): every comparison and score is computed here, in the grader.
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
from autograder.kernel_target import Kernel, KernelTarget
from autograder.questions import get_chapter
from autograder.sandbox import Sandbox

MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_CELLS = 2000
MAX_CELL_CHARS = 1_000_000
PREAMBLE = """
import random as _r, numpy as _np, torch as _t
_r.seed({seed}); _np.random.seed({seed}); _t.manual_seed({seed})
_t.backends.cudnn.deterministic = True
_t.backends.cudnn.benchmark = False
_t.use_deterministic_algorithms(True, warn_only=True)
del _r, _np, _t
"""  # run before the student's cells; their own seeds (set later) stand. warn_only: an op with no
# deterministic version warns instead of raising (warnings never cost points); cuBLAS's own
# determinism comes from CUBLAS_WORKSPACE_CONFIG in the kernel's environment (sandbox.py).


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
    if len(doc["cells"]) > MAX_CELLS:
        raise NotebookError(f"the notebook has {len(doc['cells'])} cells, more than {MAX_CELLS}")
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
            raise NotebookError(f"cell {index} is too long")
        cell = Cell(index, source, nbtools.defined_names(source))
        if nbtools.is_check(raw) or calls_check(source):
            cell.status, cell.message = "skipped", "check() is not run by the grader"
        cells.append(cell)
    return cells


def calls_check(source):
    """Does the cell import the autograder or call ``check(...)``? (Not run when grading.)"""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
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
    """Runs a submission's cells in a kernel and can bring a restarted kernel back to that state."""

    def __init__(self, kernel, cells, seed, cell_timeout, total_timeout):
        self.kernel = kernel
        self.cells = cells
        self.seed = seed
        self.cell_timeout = cell_timeout
        self.total_timeout = total_timeout

    def preamble(self):
        self.kernel.execute(PREAMBLE.format(seed=int(self.seed)), self.cell_timeout)

    def run_all(self):
        self.preamble()
        started = time.perf_counter()
        for cell in self.cells:
            if cell.status == "skipped":
                continue
            if time.perf_counter() - started > self.total_timeout:
                cell.status = "skipped"
                cell.message = f"not run: the notebook used up its {self.total_timeout:g} s"
                continue
            done = self.kernel.execute(cell.source, self.cell_timeout)
            cell.status, cell.seconds = done.status, done.seconds
            cell.message = done.describe(self.cell_timeout) if done.status != "ok" else ""
            if done.fatal:
                self.recover()

    def recover(self):
        """Restart the kernel and re-run the cells that ran (ok or with an error) so far."""
        while True:
            self.kernel.restart()
            self.preamble()
            for cell in self.cells:
                if cell.status not in ("ok", "error"):
                    continue
                done = self.kernel.execute(cell.source, self.cell_timeout)
                if done.fatal:  # it behaved differently this time: drop it and start again
                    cell.status = done.status
                    cell.message = done.describe(self.cell_timeout) + " (when run again)"
                    break
            else:
                return

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
):
    """Grade the notebook at ``path`` in a fresh sandboxed kernel; return a ``runner.Report``.

    ``chapter_id`` (an id or a Chapter) defaults to the one named by the file
    (``ch01_descent.ipynb``). ``timeout`` caps each cell and each call (seconds). ``sandbox``:
    None detects what this machine supports, False runs without isolation (still limited), or a
    :class:`~autograder.sandbox.Sandbox`. ``kernel``: a started kernel from a KernelPool (it is
    closed afterwards, never reused). Problems with the submission end up in the report.
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
    try:
        kernel.wait_ready()
        cell_runner = CellRunner(kernel, cells, seed, cell_timeout, limits.total_timeout)
        cell_runner.run_all()
        report.cells = [c.record() for c in cells]
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
    for cell in cell_runner.cells:
        if cell.status in ("ok", "error"):
            done = cell_runner.kernel.execute(cell.source, cell_runner.cell_timeout)
            if done.fatal:
                cell.status = done.status
                cell.message = done.describe(cell_runner.cell_timeout) + " (when run again)"
                cell_runner.recover()
                return
