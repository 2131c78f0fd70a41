"""The SQLite gradebook, source of truth: every graded (student, chapter), keyed by a content hash.

One row per (student, chapter) in ``submissions`` and one per question in ``results``; a re-grade
replaces both inside one transaction, so a run killed at any point leaves each submission either
fully recorded or not at all. ``grades.csv`` is exported from here (:meth:`Gradebook.export_csv`).
"""

import csv
import hashlib
import io
import json
import os
import secrets
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autograder import spec
from autograder.runner import QuestionResult, Report

PACKAGE = Path(__file__).resolve().parent
SCHEMA_VERSION = "3"
# Files that only format or store results: changing them must not force a re-grade.
NOT_GRADING_CODE = {"__main__.py", "cli.py", "gradebook.py", "reports.py", "check.py"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    student     TEXT NOT NULL,
    chapter     TEXT NOT NULL,
    hash        TEXT NOT NULL,   -- content hash; a re-run with the same hash skips grading
    status      TEXT NOT NULL,   -- graded | missing | grader error
    notebook    TEXT,            -- path of the notebook as found in SUBMISSIONS
    seed        INTEGER NOT NULL,
    graded_at   TEXT NOT NULL,   -- UTC, ISO 8601
    seconds     REAL NOT NULL,   -- wall time spent grading it
    score       REAL NOT NULL,
    possible    REAL NOT NULL,
    environment TEXT NOT NULL,   -- JSON: versions, GPU, isolation
    details     TEXT NOT NULL,   -- JSON: the rest of the report (isolation, error, cells, ...)
    PRIMARY KEY (student, chapter)
);
CREATE TABLE IF NOT EXISTS results (
    student  TEXT NOT NULL,
    chapter  TEXT NOT NULL,
    position INTEGER NOT NULL,   -- the question's order in the chapter
    question TEXT NOT NULL,
    title    TEXT NOT NULL,
    points   REAL NOT NULL,
    score    REAL NOT NULL,
    outcome  TEXT NOT NULL,
    message  TEXT NOT NULL,
    hint     TEXT NOT NULL,
    gpu      INTEGER NOT NULL,
    cases_run INTEGER NOT NULL,
    PRIMARY KEY (student, chapter, question),
    FOREIGN KEY (student, chapter) REFERENCES submissions (student, chapter) ON DELETE CASCADE
);
"""

GRADED, MISSING, GRADER_ERROR = "graded", "missing", "grader error"


def _sha256_files(digest, paths):
    for path in paths:
        digest.update(str(path.name).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
        digest.update(b"\0")


def grading_code_version(chapter_id):
    """Hash of everything that decides a grade for ``chapter_id``.

    The grader's own modules, the kernel harness and drivers, the chapter's question file and its
    reference solutions: editing any of them makes every submission of the chapter stale.
    """
    import solutions

    digest = hashlib.sha256(b"descent-grading\0")
    core = sorted(p for p in PACKAGE.glob("*.py") if p.name not in NOT_GRADING_CODE)
    chapter_files = [
        PACKAGE / "kernel" / "harness.py",
        PACKAGE / "kernel" / f"{chapter_id}.py",
        PACKAGE / "questions" / f"{chapter_id}.py",
        Path(solutions.__file__).resolve().parent / f"{chapter_id}.py",
    ]
    _sha256_files(digest, core + chapter_files)
    return digest.hexdigest()


def submission_hash(notebook, code_version, settings):
    """Content hash of one submission: notebook bytes (or its absence), grading code, settings."""
    digest = hashlib.sha256(code_version.encode() + b"\0")
    digest.update(json.dumps(settings, sort_keys=True).encode() + b"\0")
    if notebook is None:
        digest.update(b"<missing notebook>")
    else:
        with open(notebook, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def now_utc():
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Record:
    """One graded (student, chapter) as stored in the gradebook."""

    student: str
    chapter: str
    hash: str
    status: str
    notebook: str | None
    graded_at: str
    seconds: float
    report: Report
    possible: float
    uncounted: tuple = ()  # question ids left out of ``possible`` (GPU questions, no GPU)

    @property
    def score(self):
        return self.report.score


class Gradebook:
    """A gradebook file; only one process (the grading run's main thread) writes to it."""

    def __init__(self, path):
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.executescript(SCHEMA)  # idempotent; executescript commits by itself
        with self.transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has gradebook schema {row[0]}, this grader writes "
                    f"{SCHEMA_VERSION}: grade into a new RESULTS folder"
                )

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def transaction(self):
        return _Transaction(self.conn)

    def seed(self, requested=None):
        """The seed of the hidden random inputs for a run into this gradebook.

        ``requested`` (``--seed``) if given; else the seed an earlier run stored here; else a
        fresh random one. It is stored, so re-runs into the same RESULTS reuse it (and skip what
        they already graded), while every new RESULTS folder gets inputs of its own.
        """
        with self.transaction():
            if requested is None:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()
                requested = int(row[0]) if row else secrets.randbelow(2**31)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seed', ?)", (str(requested),))
        return int(requested)

    def hash_of(self, student, chapter):
        row = self.conn.execute(
            "SELECT hash, status FROM submissions WHERE student = ? AND chapter = ?",
            (student, chapter),
        ).fetchone()
        # A grader error is never final: the next run tries again.
        return row[0] if row and row[1] != GRADER_ERROR else None

    def record(self, record):
        """Store one (student, chapter), replacing any earlier grade, atomically."""
        r = record.report
        with self.transaction():
            self.conn.execute(
                "DELETE FROM submissions WHERE student = ? AND chapter = ?",
                (record.student, record.chapter),
            )
            self.conn.execute(
                "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.student,
                    record.chapter,
                    record.hash,
                    record.status,
                    record.notebook,
                    r.seed,
                    record.graded_at,
                    record.seconds,
                    r.score,
                    record.possible,
                    json.dumps(r.environment, sort_keys=True, default=str),
                    json.dumps(
                        {**report_details(r), "uncounted": list(record.uncounted)},
                        sort_keys=True,
                        default=str,
                    ),
                ),
            )
            self.conn.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        record.student,
                        record.chapter,
                        i,
                        q.id,
                        q.title,
                        q.points,
                        q.score,
                        q.outcome,
                        q.message,
                        q.hint,
                        int(q.gpu),
                        q.cases_run,
                    )
                    for i, q in enumerate(r.results)
                ],
            )

    def records(self, student=None, chapters=None):
        """Stored records (optionally of one student and some chapters), by student then chapter."""
        sql = "SELECT * FROM submissions"
        args = ()
        if student is not None:
            sql += " WHERE student = ?"
            args = (student,)
        out = []
        for row in self.conn.execute(sql + " ORDER BY student, chapter", args).fetchall():
            (
                student_,
                chapter,
                hash_,
                status,
                nb,
                seed,
                graded_at,
                seconds,
                _score,
                possible,
                environment,
                details,
            ) = row
            if chapters is not None and chapter not in chapters:
                continue
            results = [
                QuestionResult(q, title, points, score, outcome, message, hint, bool(gpu), n)
                for (q, title, points, score, outcome, message, hint, gpu, n) in self.conn.execute(
                    "SELECT question, title, points, score, outcome, message, hint, gpu, cases_run"
                    " FROM results WHERE student = ? AND chapter = ? ORDER BY position",
                    (student_, chapter),
                )
            ]
            report = Report(chapter, seed, results, json.loads(environment))
            details = json.loads(details)
            for key, value in details.items():
                if key in REPORT_DETAILS:
                    setattr(report, key, value)
            uncounted = tuple(details.get("uncounted", ()))
            out.append(
                Record(
                    student_,
                    chapter,
                    hash_,
                    status,
                    nb,
                    graded_at,
                    seconds,
                    report,
                    possible,
                    uncounted,
                )
            )
        return out

    def export_csv(self, path, students, chapters):
        """Write ``grades.csv`` for ``students`` x ``chapters`` (Chapter objects), atomically.

        Columns: ``student``, ``<chapter>.<question>`` for every question in course order,
        ``total``, ``possible``. A (student, chapter) absent from the gradebook leaves its cells
        empty and adds nothing to ``possible``.
        """
        ids = {c.id for c in chapters}
        columns = [f"{c.id}.{q.id}" for c in chapters for q in c.questions]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["student", *columns, "total", "possible"])
        for student in students:
            row = dict.fromkeys(columns, "")
            total = possible = 0.0
            for record in self.records(student, ids):
                for q in record.report.results:
                    column = f"{record.chapter}.{q.id}"
                    if column in row:
                        row[column] = _number(q.score)
                total += record.score
                possible += record.possible
            writer.writerow([student, *row.values(), _number(total), _number(possible)])
        write_atomic(path, buffer.getvalue())


def _number(x):
    return f"{x:g}"


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *exc):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def write_atomic(path, data):
    """Write text or bytes to ``path``: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def uncounted_questions(report, require_gpu, cuda=True):
    """Questions left out of ``possible``: GPU questions that could not run, unless
    ``--require-gpu``.

    ``cuda`` False (no GPU on this machine) also leaves out GPU questions that never reached a
    kernel (a malformed notebook), so that ``possible`` is the same for the whole class.
    """
    if require_gpu:
        return ()
    return tuple(
        r.id for r in report.results if r.outcome == spec.NOT_RUN_GPU or (r.gpu and not cuda)
    )


def possible_points(report, require_gpu, cuda=True):
    """Points on offer (see :func:`uncounted_questions`)."""
    left_out = uncounted_questions(report, require_gpu, cuda)
    return sum(r.points for r in report.results if r.id not in left_out)


# Fields of runner.Report beyond chapter/seed/results/environment, kept in ``details``.
REPORT_DETAILS = ("isolation", "error", "cells", "execution_time", "require_gpu")


def report_details(report):
    return {key: getattr(report, key) for key in REPORT_DETAILS if hasattr(report, key)}
