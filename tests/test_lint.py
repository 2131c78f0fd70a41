"""ruff keeps the house style: lint and format are checked over the whole repository."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args):
    # Exclusions (build output, .venv, the student's work/) live in pyproject.toml's [tool.ruff].
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_lint_passes():
    """Does `ruff check .` find nothing to complain about?"""
    proc = ruff("check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean():
    """Is every Python file and notebook already formatted as `ruff format` would write it?"""
    proc = ruff("format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_page_code_passes_ruff_check(tmp_path):
    """Does the code of every MyST page (which ruff does not read in .md files) pass `ruff check`?

    Each page's code cells are joined, in order, into one module, so names defined in an earlier
    cell count as defined; imports may come late (E402) and unsorted (I001), as cells need them.
    """
    import jupytext

    pages = [ROOT / "book" / "intro.md", *sorted((ROOT / "book").glob("ch*/index.md"))]
    for page in pages:
        cells = [c.source for c in jupytext.read(page).cells if c.cell_type == "code"]
        name = "_".join(page.relative_to(ROOT / "book").with_suffix(".py").parts)
        (tmp_path / name).write_text("\n\n\n".join(cells) + "\n")
    config = str(ROOT / "pyproject.toml")
    proc = ruff("check", "--no-cache", "--config", config, "--extend-ignore", "E402,I001", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
