"""Per-student reports from gradebook records: Gradescope ``results.json`` and ``feedback.html``.

Everything a student wrote (error messages, above all) is hostile text: it is escaped in HTML and
only ever carried as a JSON string. When isolation was off, the first line of each report says so.
"""

import html
import json
import platform

from autograder import spec
from autograder.gradebook import MISSING

# Gradescope accepts only these two; every other outcome is "failed" with our outcome in output.
GS_PASSED, GS_FAILED = "passed", "failed"


def isolation_off(environment):
    """Why isolation was off for a grading environment, or None when the sandbox was on.

    The sandboxed grader records ``isolation`` (``"bubblewrap"`` or a text starting with
    ``"off"``) or ``isolated`` (a bool) in ``Report.environment``. A record with no kernel at all
    (a missing notebook) ran no student code and says nothing.
    """
    if not environment:
        return None
    if "isolated" in environment:
        if environment["isolated"]:
            return None
        return str(environment.get("isolation") or environment.get("isolation_reason") or "off")
    value = environment.get("isolation")
    if value is None:
        return None if environment.get("kernel") is False else "not recorded"
    if value is False:
        return "off"
    if isinstance(value, str) and value.lower().startswith(("off", "none", "isolation off")):
        return value
    return None


def report_isolation_off(report):
    """``isolation_off`` for a report: ``Report.isolation`` (grade_notebook's line) or its
    environment."""
    line = getattr(report, "isolation", "") or ""
    if line and report.environment.get("kernel") is not False:
        return isolation_off({"isolation": line})
    return isolation_off(report.environment)


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


def troubled_cells(report):
    """Cells (from grade_notebook) that errored, timed out, crashed or were skipped by a limit."""
    out = []
    for cell in getattr(report, "cells", None) or []:
        if not isinstance(cell, dict) or cell.get("status") == "ok":
            continue
        if cell.get("status") == "skipped" and "check()" in str(cell.get("message", "")):
            continue  # the check() cell is never run by the grader: not a problem
        out.append(cell)
    return out


def results_json(student, records, require_gpu=False):
    """Gradescope's results.json for one student over the chapters in ``records``."""
    tests = []
    for rec in records:
        for result in rec.report.results:
            use = counted(rec, result)
            tests.append(
                {
                    "name": test_name(rec, result),
                    "number": f"{rec.chapter}.{len(tests) + 1}",
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
            )
    score = sum(rec.score for rec in records)
    possible = sum(rec.possible for rec in records)
    warning = isolation_line(records)
    summary = f"{student}: {score:g} / {possible:g} points"
    seeds = sorted({rec.report.seed for rec in records})
    return {
        "score": float(score),
        "execution_time": int(round(sum(rec.seconds for rec in records))),
        "output": "\n".join(filter(None, [warning, summary])),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "student": student,
            "seed": seeds[0] if len(seeds) == 1 else seeds,
            "possible": float(possible),
            "require_gpu": bool(require_gpu),
            "versions": versions(records),
            "gpu": gpu_model(records),
            "isolation": {"isolated": warning is None, "warning": warning},
            "outcomes": {
                f"{rec.chapter}.{r.id}": r.outcome for rec in records for r in rec.report.results
            },
            "chapters": {
                rec.chapter: {
                    "status": rec.status,
                    "hash": rec.hash,
                    "graded_at": rec.graded_at,
                    "seconds": round(rec.seconds, 3),
                    "score": float(rec.score),
                    "possible": float(rec.possible),
                    "error": getattr(rec.report, "error", ""),
                    "troubled_cells": troubled_cells(rec.report),
                    "environment": rec.report.environment,
                }
                for rec in records
            },
        },
    }


def results_json_text(student, records, require_gpu=False):
    return json.dumps(results_json(student, records, require_gpu), indent=2, default=str) + "\n"


COLORS = {spec.PASSED: "#1a7f37", spec.NOT_RUN_GPU: "#6e7781"}
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


def feedback_html(student, records, require_gpu=False):
    """A self-contained HTML page for one student: every question's outcome, hint and message."""
    warning = isolation_line(records)
    score = sum(rec.score for rec in records)
    possible = sum(rec.possible for rec in records)
    parts = []
    if warning:
        parts.append(f"<p class='warning'><b>{_e(warning)}</b></p>")
    parts.append(f"<h1>Feedback for {_e(student)}</h1>")
    parts.append(f"<p><b>{score:g} / {possible:g} points</b></p>")
    for rec in records:
        parts.append(
            f"<h2>Chapter <code>{_e(rec.chapter)}</code>: {rec.score:g} / {rec.possible:g}</h2>"
        )
        error = getattr(rec.report, "error", "")
        if error:
            parts.append(f"<p class='warning'>{_e(error)}</p>")
        rows = []
        for r in rec.report.results:
            color = COLORS.get(r.outcome, "#cf222e")
            note = "" if counted(rec, r) else " (not counted)"
            detail = ""
            if r.message and r.outcome != spec.PASSED:
                detail += f"<pre>{_e(r.message)}</pre>"
            if r.hint and r.outcome not in (spec.PASSED, spec.NOT_RUN_GPU):
                detail += f"<div class='hint'>hint: {_e(r.hint)}</div>"
            rows.append(
                f"<tr><td>{_e(r.title or r.id)}<br><code>{_e(r.id)}</code></td>"
                f"<td class='num'>{r.score:g} / {r.points:g}</td>"
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
    seeds = ", ".join(sorted({str(rec.report.seed) for rec in records}))
    graded = ", ".join(sorted({rec.graded_at for rec in records}))
    parts.append(f"<p class='hint'>Graded {_e(graded)} with seed {_e(seeds)}.</p>")
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


def summary_lines(records_by_student, chapters, *, graded, skipped, out, seed=None):
    """The terminal summary of a grading run (the isolation warning, if any, comes first)."""
    all_records = [rec for recs in records_by_student.values() for rec in recs]
    lines = []
    warning = isolation_line(all_records)
    if warning:
        lines.append(warning)
    lines.append(
        f"{len(records_by_student)} students, chapters {', '.join(c.id for c in chapters)}: "
        f"{graded} notebooks graded, {skipped} unchanged since the last run (skipped)"
    )
    if seed is not None:
        lines.append(f"seed of the random test inputs: {seed} (kept in the gradebook for re-runs)")
    for chapter in chapters:
        recs = [rec for rec in all_records if rec.chapter == chapter.id]
        if not recs:
            continue
        missing = sum(rec.status == MISSING for rec in recs)
        mean = sum(rec.score for rec in recs) / len(recs)
        full = sum(rec.score >= rec.possible > 0 for rec in recs)
        lines.append(
            f"  {chapter.id:<16} mean {mean:.2f} / {chapter.points:g}, full marks {full}, "
            f"missing {missing}"
        )
        outcomes = {}
        for rec in recs:
            for r in rec.report.results:
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        lines.append("    outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    lines.append(f"grades: {out / 'grades.csv'}")
    lines.append(f"per student: {out}/<student>/results.json and feedback.html")
    lines.append(f"gradebook: {out / 'gradebook.sqlite'}")
    return lines
