"""``python -m autograder similarity SOURCE --out FILE.html``: which students' code looks alike.

Per chapter, the code of every student's exercise cells is compared with every other student's
and with the reference ``solutions/<chapter>.py``, by copydetect's winnowed fingerprints (as in
MOSS: code tokenized, names replaced by placeholders, k-grams hashed). What the students were
given (every code cell of the chapter's distributed ``exercises.ipynb``: imports, signatures,
docstrings, the demo cells) is boilerplate: its k-grams are removed from every fingerprint, so
untouched notebooks share nothing. A student's *share* in a pair is the part of their own code
(what is left after the boilerplate) that is also in the other's; a pair's similarity is the
larger share. FILE.html shows the pairs at or above the threshold with both excerpts, and the
students close to the reference; FILE.csv has one row per flagged pair. Similarity is evidence
for a person to read, never a verdict.

SOURCE is a SUBMISSIONS folder as ``grade`` reads it, or a RESULTS folder written by ``grade``
(its gradebook records where each notebook was). Notebooks are untrusted data: one that is not
readable JSON, too large or not a notebook is listed as not compared, and the run goes on.
"""

import csv
import html
import io
import json
import sqlite3
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder.notebook import CHECK_TAG, EXERCISE_TAG, defined_names, repo_path

DEFAULT_THRESHOLD = 0.5
# copydetect's defaults: k-grams of 25 characters of tokenized code (names become V, F, O,
# strings S), every k-gram kept (window 1), so what is found does not depend on the hash values.
NOISE = 25
WINDOW = 1
# A pair must share this many characters of tokenized code (two k-grams) to be flagged: a
# student who wrote one line gets a large share from any other who wrote the same natural line.
MIN_OVERLAP = 2 * NOISE
MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_CODE_CHARS = 200_000  # of one notebook's exercise code; the rest is not compared
CONTEXT_LINES = 10  # lines shown around the shared code in an excerpt
REFERENCE = "reference"  # student_b of a match with solutions/<chapter>.py
CSV_HEADER = ("chapter", "student_a", "student_b", "similarity")


class SimilarityError(Exception):
    """The command cannot run (no such SOURCE, an unreadable gradebook, a bad --out)."""


@dataclass
class Code:
    """One student's (or the reference's) code for one chapter, and its fingerprint."""

    student: str
    text: str
    fingerprint: object = None


@dataclass
class Match:
    chapter: str
    student_a: str
    student_b: str  # REFERENCE for a match with the reference
    similarity: float
    share_a: float
    share_b: float
    overlap: int  # characters of tokenized code the two have in common
    excerpt_a: str = ""  # escaped HTML, shared code marked
    excerpt_b: str = ""
    with_reference: bool = False  # student_b is the reference solution, not a student


@dataclass
class Outcome:
    matches: list = field(default_factory=list)
    compared: dict = field(default_factory=dict)  # chapter id -> number of notebooks
    skipped: list = field(default_factory=list)  # (student, chapter, reason)
    warnings: list = field(default_factory=list)


# -- the code of a notebook ----------------------------------------------------------------------


def _text(value):
    """A cell's source as text (a string or a list of strings), or None."""
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        value = "".join(value)
    if not isinstance(value, str):
        return None
    # Lone surrogates and NULs would break the report's UTF-8 and the reader's view of it.
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _tags(cell):
    metadata = cell.get("metadata")
    found = metadata.get("tags") if isinstance(metadata, dict) else None
    return {t for t in found if isinstance(t, str)} if isinstance(found, list) else set()


def exercise_code(doc, given=frozenset(), every_cell=False):
    """The code a student wrote in a notebook document: its exercise cells, joined.

    Cells tagged ``exercise``, and any other code cell that defines a top-level function or class
    (a student may write a helper in a cell of their own) unless it is one of the ``given``
    cells as distributed; never the ``check`` cell. ``every_cell`` takes every code cell (for
    the boilerplate). Raises ValueError for a document that is not a notebook.
    """
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook (no list of cells)")
    parts, size = [], 0
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source, tags = _text(cell.get("source")), _tags(cell)
        if source is None or not source.strip() or CHECK_TAG in tags:
            continue
        own = defined_names(source) and source.strip() not in given
        if every_cell or EXERCISE_TAG in tags or own:
            # The cell marker is a comment: the tokenizer drops it, so it changes no fingerprint.
            parts.append(f"# [cell {number}]\n{source.strip()}\n")
            size += len(parts[-1])
            if size >= MAX_CODE_CHARS:
                break
    return "\n".join(parts)[:MAX_CODE_CHARS]


def read_notebook(path):
    """The parsed notebook at ``path``; ValueError (with a reason to show) if it is unusable."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise ValueError("not a regular file")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not valid notebook JSON ({type(exc).__name__})") from None


# -- fingerprints (copydetect) -------------------------------------------------------------------


def fingerprint(text, boilerplate=frozenset(), window=WINDOW):
    """copydetect's fingerprint of Python ``text``, with the ``boilerplate`` hashes removed.

    The boilerplate is removed here rather than by ``CodeFingerprint(boilerplate=...)``, whose
    ``np.intersect1d(..., assume_unique=True)`` on a list with repeats also drops k-grams a
    student repeats in their own code.
    """
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp = CodeFingerprint("code.py", NOISE, window, language="python", fp=io.StringIO(text))
    if boilerplate:
        fp.hash_idx = {h: i for h, i in fp.hash_idx.items() if h not in boilerplate}
        fp.hashes = set(fp.hash_idx)
        fp.token_coverage = get_token_coverage(fp.hash_idx, NOISE, len(fp.filtered_code))
    return fp


def given_code(chapter):
    """(the given code cells' sources, every k-gram of them): the chapter's exercises.ipynb."""
    doc = json.loads(repo_path(chapter.notebook).read_text(encoding="utf-8"))
    cells = [_text(c.get("source")) or "" for c in doc["cells"] if c.get("cell_type") == "code"]
    given = frozenset(c.strip() for c in cells)
    # The given code as a student's notebook is read (the stubs joined: their junctions are
    # given too), as a whole, and cell by cell.
    hashes = set()
    for text in [exercise_code(doc, given), exercise_code(doc, every_cell=True), *cells]:
        hashes |= fingerprint(text, window=1).hashes
    return given, frozenset(hashes)


def compare(a, b):
    """(share of a, share of b, overlap, slices) for two fingerprinted codes."""
    from copydetect import compare_files

    if not a.fingerprint.token_coverage or not b.fingerprint.token_coverage:
        return 0.0, 0.0, 0, None  # one of them wrote nothing beyond what was given
    overlap, (share_a, share_b), slices = compare_files(a.fingerprint, b.fingerprint)
    return float(share_a), float(share_b), int(overlap), slices


def excerpt(code, slices):
    """Escaped HTML of ``code``, the shared parts in <mark>, long unshared stretches cut."""
    from copydetect.utils import highlight_overlap

    if slices is None or slices.ndim != 2 or slices.shape[1] == 0:
        return html.escape(code)
    marked, _ = highlight_overlap(
        code, slices.astype(int), "<mark>", "</mark>", truncate=CONTEXT_LINES, escape_html=True
    )
    return marked


# -- where the notebooks are ---------------------------------------------------------------------


def notebooks_in_submissions(folder, chapters, warn):
    """{chapter id: {student: path or reason}} from a SUBMISSIONS folder, as ``grade`` reads it."""
    from autograder import cli

    found = {}
    try:
        students = cli.find_students(folder, warn)
    except OSError as exc:
        raise SimilarityError(f"cannot read {folder}: {exc.strerror}") from None
    for student in students:
        try:
            notebooks = cli.student_notebooks(folder / student, chapters, warn)
        except OSError as exc:
            warn(f"cannot read {student}'s folder: {exc.strerror}")
            continue
        for chapter_id, path in notebooks.items():
            found.setdefault(chapter_id, {})[student] = path
    return found


def notebooks_in_results(folder, chapters, warn):
    """{chapter id: {student: path or reason}} from the gradebook of a RESULTS folder.

    The gradebook keeps each notebook's path as ``grade`` was given it: a relative one is read
    from the current folder, where ``grade`` ran.
    """
    uri = (folder / "gradebook.sqlite").resolve().as_uri() + "?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            rows = conn.execute(
                "SELECT student, chapter, notebook FROM submissions WHERE notebook IS NOT NULL "
                "ORDER BY student, chapter"
            ).fetchall()
    except sqlite3.Error as exc:
        raise SimilarityError(f"cannot read the gradebook in {folder}: {exc}") from None
    known = {c.id for c in chapters}
    found = {}
    for student, chapter_id, notebook in rows:
        if not isinstance(student, str) or not isinstance(notebook, str):
            continue
        if chapter_id not in known:
            warn(f"{student}: chapter {chapter_id!r} is not graded any more, not compared")
            continue
        path = Path(notebook)
        if not path.is_file():
            path = f"notebook not found at {notebook} (run from the folder grade ran in)"
        found.setdefault(chapter_id, {})[student[:200]] = path
    return found


# -- the comparison ------------------------------------------------------------------------------


def compare_chapter(chapter, notebooks, threshold, outcome, stderr):
    """Fingerprint one chapter's notebooks, compare every pair and the reference; record matches."""
    from tqdm import tqdm

    given, boilerplate = given_code(chapter)
    codes = []
    for student, path in sorted(notebooks.items()):
        if isinstance(path, str):
            outcome.skipped.append((student, chapter.id, path))
            continue
        try:
            text = exercise_code(read_notebook(path), given)
            codes.append(Code(student, text, fingerprint(text, boilerplate)))
        except (ValueError, OSError) as exc:
            outcome.skipped.append((student, chapter.id, str(exc)))
        except Exception as exc:  # noqa: BLE001 -- one notebook never stops the class's report
            outcome.skipped.append((student, chapter.id, f"unreadable ({type(exc).__name__})"))
    outcome.compared[chapter.id] = len(codes)
    reference_path = repo_path(f"solutions/{chapter.id}.py")
    reference = None
    if reference_path.is_file():
        text = reference_path.read_text(encoding="utf-8")
        reference = Code(REFERENCE, text, fingerprint(text, boilerplate))
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1 :]]
    if reference is not None:
        pairs += [(a, reference) for a in codes]
    flagged = 0
    for a, b in tqdm(pairs, desc=chapter.id, unit="pair", file=stderr, disable=None, leave=False):
        share_a, share_b, overlap, slices = compare(a, b)
        # Against the reference only the student's share counts: the reference is complete.
        similarity = share_a if b is reference else max(share_a, share_b)
        if similarity < threshold or overlap < MIN_OVERLAP:
            continue
        flagged += 1
        outcome.matches.append(
            Match(
                chapter.id,
                a.student,
                b.student,
                similarity,
                share_a,
                share_b,
                overlap,
                excerpt(a.text, slices[0]),
                excerpt(b.text, slices[1]),
                with_reference=b is reference,
            )
        )
    print(
        f"{chapter.id}: {len(codes)} notebooks compared, {flagged} matches at or above "
        f"{threshold:.0%}",
        file=stderr,
    )


def find_matches(source, chapters, threshold=DEFAULT_THRESHOLD, stderr=None):
    """Every match at or above ``threshold`` in SUBMISSIONS or RESULTS folder ``source``."""
    stderr = stderr or sys.stderr
    source, outcome = Path(source), Outcome()

    def warn(message):
        outcome.warnings.append(message)
        print(f"warning: {message}", file=stderr)

    if not source.is_dir():
        raise SimilarityError(f"{source} is not a folder of submissions or of results")
    if (source / "gradebook.sqlite").is_file():
        found = notebooks_in_results(source, chapters, warn)
    else:
        found = notebooks_in_submissions(source, chapters, warn)
    if any(REFERENCE in students for students in found.values()):
        warn(
            f"a student is named {REFERENCE!r}: in the CSV, their pairs read as matches with "
            "the reference solution (the HTML tells them apart)"
        )
    for chapter in chapters:
        if chapter.id in found:
            compare_chapter(chapter, found[chapter.id], threshold, outcome, stderr)
    order = {c.id: i for i, c in enumerate(chapters)}
    outcome.matches.sort(key=lambda m: (-m.similarity, order[m.chapter], m.student_a, m.student_b))
    return outcome


# -- the reports ---------------------------------------------------------------------------------


def _csv_cell(text):
    """A name a spreadsheet would read as a formula gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(matches):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for m in matches:
        row = (m.chapter, _csv_cell(m.student_a), _csv_cell(m.student_b), f"{m.similarity:.3f}")
        writer.writerow(row)
    return buffer.getvalue()


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem;
       color: #1b1b1b; line-height: 1.4; }
.note { border-left: 0.4rem solid #b35900; background: #fff4e5; padding: 0.6rem 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pair > div { min-width: 0; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.5rem; overflow-x: auto;
      font-size: 0.8rem; white-space: pre; }
mark { background: #ffd27f; }
"""


def _pct(x):
    return f"{100 * x:.0f}%"


def html_text(outcome, threshold, source):
    e = html.escape
    number = {id(m): i for i, m in enumerate(outcome.matches, start=1)}
    pairs = [m for m in outcome.matches if not m.with_reference]
    close = [m for m in outcome.matches if m.with_reference]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Code similarity report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Code similarity report</h1>",
        '<p class="note"><strong>Similarity is evidence for a person to read, not a verdict.'
        "</strong> Short exercises with a fixed specification invite the same code from "
        "people who worked alone, and a student may have shared code legitimately (a hint in "
        "class, a public example). Read both excerpts, and talk to the students, before "
        "drawing any conclusion.</p>",
        f"<p>Source: <code>{e(str(source))}</code>. Notebooks compared: "
        + (
            ", ".join(f"{e(c)} {n}" for c, n in outcome.compared.items())
            if outcome.compared
            else "none"
        )
        + f". Threshold {_pct(threshold)}: a student's <em>share</em> is the part of their "
        "own code (the given code of the exercise notebook excluded) also found in the other's; "
        "a pair's similarity is the larger share. Fingerprints by copydetect (winnowing, "
        f"k = {NOISE} characters of tokenized code, names and strings replaced by "
        "placeholders, so renaming changes nothing).</p>",
        f"<h2>Pairs of students at or above {_pct(threshold)} ({len(pairs)})</h2>",
    ]

    def rows(matches, with_b):
        head = "<tr><th>#</th><th>chapter</th><th>student</th>"
        head += "<th>student</th><th>similarity</th><th>shares</th>" if with_b else ""
        head += "" if with_b else "<th>share of their code in the reference</th>"
        lines = ["<table>", head + "</tr>"]
        for m in matches:
            i = number[id(m)]
            cells = [f'<a href="#m{i}">{i}</a>', e(m.chapter), e(m.student_a)]
            if with_b:
                shares = f"{_pct(m.share_a)} / {_pct(m.share_b)}"
                cells += [e(m.student_b), _pct(m.similarity), shares]
            else:
                cells += [_pct(m.similarity)]
            lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return lines + ["</table>"]

    out += rows(pairs, True) if pairs else ["<p>None.</p>"]
    out.append(f"<h2>Students whose code is close to the reference ({len(close)})</h2>")
    out += rows(close, False) if close else ["<p>None.</p>"]
    out.append("<h2>Excerpts</h2>")
    out.append(
        "<p>Shared code is marked; stretches far from it are cut (...). Names may differ "
        "between the two: the comparison ignores them.</p>"
    )
    for i, m in enumerate(outcome.matches, start=1):
        b = "the reference" if m.with_reference else m.student_b
        out += [
            f'<section id="m{i}"><h3>{i}. {e(m.chapter)}: {e(m.student_a)} and {e(b)}, '
            f"{_pct(m.similarity)}</h3>",
            '<div class="pair">',
            f"<div><h4>{e(m.student_a)} ({_pct(m.share_a)} shared)</h4>"
            f"<pre>{m.excerpt_a}</pre></div>",
            f"<div><h4>{e(b)} ({_pct(m.share_b)} shared)</h4><pre>{m.excerpt_b}</pre></div>",
            "</div></section>",
        ]
    if not outcome.matches:
        out.append("<p>None.</p>")
    out.append(f"<h2>Not compared ({len(outcome.skipped) + len(outcome.warnings)})</h2>")
    if outcome.skipped or outcome.warnings:
        out.append("<ul>")
        out += [f"<li>{e(s)}, {e(c)}: {e(r)}</li>" for s, c, r in outcome.skipped]
        out += [f"<li>{e(w)}</li>" for w in outcome.warnings]
        out.append("</ul>")
    else:
        out.append("<p>None.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- the command ---------------------------------------------------------------------------------


def run(source, out, threshold=DEFAULT_THRESHOLD, chapters=None, stderr=None):
    """Write ``out`` (HTML) and the CSV beside it; returns the outcome."""
    from autograder import cli
    from autograder.gradebook import write_atomic

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise SimilarityError(f"--out must name an .html file (the CSV goes beside it): {out}")
    if not out.parent.is_dir():
        raise SimilarityError(f"no folder {out.parent} to write {out.name} in")
    outcome = find_matches(source, chapters or cli.known_chapters(), threshold, stderr)
    try:
        write_atomic(out.with_suffix(".csv"), csv_text(outcome.matches))
        write_atomic(out, html_text(outcome, threshold, source))
    except OSError as exc:
        raise SimilarityError(f"cannot write {out}: {exc.strerror}") from None
    return outcome


def main(args):
    """The ``similarity`` sub-command (``args.source``, ``args.out``, ``args.threshold``)."""
    try:
        outcome = run(args.source, args.out, args.threshold)
    except SimilarityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    pairs = sum(not m.with_reference for m in outcome.matches)
    print(
        f"{args.out}: {pairs} pairs of students and {len(outcome.matches) - pairs} matches with "
        f"the reference at or above {args.threshold:.0%}; "
        f"{Path(args.out).with_suffix('.csv')} lists them; {len(outcome.skipped)} notebook(s) "
        "not compared"
    )
    return 0


def _fraction(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction in (0, 1] expected, got {text!r}")
    return value


def add_parser(sub):
    """Register ``similarity`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "similarity", help="pairs of students (and the reference) whose code looks alike"
    )
    p.add_argument("source", type=Path, metavar="SUBMISSIONS_OR_RESULTS")
    p.add_argument(
        "--out", required=True, type=Path, metavar="FILE.html", help="the report (CSV beside it)"
    )
    p.add_argument(
        "--threshold",
        type=_fraction,
        default=DEFAULT_THRESHOLD,
        metavar="F",
        help=f"flag pairs whose similarity is at least F (default {DEFAULT_THRESHOLD})",
    )
    return p
