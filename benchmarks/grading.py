"""Seconds per submission: the whole grader against plain nbclient execution (the floor).

Builds a class of chapter 1 submissions (reference-solved notebooks, some with a wrong function),
then, in the same run and on the same notebooks:

* floor: each notebook executed with plain ``nbclient`` in an ordinary kernel, one after the
  other, no grading (the ``check()`` cell left out, as the grader leaves it out);
* grader: ``python -m autograder grade`` on the class with one worker (sandboxed kernels started
  ahead, every cell run, every question graded, gradebook and reports written).

With ``--cluster local:N`` (or a scheduler's address) the same notebooks are also graded on a
Dask cluster (``grade --cluster``), beside the threaded grader with as many workers, and the
ratio of the two is printed: the cluster's overhead is scheduling and transfer only.

Usage: ``.venv/bin/python benchmarks/grading.py [--students 20] [--workers 1] [--chapter descent]
[--cluster local:2]``
Target: grader within 1.3x of the floor on one worker; cluster within 1.15x of the threaded
grader on one machine.
"""

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.autograder.fixtures (the wrong implementations)

from autograder import cli, notebook  # noqa: E402
from autograder.questions import get_chapter  # noqa: E402


def wrong_versions(chapter_id):
    """The chapter's declared wrong implementations (tests/autograder/fixtures/<chapter>.py)."""
    try:
        from tests.autograder.fixtures_support import declared_fixtures
    except ImportError:
        return []
    return [w.replace for cid, _why, w in declared_fixtures() if cid == chapter_id]


def make_class(root, chapter_id, students, wrong_every=5):
    """``students`` folders: every ``wrong_every``-th one submits a wrong implementation."""
    chapter = get_chapter(chapter_id)
    solved = notebook.solve(nbformat.read(REPO / chapter.notebook, as_version=4), chapter_id)
    wrongs = wrong_versions(chapter_id)
    name = f"{Path(chapter.notebook).parent.name}.ipynb"
    paths, n_wrong = [], 0
    for i in range(students):
        folder = root / f"s{i + 1:02d}"
        folder.mkdir(parents=True)
        nb = solved
        if wrongs and i % wrong_every == wrong_every - 1:
            nb = notebook.make_fixture(chapter_id, wrongs[n_wrong % len(wrongs)])
            n_wrong += 1
        nbformat.write(nb, folder / name)
        paths.append(folder / name)
    return paths, n_wrong


def floor_seconds(paths, backend=None):
    """Execute each notebook with nbclient (no sandbox, no grading), one after the other.

    ``backend`` "Agg" draws figures without rendering them to PNG (as the grader's kernels do);
    None keeps Jupyter's inline backend, which renders every figure.
    """
    if backend:
        os.environ["MPLBACKEND"] = backend
    else:
        os.environ.pop("MPLBACKEND", None)
    start = time.perf_counter()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if not notebook.is_check(c)]
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    return time.perf_counter() - start


def grader_seconds(submissions, out, workers, cluster=None):
    start = time.perf_counter()
    summary = io.StringIO()
    status = cli.grade_class(
        submissions, out, workers=workers, cluster=cluster, progress=False, stdout=summary
    )
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"grading failed (exit {status}):\n{summary.getvalue()}")
    return seconds, summary.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chapter", default="descent")
    parser.add_argument(
        "--inline",
        action="store_true",
        help="also time the floor with Jupyter's inline figures (PNG rendering)",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="also grade on this Dask cluster (local:N: N local workers; --workers becomes N)",
    )
    args = parser.parse_args(argv)
    if args.cluster and args.cluster.startswith("local:"):
        args.workers = int(args.cluster.removeprefix("local:"))

    with tempfile.TemporaryDirectory(prefix="descent-bench-") as tmp:
        root = Path(tmp)
        paths, n_wrong = make_class(root / "submissions", args.chapter, args.students)
        floor_seconds(paths[:1], "Agg")  # warm-up (file cache, bytecode): not timed
        floor = floor_seconds(paths, "Agg")
        graded, summary = grader_seconds(root / "submissions", root / "results", args.workers)
        inline = floor_seconds(paths) if args.inline else None
        on_cluster = None
        if args.cluster:
            on_cluster, _ = grader_seconds(
                root / "submissions", root / "results-cluster", args.workers, args.cluster
            )
        n = len(paths)
        lines = summary.splitlines()
        if lines and "isolation" in lines[0]:
            print(lines[0])
        print(
            f"chapter {args.chapter}: {n} submissions ({n - n_wrong} solved, {n_wrong} wrong), "
            f"{args.workers} worker(s)"
        )
        print(
            f"floor  (nbclient, MPLBACKEND=Agg, no grading): {floor / n:6.2f} s per submission "
            f"({floor:.1f} s in all)"
        )
        if inline is not None:
            print(
                f"floor  (nbclient, inline figures, no grading): {inline / n:6.2f} s per "
                f"submission ({inline:.1f} s in all)"
            )
        print(
            f"grader (autograder grade, sandboxed)         : {graded / n:6.2f} s per submission "
            f"({graded:.1f} s in all)"
        )
        print(f"ratio grader / floor (Agg): {graded / floor:.2f} (target 1.3 or less)")
        if inline is not None:
            print(f"ratio grader / floor (inline): {graded / inline:.2f}")
        if on_cluster is not None:
            print(
                f"grader on the cluster ({args.cluster:<9}): {on_cluster / n:6.2f} s per "
                f"submission ({on_cluster:.1f} s in all, the cluster's start included)"
            )
            print(f"ratio cluster / threads: {on_cluster / graded:.2f} (target 1.15 or less)")
        print("\n".join("  " + line for line in lines[1:4]))


if __name__ == "__main__":
    main()
