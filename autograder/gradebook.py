"""The SQLite gradebook, source of truth: every graded (student, chapter), keyed by a content hash.

One row per (student, chapter) in ``submissions`` and one per question in ``results``; a re-grade
replaces both inside one transaction, so a run killed at any point leaves each submission either
fully recorded or not at all. ``grades.csv`` is exported from here (:meth:`Gradebook.export_csv`).
"""

import csv
import functools
import hashlib
import io
import json
import math
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
NOT_GRADING_CODE = {
    "__main__.py",
    "cli.py",
    "gradebook.py",
    "reports.py",
    "check.py",
    "release.py",
    "similarity.py",
}

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
-- Code in a submission that the grader's scan (autograder/scan.py) wants an instructor to look
-- at: "needs review". For the instructor only; never in a student's files.
CREATE TABLE IF NOT EXISTS flags (
    student  TEXT NOT NULL,
    chapter  TEXT NOT NULL,
    cell     INTEGER NOT NULL,   -- 1-based, as JupyterLab counts
    line     INTEGER NOT NULL,
    rule     TEXT NOT NULL,
    detail   TEXT NOT NULL,
    FOREIGN KEY (student, chapter) REFERENCES submissions (student, chapter) ON DELETE CASCADE
);
"""

GRADED, MISSING, GRADER_ERROR = "graded", "missing", "grader error"


# -- Everything stored is validated first ------------------------------------------------------
# A record holds what a student's kernel reported (versions, a GPU name) and what their code
# chose to say (error messages): hostile data. Each record is cleaned when stored and again when
# read (a gradebook written by an older grader may hold anything), so that no value can break a
# report, a CSV or a JSON file: strings only where text is expected, capped, numbers finite.

MAX_TEXT = 200  # a version, a GPU name, an isolation line
MAX_MESSAGE = 1000  # a question's message or hint, a cell's message
MAX_CELLS = 2000
# What the kernel may report, and the type each value must have. Anything else is dropped; above
# all ``isolated``/``isolation`` and ``cuda``/``gpu`` from the kernel, which are the grader's facts.
KERNEL_ENVIRONMENT = {
    "python": str,
    "numpy": str,
    "torch": str,
    "torch_deterministic": bool,
    "cudnn_deterministic": bool,
    "cudnn_benchmark": bool,
}
# What the grader itself records (see grading.grade_notebook and cli.error_report).
HOST_ENVIRONMENT = {
    "seed": int,
    "isolation": str,
    "kernel": bool,
    "kernel_restarts": int,
    "cuda": bool,
    "gpu": str,
}


def clean_text(value, limit=MAX_TEXT):
    """``value`` if it is a string, made printable (newlines kept) and cut to ``limit``; else ""."""
    if not isinstance(value, str):
        return ""
    value = value[: limit + 1].encode("utf-8", "replace").decode("utf-8")
    value = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in value)
    return value if len(value) <= limit else value[: limit - 14] + " ... (cut)"


def clean_number(value, default=0.0):
    """A finite float (bools and strings are not numbers here), else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    try:
        value = float(value)
    except (OverflowError, ValueError):
        return default
    return value if math.isfinite(value) else default


def _clean_value(value, kind):
    if kind is bool:
        return value if isinstance(value, bool) else None
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
        return value if ok else None
    return clean_text(value) if isinstance(value, str) else None


def clean_kernel_environment(environment):
    """The allowed keys of what a kernel reported, each of the right type, strings capped."""
    if not isinstance(environment, dict):
        return {}
    out = {}
    for key, kind in KERNEL_ENVIRONMENT.items():
        value = _clean_value(environment.get(key), kind)
        if value is not None:
            out[key] = value
    return out


def clean_environment(environment):
    """A stored environment: the kernel's allowed keys plus the grader's own, nothing else."""
    out = clean_kernel_environment(environment)
    if isinstance(environment, dict):
        for key, kind in HOST_ENVIRONMENT.items():
            value = _clean_value(environment.get(key), kind)
            if value is not None:
                out[key] = value
    return out


def clean_cell(cell):
    if not isinstance(cell, dict):
        return None
    defines = cell.get("defines") if isinstance(cell.get("defines"), list) else []
    index = cell.get("index")
    return {
        "index": index if isinstance(index, int) and not isinstance(index, bool) else 0,
        "status": clean_text(cell.get("status"), 40) or "?",
        "message": clean_text(cell.get("message"), MAX_MESSAGE),
        "seconds": round(clean_number(cell.get("seconds")), 3),
        "defines": [clean_text(d, 100) for d in defines[:50] if isinstance(d, str)],
    }


def clean_result(result):
    """A QuestionResult with every field of its type: outcome known, score within points."""
    points = max(0.0, clean_number(getattr(result, "points", 0.0)))
    outcome = getattr(result, "outcome", None)
    outcome = outcome if outcome in spec.OUTCOMES else spec.ERROR
    score = min(max(0.0, clean_number(getattr(result, "score", 0.0))), points)
    cases = getattr(result, "cases_run", 0)
    return QuestionResult(
        clean_text(getattr(result, "id", ""), 100) or "?",
        clean_text(getattr(result, "title", ""), MAX_TEXT),
        points,
        0.0 if outcome == spec.NOT_RUN_GPU else score,  # partial credit keeps a failed one's
        outcome,
        clean_text(getattr(result, "message", ""), MAX_MESSAGE),
        clean_text(getattr(result, "hint", ""), MAX_MESSAGE),
        getattr(result, "gpu", False) is True,
        cases if isinstance(cases, int) and not isinstance(cases, bool) and cases >= 0 else 0,
    )


def clean_report(report):
    """A copy of ``report`` (a runner.Report) in which every value is of its type and capped."""
    seed = getattr(report, "seed", 0)
    out = Report(
        clean_text(getattr(report, "chapter", ""), 100),
        seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        [clean_result(r) for r in (getattr(report, "results", None) or [])],
        clean_environment(getattr(report, "environment", None)),
    )
    out.isolation = clean_text(getattr(report, "isolation", ""), MAX_TEXT)
    out.error = clean_text(getattr(report, "error", ""), MAX_MESSAGE)
    cells = getattr(report, "cells", None)
    cells = cells if isinstance(cells, list) else []
    out.cells = [c for c in (clean_cell(c) for c in cells[:MAX_CELLS]) if c is not None]
    out.execution_time = clean_number(getattr(report, "execution_time", 0.0))
    out.require_gpu = getattr(report, "require_gpu", False) is True
    return out


def clean_record(record):
    """A Record whose report is cleaned and whose numbers are finite (see :func:`clean_report`)."""
    report = clean_report(record.report)
    uncounted = tuple(clean_text(u, 100) for u in record.uncounted if isinstance(u, str))
    return Record(
        record.student,
        record.chapter,
        clean_text(record.hash, 100),
        record.status if record.status in (GRADED, MISSING, GRADER_ERROR) else GRADER_ERROR,
        clean_text(record.notebook, 4096) or None,
        clean_text(record.graded_at, 40),
        max(0.0, clean_number(record.seconds)),
        report,
        max(0.0, clean_number(record.possible)),
        uncounted,
        tuple(f for f in (clean_flag(f) for f in record.flags[:MAX_FLAGS]) if f is not None),
    )


MAX_FLAGS = 200  # per (student, chapter)


def clean_flag(flag):
    """A review flag (see autograder/scan.py) as plain, capped data, or None."""
    if not isinstance(flag, dict):
        return None
    cell, line = flag.get("cell"), flag.get("line")
    return {
        "cell": cell if isinstance(cell, int) and not isinstance(cell, bool) else 0,
        "line": line if isinstance(line, int) and not isinstance(line, bool) else 0,
        "rule": clean_text(flag.get("rule"), 100) or "?",
        "detail": clean_text(flag.get("detail"), MAX_TEXT),
    }


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
    flags: tuple = ()  # autograder.scan flags: for the instructor to review, never for students

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
        record = clean_record(record)
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
            self.conn.executemany(
                "INSERT INTO flags VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (record.student, record.chapter, f["cell"], f["line"], f["rule"], f["detail"])
                    for f in record.flags
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
            report = Report(chapter, seed, results, _json_dict(environment))
            details = _json_dict(details)
            for key, value in details.items():
                if key in REPORT_DETAILS:
                    setattr(report, key, value)
            uncounted = details.get("uncounted")
            uncounted = tuple(uncounted) if isinstance(uncounted, list) else ()
            flags = tuple(
                {"cell": c, "line": n, "rule": rule, "detail": detail}
                for (c, n, rule, detail) in self.conn.execute(
                    "SELECT cell, line, rule, detail FROM flags WHERE student = ? AND chapter = ?"
                    " ORDER BY cell, line, rule",
                    (student_, chapter),
                )
            )
            record = Record(
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
                flags,
            )
            # Cleaned again on the way out: a gradebook from an older grader may hold anything.
            out.append(clean_record(record))
        return out

    def flagged(self, students=None, chapters=None):
        """Every stored review flag as (student, chapter, flag), by student, chapter, cell."""
        rows = self.conn.execute(
            "SELECT student, chapter, cell, line, rule, detail FROM flags"
            " ORDER BY student, chapter, cell, line, rule"
        ).fetchall()
        return [
            (s, c, {"cell": cell, "line": line, "rule": rule, "detail": detail})
            for (s, c, cell, line, rule, detail) in rows
            if (students is None or s in students) and (chapters is None or c in chapters)
        ]

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
    return f"{clean_number(x):g}"


def _json_dict(text):
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except (ValueError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {}


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


@functools.cache
def host_cuda():
    """Whether this machine has CUDA: the grader's fact, never a kernel's word."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 -- no torch, or a broken driver: no GPU
        return False


@functools.cache
def host_gpu():
    """This machine's GPU model (for the reports), or None without CUDA."""
    if not host_cuda():
        return None
    try:
        import torch

        return clean_text(str(torch.cuda.get_device_name(0))) or None
    except Exception:  # noqa: BLE001
        return None


def host_environment(seed, isolation):
    """What the grader itself records about a run: seed, sandbox line, CUDA and GPU model."""
    return {"seed": seed, "isolation": isolation, "cuda": host_cuda(), "gpu": host_gpu()}


def uncounted_questions(report, require_gpu, cuda=None):
    """Questions left out of ``possible``: GPU questions, on a machine without CUDA, unless
    ``--require-gpu``.

    ``cuda`` (default: :func:`host_cuda`) is the grading machine's, never what a kernel said: on
    a machine with CUDA every GPU question counts, so a kernel that claims to have no GPU scores
    0 on them instead of taking them out of ``possible``. Without CUDA, GPU questions are left
    out for everyone alike, whether their notebook ran or not.
    """
    cuda = host_cuda() if cuda is None else cuda
    if require_gpu or cuda:
        return ()
    return tuple(r.id for r in report.results if r.gpu or r.outcome == spec.NOT_RUN_GPU)


def possible_points(report, require_gpu, cuda=None):
    """Points on offer (see :func:`uncounted_questions`)."""
    left_out = uncounted_questions(report, require_gpu, cuda)
    return sum(r.points for r in report.results if r.id not in left_out)


# Fields of runner.Report beyond chapter/seed/results/environment, kept in ``details``.
REPORT_DETAILS = ("isolation", "error", "cells", "execution_time", "require_gpu")


def report_details(report):
    return {key: getattr(report, key) for key in REPORT_DETAILS if hasattr(report, key)}
