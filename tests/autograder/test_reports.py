"""Are the per-student reports faithful (Gradescope's schema), safe (escaped) and honest about
isolation?"""

import json
import re
from html.parser import HTMLParser

from autograder import gradebook as gb
from autograder import reports, spec
from autograder.runner import QuestionResult, Report
from autograder.spec import Chapter

CH = Chapter("fake", number=9, notebook="book/ch09_fake/exercises.ipynb")
CH.question("a", points=2, functions=["a"], hint="Use <b>both</b> sides & divide.", title="9.1 A")
CH.question("g", points=3, functions=["g"], hint="hint g", gpu=True)
HOSTILE = "</pre><script>alert(document.cookie)</script><img src=x onerror=alert(1)>"
ON = "isolation on: bubblewrap sandbox, memory and process limits by cgroup"
OFF = "ISOLATION OFF: no bubblewrap: student code could read the grader's files and network"


def record(outcome_a, message="", isolation=ON, cells=(), error="", require_gpu=False):
    results = [
        QuestionResult(
            "a",
            "9.1 A",
            2,
            2 if outcome_a == spec.PASSED else 0,
            outcome_a,
            message,
            CH.questions[0].hint,
            False,
            1,
        ),
        QuestionResult("g", "g", 3, 0, spec.NOT_RUN_GPU, "not run: no GPU", "hint g", True, 0),
    ]
    environment = {
        "python": "3.11.9",
        "numpy": "2.1",
        "torch": "2.13.0",
        "gpu": None,
        "isolation": isolation,
        "seed": 5,
    }
    report = Report("fake", 5, results, environment)
    report.isolation, report.cells, report.error = isolation, list(cells), error
    return gb.Record(
        "ann",
        "fake",
        "h",
        gb.GRADED,
        "ann/ch09_fake.ipynb",
        "2026-01-01T00:00:00Z",
        2.6,
        report,
        gb.possible_points(report, require_gpu, cuda=False),
        gb.uncounted_questions(report, require_gpu, cuda=False),
    )


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_feedback_html_escapes_student_text():
    """Does a hostile error message come out as inert text: no script, no handler, no new tag?"""
    page = reports.feedback_html(
        "ann",
        [
            record(
                spec.ERROR,
                HOSTILE,
                cells=[
                    {
                        "index": 3,
                        "status": "error",
                        "message": HOSTILE,
                        "seconds": 0.1,
                        "defines": [],
                    }
                ],
            )
        ],
    )
    parser = Tags()
    parser.feed(page)
    tags = {tag for tag, _ in parser.tags}
    assert "script" not in tags and "img" not in tags
    assert not any(k.startswith("on") for _, attrs in parser.tags for k in attrs)
    assert page.count(html_escaped(HOSTILE)) == 2  # the question's message and the cell's
    assert "Use &lt;b&gt;both&lt;/b&gt; sides &amp; divide." in page


def html_escaped(text):
    import html

    return html.escape(text, quote=True)


def test_feedback_html_is_self_contained():
    """Does the page load nothing from anywhere (no src/href to other files, a strict CSP)?"""
    page = reports.feedback_html("ann", [record(spec.PASSED)])
    parser = Tags()
    parser.feed(page)
    assert not [a for _, attrs in parser.tags for k, a in attrs.items() if k in ("src", "href")]
    assert "default-src 'none'" in page


def test_isolation_off_is_the_first_line_of_every_report():
    """When the sandbox was off, do results.json's output and feedback.html begin by saying so,
    and say nothing when it was on?"""
    off, on = [record(spec.PASSED, isolation=OFF)], [record(spec.PASSED)]
    assert reports.results_json("ann", off)["output"].startswith("WARNING: isolation was OFF")
    assert reports.feedback_html("ann", off).startswith("<!-- WARNING: isolation was OFF")
    body = reports.feedback_html("ann", off).split("<body>", 1)[1]
    assert re.match(r"\s*<p class='warning'><b>WARNING: isolation was OFF", body)
    assert "OFF" not in reports.results_json("ann", on)["output"]
    assert "isolation was OFF" not in reports.feedback_html("ann", on)
    assert reports.results_json("ann", off)["extra_data"]["isolation"]["isolated"] is False
    assert reports.results_json("ann", on)["extra_data"]["isolation"]["isolated"] is True


def test_results_json_schema_and_gpu_exclusion():
    """Are the Gradescope keys present with the right types, and is an unrun GPU question worth
    0 (or its points with --require-gpu)?"""
    data = json.loads(reports.results_json_text("ann", [record(spec.FAILED, "off by 2")]))
    assert isinstance(data["score"], float) and data["score"] == 0.0
    assert data["execution_time"] == 3
    a, g = data["tests"]
    assert a["name"] == "fake.a: 9.1 A" and a["status"] == "failed" and a["max_score"] == 2.0
    assert a["output"].splitlines() == [
        "failed",
        "off by 2",
        "hint: Use <b>both</b> sides & divide.",
    ]
    # Not run and not counted: no status, no score, so Gradescope shows neither pass nor fail.
    assert {"status", "score", "max_score"}.isdisjoint(g) and g["extra_data"]["counted"] is False
    assert g["extra_data"]["outcome"] == spec.NOT_RUN_GPU and "not run" in g["output"]
    extra = data["extra_data"]
    assert "seed" not in extra and extra["gpu"] is None
    assert extra["versions"]["torch"] == "2.13.0"
    assert extra["outcomes"] == {"fake.a": spec.FAILED, "fake.g": spec.NOT_RUN_GPU}
    assert "hash" not in extra["chapters"]["fake"]  # the hash would let the seed be searched for
    assert "seed" not in extra["chapters"]["fake"]["environment"]
    strict = reports.results_json("ann", [record(spec.PASSED, require_gpu=True)])
    assert strict["tests"][1]["max_score"] == 3.0 and strict["tests"][1]["status"] == "failed"


def test_passed_questions_show_no_hint():
    """Is a passed question's output just 'passed' (hints are for what went wrong)?"""
    data = reports.results_json("ann", [record(spec.PASSED)])
    assert data["tests"][0]["output"] == "passed" and data["tests"][0]["status"] == "passed"
    assert data["score"] == 2.0


def test_isolation_off_detection():
    """Are the sandbox's own isolation lines read correctly (on, off, absent)?"""
    assert reports.isolation_off({"isolation": ON}) is None
    assert reports.isolation_off({"isolation": OFF}) == OFF
    assert reports.isolation_off({"isolated": False, "isolation": OFF}) == OFF
    assert reports.isolation_off({"kernel": False}) is None  # nothing ran
    assert reports.isolation_off({"python": "3.11"}) == "not recorded"
    for line in [
        "bubblewrap; cgroup v2 memory/pids/cpu",
        "bubblewrap; per-kernel uid 60003 with process and address-space rlimits, no memory cgroup",
    ]:
        assert reports.isolation_off({"isolation": line}) is None
    off = "ISOLATION OFF: no bubblewrap (rlimits only)"
    assert reports.isolation_off({"isolation": off}) == off
    assert reports.isolation_off({"isolation": "rlimits only"}) == "rlimits only"  # no sandbox


def test_the_kernel_cannot_say_it_was_isolated():
    """Does `isolated: True` (which a student's kernel can report) hide nothing: the grader's
    own OFF line still opens every report, and an ON line is shown as the sandbox wrote it?"""
    liar = record(spec.PASSED, isolation=OFF)
    liar.report.environment.update({"isolated": True, "isolation": ON})
    assert reports.results_json("ann", [liar])["output"].startswith("WARNING: isolation was OFF")
    assert html_escaped(OFF) in reports.feedback_html("ann", [liar]).split("\n")[0]
    on = "bubblewrap; cgroup v2 memory/pids/cpu"
    page = reports.feedback_html("ann", [record(spec.PASSED, isolation=on)])
    assert f"sandbox: {on}" in page and "isolation was OFF" not in page


def test_chapters_in_course_order_and_no_seed():
    """Are chapters shown by chapter number (2 before 10), and is the run seed nowhere in a
    student's files (their hidden inputs follow from it)?"""
    ten, two = record(spec.PASSED), record(spec.FAILED, "wrong")
    ten.chapter, two.chapter = "ten", "two"
    page = reports.feedback_html("ann", [ten, two], order=["two", "ten"])
    assert page.index("<code>two</code>") < page.index("<code>ten</code>")
    data = reports.results_json("ann", [ten, two], order=["two", "ten"])
    assert [t["extra_data"]["chapter"] for t in data["tests"]][0] == "two"
    text = reports.results_json_text("ann", [ten]) + reports.feedback_html("ann", [ten])
    assert "seed" not in text
    from autograder.questions import get_chapter

    by_number = sorted(["normalization", "descent", "momentum"], key=lambda c: -len(c))
    recs = []
    for chapter in by_number:
        rec = record(spec.PASSED)
        rec.chapter = chapter
        recs.append(rec)
    ordered = [r.chapter for r in reports.course_order(recs)]
    assert ordered == sorted(by_number, key=lambda c: get_chapter(c).number)


def leaky_question(secret_in):
    """A toy question with one public and one hidden case; the student's ``f`` passes the public
    case and hands back whatever ``secret_in`` makes of the hidden case's input."""
    from autograder import runner

    chapter = Chapter("toy", number=99, notebook="tests/toy.ipynb")
    q = chapter.question("f", points=1, functions=["f"], hint="double it")

    @q.case(public=True)
    def public(t, rng):
        assert t.student("f", 1.0) == 2.0

    @q.case()
    def hidden(t, rng):
        x = float(rng.normal())
        t.compare("f", x)

    def f(x):
        if x == 1.0:
            return 2.0
        return secret_in(x)

    reference = runner.LocalTarget("toy", {"f": lambda x: 2 * x}, cuda=False)
    return q, runner.LocalTarget("toy", {"f": f}, cuda=False), reference


def test_hidden_inputs_never_reach_the_message():
    """Can a function put a hidden input into its exception's message or class name, or into
    dict keys, and read it back in its feedback? (No: hidden cases show only the built-in
    exception class; keys are counted, not shown.)"""
    from autograder import runner

    seen = []

    def in_message(x):
        seen.append(repr(x))
        raise ValueError(f"LEAK {x!r} " * 500)

    def in_class_name(x):
        seen.append(repr(x))
        raise type(f"Leak_{str(x).replace('.', '_')}", (KeyError,), {})("LEAK")

    def in_keys(x):
        seen.append(repr(x))
        return {f"LEAK {x!r}": 0.0}

    for secret_in, outcome in [
        (in_message, spec.ERROR),
        (in_class_name, spec.ERROR),
        (in_keys, spec.FAILED),
    ]:
        q, student, reference = leaky_question(secret_in)
        result = runner.grade_question(q, student, reference, seed=11)
        assert result.outcome == outcome and result.message.startswith("hidden case")
        assert "LEAK" not in result.message and "Leak" not in result.message
        assert not any(s in result.message or s[:6] in result.message for s in seen)
        page = reports.feedback_html("ann", [record(outcome, result.message)])
        assert "LEAK" not in page
    assert "raised KeyError" in runner.grade_question(*leaky_question(in_class_name), 11).message


def test_public_cases_show_a_short_excerpt_only():
    """Does a public case's message keep the student's error readable, but short?"""
    from autograder import runner

    q, student, reference = leaky_question(lambda x: 0.0)
    noisy = runner.LocalTarget("toy", {"f": lambda x: 1 / 0 if x else "x" * 10**6}, cuda=False)
    result = runner.grade_question(q, noisy, reference, seed=0)
    assert result.outcome == spec.ERROR
    assert "raised ZeroDivisionError: division by zero" in result.message
    long = runner.LocalTarget(
        "toy", {"f": lambda x: (_ for _ in ()).throw(ValueError("y" * 10**5))}, cuda=False
    )
    result = runner.grade_question(q, long, reference, seed=0)
    assert "raised ValueError: yyy" in result.message and len(result.message) < 300
