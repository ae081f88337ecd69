"""Exercises: the generated files match their solutions, every solutions file follows the conventions of
DEVELOPING.md, and the hidden checks reject typical wrong answers (they check the math, not the solution).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import re
from pathlib import Path

import jupytext
import pytest
import torch

from ebm_teach.grade import builder, run_checks
from ebm_teach.grade.checks import ch01_gaussian_ebm as ch01
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


# ------------------------------------------------------------------------------------ chapter 1 checks are honest
def _fails(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def test_ch01_log_partition_checks_reject_wrong_formulas():
    good = lambda a, b: 0.5 * torch.log(math.pi / torch.as_tensor(a, dtype=torch.float64)) + torch.as_tensor(b) ** 2 / (4 * torch.as_tensor(a))
    no_b_term = lambda a, b: 0.5 * torch.log(math.pi / torch.as_tensor(a, dtype=torch.float64))
    sigma_mixup = lambda a, b: 0.5 * torch.log(2 * math.pi / torch.as_tensor(a, dtype=torch.float64)) + torch.as_tensor(b) ** 2 / (4 * torch.as_tensor(a))
    ch01.check_standard_normal(no_b_term)  # b = 0 there: only the quadrature cases can tell
    _fails(ch01.check_against_quadrature, no_b_term)
    _fails(ch01.check_standard_normal, sigma_mixup)
    _fails(ch01.check_rejects_nonpositive_a, good)  # computes nan/inf instead of raising
    ch01.check_against_quadrature(good)
    ch01.check_elementwise(good)


def _grad(sample_cov="inverse", transpose=True, negative="sampled", sign=1.0, use_generator=True):
    """A family of loglik_grad_mu answers, right by default, with one mistake switched on at a time."""
    def loglik_grad_mu(x_data, mu, precision, n_samples, generator):
        cov = torch.linalg.inv(precision) if sample_cov == "inverse" else precision
        factor = torch.linalg.cholesky(cov)
        z = torch.randn(n_samples, mu.shape[0], dtype=mu.dtype, generator=generator if use_generator else None)
        x_neg = mu + z @ (factor.T if transpose else factor)  # rows z Lᵀ have covariance L Lᵀ
        positive = ((x_data - mu) @ precision).mean(0)
        neg = -((x_neg - mu) @ precision).mean(0) if negative == "sampled" else torch.zeros_like(mu)
        return sign * (positive + neg)
    return loglik_grad_mu


def test_ch01_negative_phase_checks_reject_typical_mistakes(one_thread):
    for check in (ch01.check_grad_shape, ch01.check_grad_mean, ch01.check_grad_spread, ch01.check_grad_uses_generator):
        check(_grad())
    ch01.check_grad_mean(_grad(negative="exact"))  # the exact zero has the right mean ...
    _fails(ch01.check_grad_spread, _grad(negative="exact"))  # ... but no Monte Carlo spread
    _fails(ch01.check_grad_spread, _grad(sample_cov="precision"))  # samples from N(μ, Λ), not N(μ, Λ⁻¹)
    _fails(ch01.check_grad_spread, _grad(transpose=False))  # z L instead of z Lᵀ: the wrong covariance
    _fails(ch01.check_grad_mean, _grad(sign=-1.0))  # phases with the wrong signs
    _fails(ch01.check_grad_uses_generator, _grad(use_generator=False))


def test_ch01_cd1_checks_reject_typical_mistakes():
    def cd1(half=0.5, order=1.0):
        def cd1_step(theta, x_data, step_size, noise):
            x1 = x_data - half * step_size * 2 * theta * x_data + math.sqrt(step_size) * noise
            return x1, order * (x_data**2 - x1**2).mean()
        return cd1_step

    ch01.check_cd1_worked_example(cd1())
    ch01.check_cd1_against_autograd(cd1())
    _fails(ch01.check_cd1_worked_example, cd1(half=1.0))  # forgot the ε/2
    _fails(ch01.check_cd1_worked_example, cd1(order=-1.0))  # E(x¹) − E(x⁰): the sign of the loss flipped
    _fails(ch01.check_cd1_against_autograd, cd1(half=1.0))
