"""Grader-side scan of a submission's code for library shortcuts and tampering: "needs review".

The in-kernel watch (``Question.forbidden``, a profile hook around each call) catches accidental
and naive use of a forbidden library; code running in the same interpreter can always switch it
off. This scan reads the submitted cells as text and as syntax trees, in the grader, where the
student cannot reach, and flags what a reviewer should look at:

- ``forbidden module``: a graded function or class refers to a module its question forbids
  (``torch.optim.Adam``, ``from torch import autograd``, an alias bound in another cell, or
  ``.backward()`` / ``requires_grad`` where autograd is forbidden);
- ``private torch entry point``: ``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_adagrad_``,
  ``Variable._execution_engine``, ``run_backward``, ``torch._C``;
- ``profile or trace hook``: ``sys.setprofile``/``settrace``, ``sys.monitoring``, frame and
  object-graph walking (``sys._getframe``, ``inspect.currentframe``, ``gc.get_referrers``);
- ``threads or processes``: ``threading``, ``_thread``, ``multiprocessing``, ``concurrent``,
  ``subprocess``, ``os.fork``, ``signal``;
- ``IPython hook``: ``get_ipython()`` (``events.register``), the harness's ``call_watched`` or
  any ``__descent`` name;
- ``re-executed source``: ``exec``/``eval``/``compile``/``__import__``, ``inspect.getsource``,
  ``importlib``, ``runpy``, code and function objects, renaming ``__name__``/``__module__``;
- ``dynamic attribute``: ``getattr``/``setattr`` with a computed name (hides any of the above);
- ``shell or magic`` lines (``!``, ``%``) and ``unparsable cell`` (only the text rules ran).

A flag costs no points and never appears in a student's files: it goes to the gradebook
(table ``flags``), ``RESULTS/review.csv`` and the terminal summary. The scan never raises.
"""

import ast
import json
import re
from pathlib import Path

from autograder.compare import excerpt

FORBIDDEN_MODULE = "forbidden module"
PRIVATE = "private torch entry point"
TRACE = "profile or trace hook"
THREADS = "threads or processes"
IPYTHON = "IPython hook"
SOURCE = "re-executed source"
DYNAMIC = "dynamic attribute"
MAGIC = "shell or magic"
UNPARSABLE = "unparsable cell"
RULES = (FORBIDDEN_MODULE, PRIVATE, TRACE, THREADS, IPYTHON, SOURCE, DYNAMIC, MAGIC, UNPARSABLE)

MAX_NOTEBOOK_BYTES = 256 * 2**20  # as grading.MAX_NOTEBOOK_BYTES: a larger one is flagged
MAX_FLAGS = 200

# Dotted names (after resolving aliases) and what each prefix is flagged as.
PREFIXES = {
    TRACE: (
        "sys.setprofile",
        "sys.settrace",
        "sys.monitoring",
        "sys._getframe",
        "sys.modules",
        "threading.setprofile",
        "threading.settrace",
        "inspect.currentframe",
        "inspect.stack",
        "inspect.getouterframes",
        "gc.get_referrers",
        "gc.get_referents",
        "gc.get_objects",
        "ctypes",
    ),
    THREADS: (
        "threading",
        "_thread",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "os.fork",
        "os.system",
        "os.popen",
        "signal",
    ),
    IPYTHON: ("get_ipython", "IPython"),
    SOURCE: (
        "inspect.getsource",
        "inspect.getsourcelines",
        "inspect.getfile",
        "importlib",
        "runpy",
        "linecache",
        "marshal",
        "types.FunctionType",
        "types.CodeType",
        "types.ModuleType",
        "builtins",
    ),
}
PRIVATE_PARTS = frozenset(
    {
        "_fused_adam_",
        "_fused_adamw_",
        "_fused_adagrad_",
        "_fused_sgd_",
        "_execution_engine",
        "run_backward",
        "_VariableFunctions",
        "_C",
    }
)
SOURCE_ATTRS = frozenset({"__code__", "__globals__", "__builtins__", "__closure__"})
RENAMED = frozenset({"__name__", "__module__", "__qualname__", "__spec__", "__loader__"})
CALLS = {"exec": SOURCE, "eval": SOURCE, "compile": SOURCE, "__import__": SOURCE}
# Text rules: they also see strings (getattr(torch, "_fused_adam_")) and unparsable cells.
TEXT = [
    (PRIVATE, re.compile(r"_fused_(?:adam|adamw|adagrad|sgd)_|_execution_engine|run_backward")),
    (PRIVATE, re.compile(r"\btorch\s*\.\s*_C\b")),
    (TRACE, re.compile(r"\bset(?:profile|trace)\b|sys\s*\.\s*monitoring")),
    (IPYTHON, re.compile(r"\bget_ipython\b|events\s*\.\s*register|call_watched|__descent")),
    (SOURCE, re.compile(r"\bgetsource\b|\bimportlib\b")),
]
MAGIC_LINE = re.compile(r"^\s*[!%]", re.MULTILINE)
# Tensor methods that run autograd: flagged in graded code where autograd is forbidden.
AUTOGRAD_METHODS = frozenset({"backward", "requires_grad_", "requires_grad", "grad_fn"})


def parse(source):
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def dotted(node, aliases):
    """``a.b.c`` for a Name/Attribute chain, its first part resolved through ``aliases``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def bind_imports(tree, aliases):
    """Names bound by the imports (and plain ``x = a.b`` assignments) at a tree's top level."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases.setdefault(top, top)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            name = dotted(node.value, aliases)
            if isinstance(target, ast.Name) and name and "." in name:
                aliases[target.id] = name


def forbidden_match(name, forbidden):
    """The forbidden module ``name`` falls under (``torch.optim.Adam`` is torch.optim.adam's)."""
    low = name.lower()
    for module in forbidden:
        if low == module or low.startswith(module + "."):
            return module
    return None


def graded_names(chapter):
    """{function or class name: modules its question forbids} for a chapter."""
    names = {}
    for q in getattr(chapter, "questions", ()):
        for fn in q.functions:
            names.setdefault(fn, set()).update(m.lower() for m in q.forbidden)
    return names


class _Scanner:
    def __init__(self, chapter):
        self.graded = graded_names(chapter) if chapter is not None else {}
        self.flags = []
        self.seen = set()

    def flag(self, cell, line, rule, detail):
        key = (cell, rule, detail)
        if key in self.seen or len(self.flags) >= MAX_FLAGS:
            return
        self.seen.add(key)
        self.flags.append(
            {"cell": cell, "line": int(line or 0), "rule": rule, "detail": excerpt(detail, 80)}
        )

    def text(self, cell, source):
        for rule, pattern in TEXT:
            for match in pattern.finditer(source):
                line = source.count("\n", 0, match.start()) + 1
                self.flag(cell, line, rule, match.group(0))
        for match in MAGIC_LINE.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            self.flag(cell, line, MAGIC, source[match.start() :].split("\n", 1)[0].strip())

    def names(self, cell, tree, aliases):
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [f"{node.module or ''}.{a.name}" for a in node.names] + [node.module or ""]
                )
                for module in modules:
                    self.dotted_rules(cell, line, module)
            elif isinstance(node, ast.Attribute | ast.Name):
                name = dotted(node, aliases)
                if name:
                    self.dotted_rules(cell, line, name)
                attr = node.attr if isinstance(node, ast.Attribute) else node.id
                if attr in SOURCE_ATTRS:
                    self.flag(cell, line, SOURCE, attr)
                if attr in RENAMED and isinstance(node.ctx, ast.Store | ast.Del):
                    self.flag(cell, line, SOURCE, f"assigns {attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                func = node.func.id
                if func in CALLS and aliases.get(func, func) == func:
                    self.flag(cell, line, CALLS[func], f"{func}()")
                if func in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
                    key = node.args[1]
                    if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                        self.flag(cell, line, DYNAMIC, f"{func}() with a computed name")
                    elif key.value in RENAMED and func != "hasattr":
                        self.flag(cell, line, SOURCE, f"{func}(..., {key.value!r})")

    def dotted_rules(self, cell, line, name):
        parts = name.split(".")
        if parts[0] == "torch" and PRIVATE_PARTS.intersection(parts[1:]):
            self.flag(cell, line, PRIVATE, name)
        elif any(p in PRIVATE_PARTS - {"_C"} for p in parts):
            self.flag(cell, line, PRIVATE, name)
        for rule, prefixes in PREFIXES.items():
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                self.flag(cell, line, rule, name)

    def graded_code(self, cell, tree, aliases):
        """Forbidden modules referred to inside the graded functions and classes."""
        for node in tree.body:
            kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            if not isinstance(node, kinds) or not self.graded.get(node.name):
                continue
            forbidden = self.graded[node.name]
            autograd = any(m.startswith("torch.autograd") for m in forbidden)
            local = dict(aliases)
            bind_imports(node, local)
            for sub in ast.walk(node):
                line = getattr(sub, "lineno", 0)
                names = []
                if isinstance(sub, ast.Import):
                    names = [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom) and sub.module:
                    names = [f"{sub.module}.{a.name}" for a in sub.names]
                elif isinstance(sub, ast.Attribute | ast.Name):
                    names = [dotted(sub, local)]
                    if autograd and isinstance(sub, ast.Attribute) and sub.attr in AUTOGRAD_METHODS:
                        self.flag(cell, line, FORBIDDEN_MODULE, f"{node.name} uses .{sub.attr}")
                for name in filter(None, names):
                    module = forbidden_match(name, forbidden)
                    if module:
                        self.flag(cell, line, FORBIDDEN_MODULE, f"{node.name} uses {name}")

    def run(self, cells):
        parsed = []
        aliases = {}
        for cell, source in cells:
            self.text(cell, source)
            tree = parse(source)
            if tree is None:
                self.flag(cell, 0, UNPARSABLE, "the cell does not parse; only text rules ran")
                continue
            bind_imports(tree, aliases)
            parsed.append((cell, tree))
        for cell, tree in parsed:  # aliases from every cell: a name bound anywhere is seen
            self.names(cell, tree, aliases)
            self.graded_code(cell, tree, aliases)
        return self.flags


def is_check_cell(raw, source):
    tags = raw.get("metadata", {}).get("tags") if isinstance(raw.get("metadata"), dict) else None
    if isinstance(tags, list) and "check" in tags:
        return True
    return bool(re.fullmatch(r"\s*from autograder import check\s+check\([^()]*\)\s*", source))


def code_cells(doc):
    """(1-based cell number, source) of a notebook document's code cells, check cell excluded."""
    cells = []
    raw_cells = doc.get("cells") if isinstance(doc, dict) else None
    for index, raw in enumerate(raw_cells if isinstance(raw_cells, list) else []):
        if not isinstance(raw, dict) or raw.get("cell_type") != "code":
            continue
        source = raw.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str) or is_check_cell(raw, source):
            continue
        cells.append((index + 1, source[:1_000_000]))
    return cells


def scan_cells(cells, chapter=None):
    """Flags for ``cells`` ((cell number, source) pairs) of a notebook of ``chapter``."""
    try:
        return _Scanner(chapter).run(cells)
    except (RecursionError, MemoryError) as exc:  # a pathological tree: say so, never raise
        return [{"cell": 0, "line": 0, "rule": UNPARSABLE, "detail": type(exc).__name__}]


def scan_notebook(path, chapter=None):
    """Flags for the notebook at ``path`` (a list of dicts: cell, line, rule, detail).

    A notebook that cannot be read gives no flags: grading reports it as malformed.
    """
    try:
        path = Path(path)
        if path.is_symlink() or not path.is_file():
            return []
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:  # padding must not buy a way past the scan
            return [{"cell": 0, "line": 0, "rule": UNPARSABLE, "detail": "too large to scan"}]
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError, MemoryError):
        return []
    return scan_cells(code_cells(doc), chapter)
