"""Does the grader-side scan flag, for review, every way around the in-kernel shortcut watch that
was found (issue 25), and leave the reference-solved notebooks alone?

Each hostile fixture is a reference-solved notebook with one evasion added, as a student would
hand it in. The in-kernel watch cannot be made tamper-proof; these prove the scan *flags* them.
"""

import nbformat
import pytest

from autograder import notebook, scan
from autograder.questions import get_chapter

CHAPTERS = ["descent", "momentum", "adaptive", "normalization"]

ADAM_BY_LIBRARY = '''
class Adam(torch.optim.Optimizer):
    """Adam, by the library."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))
        self.inner = {BODY}

    def step(self, closure=None):
        return self.inner.step(closure)
'''


def with_cells(chapter_id, *cells, replace=None):
    """The reference-solved notebook of ``chapter_id``, definitions swapped, cells appended."""
    nb = notebook.make_fixture(chapter_id, replace or {})
    check = nb.cells.pop()  # keep the check() cell last, as handed in
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells] + [check]
    return nb


def flags_of(nb, chapter_id, tmp_path):
    path = tmp_path / f"{chapter_id}.ipynb"
    nbformat.write(nb, path)
    return scan.scan_notebook(path, get_chapter(chapter_id))


def rules(flags):
    return {f["rule"] for f in flags}


@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_reference_solved_notebooks_are_not_flagged(chapter_id, tmp_path):
    """Does the reference-solved notebook, whose other cells use torch.optim and autograd to
    check the student's work, give no flag at all?"""
    assert flags_of(notebook.make_fixture(chapter_id, {}), chapter_id, tmp_path) == []


EVASIONS = {
    # what the issue found -> (chapter, extra cells, replaced definitions, expected rule)
    "setprofile(None)": ("adaptive", ["import sys\nsys.setprofile(None)"], {}, scan.TRACE),
    "replaced setprofile": (
        "adaptive",
        ["import sys\nsys.setprofile = lambda hook: None"],
        {},
        scan.TRACE,
    ),
    "worker thread": (
        "adaptive",
        [
            "import threading\nresult = {}\n"
            "threading.Thread(target=lambda: result.update(x=1)).start()"
        ],
        {},
        scan.THREADS,
    ),
    "renamed __name__": (
        "adaptive",
        ["import torch.optim.adam as lib\nlib.__name__ = 'my_adam'"],
        {},
        scan.SOURCE,
    ),
    "renamed __module__": (
        "adaptive",
        ["torch.optim.Adam.step.__module__ = '__main__'"],
        {},
        scan.SOURCE,
    ),
    "re-executed torch.optim source": (
        "adaptive",
        [
            "import inspect, torch.optim.adam as lib\nns = {'__name__': 'mine'}\n"
            "exec(compile(inspect.getsource(lib), 'mine.py', 'exec'), ns)\nLibAdam = ns['Adam']"
        ],
        {},
        scan.SOURCE,
    ),
    "IPython hook replacing call_watched": (
        "adaptive",
        [
            "ip = get_ipython()\n"
            "ip.events.register('pre_run_cell', lambda info: "
            "globals().update(call_watched=lambda f, *a, **k: f(*a, **k)))"
        ],
        {},
        scan.IPYTHON,
    ),
    "torch._fused_adam_": (
        "adaptive",
        [],
        {"Adam": ADAM_BY_LIBRARY.replace("{BODY}", "torch._fused_adam_")},
        scan.PRIVATE,
    ),
    "_fused_adamw_ by getattr": (
        "adaptive",
        ["fused = getattr(torch, '_fused_adamw_')"],
        {},
        scan.PRIVATE,
    ),
    "_fused_adagrad_ from torch": (
        "adaptive",
        ["from torch import _fused_adagrad_ as fused"],
        {},
        scan.PRIVATE,
    ),
    "run_backward": (
        "descent",
        [
            "from torch.autograd import Variable\n"
            "engine = Variable._execution_engine\nbackward = engine.run_backward"
        ],
        {},
        scan.PRIVATE,
    ),
    "torch._C": ("descent", ["import torch._C as C"], {}, scan.PRIVATE),
    "a name built at run time": (
        "adaptive",
        ["fused = getattr(torch, '_fu' + 'sed_adam_')"],
        {},
        scan.DYNAMIC,
    ),
    "Adam from torch.optim in the graded class": (
        "adaptive",
        [],
        {"Adam": ADAM_BY_LIBRARY.replace("{BODY}", "torch.optim.Adam(params, lr=lr)")},
        scan.FORBIDDEN_MODULE,
    ),
    "an alias bound in another cell": (
        "adaptive",
        ["from torch.optim import Adam as TrustedAdam"],
        {"Adam": ADAM_BY_LIBRARY.replace("{BODY}", "TrustedAdam(params, lr=lr)")},
        scan.FORBIDDEN_MODULE,
    ),
    "autograd in mlp_gradients": (
        "descent",
        [],
        {
            "mlp_gradients": (
                "def mlp_gradients(params, X, y):\n"
                "    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}\n"
                "    loss = ps['W1'].sum()\n"
                "    loss.backward()\n"
                "    return {k: p.grad.numpy() for k, p in ps.items()}\n"
            )
        },
        scan.FORBIDDEN_MODULE,
    ),
    "shell escape": ("descent", ["!pip install cheat"], {}, scan.MAGIC),
}


@pytest.mark.parametrize("evasion", list(EVASIONS))
def test_each_evasion_of_the_watch_is_flagged(evasion, tmp_path):
    """Is each evasion the issue found flagged for review, under the rule that names it?"""
    chapter_id, cells, replace, rule = EVASIONS[evasion]
    flags = flags_of(with_cells(chapter_id, *cells, replace=replace), chapter_id, tmp_path)
    assert rule in rules(flags), flags
    assert all(f["cell"] >= 1 and len(f["detail"]) <= 80 for f in flags)


def test_the_flag_names_the_graded_function(tmp_path):
    """Does a forbidden-module flag say which graded class used what, and where?"""
    nb = with_cells(
        "adaptive",
        replace={"Adam": ADAM_BY_LIBRARY.replace("{BODY}", "torch.optim.Adam(params)")},
    )
    (flag,) = [f for f in flags_of(nb, "adaptive", tmp_path) if f["rule"] == scan.FORBIDDEN_MODULE]
    assert flag["detail"] == "Adam uses torch.optim.Adam" and flag["line"] > 0


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "(" * 5000 + "1" + ")" * 5000,  # too deep for the parser
        "s = '\ud800'",  # a lone surrogate
        "def f(:\n    pass",  # a syntax error
        "x = 1\x00",  # a null byte
    ],
)
def test_pathological_cells_never_break_the_scan(source, tmp_path):
    """Does a cell the parser cannot take give a flag (only text rules ran), never an error?"""
    flags = scan.scan_cells([(3, source)], get_chapter("descent"))
    assert rules(flags) == {scan.UNPARSABLE}


def test_unreadable_notebooks_give_no_flags(tmp_path):
    """Is a missing, malformed or linked notebook left to grading (no flags, no exception)?"""
    (tmp_path / "bad.ipynb").write_text("{ not json")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "bad.ipynb")
    for name in ["nowhere.ipynb", "bad.ipynb", "link.ipynb"]:
        assert scan.scan_notebook(tmp_path / name, get_chapter("descent")) == []
