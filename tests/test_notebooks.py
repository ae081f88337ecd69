"""Every chapter notebook is paired with an executed .ipynb whose inputs match its .py source.

nbval (run by `make test` with --nbval notebooks) re-executes the .ipynb and compares outputs, but it
silently skips code cells with no stored output and never looks at the .py: these tests close both gaps.
"""
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
