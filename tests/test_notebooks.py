"""Every chapter notebook is paired with an executed .ipynb whose inputs match its .py source.

nbval (run by `make test` with --nbval notebooks) re-executes the .ipynb and compares outputs, but it
silently skips code cells with no stored output and never looks at the .py: these tests close both gaps.
"""
import re
from pathlib import Path

import jupytext
import pytest

from ebm_teach.tools.notebooks import problems

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


def test_there_are_chapter_notebooks():
    assert NOTEBOOKS, "no notebooks/*.py found"


@pytest.mark.parametrize("py_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_matches_source_and_is_executed(py_path):
    assert problems(py_path) == []


@pytest.mark.parametrize("py_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_header_and_settings(py_path):
    nb = jupytext.read(py_path)
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "get_device(" in code, "a notebook picks its device through ebm_teach.get_device()"
    assert "expectations(SCALE == 1)" in code, (
        "the settings cell says where the printed expectations hold: expectations(SCALE == 1) (DEVELOPING.md)"
    )
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for marker in ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "# noqa"):
                assert marker not in cell.source, (
                    f"cell {i} shows the reader {marker!r}: use the cell tag nbval-ignore-output "
                    "(# %% tags=[\"nbval-ignore-output\"]) or remove it (DEVELOPING.md, Printed figures)"
                )
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")


def test_check_catches_stale_and_unexecuted(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text("# %% [markdown]\n# # Title\n\n# %%\nprint(1 + 1)\n")
    nb = jupytext.read(src)
    jupytext.write(nb, tmp_path / "nb.ipynb")  # never executed
    assert any("never executed" in m for m in problems(src))
    src.write_text("# %% [markdown]\n# # Title\n\n# %%\nprint(2 + 2)\n")
    assert any("stale" in m for m in problems(src))


def _lines_that_break_inline_math(markdown: str):
    """Lines of a markdown cell that Markdown would read as a new block by accident.

    A wrapped line that starts like a list item or heading inside an inline `$...$` cuts the formula in two,
    and MathJax then leaves both halves as raw TeX in the book; a sentence wrapped before "1. " or "1) "
    (with no "2." after it) turns into a numbered list. Display math (`$$ ... $$`), code spans and fenced
    code are skipped.
    """
    lines = markdown.splitlines()
    bad, open_math, display, fenced, previous = [], False, False, False, ""
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fenced = not fenced
        if fenced or stripped.startswith("```"):
            previous = line
            continue
        text = re.sub(r"`[^`]*`", "", line.replace(r"\$", ""))
        if not display and open_math and re.match(r"([-+*]|\d+[.)]|#{1,6})(\s|$)|>", stripped):
            bad.append((number, line))
        elif (not display and not open_math and re.match(r"1[.)]\s", stripped) and previous.strip()
              and not re.match(r"\s*([-+*]|\d+[.)])\s", previous)):
            indent = line[: len(line) - len(stripped)]
            if not any(re.match(re.escape(indent) + r"2[.)]\s", later) for later in lines[number:]):
                bad.append((number, line))
        if not stripped:
            open_math = False  # a blank line ends the paragraph, and with it any open formula
        parts = text.split("$$")
        for i, part in enumerate(parts):
            if i > 0:
                display = not display
            if not display:
                open_math ^= part.count("$") % 2 == 1
        previous = line
    return bad


def test_inline_math_detector_finds_list_markers_inside_a_formula():
    assert _lines_that_break_inline_math("the sum $a\n+ b$ is") == [(2, "+ b$ is")]
    assert _lines_that_break_inline_math("a list\n- item $x$\n- item $y$") == []
    assert _lines_that_break_inline_math("display\n$$a\n+ b$$\nafter $c$") == []
    assert _lines_that_break_inline_math("see $a\n- b$ and `$`\n$c$") == [(2, "- b$ and `$`")]
    assert _lines_that_break_inline_math("closest to\n1. (Song & Ermon)") == [(2, "1. (Song & Ermon)")]
    assert _lines_that_break_inline_math("two steps:\n1. one\n2. two") == []


@pytest.mark.parametrize("py_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_wrapped_line_starts_a_list_inside_inline_math(py_path):
    """A wrapped line like `- \\sum_i ...` inside `$...$` becomes a list item and the formula is not typeset."""
    notebook = jupytext.read(py_path)
    found = [(i, n, line) for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"
             for n, line in _lines_that_break_inline_math(cell.source)]
    assert found == [], (f"{py_path.name}: move these line breaks so that no line inside $...$ starts with "
                         f"'+ ', '- ', '* ', '1. ' or '#' (cell, line, text): {found}")
