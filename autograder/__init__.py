"""Descent's autograder: question definitions, ``check()`` for students, sandboxed grading."""

from autograder.check import check

__all__ = ["check"]
