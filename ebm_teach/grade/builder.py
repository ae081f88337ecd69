"""Build the learner's exercise files from the solutions: ``solutions/NN_slug.py`` → ``exercises/NN_slug.{py,ipynb}``.

What changes on the way (the same markers as nbgrader's ``generate_assignment``):

- every region from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes, at the same indentation,
  ``# YOUR CODE HERE`` and ``raise NotImplementedError()``;
- every region from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` is removed, and so is every cell
  tagged ``hidden-test`` (the checks the grader runs live in ``ebm_teach/grade/checks``, not in the file);
- the ``.py`` is paired with its ``.ipynb`` (Jupytext ``formats: ipynb,py:percent``), cell ids are
  deterministic, and no outputs are stored, so that building twice gives identical files.

Run ``python -m ebm_teach.grade build`` after editing a solutions file; ``--check`` only reports
differences (the test suite fails when ``exercises/`` is not exactly what this builds).

For nbgrader, :func:`nbgrader_notebook` writes the *solutions* as a notebook whose cells carry nbgrader's
metadata (answer cells, and autograder-test cells worth the exercise's points), ready for
``nbgrader generate_assignment`` (``python -m ebm_teach.grade build --nbgrader DIR``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from .notebook import MARKER
from .spec import CHAPTER_PATTERN

__all__ = ["CODE_STUB", "strip_solutions", "exercise_files", "build", "differences", "nbgrader_notebook",
           "nbgrader_sources"]

CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
HIDDEN_TEST_TAG = "hidden-test"
_EXERCISE_HEADING = re.compile(r"^## Exercise ([0-9]+\.[0-9]+):", re.MULTILINE)
_REGIONS = {
    "SOLUTION": (re.compile(r"^(\s*)#+\s*BEGIN SOLUTION\s*$"), re.compile(r"^\s*#+\s*END SOLUTION\s*$")),
    "HIDDEN TESTS": (re.compile(r"^(\s*)#+\s*BEGIN HIDDEN TESTS\s*$"), re.compile(r"^\s*#+\s*END HIDDEN TESTS\s*$")),
}


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with solution regions replaced by the stub and hidden-test regions removed.

    where: names the cell in error messages. Raises ValueError on a BEGIN without END (or the reverse).
    """
    out: List[str] = []
    open_region = None
    for line in source.split("\n"):
        if open_region is None:
            for kind, (begin, end) in _REGIONS.items():
                match = begin.match(line)
                if match:
                    open_region = kind
                    if kind == "SOLUTION":
                        out.extend(match.group(1) + stub for stub in CODE_STUB)
                    break
                if end.match(line):
                    raise ValueError(f"{where}: '### END {kind}' without a matching '### BEGIN {kind}'.")
            else:
                out.append(line)
        elif _REGIONS[open_region][1].match(line):
            open_region = None
        elif _REGIONS[open_region][0].match(line):
            raise ValueError(f"{where}: '### BEGIN {open_region}' inside another one; close the first with END.")
    if open_region is not None:
        raise ValueError(f"{where}: '### BEGIN {open_region}' has no matching '### END {open_region}'.")
    return "\n".join(out)


def exercise_files(solution_path) -> Dict[str, str]:
    """The exercise file's text for one solutions file: ``{".py": …, ".ipynb": …}``."""
    import jupytext  # a development dependency: building exercises is an author's task

    solution_path = Path(solution_path)
    stem = solution_path.stem
    if not CHAPTER_PATTERN.match(stem):
        raise ValueError(f"{solution_path}: a solutions file is named NN_slug.py (e.g. 01_gaussian_ebm.py).")
    notebook = jupytext.read(solution_path, fmt="py:percent")
    markers = [m.group(1) for c in notebook.cells for m in [MARKER.search(c.source)] if m]
    if markers[:1] != [stem]:
        raise ValueError(
            f"{solution_path}: its first code cell must start with the marker line "
            f"'# ebm-teach exercises: {stem}' (found {markers[:1] or 'none'}); the grader finds the chapter by it."
        )
    cells = []
    for number, cell in enumerate(notebook.cells, start=1):
        if HIDDEN_TEST_TAG in cell.metadata.get("tags", ()):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{solution_path.name}, cell {number}")
            if not cell.source.strip():
                continue
        cell.id = f"{stem.replace('_', '-')}-{len(cells):02d}"
        cells.append(cell)
    notebook.cells = cells
    notebook.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    py_text = jupytext.writes(notebook, fmt="py:percent")
    # The Jupytext version in the header would make the file depend on who built it.
    py_text = re.sub(r"(?m)^#\s+jupytext_version: .*\n", "", py_text, count=1)
    return {".py": py_text, ".ipynb": jupytext.writes(notebook, fmt="ipynb")}


def _solutions(solutions_dir: Path) -> List[Path]:
    solutions_dir = Path(solutions_dir)
    if not solutions_dir.is_dir():
        raise ValueError(f"solutions folder {solutions_dir} does not exist; run from the repository root.")
    return sorted(p for p in solutions_dir.glob("*.py") if CHAPTER_PATTERN.match(p.stem))


def build(solutions_dir="solutions", out_dir="exercises") -> List[Path]:
    """Write ``out_dir/NN_slug.py`` and ``.ipynb`` for every ``solutions_dir/NN_slug.py``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution in _solutions(solutions_dir):
        for suffix, text in exercise_files(solution).items():
            target = out_dir / (solution.stem + suffix)
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def differences(solutions_dir="solutions", out_dir="exercises") -> List[str]:
    """What ``build`` would change in ``out_dir``: missing, stale or extra exercise files (empty when up to date)."""
    out_dir = Path(out_dir)
    problems, expected = [], set()
    for solution in _solutions(solutions_dir):
        for suffix, text in exercise_files(solution).items():
            target = out_dir / (solution.stem + suffix)
            expected.add(target.name)
            if not target.exists():
                problems.append(f"{target} is missing")
            elif target.read_text(encoding="utf-8") != text:
                problems.append(f"{target} differs from what {solution} generates")
    if out_dir.is_dir():
        for extra in sorted(out_dir.iterdir()):
            if extra.suffix in (".py", ".ipynb") and extra.name not in expected:
                problems.append(f"{extra} has no solutions file")
    return problems


def nbgrader_notebook(solution_path) -> str:
    """The solutions file as an ``.ipynb`` with nbgrader cell metadata, for ``nbgrader generate_assignment``.

    Cells holding ``### BEGIN SOLUTION`` become "Autograded answer" cells; ``hidden-test`` cells become
    locked "Autograder tests" cells worth the points of the exercise whose ``## Exercise N.k`` heading comes
    before them (their ``run_checks(...)`` returns the points earned, which nbgrader takes as partial credit).
    """
    import jupytext

    from .spec import load_exercises

    solution_path = Path(solution_path)
    points = {e.id: e.max_points for e in load_exercises(solution_path.stem)}
    notebook = jupytext.read(solution_path, fmt="py:percent")
    current = None
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{solution_path.stem.replace('_', '-')}-{number:02d}"
        heading = _EXERCISE_HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if heading:
            current = heading.group(1)
        meta = {"grade": False, "solution": False, "locked": False, "task": False, "schema_version": 3}
        if cell.cell_type == "code" and "BEGIN SOLUTION" in cell.source:
            meta.update(solution=True, grade_id=f"ex{current.replace('.', '_')}-answer")
        elif HIDDEN_TEST_TAG in cell.metadata.get("tags", ()):
            if current not in points:
                raise ValueError(f"{solution_path}: a hidden-test cell (cell {number + 1}) is not under an "
                                 "'## Exercise N.k' heading of an exercise in the checks module.")
            meta.update(grade=True, locked=True, points=points[current],
                        grade_id=f"ex{current.replace('.', '_')}-tests")
        else:
            continue
        cell.metadata["nbgrader"] = meta
    notebook.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    return jupytext.writes(notebook, fmt="ipynb")


def nbgrader_sources(solutions_dir="solutions", out_dir="nbgrader_source", chapter=None) -> List[Path]:
    """Write ``out_dir/NN_slug.ipynb`` (see :func:`nbgrader_notebook`) for every solutions file.

    chapter: only this one (``NN_slug``), so that ``out_dir`` is one nbgrader assignment.
    """
    out_dir = Path(out_dir)
    solutions = _solutions(solutions_dir)
    if chapter is not None:
        solutions = [s for s in solutions if s.stem == chapter]
        if not solutions:
            raise ValueError(f"no solutions file {chapter}.py in {solutions_dir}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution in solutions:
        target = out_dir / f"{solution.stem}.ipynb"
        target.write_text(nbgrader_notebook(solution), encoding="utf-8")
        written.append(target)
    return written
