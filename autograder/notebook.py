"""Exercise notebooks: cell roles (read from tags) and filling stubs from the reference."""

import ast
import importlib
import inspect

import nbformat

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


def defined_names(source):
    """Top-level functions and classes a cell defines (empty if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
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
