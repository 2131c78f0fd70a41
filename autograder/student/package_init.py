"""Descent's check package, as handed to students: ``check("<chapter>")`` runs the public cases.

The expected values were computed from the reference when this release was built and are
stored as plain data (JSON and ``.npy``) under ``autograder/data/``; hidden cases run only when
the instructor grades.
"""

from autograder.replay import check

__all__ = ["check"]
