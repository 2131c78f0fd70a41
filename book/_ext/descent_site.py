"""Sphinx extension for the Descent site: equation numbers, the repository address, and the
expected outputs shown on exercise pages.

1. Every display equation is numbered, labelled or not, so numbers run (1.1), (1.2), ... per
   chapter and no display is left without one.
2. The bibliography's labels are author-year ("Kingma and Ba, 2015"), as the in-text citations.
3. ``{{ repository_url }}`` in a page's source becomes ``repository: url:`` of _config.yml.
4. An exercise notebook (``chNN_<module>/exercises.ipynb``, committed without outputs) is shown
   with the outputs of its demo cells from a run with the reference solutions pasted in
   (``autograder.notebook.solve``), each collapsed under "expected output". Only outputs are
   copied: the page keeps the stubs, never the solution code. Runs are cached by content.
"""

import copy
import hashlib
import json
import re
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

EXERCISE_PAGE = re.compile(r"^ch\d\d_(?P<module>[a-z0-9_]+)/exercises$")
REPOSITORY_PLACEHOLDER = "{{ repository_url }}"
PROMPT_SHOW = "Expected output"
PROMPT_HIDE = "Hide expected output"
FIGURE_CAPTION = "Expected output of the cell above, from a run with the reference solutions."
FIGURE_ALT = "Plot drawn by the cell above when its exercises are solved correctly."


def number_every_display(app, doctree):
    """Give each unlabelled display (``$$ ... $$`` without ``(label)``) a label and a number."""
    env = app.env
    domain = env.get_domain("math")
    for node in doctree.findall(nodes.math_block):
        if node.get("label") or node.get("nowrap"):
            continue
        label = f"{env.docname}-display-{env.new_serialno('descent-display')}"
        node["label"] = label
        node["docname"] = env.docname
        domain.note_equation(env.docname, label, location=node)
        node["number"] = domain.get_equation_number_for(label)
        node["ids"].append(nodes.make_id(f"equation-{label}"))


def repository_url(app):
    url = app.config.html_theme_options.get("repository_url", "")
    if not url:
        raise ValueError("book/_config.yml must set repository: url: (Setup and intro use it)")
    return url


def insert_repository_url(app, docname, source):
    if REPOSITORY_PLACEHOLDER in source[0]:
        source[0] = source[0].replace(REPOSITORY_PLACEHOLDER, repository_url(app))


def is_demo(cell):
    """A code cell whose output the reader can check: not stubs, not check(), not GPU-only."""
    from autograder.notebook import is_check, is_exercise, is_gpu

    return (
        cell.cell_type == "code"
        and cell.source.strip()
        and not (is_exercise(cell) or is_check(cell) or is_gpu(cell))
    )


def solved_run(app, module, nb, folder):
    """The reference-solved notebook, executed (cached by the notebook's and reference's text)."""
    from autograder.notebook import repo_path, solve
    from nbclient import NotebookClient

    reference = repo_path(f"solutions/{module}.py")
    key = hashlib.sha256()
    for text in (nbformat.writes(nb), reference.read_text(), Path(__file__).read_text()):
        key.update(text.encode())
    cache = Path(app.doctreedir).parent / "descent-expected" / f"{module}-{key.hexdigest()[:16]}"
    if cache.is_file():
        return nbformat.read(cache, as_version=4)
    solved = solve(nb, module)
    timeout = app.config.nb_execution_timeout
    client = NotebookClient(solved, timeout=timeout, kernel_name="python3", allow_errors=False)
    client.execute(cwd=str(folder))
    cache.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(solved, cache)
    return solved


def with_expected_outputs(nb, solved):
    """``nb`` with each demo cell holding the solved run's outputs, collapsed; sources kept."""
    shown = copy.deepcopy(nb)
    if len(solved.cells) != len(shown.cells):
        raise ValueError("the solved notebook has a different number of cells")
    for cell, ran in zip(shown.cells, solved.cells, strict=True):
        if not is_demo(cell):
            continue
        outputs = [o for o in ran.outputs if o.get("output_type") != "error"]
        if not outputs:
            continue
        cell.outputs = outputs
        cell.execution_count = None
        tags = cell.metadata.setdefault("tags", [])
        if "hide-output" not in tags:
            tags.append("hide-output")
        mystnb = cell.metadata.setdefault("mystnb", {})
        mystnb.update(code_prompt_show=PROMPT_SHOW, code_prompt_hide=PROMPT_HIDE)
        if any("image/png" in o.get("data", {}) for o in outputs):
            mystnb.setdefault("figure", {"caption": FIGURE_CAPTION})
            mystnb.setdefault("image", {"alt": FIGURE_ALT})
    return shown


def insert_expected_outputs(app, docname, source):
    match = EXERCISE_PAGE.match(docname)
    if not match:
        return
    module = match["module"]
    path = Path(app.env.doc2path(docname))
    nb = nbformat.reads(source[0], as_version=4)
    if not any(is_demo(cell) for cell in nb.cells):
        return
    # A change to the reference re-reads this page on an incremental build.
    app.env.note_dependency(str(Path(app.srcdir).parent / "solutions" / f"{module}.py"))
    solved = solved_run(app, module, nb, path.parent)
    source[0] = json.dumps(with_expected_outputs(nb, solved), ensure_ascii=False)


def author_year_styles():
    """pybtex styles whose labels read like the in-text citations: "Kingma and Ba, 2015"."""
    from pybtex.plugin import register_plugin
    from pybtex.richtext import Text
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    def surname(person):
        latex = " ".join(person.prelast_names + person.last_names)
        return Text.from_latex(latex).render_as("text")

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = [self.label(entry) for entry in sorted_entries]
            # Two works of one label ("Li et al., 2018" twice) become 2018a and 2018b.
            seen = {}
            for label in labels:
                seen[label] = seen.get(label, 0) + 1
            count = {}
            for label in labels:
                if seen[label] == 1:
                    yield label
                    continue
                count[label] = count.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[count[label] - 1]

        def label(self, entry):
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [surname(p) for p in people]
            if len(names) > 2:
                who = f"{names[0]} et al."
            else:
                who = " and ".join(names) or entry.key
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = "descent_author_year"
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "descent_author_year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "descent_author_year", AuthorYearStyle)


def setup(app):
    author_year_styles()
    app.connect("source-read", insert_repository_url)
    app.connect("source-read", insert_expected_outputs)
    app.connect("doctree-read", number_every_display)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
