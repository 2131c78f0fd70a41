"""``check()``: the public cases, run in the student's own kernel, shown as a table."""

import html
import sys

from autograder import spec
from autograder.runner import grade_namespace

SYMBOLS = {spec.PASSED: "✔", spec.NOT_RUN_GPU: "–"}
LEFT = "style='text-align:left'"  # JupyterLab right-aligns table cells by default


class CheckReport:
    """The result of ``check()``; displays as a table in JupyterLab and as text elsewhere."""

    def __init__(self, report):
        self.report = report

    @property
    def outcomes(self):
        return self.report.outcomes

    def _rows(self):
        for r in self.report.results:
            detail = r.message if r.outcome != spec.PASSED else ""
            hint = r.hint if r.outcome not in (spec.PASSED, spec.NOT_RUN_GPU) else ""
            yield r, detail, hint

    def __repr__(self):
        lines = [f"Public checks for chapter '{self.report.chapter}' (hidden cases run at grading)"]
        for r, detail, hint in self._rows():
            mark = SYMBOLS.get(r.outcome, "✘")
            pts = f"{r.score:g}/{r.points:g}" if 0 < r.score < r.points else f"{r.points:g}"
            lines.append(f"{mark} {r.id:<28} {pts:>4} pts  {r.outcome}")
            if detail:
                lines.append(f"      {detail}")
            if hint:
                lines.append(f"      hint: {hint}")
        passed = sum(r.score for r in self.report.results)  # partial credit included
        lines.append(f"{passed:g} / {self.report.possible():g} points on the public checks")
        return "\n".join(lines)

    def _repr_html_(self):
        colors = {spec.PASSED: "#1a7f37", spec.NOT_RUN_GPU: "#6e7781"}
        rows = []
        for r, detail, hint in self._rows():
            color = colors.get(r.outcome, "#cf222e")
            extra = "".join(
                f"<div style='color:#57606a'>{html.escape(t)}</div>"
                for t in (detail, f"hint: {hint}" if hint else "")
                if t
            )
            rows.append(
                f"<tr><td {LEFT}><code>{html.escape(r.id)}</code></td><td>{r.points:g}</td>"
                f"<td style='text-align:left;color:{color};font-weight:bold'>"
                f"{html.escape(r.outcome)}</td><td {LEFT}>{extra}</td></tr>"
            )
        passed = sum(r.score for r in self.report.results)  # partial credit included
        return (
            f"<p><b>Public checks, chapter '{html.escape(self.report.chapter)}'</b> "
            f"(hidden cases run at grading): {passed:g} / {self.report.possible():g} points</p>"
            f"<table><tr><th {LEFT}>question</th><th>points</th><th {LEFT}>outcome</th>"
            f"<th {LEFT}>details</th></tr>" + "".join(rows) + "</table>"
        )


def check(chapter_id, namespace=None, *, seed=0):
    """Run the public cases of ``chapter_id`` on the functions defined in this notebook."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals  # the notebook's own namespace
    return CheckReport(grade_namespace(chapter_id, namespace, seed=seed, hidden=False))
