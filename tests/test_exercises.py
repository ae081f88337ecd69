"""Exercises: the generated files match their solutions, every solutions file follows the conventions of
DEVELOPING.md, and the builder and nbgrader export work. That a chapter's hidden checks reject typical wrong
answers is tested with the chapter's own tests (and `python -m ebm_teach.grade mutants`).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import jupytext
import pytest

from ebm_teach.grade import builder, run_checks
from ebm_teach.grade.notebook import MARKER
from ebm_teach.grade.spec import load_exercises

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
HEADING = re.compile(r"^## Exercise ([0-9]+\.[0-9]+): .+ \(([0-9.]+) points?\)\s*$", re.MULTILINE)


def _cells(path):
    return jupytext.read(path, fmt="py:percent").cells


def _tags(cell):
    return set(cell.metadata.get("tags", ()))


def _run(cells, namespace, skip=()):
    for cell in cells:
        if cell.cell_type == "code" and not _tags(cell) & set(skip):
            exec(compile(cell.source, "<cell>", "exec"), namespace)


# ------------------------------------------------------------------------------------ generated files
def test_exercises_folder_is_exactly_what_build_generates():
    problems = builder.differences(ROOT / "solutions", ROOT / "exercises")
    assert problems == [], "\n".join(problems) + "\nRegenerate with: python -m ebm_teach.grade build"


def test_every_checks_module_has_a_solutions_file():
    modules = {p.stem[2:] for p in (ROOT / "ebm_teach" / "grade" / "checks").glob("ch[0-9][0-9]_*.py")}
    assert modules == {p.stem for p in SOLUTIONS}


# ------------------------------------------------------------------------------------ every solutions file
@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_file_follows_the_conventions(solution):
    cells = _cells(solution)
    code = [c for c in cells if c.cell_type == "code"]
    assert MARKER.search(code[0].source).group(1) == solution.stem, "the first code cell starts with the marker line"
    exercises = load_exercises(solution.stem)
    assert 2 <= len(exercises) <= 4
    headings = {m.group(1): float(m.group(2)) for c in cells if c.cell_type == "markdown"
                for m in HEADING.finditer(c.source)}
    assert headings == {e.id: e.max_points for e in exercises}, "'## Exercise N.k: title (P points)' with P = the checks' points"
    for exercise in exercises:
        index = next(i for i, c in enumerate(cells) if c.cell_type == "code" and f"def {exercise.name}(" in c.source)
        definition = cells[index]
        assert "### BEGIN SOLUTION" in definition.source and "### END SOLUTION" in definition.source
        function = next(n for n in ast.parse(definition.source).body
                        if isinstance(n, ast.FunctionDef) and n.name == exercise.name)
        assert ast.get_docstring(function), f"{exercise.name} needs a docstring stating the task and shapes"
        following = cells[index + 1:]
        next_heading = next((i for i, c in enumerate(following) if c.cell_type == "markdown"), len(following))
        assert any("self-check" in _tags(c) for c in following[:next_heading]), f"{exercise.name} needs a self-check cell"
        call = f'run_checks("{solution.stem}", "{exercise.id}", {exercise.name})'
        assert any("hidden-test" in _tags(c) and call in c.source for c in following[:next_heading]), (
            f"{exercise.name} needs a hidden-test cell calling {call}")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_pass_their_self_checks_and_hidden_test_cells(solution, one_thread):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _run(_cells(solution), {"__name__": "__main__"})
    scores = re.findall(r"^Exercise (\S+) \(\w+\): ([0-9.]+)/([0-9.]+) points$", printed.getvalue(), re.MULTILINE)
    assert sorted(s[0] for s in scores) == sorted(e.id for e in load_exercises(solution.stem))
    assert all(got == full for _, got, full in scores), printed.getvalue()


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_exercise_file_runs_and_its_self_checks_stop_at_the_stubs(solution, one_thread):
    cells = _cells(ROOT / "exercises" / solution.name)
    assert not any("hidden-test" in _tags(c) or "HIDDEN TESTS" in c.source for c in cells)
    assert not any("BEGIN SOLUTION" in c.source for c in cells)
    namespace = {"__name__": "__main__"}
    _run(cells, namespace, skip={"self-check"})
    self_checks = [c for c in cells if "self-check" in _tags(c)]
    assert len(self_checks) == len(load_exercises(solution.stem))
    for cell in self_checks:
        with pytest.raises(NotImplementedError), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(cell.source, "<self-check>", "exec"), dict(namespace))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_nbgrader_source_marks_answer_and_test_cells(solution):
    exercises = load_exercises(solution.stem)
    cells = json.loads(builder.nbgrader_notebook(solution))["cells"]
    meta = [c["metadata"]["nbgrader"] for c in cells if "nbgrader" in c["metadata"]]
    answers = [m for m in meta if m["solution"]]
    tests = [m for m in meta if m["grade"]]
    assert [m["grade_id"] for m in answers] == [f"ex{e.id.replace('.', '_')}-answer" for e in exercises]
    assert [(m["grade_id"], m["points"], m["locked"]) for m in tests] == [
        (f"ex{e.id.replace('.', '_')}-tests", e.max_points, True) for e in exercises]
    assert all("### BEGIN SOLUTION" in "".join(c["source"]) for c in cells if c["metadata"].get("nbgrader", {}).get("solution"))


# ------------------------------------------------------------------------------------ the builder
def test_strip_solutions_keeps_indentation_and_removes_hidden_tests():
    source = (
        "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
        "### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS\nz = 3"
    )
    assert builder.strip_solutions(source) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\nz = 3"
    )


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "has no matching '### END SOLUTION'"),
    ("x = 1\n### END SOLUTION\n", "without a matching '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another one"),
])
def test_strip_solutions_rejects_unbalanced_markers(source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        builder.strip_solutions(source, "01_x.py, cell 3")


def test_builder_requires_the_marker_line_and_a_chapter_name(tmp_path):
    bad = tmp_path / "02_missing_marker.py"
    bad.write_text("# %%\nimport torch\n")
    with pytest.raises(ValueError, match="'# ebm-teach exercises: 02_missing_marker'"):
        builder.exercise_files(bad)
    with pytest.raises(ValueError, match="named NN_slug.py"):
        builder.exercise_files(tmp_path / "notes.py")


def test_build_and_run_checks_say_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="solutions folder .* does not exist"):
        builder.build(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ValueError, match=r"chapter 01_gaussian_ebm has no exercise '1.9'; it has \['1.1'"):
        run_checks("01_gaussian_ebm", "1.9", print)


def test_build_writes_both_formats_and_reports_stale_files(tmp_path):
    out = tmp_path / "exercises"
    written = builder.build(ROOT / "solutions", out)
    assert sorted(p.name for p in written) == sorted(p.stem + s for p in SOLUTIONS for s in (".py", ".ipynb"))
    first = written[0]
    first.write_text(first.read_text() + "\n# edited by hand\n")
    (out / "99_orphan.py").write_text("")
    problems = builder.differences(ROOT / "solutions", out)
    assert any("differs from what" in p and first.name in p for p in problems)
    assert any("99_orphan.py has no solutions file" in p for p in problems)
