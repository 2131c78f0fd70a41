"""Exercise notebooks: cell roles (read from tags) and filling stubs from the reference."""

import ast
import importlib
import inspect
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent


def repo_path(relative):
    """A path relative to the repository root (where book/ and solutions/ live)."""
    return REPO / relative


EXERCISE_TAG = "exercise"  # a cell of stubs the student completes
CHECK_TAG = "check"  # the last cell: check("<chapter>"); not run by the sandboxed grader
GPU_TAG = "gpu"  # needs CUDA; the cell itself guards on torch.cuda.is_available()


def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def is_exercise(cell):
    return cell.get("cell_type") == "code" and EXERCISE_TAG in tags(cell)


def is_check(cell):
    return cell.get("cell_type") == "code" and CHECK_TAG in tags(cell)


def is_gpu(cell):
    return GPU_TAG in tags(cell)


def parse(source):
    """The AST of a cell's source, or None if it cannot be parsed for any reason.

    Student code is data: besides a SyntaxError, a lone surrogate (UnicodeEncodeError), a null
    byte (ValueError), deep nesting (RecursionError) or a huge expression (MemoryError) make
    ``ast.parse`` raise, and none of them may become the grader's failure.
    """
    if not isinstance(source, str):
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None  # UnicodeEncodeError is a ValueError


def defined_names(source):
    """Top-level functions and classes a cell defines (empty if it does not parse)."""
    tree = parse(source)
    if tree is None:
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in tree.body if isinstance(node, kinds)]


def solve(nb, chapter_id):
    """Return a copy of ``nb`` with every exercise cell replaced by the reference source."""
    module = importlib.import_module(f"solutions.{chapter_id}")
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if not is_exercise(cell):
            continue
        names = defined_names(cell.source)
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise LookupError(f"solutions.{chapter_id} has no {', '.join(missing)}")
        cell.source = "\n\n\n".join(inspect.getsource(getattr(module, n)).rstrip() for n in names)
    return nb


def solve_file(path, chapter_id, out):
    nb = nbformat.read(path, as_version=4)
    nbformat.write(solve(nb, chapter_id), out)


def replace_definition(source, name, new_source):
    """Replace the top-level ``def``/``class`` called ``name`` in ``source`` by ``new_source``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            new = lines[:start] + new_source.rstrip().splitlines() + lines[node.end_lineno :]
            return "\n".join(new)
    raise LookupError(f"no top-level definition of {name!r} in the cell")


def make_fixture(chapter_id, replace):
    """The reference-solved book notebook of a chapter, with some definitions swapped out.

    ``replace`` maps a function or class name to the (wrong) source that replaces it, in the
    exercise cell that defines it. Used to build ``<chapter>-fail-<why>.ipynb`` test fixtures.
    """
    from autograder.questions import get_chapter

    chapter = get_chapter(chapter_id)
    path = repo_path(chapter.notebook)
    nb = solve(nbformat.read(path, as_version=4), chapter_id)
    todo = dict(replace)
    for cell in nb.cells:
        if is_exercise(cell):
            for name in [n for n in defined_names(cell.source) if n in todo]:
                cell.source = replace_definition(cell.source, name, todo.pop(name))
    if todo:
        raise LookupError(f"no exercise cell defines {', '.join(todo)}")
    return nb
