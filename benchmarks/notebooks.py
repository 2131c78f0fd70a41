"""Seconds to execute every page and every solved exercise notebook, against the 60 s budget.

Each chapter's explanation page (``book/chNN_<name>/index.md``, read with jupytext) and its
exercise notebook with the reference pasted in (``autograder.notebook.solve``) are executed with
plain ``nbclient`` in a fresh kernel, one after the other, from the page's own folder, as the book
build and nbval run them. In the same run, an empty notebook that only imports numpy, matplotlib
and torch is executed too: the baseline, the part of every timing that is kernel start-up and
imports rather than the page's own work.

Usage: ``.venv/bin/python benchmarks/notebooks.py [--only ch02_momentum] [--repeat 1]``
Budget: each notebook under 60 s on two CPU cores (the README's and CI's machine).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder import notebook  # noqa: E402

BUDGET = 60.0
BASELINE = "import matplotlib.pyplot as plt\nimport numpy as np\nimport torch"


def execute_seconds(nb, folder):
    """Wall time of executing ``nb`` in a fresh kernel started in ``folder``."""
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return time.perf_counter() - start


def notebooks(only=None):
    """(label, notebook, folder) for every chapter's page and solved exercise notebook."""
    for folder in sorted((REPO / "book").glob("ch[0-9]*_*")):
        if only and folder.name not in only:
            continue
        page = folder / "index.md"
        if page.is_file():
            yield f"{folder.name}/index.md", jupytext.read(page), folder
        exercises = folder / "exercises.ipynb"
        if exercises.is_file():
            nb = nbformat.read(exercises, as_version=4)
            if any(notebook.is_exercise(c) for c in nb.cells):
                chapter_id = folder.name.split("_", 1)[1]
                yield f"{folder.name}/exercises (solved)", notebook.solve(nb, chapter_id), folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="chapter folders, e.g. ch01_descent")
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook (best is kept)")
    args = parser.parse_args(argv)
    os.environ.pop("MPLBACKEND", None)  # the inline backend renders figures, as the build does

    base = min(
        execute_seconds(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BASELINE)]), REPO)
        for _ in range(max(1, args.repeat))
    )
    print(f"cores: {os.cpu_count()}  baseline (kernel start + imports): {base:.1f} s")
    print(f"{'notebook':42s} {'seconds':>8s} {'x baseline':>10s} {'of budget':>10s}")
    over = []
    for label, nb, folder in notebooks(args.only):
        seconds = min(execute_seconds(nb, folder) for _ in range(max(1, args.repeat)))
        print(f"{label:42s} {seconds:8.1f} {seconds / base:10.1f} {seconds / BUDGET:10.0%}")
        if seconds > BUDGET:
            over.append(label)
    if over:
        print(f"over the {BUDGET:g} s budget: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
