"""nbval over the exercise notebooks, each filled in from the reference solutions first.

The blank notebooks raise NotImplementedError by design, so nbval (``--nbval-lax``: every cell
must run without error, outputs are not compared) runs on a copy solved by
``autograder.notebook.solve_file``. The book's MyST pages are executed by the strict build.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.notebook import is_exercise, solve_file

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("ch*/exercises.ipynb"))

pytestmark = pytest.mark.slow


def chapter_id(path):
    """``book/ch01_descent/exercises.ipynb`` -> ``descent``."""
    return path.parent.name.split("_", 1)[1]


def test_every_chapter_folder_has_an_exercise_notebook():
    """Does the glob below find the chapters' notebooks at all (so the nbval tests are real)?"""
    assert NOTEBOOKS, "no book/ch*/exercises.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_solved_notebook_runs_under_nbval(path, tmp_path):
    """Does the notebook, with the reference solutions pasted in, run every cell without error?"""
    nb = nbformat.read(path, as_version=4)
    if not any(is_exercise(cell) for cell in nb.cells):
        pytest.skip(f"{path.parent.name}: placeholder notebook, no cell tagged 'exercise' yet")
    solved = tmp_path / f"{path.parent.name}.ipynb"
    solve_file(path, chapter_id(path), solved)
    # Run from tmp_path (no ini file there), so the project's pytest options do not apply.
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=120"]
    cmd += ["-p", "no:cacheprovider", "-q", solved.name]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"nbval failed on solved {path.parent.name}:\n{proc.stdout[-8000:]}"
    )
