"""The page house style (book/STYLE.md) where it can be read from a page's source: code lines
that fit the column, and displays that MathJax does not number on a counter of its own."""

import re

import jupytext
import pytest

from tests.book.conftest import BOOK

# The column holds about 80 characters of code at 1280 px; ruff's 100 is for modules.
PAGE_LINE_LENGTH = 79
PAGES = [BOOK / "intro.md", *sorted(BOOK.glob("ch*/index.md"))]


def long_code_lines(text, limit=PAGE_LINE_LENGTH):
    """``(cell number, line)`` for each line of a MyST page's code cells longer than ``limit``."""
    cells = [c for c in jupytext.reads(text, fmt="md:myst").cells if c.cell_type == "code"]
    return [
        (n, line)
        for n, cell in enumerate(cells, 1)
        for line in cell.source.splitlines()
        if len(line) > limit
    ]


# A top-level amsmath environment (not inside $$ ... $$) is numbered by MathJax, not Sphinx.
TOP_LEVEL_AMSMATH = re.compile(r"^\\begin\{(align|equation|gather|multline|eqnarray)\*?\}", re.M)


def top_level_amsmath(text):
    outside = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    return TOP_LEVEL_AMSMATH.findall(outside)


WRONG_PAGE = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# Wrong on purpose

\\begin{align} a &= b \\end{align}

$$
\\begin{aligned} a &= b \\end{aligned}
$$

```{code-cell} ipython3
print("a line that is far too long for the column of the page, past its 79 characters")
```
"""


def test_source_checks_fail_a_page_made_wrong_on_purpose():
    """Do both source checks flag a page with a long code line and a bare align, and only those?"""
    assert [n for n, _ in long_code_lines(WRONG_PAGE)] == [1]
    assert top_level_amsmath(WRONG_PAGE) == ["align"]


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda p: p.parent.name if p.stem == "index" else p.stem
)
def test_page_code_fits_the_column(page):
    """Is every code line of the page at most 79 characters, so no cell scrolls at 1280 px?"""
    long = long_code_lines(page.read_text())
    shown = "\n".join(f"cell {n}: {line}" for n, line in long[:20])
    assert not long, f"{len(long)} code lines over {PAGE_LINE_LENGTH} characters:\n{shown}"


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda p: p.parent.name if p.stem == "index" else p.stem
)
def test_displays_are_numbered_by_the_book(page):
    """Does every display sit in $$ ... $$ (numbered per chapter), none in a bare align?"""
    assert not top_level_amsmath(page.read_text())
