"""Per-student reports from gradebook records: Gradescope ``results.json`` and ``feedback.html``.

Everything a student wrote (error messages, above all) is hostile text: it is escaped in HTML and
only ever carried as a JSON string, and every record is cleaned (``gradebook.clean_record``:
strings capped, numbers finite) before a report is made of it. Isolation is the grader's fact:
when it was off, the first line of each report says so; otherwise reports show the sandbox's own
line. Students' files never show the run seed or content hashes (hidden inputs follow from the
seed); those stay in the gradebook and the instructor's summary.
"""

import html
import json
import platform
import re

from autograder import gradebook as gb
from autograder import spec
from autograder.gradebook import MISSING

# Gradescope's test statuses are only these two (its "Test case status"); a test with neither a
# status nor a score is shown as information, neither passed nor failed: a GPU question that
# could not run and is not counted.
GS_PASSED, GS_FAILED = "passed", "failed"
NOT_HANDED_IN = "not handed in"
OFF_PREFIXES = ("isolation off", "off", "none", "no sandbox")


def isolation_off(environment):
    """Why isolation was off for a grading environment, or None when the sandbox was on.

    Reads the grader's own line, ``environment["isolation"]`` (``sandbox.Sandbox.isolation``):
    ``"bubblewrap; cgroup v2 memory/pids/cpu"``, ``"bubblewrap; per-kernel uid ... no memory
    cgroup"`` or the older ``"isolation on: bubblewrap ..."`` mean on; ``"ISOLATION OFF: ..."``
    means off, and the line itself is the reason. A line that names no bubblewrap, or none at
    all, is taken as off too. ``isolated`` is ignored: a kernel could have put it there. A record
    with no kernel at all (a missing notebook) ran no student code and says nothing.
    """
    if not isinstance(environment, dict):
        return "not recorded"
    value = environment.get("isolation")
    if value is None or value == "":
        return None if environment.get("kernel") is False else "not recorded"
    if not isinstance(value, str):
        return "not recorded"
    line = value.strip()
    if line.lower().startswith(OFF_PREFIXES) or "bubblewrap" not in line.lower():
        return line
    return None


def report_isolation_off(report):
    """``isolation_off`` for a report: ``Report.isolation`` (grade_notebook's line, from the
    sandbox) if it has one, else its environment's (also written by the grader)."""
    line = getattr(report, "isolation", "") or ""
    if line and report.environment.get("kernel") is not False:
        return isolation_off({"isolation": line})
    return isolation_off(report.environment)


def isolation_lines(records):
    """The sandbox's own lines for ``records`` that ran student code, as the grader wrote them."""
    lines = set()
    for rec in records:
        if rec.report.environment.get("kernel") is False:
            continue
        line = rec.report.isolation or rec.report.environment.get("isolation") or ""
        if line:
            lines.add(line)
    return sorted(lines)


def course_order(records, order=None):
    """``records`` in course order: ``order`` (chapter ids) if given, else chapter numbers."""
    if order is None:
        order = {}
        try:
            from autograder.questions import get_chapter

            for rec in records:
                order[rec.chapter] = get_chapter(rec.chapter).number
        except Exception:  # noqa: BLE001 -- a chapter the registry does not know: last
            pass
    else:
        order = {cid: i for i, cid in enumerate(order)}
    return sorted(records, key=lambda rec: (order.get(rec.chapter, 10**6), rec.chapter))


def prepare(records, order=None):
    """Cleaned records in course order: what every report is made from."""
    return course_order([gb.clean_record(rec) for rec in records], order)


def missing(record):
    return record.status == MISSING


def isolation_line(records):
    """The warning that opens every report when any of ``records`` was graded unsandboxed."""
    reasons = sorted({r for rec in records if (r := report_isolation_off(rec.report))})
    if not reasons:
        return None
    return (
        "WARNING: isolation was OFF: student code ran without the bubblewrap sandbox "
        f"(resource limits still applied) [{'; '.join(reasons)}]"
    )


def test_name(record, result):
    title = result.title if result.title and result.title != result.id else ""
    return f"{record.chapter}.{result.id}" + (f": {title}" if title else "")


def counted(record, result):
    """Whether ``result`` counts towards ``possible`` (decided when it was graded)."""
    return result.id not in record.uncounted


# The runner's message for a partial question that lost cases (runner.grade_question).
PARTIAL_CASES = re.compile(r"(\d+) of (\d+) cases passed; ")


def cases_passed(result):
    """(passed, run) for a partial question that did not pass every case, else None."""
    found = PARTIAL_CASES.match(str(result.message or ""))
    if found is None or result.outcome == spec.PASSED:
        return None
    passed, run = int(found[1]), int(found[2])
    return (passed, run) if passed < run else None


def outcome_text(result):
    """One line for a student: the outcome, then what went wrong (their message, our hint)."""
    lines = [result.outcome]
    if result.message and result.outcome != spec.PASSED:
        lines.append(result.message)
    if result.hint and result.outcome not in (spec.PASSED, spec.NOT_RUN_GPU):
        lines.append(f"hint: {result.hint}")
    return "\n".join(lines)


def versions(records):
    """Versions recorded by the kernels of ``records`` (the first that ran a kernel wins)."""
    found = {"python": None, "numpy": None, "torch": None}
    for rec in records:
        for key in found:
            found[key] = found[key] or rec.report.environment.get(key)
    found["grader_python"] = platform.python_version()
    return found


def gpu_model(records):
    models = sorted({g for rec in records if (g := rec.report.environment.get("gpu"))})
    return ", ".join(models) or None


MAX_TROUBLED_CELLS = 50


def troubled_cells(report):
    """Cells (from grade_notebook) that errored, timed out, crashed or were skipped by a limit."""
    out = []
    for cell in getattr(report, "cells", None) or []:
        if not isinstance(cell, dict) or cell.get("status") == "ok":
            continue
        if cell.get("status") == "skipped" and "check()" in str(cell.get("message", "")):
            continue  # the check() cell is never run by the grader: not a problem
        out.append(cell)
    return out[:MAX_TROUBLED_CELLS]


def student_environment(environment):
    """What a student's files show of an environment: versions, GPU, isolation; no seed."""
    return {k: v for k, v in environment.items() if k != "seed"}


def _test(rec, result, number):
    use = counted(rec, result)
    test = {
        "name": test_name(rec, result),
        "number": number,
        "score": float(result.score),
        "max_score": float(result.points if use else 0),
        "status": GS_PASSED if result.outcome == spec.PASSED else GS_FAILED,
        "output": outcome_text(result),
        "visibility": "visible",
        "tags": [rec.chapter] + (["gpu"] if result.gpu else []),
        "extra_data": {
            "chapter": rec.chapter,
            "question": result.id,
            "outcome": result.outcome,
            "points": float(result.points),
            "counted": use,
        },
    }
    if result.outcome == spec.NOT_RUN_GPU and not use:
        # Neither passed nor failed: no status and no score make it an informational line.
        for key in ("status", "score", "max_score"):
            del test[key]
        test["output"] = f"{spec.NOT_RUN_GPU}: not counted"
    return test


def _missing_test(rec, number):
    return {
        "name": f"{rec.chapter}: {NOT_HANDED_IN}",
        "number": number,
        "score": 0.0,
        "max_score": float(rec.possible),
        "status": GS_FAILED,
        "output": f"{NOT_HANDED_IN}: {rec.report.error or 'no notebook for this chapter'}",
        "visibility": "visible",
        "tags": [rec.chapter],
        "extra_data": {"chapter": rec.chapter, "outcome": NOT_HANDED_IN, "counted": True},
    }


def results_json(student, records, require_gpu=False, order=None):
    """Gradescope's results.json for one student over the chapters in ``records``.

    A chapter not handed in is one test (0 of its points), not one error per question; a GPU
    question that could not run and is not counted has no status (neither passed nor failed).
    """
    records = prepare(records, order)
    tests = []
    for rec in records:
        if missing(rec):
            tests.append(_missing_test(rec, f"{rec.chapter}.{len(tests) + 1}"))
            continue
        for result in rec.report.results:
            tests.append(_test(rec, result, f"{rec.chapter}.{len(tests) + 1}"))
    score = sum(rec.score for rec in records)
    possible = sum(rec.possible for rec in records)
    warning = isolation_line(records)
    summary = f"{student}: {score:g} / {possible:g} points"
    return {
        "score": float(score),
        "execution_time": int(round(sum(rec.seconds for rec in records))),
        "output": "\n".join(filter(None, [warning, summary])),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "student": student,
            "possible": float(possible),
            "require_gpu": bool(require_gpu),
            "versions": versions(records),
            "gpu": gpu_model(records),
            "isolation": {
                "isolated": warning is None,
                "warning": warning,
                "lines": isolation_lines(records),
            },
            "outcomes": {
                f"{rec.chapter}.{r.id}": NOT_HANDED_IN if missing(rec) else r.outcome
                for rec in records
                for r in rec.report.results
            },
            "chapters": {
                rec.chapter: {
                    "status": NOT_HANDED_IN if missing(rec) else rec.status,
                    "graded_at": rec.graded_at,
                    "seconds": round(rec.seconds, 3),
                    "score": float(rec.score),
                    "possible": float(rec.possible),
                    "error": rec.report.error,
                    "troubled_cells": troubled_cells(rec.report),
                    "environment": student_environment(rec.report.environment),
                }
                for rec in records
            },
        },
    }


def results_json_text(student, records, require_gpu=False, order=None):
    """``results_json`` as strict JSON (no NaN or Infinity: every number was made finite)."""
    data = results_json(student, records, require_gpu, order)
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=True) + "\n"


COLORS = {spec.PASSED: "#1a7f37", spec.NOT_RUN_GPU: "#6e7781", NOT_HANDED_IN: "#6e7781"}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #1f2328; }
.warning { background: #fff1e5; border: 1px solid #bc4c00; padding: .5rem 1rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; }
th, td { border-bottom: 1px solid #d0d7de; padding: .4rem; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: .9em; }
.hint { color: #57606a; }
"""


def _e(text):
    return html.escape(str(text), quote=True)


def _chapter_html(rec):
    parts = [f"<h2>Chapter <code>{_e(rec.chapter)}</code>: {rec.score:g} / {rec.possible:g}</h2>"]
    if missing(rec):
        parts.append(f"<p class='hint'>{_e(NOT_HANDED_IN)}: 0 of {rec.possible:g} points.</p>")
        return parts
    if rec.report.error:
        parts.append(f"<p class='warning'>{_e(rec.report.error)}</p>")
    rows = []
    for r in rec.report.results:
        color = COLORS.get(r.outcome, "#cf222e")
        note = "" if counted(rec, r) else " (not counted)"
        detail = ""
        if r.message and r.outcome not in (spec.PASSED, spec.NOT_RUN_GPU):
            detail += f"<pre>{_e(r.message)}</pre>"
        if r.hint and r.outcome not in (spec.PASSED, spec.NOT_RUN_GPU):
            detail += f"<div class='hint'>hint: {_e(r.hint)}</div>"
        points = f"{r.score:g} / {r.points:g}"
        cases = cases_passed(r)
        if cases:  # partial credit: "2 of 3 cases, 1.33 / 2 points"
            points = f"{cases[0]} of {cases[1]} cases, {r.score:.3g} / {r.points:g} points"
        rows.append(
            f"<tr><td>{_e(r.title or r.id)}<br><code>{_e(r.id)}</code></td>"
            f"<td class='num'>{_e(points)}</td>"
            f"<td style='color:{color};font-weight:bold'>{_e(r.outcome)}{_e(note)}</td>"
            f"<td>{detail}</td></tr>"
        )
    parts.append(
        "<table><tr><th>question</th><th>points</th><th>outcome</th><th>details</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    troubled = troubled_cells(rec.report)
    if troubled:
        items = "".join(
            f"<li>cell {_e(c.get('index', 0) + 1)}: {_e(c.get('status'))}"
            f"<pre>{_e(c.get('message', ''))}</pre></li>"
            for c in troubled
        )
        parts.append(f"<p>Cells of your notebook that did not run cleanly:</p><ul>{items}</ul>")
    return parts


def feedback_html(student, records, require_gpu=False, order=None):
    """A self-contained HTML page for one student: every question's outcome, hint and message,
    chapters in course order; a chapter not handed in is one line."""
    records = prepare(records, order)
    warning = isolation_line(records)
    score = sum(rec.score for rec in records)
    possible = sum(rec.possible for rec in records)
    parts = []
    if warning:
        parts.append(f"<p class='warning'><b>{_e(warning)}</b></p>")
    parts.append(f"<h1>Feedback for {_e(student)}</h1>")
    parts.append(f"<p><b>{score:g} / {possible:g} points</b></p>")
    for rec in records:
        parts.extend(_chapter_html(rec))
    graded = ", ".join(sorted({rec.graded_at for rec in records}))
    sandbox = "; ".join(isolation_lines(records))
    parts.append(
        f"<p class='hint'>Graded {_e(graded)}"
        + (f"; sandbox: {_e(sandbox)}" if sandbox else "")
        + ".</p>"
    )
    # No scripts, no external resources: the page is safe to open from an LMS or a file share.
    csp = "default-src 'none'; style-src 'unsafe-inline'"
    return (
        (f"<!-- {_e(warning).replace('--', '- -')} -->\n" if warning else "")
        + "<!DOCTYPE html>\n"
        + "<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        f"<title>Feedback: {_e(student)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def fallback_results_json(student, reason):
    """A valid results.json for a student whose report could not be made (a grader bug)."""
    data = {
        "score": 0.0,
        "output": f"{student}: the grader could not write this report ({reason}); "
        "ask your instructor",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"student": student, "report_failed": True},
    }
    return json.dumps(data, indent=2, ensure_ascii=True) + "\n"


def fallback_feedback_html(student, reason):
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
        f"<title>Feedback: {_e(student)}</title></head><body>"
        f"<p>The grader could not write this report ({_e(reason)}); ask your instructor.</p>"
        "</body></html>\n"
    )


def summary_lines(
    records_by_student, chapters, *, graded, skipped, out, seed=None, flagged=(), failed=()
):
    """The terminal summary of a grading run (the isolation warning, if any, comes first).

    ``flagged``: (student, chapter, flag) from the gradebook, code to review (autograder/scan.py);
    ``failed``: students whose files could not be written.
    """
    all_records = [gb.clean_record(rec) for recs in records_by_student.values() for rec in recs]
    lines = []
    warning = isolation_line(all_records)
    if warning:
        lines.append(warning)
    lines.append(
        f"{len(records_by_student)} students, chapters {', '.join(c.id for c in chapters)}: "
        f"{graded} notebooks graded, {skipped} unchanged since the last run (skipped)"
    )
    sandbox = isolation_lines(all_records)
    if sandbox and not warning:
        lines.append(f"isolation: {'; '.join(sandbox)}")
    if seed is not None:
        lines.append(f"seed of the random test inputs: {seed} (kept in the gradebook for re-runs)")
    for chapter in chapters:
        recs = [rec for rec in all_records if rec.chapter == chapter.id]
        if not recs:
            continue
        handed_in = [rec for rec in recs if not missing(rec)]
        mean = sum(rec.score for rec in recs) / len(recs)
        full = sum(rec.score >= rec.possible > 0 for rec in recs)
        errors = sum(rec.status == gb.GRADER_ERROR or bool(rec.report.error) for rec in handed_in)
        lines.append(
            f"  {chapter.id:<16} mean {mean:.2f} / {chapter.points:g}, full marks {full}, "
            f"{NOT_HANDED_IN} {len(recs) - len(handed_in)}, could not be run {errors}"
        )
        outcomes = {}
        for rec in handed_in:
            for r in rec.report.results:
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        if outcomes:
            lines.append(
                "    outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            )
    if flagged:
        notebooks = sorted({(s, c) for s, c, _ in flagged})
        lines.append(
            f"needs review: {len(notebooks)} notebook(s) whose code the shortcut scan flagged "
            f"(not in students' files): {out / 'review.csv'}"
        )
        for student, chapter in notebooks[:20]:
            rules = sorted({f["rule"] for s, c, f in flagged if (s, c) == (student, chapter)})
            lines.append(f"  {student} {chapter}: {', '.join(rules)}")
        if len(notebooks) > 20:
            lines.append(f"  ... and {len(notebooks) - 20} more")
    if failed:
        lines.append(f"reports that could not be written: {', '.join(sorted(failed))}")
    lines.append(f"grades: {out / 'grades.csv'}")
    lines.append(f"per student: {out}/<student>/results.json and feedback.html")
    lines.append(f"gradebook: {out / 'gradebook.sqlite'}")
    return lines
