"""Reading exercise files: a Jupyter notebook (``.ipynb``) or its py:percent twin (``.py``), as a list of cells.

The grader needs only each cell's kind, source and tags, so ``.ipynb`` files are read as plain JSON (a
learner's notebook with odd metadata still grades). ``.py`` files are parsed by Jupytext, the same tool that
pairs them with notebooks.

Which chapter a file belongs to is read from its marker line, ``# ebm-teach exercises: NN_slug``, which every
exercise file carries in its first code cell; a file without one falls back to its name (``NN_slug.ipynb``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, NamedTuple, Optional

from .spec import CHAPTER_PATTERN

__all__ = ["Cell", "SubmissionError", "read_cells", "find_chapter", "MARKER", "SUFFIXES"]

#: The marker line's pattern; group 1 is the chapter (the exercise file's stem, e.g. ``01_gaussian_ebm``).
MARKER = re.compile(r"ebm-teach exercises:\s*([0-9]{2}_[a-z0-9_]+)")
SUFFIXES = (".py", ".ipynb")


class SubmissionError(ValueError):
    """The file cannot be read as an exercise file (not a notebook, bad JSON, unknown chapter)."""


class Cell(NamedTuple):
    """One notebook cell: ``kind`` is "code" or "markdown"; ``number`` counts all cells from 1, as shown."""

    kind: str
    source: str
    tags: tuple
    number: int


def read_cells(path) -> List[Cell]:
    """The cells of the exercise file ``path`` (``.ipynb`` or py:percent ``.py``), in order."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise SubmissionError(f"{path.name}: an exercise file ends in .ipynb or .py; got {path.suffix or 'no suffix'}.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SubmissionError(f"{path.name}: cannot read the file ({err}).") from err
    if path.suffix == ".ipynb":
        return _cells_from_ipynb(text, path.name)
    return _cells_from_percent(text, path.name)


def find_chapter(path, cells: Optional[List[Cell]] = None) -> str:
    """The chapter ``NN_slug`` of an exercise file: from its marker line, else from its file name.

    cells: the file's cells, or None when it could not be parsed (the marker is then searched in its text).
    """
    path = Path(path)
    for cell in cells or []:
        match = MARKER.search(cell.source)
        if match:
            return match.group(1)
    if cells is None:  # the file could not be parsed: the marker line may still be in its text
        try:
            match = MARKER.search(path.read_bytes()[:1_000_000].decode("utf-8", errors="replace"))
        except OSError:
            match = None
        if match:
            return match.group(1)
    if CHAPTER_PATTERN.match(path.stem):
        return path.stem
    raise SubmissionError(
        f"{path.name}: cannot tell which chapter this file belongs to. Put the line "
        "'# ebm-teach exercises: NN_slug' (e.g. 01_gaussian_ebm) at the top of its first code cell, "
        "or name the file NN_slug.ipynb."
    )


def _cells_from_ipynb(text: str, name: str) -> List[Cell]:
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as err:
        raise SubmissionError(f"{name}: not a valid notebook (JSON error at line {err.lineno}: {err.msg}).") from err
    raw_cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(raw_cells, list):
        raise SubmissionError(f"{name}: not a Jupyter notebook (no list of cells); save it again from Jupyter.")
    cells = []
    for number, raw in enumerate(raw_cells, start=1):
        if not isinstance(raw, dict):
            continue
        source = raw.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        tags = (raw.get("metadata") or {}).get("tags") or ()
        cells.append(Cell(str(raw.get("cell_type", "")), source, tuple(tags), number))
    return cells


def _cells_from_percent(text: str, name: str) -> List[Cell]:
    try:
        import jupytext
    except ImportError as err:
        raise SubmissionError(
            f"{name}: reading .py exercise files needs jupytext (pip install jupytext); .ipynb files do not."
        ) from err
    try:
        notebook = jupytext.reads(text, fmt="py:percent")
    except Exception as err:  # jupytext raises various errors on malformed headers
        raise SubmissionError(f"{name}: cannot parse as a py:percent notebook ({err}).") from err
    return [
        Cell(c.cell_type, c.source, tuple(c.metadata.get("tags", ())), number)
        for number, c in enumerate(notebook.cells, start=1)
    ]
