"""The strict book build: every toc page becomes HTML and nothing on the site loads from the net."""

import re
from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest

from tests.book.conftest import BOOK

# The first test to use the session build pays for it: allow a cold build on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_build_is_strict_and_succeeds(book_build):
    """Does `jupyter-book build -W -n --keep-going` finish with no warning and no failing cell?"""
    if book_build.returncode is None:
        pytest.skip(book_build.log)
    assert book_build.returncode == 0, "book build failed:\n" + book_build.problems()


def test_toc_page_has_html(book_build, toc_docname):
    """Did this page of the table of contents produce an HTML page?"""
    page = book_build.page(toc_docname)
    assert page.is_file(), f"{toc_docname} produced no HTML"
    assert "<main" in page.read_text(encoding="utf-8")


def figure_cells(docname):
    """How many code cells of a page's MyST source show a figure (``plt.show()``), GPU cells
    aside (they draw nothing without CUDA)."""
    import jupytext

    source = BOOK / f"{docname}.md"
    if not source.is_file():
        return 0
    cells = jupytext.read(source).cells
    return sum(
        1
        for c in cells
        if c.cell_type == "code"
        and "plt.show()" in c.source
        and "gpu" not in c.get("metadata", {}).get("tags", [])
    )


def test_toc_page_shows_its_figures(book_build, toc_docname):
    """Does every figure the page's code draws appear in its HTML as an image? (Run with
    MPLBACKEND=Agg, say, the kernels would draw into nothing and the page lose them.)"""
    expected = figure_cells(toc_docname)
    if not expected:
        pytest.skip(f"{toc_docname} draws no figure")
    html = book_build.page(toc_docname).read_text(encoding="utf-8")
    images = len(re.findall(r"<img\b", html))
    assert images >= expected, f"{toc_docname}: {expected} figure cells, {images} images"


class ResourceLinks(HTMLParser):
    """The URLs a browser fetches by itself on load: scripts, stylesheets, images, frames."""

    FETCHED = {"script": "src", "img": "src", "iframe": "src", "link": "href", "source": "src"}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        attr = self.FETCHED.get(tag)
        if not (attr and attrs.get(attr)):
            return
        # a <link> is fetched only as a stylesheet, icon or preload (not rel=next, prev, ...)
        if tag == "link" and not re.search(r"stylesheet|preload|icon", attrs.get("rel") or ""):
            return
        self.urls.append(attrs[attr])


def test_pages_load_nothing_from_the_network(book_build):
    """Does every built page load its scripts, styles and images from the site itself?"""
    pages = sorted(book_build.html.rglob("*.html"))
    assert pages, "no HTML was built"
    external = []
    for page in pages:
        if "mathjax" in page.relative_to(book_build.html).parts:
            continue
        parser = ResourceLinks()
        parser.feed(page.read_text(encoding="utf-8"))
        external += [f"{page.name}: {u}" for u in parser.urls if urlparse(u).netloc]
    assert not external, "pages fetch from other hosts:\n" + "\n".join(external)


def test_mathjax_is_served_locally(book_build):
    """Is MathJax part of the site, and do pages point at that copy?"""
    assert (book_build.html / "mathjax" / "tex-chtml.js").is_file()
    intro = book_build.page("intro").read_text(encoding="utf-8")
    assert re.search(r'src="_static/\.\./mathjax/tex-chtml\.js', intro)
