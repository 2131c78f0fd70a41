"""``python -m autograder``: see :mod:`autograder.cli`."""

import sys

from autograder import cli


def main():
    """The command line, with the grader's own memory bound in force (see cli.cmd_grade)."""
    return cli.main(limit_memory=True)


if __name__ == "__main__":
    sys.exit(main())
