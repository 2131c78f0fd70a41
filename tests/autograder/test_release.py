"""The student release: public checks from recorded data, without the reference or hidden cases.

Each chapter is built into a release of its own (chapters still being written cannot break the
others' tests). The notebooks are run as scripts in a child interpreter started with ``-S -E``
(no site hooks, no PYTHONPATH) and given only the virtualenv's site-packages: the repository's
editable install is a site hook, so neither ``solutions`` nor the repository's ``autograder``
can be imported there; the script proves it before it runs a cell.
"""

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from autograder import notebook, release
from autograder.notebook import REPO
from autograder.questions import all_chapters, get_chapter
from tests.autograder.fixtures_support import declared_fixtures

CHAPTERS = [c.id for c in all_chapters()]
SITE = sysconfig.get_paths()["purelib"]

SCRIPT = """\
import sys
sys.path.append({site!r})
RELEASE = {release!r}
if RELEASE:
    try:
        import solutions
    except ImportError:
        pass
    else:
        raise SystemExit("solutions is importable")
    import autograder
    assert autograder.__file__.startswith(RELEASE), autograder.__file__
import matplotlib
matplotlib.use("Agg")
{cells}
import json
from autograder import check
report = check({chapter!r}).report
print("RESULT " + json.dumps([[r.id, r.outcome, r.score, r.points] for r in report.results]))
"""


def script_for(nb, chapter_id, release_dir=""):
    cells = [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and not notebook.is_check(c) and not notebook.is_gpu(c)
    ]
    body = "\n\n".join(f"exec(compile({src!r}, '<cell>', 'exec'))" for src in cells)
    return SCRIPT.format(site=SITE, release=str(release_dir), cells=body, chapter=chapter_id)


def run_script(text, folder, isolated):
    """Run ``text`` from ``folder``; the script's folder is first on sys.path."""
    path = Path(folder) / "run_check_script.py"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["MPLBACKEND"] = "Agg"
    flags = ["-S", "-E"] if isolated else []
    done = subprocess.run(
        [sys.executable, *flags, str(path)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    path.unlink()
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def build(tmp_path, chapter_id):
    out = tmp_path / "release"
    release.build(out, [chapter_id])
    return out


def released_text(out):
    """Every file of the release but the arrays (.npy: numbers only, wire.load checks)."""
    return {p: p.read_text() for p in out.rglob("*") if p.is_file() and p.suffix != ".npy"}


@pytest.mark.slow
@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_release_check_matches_repository(chapter_id, tmp_path):
    """Does check() in the release, without the repository, give the repository's outcomes and
    points for the reference-solved notebook and for a wrong one?"""
    out = build(tmp_path, chapter_id)
    chapter = get_chapter(chapter_id)
    book = nbformat.read(REPO / chapter.notebook, as_version=4)
    notebooks = {"solved": notebook.solve(book, chapter_id)}
    wrong = [w for c, _, w in declared_fixtures() if c == chapter_id and not w.shortcut]
    if wrong:
        notebooks["wrong"] = notebook.make_fixture(chapter_id, wrong[0].replace)
    for kind, nb in notebooks.items():
        in_release = run_script(script_for(nb, chapter_id, out), out, isolated=True)
        in_repo = run_script(script_for(nb, chapter_id), REPO, isolated=False)
        assert in_release == in_repo, kind
        if kind == "solved":
            assert all(o in ("passed", "not run (no GPU)") for _, o, _, _ in in_release)


def test_descent_release_runs_without_the_repository(tmp_path):
    """Quick: does the chapter 1 release pass the solved notebook and fail a wrong gradient
    descent in a child interpreter that cannot import the repository?"""
    out = build(tmp_path, "descent")
    book = nbformat.read(REPO / get_chapter("descent").notebook, as_version=4)
    nb = notebook.make_fixture(
        "descent",
        {
            "gradient_descent": "def gradient_descent(grad, x0, lr, num_steps):\n"
            "    import numpy as np\n    return np.zeros((num_steps + 1, len(x0)))\n"
        },
    )
    solved = run_script(script_for(notebook.solve(book, "descent"), "descent", out), out, True)
    failed = run_script(script_for(nb, "descent", out), out, True)
    assert {q: o for q, o, _, _ in solved} == {
        q.id: "passed" for q in get_chapter("descent").questions
    }
    outcomes = {q: o for q, o, _, _ in failed}
    assert outcomes.pop("gradient_descent") == "failed"
    assert set(outcomes.values()) == {"passed"}


@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_release_holds_no_reference_and_no_hidden_case(chapter_id, tmp_path):
    """Does the release hold only the book's notebooks, the grader's own modules unchanged and
    plain data, with no reference function body and no hidden case's name anywhere?"""
    out = build(tmp_path, chapter_id)
    chapter = get_chapter(chapter_id)
    texts = released_text(out)
    assert not list(out.rglob("solutions*")) and not list(out.rglob("questions*"))
    for path in out.rglob("*.py"):
        # Every module ships unchanged from the repository (nothing generated holds code).
        rel = path.relative_to(out / "autograder")
        source = {"__init__.py": "student/package_init.py", "replay.py": "student/replay.py"}
        if str(rel) == "kernel/__init__.py":
            continue
        original = REPO / "autograder" / source.get(str(rel), str(rel))
        assert path.read_text() == original.read_text(), rel
    # What the release generated: the tapes and chapter.json, hints blanked (check() shows them).
    meta = json.loads((out / "autograder/data" / chapter_id / "chapter.json").read_text())
    for q in meta["questions"]:
        q["hint"] = ""
    generated = [json.dumps(meta)] + [t for p, t in texts.items() if p.name == "value.json"]
    # No line of a reference function's body (past its docstring) in what was generated, and
    # no whole body anywhere.
    module = importlib.import_module(chapter.reference)
    source = Path(module.__file__).read_text()
    lines = source.splitlines()
    bodies = 0
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.ClassDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        if not body:
            continue
        block = [x.strip() for x in lines[body[0].lineno - 1 : node.end_lineno] if x.strip()]
        bodies += 1
        for line in block:
            if len(line) >= 12:
                assert not any(line in g for g in generated), (node.name, line)
        if len(block) >= 3:
            joined = "\n".join(block)
            flat = {
                p: "\n".join(x.strip() for x in t.splitlines() if x.strip())
                for p, t in texts.items()
            }
            assert not any(joined in t for t in flat.values()), node.name
    assert bodies > 0
    hidden = {c.name for q in chapter.questions for c in q.cases if not c.public}
    public = {c.name for q in chapter.questions for c in q.cases if c.public}
    assert hidden
    for name in hidden:
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        assert not any(pattern.search(g) for g in generated), name
        if "_" in name and name not in public:  # an identifier, not an English word
            hits = [str(p) for p, t in texts.items() if pattern.search(t)]
            assert not hits, (name, hits)


def test_release_refuses_a_folder_in_use(tmp_path):
    """Does the release refuse to write into a folder that already holds files?"""
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(release.ReleaseError):
        release.build(tmp_path, ["descent"])
    assert (tmp_path / "x.txt").read_text() == "keep me"
