"""Shared fixtures for the book tests: the toc's pages and one strict build per test session."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
MATHJAX = BOOK / "_mathjax" / "mathjax" / "tex-chtml.js"
# The build goes where `make book` puts it (book/_build), so its jupyter-cache is shared with
# `make book` and a test run after a build re-executes nothing. DESCENT_BOOK_OUT builds elsewhere.
OUTPUT = Path(os.environ.get("DESCENT_BOOK_OUT", BOOK))
# DESCENT_BOOK_REUSE=1 skips the build and tests the site already in OUTPUT (for a quick loop on
# the browser test); the build test itself then skips.
REUSE = os.environ.get("DESCENT_BOOK_REUSE") == "1"


def toc_files(toc=BOOK / "_toc.yml"):
    """Docnames listed in the table of contents, in reading order (root first)."""
    data = yaml.safe_load(Path(toc).read_text())
    found = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    walk(child)

    walk(data)
    return found


def pytest_generate_tests(metafunc):
    """A test that takes ``toc_docname`` runs once per page of the table of contents."""
    if "toc_docname" in metafunc.fixturenames:
        metafunc.parametrize("toc_docname", toc_files())


@dataclass
class Build:
    returncode: int | None  # None: not built in this session (DESCENT_BOOK_REUSE=1)
    log: str
    html: Path

    def problems(self):
        """The build log's warnings and errors (ANSI colours removed), then its last lines."""
        plain = re.sub(r"\x1b\[[0-9;]*m", "", self.log)
        lines = plain.splitlines()
        flagged = [ln for ln in lines if re.search(r"WARNING|ERROR|Error|Traceback", ln)]
        # ipykernel's own warning on stderr is not a Sphinx warning and does not fail the build.
        flagged = [ln for ln in flagged if not ln.startswith("[IPKernelApp]")]
        # A failing cell leaves its traceback in reports/<page>.err.log: show the end of each.
        for report in sorted(self.html.glob("reports/**/*.err.log")):
            tail = re.sub(r"\x1b\[[0-9;]*m", "", report.read_text()).splitlines()[-8:]
            flagged += [f"--- {report.relative_to(self.html)}", *tail]
        return "\n".join(flagged[:120] + ["...", *lines[-10:]])

    def page(self, docname):
        return self.html / f"{docname}.html"


@pytest.fixture(scope="session")
def book_build():
    """The strict build of the whole book (`-W -n --keep-going`), run once per session."""
    html = OUTPUT / "_build" / "html"
    if REUSE:
        return Build(None, "DESCENT_BOOK_REUSE=1: the build was not run", html)
    if not MATHJAX.exists():
        pytest.fail(f"{MATHJAX.relative_to(ROOT)} is missing: run `make book` (it copies MathJax)")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", "-W", "-n", "--keep-going", "--path-output", str(OUTPUT), str(BOOK)]
    # The pages' kernels inherit this environment: without the inline backend (MPLBACKEND=Agg
    # set by a caller, say) plt.show() would display nothing and pages would lose their figures.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    (OUTPUT / "_build").mkdir(parents=True, exist_ok=True)
    (OUTPUT / "_build" / "build.log").write_text(log)
    return Build(proc.returncode, log, OUTPUT / "_build" / "html")
