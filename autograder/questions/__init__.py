"""Graded questions, one module per chapter (``autograder/questions/<chapter>.py``).

Each module defines ``chapter``, a :class:`autograder.spec.Chapter`. This folder is never
visible inside the sandbox.
"""

import importlib
import pkgutil


def chapter_ids():
    """Chapter ids in course order."""
    chapters = [get_chapter(m.name) for m in pkgutil.iter_modules(__path__)]
    return [c.id for c in sorted(chapters, key=lambda c: c.number)]


def get_chapter(chapter_id):
    try:
        module = importlib.import_module(f"{__name__}.{chapter_id}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{chapter_id}":
            raise LookupError(f"no graded chapter named {chapter_id!r}") from None
        raise
    return module.chapter


def all_chapters():
    return [get_chapter(i) for i in chapter_ids()]
