"""Does ``python -m autograder similarity`` flag copied code, and only copied code?

A chapter 1 class: alice and bob wrote independent correct solutions (by hand, differently),
carol copied alice with every variable renamed and the functions in reverse order, dave pasted
the reference, erin and frank handed in untouched notebooks, gina's notebook is broken JSON.
"""

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import cli, similarity
from autograder.notebook import defined_names, repo_path, solve
from autograder.questions import get_chapter

REPO = Path(__file__).resolve().parents[2]
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_CODE = '# </pre><script>alert("carol")</script>'

ALICE = {
    "quadratic_minimizer": """def quadratic_minimizer(H, b):
    H = np.asarray(H, dtype=float)
    b = np.asarray(b, dtype=float)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError("H must be a square matrix")
    if not np.allclose(H, H.T):
        raise ValueError("H must be symmetric")
    eigenvalues = np.linalg.eigvalsh(H)
    if eigenvalues.min() <= 0:
        raise ValueError("H must be positive definite")
    return np.linalg.solve(H, -b)""",
    "gradient_descent": """def gradient_descent(grad, x0, lr, num_steps):
    path = [np.array(x0, dtype=float)]
    for _ in range(num_steps):
        current = path[-1]
        path.append(current - lr * np.asarray(grad(current)))
    return np.stack(path)""",
    "mlp_gradients": """def mlp_gradients(params, X, y):
    n = len(X)
    hidden = np.tanh(X @ params["W1"].T + params["b1"])
    output = hidden @ params["W2"].T + params["b2"]
    err = (output - y) / n
    grad_hidden = (err @ params["W2"]) * (1 - hidden * hidden)
    return {
        "W1": grad_hidden.T @ X,
        "b1": grad_hidden.sum(0),
        "W2": err.T @ hidden,
        "b2": err.sum(0),
    }""",
    "central_difference": """def central_difference(f, x, h):
    x = np.asarray(x, dtype=float)
    out = np.zeros(x.shape)
    for i in range(len(x)):
        plus = x.copy()
        minus = x.copy()
        plus[i] += h
        minus[i] -= h
        out[i] = (f(plus) - f(minus)) / (2 * h)
    return out""",
    "relative_error": """def relative_error(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 0.0
    return float(np.linalg.norm(np.subtract(a, b)) / max(na, nb))""",
    "minibatch_sgd": """def minibatch_sgd(X, y, batch_size, lr, num_epochs, seed):
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    rng = np.random.default_rng(seed)
    n, d = X.shape
    w = np.zeros(d)
    history = []
    for epoch in range(num_epochs):
        perm = rng.permutation(n)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            residual = X[idx] @ w - y[idx]
            w = w - lr * X[idx].T @ residual / len(idx)
        history.append(0.5 * np.mean((X @ w - y) ** 2))
    return w, np.array(history)""",
}

BOB = {
    "quadratic_minimizer": """def quadratic_minimizer(H, b):
    M = np.array(H, dtype=np.float64)
    if M.ndim != 2 or len(M) != len(M.T):
        raise ValueError(f"expected a square matrix, got shape {M.shape}")
    if np.max(np.abs(M - M.T)) > 1e-10 * max(1.0, np.max(np.abs(M))):
        raise ValueError("the matrix is not symmetric")
    try:
        np.linalg.cholesky(M)
    except np.linalg.LinAlgError as exc:
        raise ValueError("the matrix is not positive definite") from exc
    return -np.linalg.solve(M, np.array(b, dtype=np.float64))""",
    "gradient_descent": """def gradient_descent(grad, x0, lr, num_steps):
    point = np.copy(np.asarray(x0, dtype=np.float64))
    trajectory = np.zeros((num_steps + 1, point.shape[0]))
    trajectory[0, :] = point
    step = 1
    while step <= num_steps:
        point = point - lr * grad(point)
        trajectory[step, :] = point
        step += 1
    return trajectory""",
    "mlp_gradients": """def mlp_gradients(params, X, y):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    count = X.shape[0]
    pre = np.einsum("hd,nd->nh", W1, X) + b1
    act = np.tanh(pre)
    g_out = (np.einsum("kh,nh->nk", W2, act) + b2 - y) / count
    g_pre = np.einsum("nk,kh->nh", g_out, W2) / np.cosh(pre) ** 2
    grads = {}
    grads["W2"] = np.einsum("nk,nh->kh", g_out, act)
    grads["b2"] = np.sum(g_out, axis=0)
    grads["W1"] = np.einsum("nh,nd->hd", g_pre, X)
    grads["b1"] = np.sum(g_pre, axis=0)
    return grads""",
    "central_difference": """def central_difference(f, x, h):
    base = np.asarray(x, dtype=np.float64)
    steps = h * np.eye(base.size)
    slopes = [(f(base + e) - f(base - e)) / (2 * h) for e in steps]
    return np.array(slopes, dtype=np.float64).reshape(base.shape)""",
    "relative_error": """def relative_error(a, b):
    u = np.ravel(np.asarray(a, dtype=np.float64))
    v = np.ravel(np.asarray(b, dtype=np.float64))
    scale = np.sqrt(max(u @ u, v @ v))
    return 0.0 if scale == 0 else float(np.sqrt((u - v) @ (u - v)) / scale)""",
    "minibatch_sgd": """def minibatch_sgd(X, y, batch_size, lr, num_epochs, seed):
    if not batch_size >= 1:
        raise ValueError(f"batch_size={batch_size} is below 1")
    generator = np.random.default_rng(seed)
    weights = np.zeros(X.shape[1])
    losses = np.zeros(num_epochs)
    for epoch in range(num_epochs):
        order = generator.permutation(len(y))
        cuts = np.arange(batch_size, len(order), batch_size)
        for rows in np.split(order, cuts):
            Xb = X[rows]
            weights -= lr * (Xb.T @ (Xb @ weights - y[rows])) / rows.size
        losses[epoch] = np.mean((X @ weights - y) ** 2) / 2
    return weights, losses""",
}

# alice's code, every name renamed, the functions in reverse order, all in the last stub cell.
CAROL = f"""def minibatch_sgd(X, y, batch_size, lr, num_epochs, seed):
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    gen = np.random.default_rng(seed)
    rows, cols = X.shape
    weights = np.zeros(cols)
    losses = []
    for ep in range(num_epochs):
        shuffled = gen.permutation(rows)
        for start in range(0, rows, batch_size):
            batch = shuffled[start : start + batch_size]
            r = X[batch] @ weights - y[batch]
            weights = weights - lr * X[batch].T @ r / len(batch)
        losses.append(0.5 * np.mean((X @ weights - y) ** 2))
    return weights, np.array(losses)


def relative_error(a, b):
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 and norm_b == 0:
        return 0.0
    return float(np.linalg.norm(np.subtract(a, b)) / max(norm_a, norm_b))


def central_difference(f, x, h):
    {HOSTILE_CODE}
    v = np.asarray(x, dtype=float)
    g = np.zeros(v.shape)
    for j in range(len(v)):
        up = v.copy()
        down = v.copy()
        up[j] += h
        down[j] -= h
        g[j] = (f(up) - f(down)) / (2 * h)
    return g


def mlp_gradients(params, X, y):
    m = len(X)
    a1 = np.tanh(X @ params["W1"].T + params["b1"])
    out = a1 @ params["W2"].T + params["b2"]
    delta = (out - y) / m
    delta1 = (delta @ params["W2"]) * (1 - a1 * a1)
    return {{
        "W1": delta1.T @ X,
        "b1": delta1.sum(0),
        "W2": delta.T @ a1,
        "b2": delta.sum(0),
    }}


def gradient_descent(grad, x0, lr, num_steps):
    xs = [np.array(x0, dtype=float)]
    for _ in range(num_steps):
        x = xs[-1]
        xs.append(x - lr * np.asarray(grad(x)))
    return np.stack(xs)


def quadratic_minimizer(H, b):
    A = np.asarray(H, dtype=float)
    rhs = np.asarray(b, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError("H must be a square matrix")
    if not np.allclose(A, A.T):
        raise ValueError("H must be symmetric")
    lam = np.linalg.eigvalsh(A)
    if lam.min() <= 0:
        raise ValueError("H must be positive definite")
    return np.linalg.solve(A, -rhs)
"""

CHAPTER = get_chapter("descent")
FLAGGED = {("descent", "alice", "carol"), ("descent", "dave", "reference")}


def given_notebook():
    return nbformat.read(repo_path(CHAPTER.notebook), as_version=4)


def filled(functions):
    """The distributed notebook with each stub replaced by ``functions[name]``."""
    nb = given_notebook()
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            cell.source = "\n\n\n".join(functions[n] for n in defined_names(cell.source))
    return nb


def carol_notebook():
    nb = given_notebook()
    stubs = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    for cell in stubs[:-1]:
        cell.source = ""
    stubs[-1].source = CAROL
    return nb


def make_class(root):
    sub = root / "submissions"
    notebooks = {
        "alice": filled(ALICE),
        "bob": filled(BOB),
        "carol": carol_notebook(),
        "dave": solve(given_notebook(), "descent"),
        "erin": given_notebook(),
        "frank": given_notebook(),
    }
    for student, nb in notebooks.items():
        (sub / student).mkdir(parents=True)
        nbformat.write(nb, sub / student / "ch01_descent.ipynb")
    (sub / "gina").mkdir()
    (sub / "gina" / "ch01_descent.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    # A folder grade would skip (not a student id); its name ends up in the report's warnings.
    (sub / HOSTILE_NAME).mkdir()
    nbformat.write(carol_notebook(), sub / HOSTILE_NAME / "ch01_descent.ipynb")
    return sub


def run(source, out, threshold=similarity.DEFAULT_THRESHOLD):
    stderr = io.StringIO()
    outcome = similarity.run(source, out, threshold, chapters=[CHAPTER], stderr=stderr)
    return outcome, out.read_text(encoding="utf-8"), read_rows(out.with_suffix(".csv"))


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    sub = make_class(root)
    return sub, run(sub, root / "report.html")


def test_the_planted_solutions_are_correct_and_independent():
    """Do alice's, bob's and carol's functions all agree with the reference (float64, 1e-12)?"""
    from solutions import descent as ref

    rng = np.random.default_rng(0)
    for code in ("\n\n".join(ALICE.values()), "\n\n".join(BOB.values()), CAROL):
        ns = {"np": np}
        exec(code, ns)  # noqa: S102 -- the test's own code
        A = rng.normal(size=(4, 4))
        H, b = A @ A.T + 4 * np.eye(4), rng.normal(size=4)
        np.testing.assert_allclose(ns["quadratic_minimizer"](H, b), ref.quadratic_minimizer(H, b))
        for bad in (np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[1.0, 2.0], [2.0, 1.0]])):
            with pytest.raises(ValueError):
                ns["quadratic_minimizer"](bad, b[:2])

        def grad(x, H=H, b=b):
            return H @ x + b

        np.testing.assert_allclose(
            ns["gradient_descent"](grad, b, 0.05, 7), ref.gradient_descent(grad, b, 0.05, 7)
        )
        params = {"W1": rng.normal(size=(5, 3)), "b1": rng.normal(size=5)}
        params.update(W2=rng.normal(size=(2, 5)), b2=rng.normal(size=2))
        X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
        ours, theirs = ns["mlp_gradients"](params, X, y), ref.mlp_gradients(params, X, y)
        for key in theirs:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12, atol=1e-14)
        x = rng.normal(size=3)
        np.testing.assert_allclose(
            ns["central_difference"](lambda v: np.sum(np.sin(v)), x, 1e-4),
            ref.central_difference(lambda v: np.sum(np.sin(v)), x, 1e-4),
            rtol=1e-12,
        )
        assert ns["relative_error"](np.zeros(3), np.zeros(3)) == 0.0
        assert ns["relative_error"](x, 2 * x) == pytest.approx(ref.relative_error(x, 2 * x))
        Xr, yr = rng.normal(size=(37, 4)), rng.normal(size=37)
        for got, want in zip(
            ns["minibatch_sgd"](Xr, yr, 8, 0.05, 3, 1), ref.minibatch_sgd(Xr, yr, 8, 0.05, 3, 1)
        ):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_copies_are_flagged_and_nothing_else(klass):
    """Are exactly the renamed, reordered copy and the reference copy flagged, near 100%?"""
    _, (outcome, _, rows) = klass
    assert rows[0] == ["chapter", "student_a", "student_b", "similarity"]
    assert {tuple(r[:3]) for r in rows[1:]} == FLAGGED and len(rows) == 3
    assert all(float(r[3]) >= 0.9 for r in rows[1:])
    assert [float(r[3]) for r in rows[1:]] == sorted((float(r[3]) for r in rows[1:]), reverse=True)
    assert outcome.compared == {"descent": 6}


def test_independent_and_blank_pairs_score_far_below_the_threshold(klass, tmp_path):
    """With a 1% threshold, do the independent, blank and reference-only pairs stay low?"""
    sub, _ = klass
    outcome, _, _ = run(sub, tmp_path / "all.html", threshold=0.01)
    scores = {frozenset((m.student_a, m.student_b)): m.similarity for m in outcome.matches}
    # Nothing of erin's or frank's is their own, so they match nobody.
    assert not [pair for pair in scores if pair & {"erin", "frank"}]
    assert scores.get(frozenset(("alice", "bob")), 0.0) < 0.1
    for student in ("alice", "bob", "carol"):
        assert scores.get(frozenset((student, "reference")), 0.0) < 0.25
    assert scores[frozenset(("alice", "carol"))] > 0.9


def test_a_broken_notebook_and_an_odd_folder_are_listed_not_compared(klass):
    """Is gina's broken notebook reported as skipped, and the odd folder name escaped?"""
    _, (outcome, page, _) = klass
    assert [(s, c) for s, c, _ in outcome.skipped] == [("gina", "descent")]
    assert "gina, descent: not valid notebook JSON" in page
    assert HOSTILE_NAME not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_page_is_self_contained_escaped_and_says_it_is_evidence(klass):
    """Does the HTML load nothing, run nothing, escape the code and show both excerpts?"""
    _, (_, page, _) = klass
    assert "not a verdict" in page
    for needle in ("<script", "<link", "src=", "http://", "https://", "<iframe"):
        assert needle not in page.replace("&lt;img src=x", "")
    assert HOSTILE_CODE not in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#34;carol&#34;)&lt;/script&gt;" in page
    section = page.split('<section id="m1">')[1].split("</section>")[0]
    assert "alice and carol" in section
    assert section.count("<pre>") == 2 and "<mark>" in section
    assert "def relative_error(a, b):" in section and "norm_a, norm_b" in section
    close = page.split("close to the reference")[1].split("</table>")[0]
    assert "dave" in close and "alice" not in close


def test_notebooks_of_any_shape_are_data():
    """Do cells of the wrong types, list sources and non-notebooks give text or a clear error?"""
    doc = {
        "cells": [
            "not a cell",
            {"cell_type": "markdown", "source": "def f(): pass"},
            {"cell_type": "code", "source": ["def f(x):\n", "    return x\n"]},
            {"cell_type": "code", "source": 42, "metadata": {"tags": ["exercise"]}},
            {"cell_type": "code", "source": "print(1)", "metadata": {"tags": "exercise"}},
            {"cell_type": "code", "source": "def g(): pass", "metadata": {"tags": ["check"]}},
            {"cell_type": "code", "source": "y = 1\ud800", "metadata": {"tags": ["exercise"]}},
        ]
    }
    text = similarity.exercise_code(doc)
    assert "def f(x):\n    return x" in text and "print(1)" not in text
    assert "def g" not in text and "y = 1?" in text
    for bad in ([], {"cells": {}}, "x"):
        with pytest.raises(ValueError):
            similarity.exercise_code(bad)


def test_a_student_named_reference_is_told_apart(tmp_path):
    """Is a student called "reference" warned about, and kept a student in the HTML?"""
    sub = tmp_path / "submissions"
    for student in ("alice", "reference"):
        (sub / student).mkdir(parents=True)
        nbformat.write(filled(ALICE), sub / student / "ch01_descent.ipynb")
    outcome, page, rows = run(sub, tmp_path / "r.html")
    assert rows[1:] == [["descent", "alice", "reference", "1.000"]]
    assert [m.with_reference for m in outcome.matches] == [False]
    assert "a student is named &#x27;reference&#x27;" in page
    assert "Students whose code is close to the reference (0)" in page


def test_unreadable_notebooks_give_a_reason(tmp_path, monkeypatch):
    """Are a too-large file, a symbolic link and deeply nested JSON refused with a reason?"""
    nested = tmp_path / "nested.ipynb"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not valid notebook JSON"):
        similarity.read_notebook(nested)
    link = tmp_path / "link.ipynb"
    link.symlink_to(nested)
    with pytest.raises(ValueError, match="not a regular file"):
        similarity.read_notebook(link)
    monkeypatch.setattr(similarity, "MAX_NOTEBOOK_BYTES", 2**20)
    big = tmp_path / "big.ipynb"
    big.write_text(json.dumps({"cells": [], "padding": "x" * 2**20}))
    with pytest.raises(ValueError, match="larger than 1 MiB"):
        similarity.read_notebook(big)


def test_a_results_folder_is_read_through_its_gradebook(klass, tmp_path):
    """Does a RESULTS folder give the same flags, with a name from its gradebook escaped?"""
    sub, _ = klass

    def fake_grade(path, chapter_id=None, *, seed=0, **kwargs):
        return cli.error_report(CHAPTER, seed, "not graded: a test")

    results = tmp_path / "results"
    assert cli.grade_class(sub, results, grade_fn=fake_grade, progress=False) == 0
    with sqlite3.connect(results / "gradebook.sqlite") as conn:
        row = conn.execute("SELECT * FROM submissions WHERE student = 'carol'").fetchone()
        columns = [d[0] for d in conn.execute("SELECT * FROM submissions").description]
        hostile = dict(zip(columns, row), student=HOSTILE_NAME)
        conn.execute(
            f"INSERT INTO submissions ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))})",
            [hostile[c] for c in columns],
        )
    outcome, page, rows = run(results, tmp_path / "from-results.html")
    pairs = {tuple(r[:3]) for r in rows[1:]}
    assert pairs == FLAGGED | {
        ("descent", HOSTILE_NAME, "alice"),
        ("descent", HOSTILE_NAME, "carol"),
    }
    assert HOSTILE_NAME not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert ("gina", "descent") in [(s, c) for s, c, _ in outcome.skipped]


@pytest.mark.slow  # a fresh interpreter imports the grader: about 5 s on a loaded machine
def test_the_command_line_writes_both_files(klass, tmp_path):
    """Does ``python -m autograder similarity SUBMISSIONS --out F.html`` write F.html and F.csv?"""
    sub, (_, _, rows) = klass
    out = tmp_path / "class report.html"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "similarity", str(sub), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert read_rows(out.with_suffix(".csv")) == rows
    assert "descent: 6 notebooks compared, 2 matches" in done.stderr
    assert "not a verdict" in out.read_text(encoding="utf-8")


def test_command_line_errors(tmp_path, capsys):
    """Is a missing folder exit 1, a bad --out exit 1 and a bad --threshold exit 2?"""
    assert cli.main(["similarity", str(tmp_path / "none"), "--out", str(tmp_path / "r.html")]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert cli.main(["similarity", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(["similarity", str(tmp_path), "--out", "r.html", "--threshold", "1.5"])
    assert exc.value.code == 2
    assert not (tmp_path / "r.html").exists()


def test_copydetect_is_the_pinned_one():
    """Is the fingerprinting library the version requirements.lock pins?"""
    import copydetect

    lock = (REPO / "requirements.lock").read_text()
    assert f"copydetect=={copydetect.__version__}" in lock
