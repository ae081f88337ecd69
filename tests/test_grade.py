"""The grader: `python -m ebm_teach.grade` on good, untouched, broken and hostile submissions.

The slow part (a child Python process per file) runs once: `graded_folder` grades a folder holding one file
per failure mode through the command line, and the tests below read its JSON report and CSV gradebook.
Each scenario file is the chapter-1 solution or exercise file with one edit, made by `_edit`, which fails
loudly if the text it edits has changed.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebm_teach.grade import runner
from ebm_teach.grade.asserts import as_float64, assert_close, assert_raises, assert_shape
from ebm_teach.grade.checking import run_exercise
from ebm_teach.grade.notebook import SubmissionError, find_chapter, read_cells
from ebm_teach.grade.report import summary
from ebm_teach.grade.spec import Check, Exercise, checks_module_name, load_exercises

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
CH1_SOLUTION = ROOT / "solutions" / "01_gaussian_ebm.py"
CH1_EXERCISE = ROOT / "exercises" / "01_gaussian_ebm"
TIMEOUT = 8  # seconds per step in the folder run; the looping exercise costs exactly this
MAX_OUTPUT = 5000


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the scenario edit expects exactly one {old!r} in the source file"
    return text.replace(old, new)


def _scenarios() -> dict:
    """File name → contents: one submission per thing the grader must survive."""
    solution = CH1_SOLUTION.read_text()
    exercise_py = CH1_EXERCISE.with_suffix(".py").read_text()
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()"
    flood = _edit(solution, "import math\n", "import math\nfor _ in range(3):\n    print('#' * 1_000_000)\n")
    flood = _edit(flood, "    return 0.5 * torch.log(math.pi / a)",
                  "    print('log Z! ' * 20_000)\n    return 0.5 * torch.log(math.pi / a)")
    return {
        "untouched.ipynb": CH1_EXERCISE.with_suffix(".ipynb").read_text(),
        "syntax_error.py": _edit(exercise_py, "dtype=torch.float64)\n" + stub,
                                 "dtype=torch.float64)\n    return 0.5 * torch.log(math.pi / a) +\n" + stub),
        "infinite_loop.py": _edit(solution, "    if bool((a <= 0).any()):", "    while True:\n        pass\n"
                                  "    if bool((a <= 0).any()):"),
        "import_error.py": _edit(solution, "import math\n", "import math\nimport ebm_teach_no_such_module\n"),
        "top_level_loop.py": _edit(solution, "import torch\n", "import torch\n\nwhile True:\n    pass\n"),
        "exits.py": _edit(solution, "    d = mu.shape[0]\n", "    import os\n    os._exit(3)\n    d = mu.shape[0]\n"),
        "flood.py": flood,
        "wrong.py": _edit(
            _edit(solution, '        raise ValueError(f"a must be > 0 for Z to be finite; got a = {a.tolist()}.")\n', "        pass\n"),
            "    grad = (x_data**2 - x1**2).mean()", "    grad = (x_data**2 - x1**2).sum()"),
    }


@pytest.fixture(scope="module")
def graded_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, text in _scenarios().items():
        (folder / name).write_text(text)
    out = tmp_path_factory.mktemp("reports")
    cmd = [sys.executable, "-m", "ebm_teach.grade", str(folder), "--json", str(out / "report.json"),
           "--csv", str(out / "gradebook.csv"), "--timeout", str(TIMEOUT), "--max-output", str(MAX_OUTPUT),
           "--jobs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((out / "report.json").read_text())
    reports = {Path(r["file"]).name: r for r in data["submissions"]}
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"reports": reports, "rows": rows, "stdout": proc.stdout, "stderr": proc.stderr}


def _by_id(report):
    return {ex["id"]: ex for ex in report["exercises"]}


# ------------------------------------------------------------------------------------ full marks for solutions
@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_get_full_marks(solution):
    report = runner.grade_file(solution, timeout=60)
    assert report["error"] is None and report["cell_errors"] == []
    assert [ex["status"] for ex in report["exercises"]] == ["passed"] * len(report["exercises"]), summary([report])
    assert report["points"] == report["max_points"] == sum(e.max_points for e in load_exercises(solution.stem))


# ------------------------------------------------------------------------------------ what the grader survives
def test_untouched_file_scores_zero_without_tracebacks(graded_folder):
    report = graded_folder["reports"]["untouched.ipynb"]
    assert report["chapter"] == "01_gaussian_ebm"  # from the marker line: the file name says nothing
    assert report["points"] == 0 and report["max_points"] == 13
    assert {ex["status"] for ex in report["exercises"]} == {"not_implemented"}
    assert report["cell_errors"] == []  # self-check cells, which would raise, are not run
    text = json.dumps(report) + graded_folder["stdout"] + graded_folder["stderr"]
    assert "Traceback" not in text
    assert "replace `raise NotImplementedError()` in log_partition_quadratic" in _by_id(report)["1.1"]["message"]


def test_syntax_error_scores_zero_with_a_clear_message(graded_folder):
    report = graded_folder["reports"]["syntax_error.py"]
    ex = _by_id(report)
    assert report["points"] == 0
    assert ex["1.1"]["status"] == "error"
    assert "SyntaxError" in ex["1.1"]["message"] and "`log_partition_quadratic` is not defined" in ex["1.1"]["message"]
    assert "return 0.5 * torch.log(math.pi / a) +" in ex["1.1"]["message"]  # quotes the offending line
    assert [e["status"] for e in (ex["1.2"], ex["1.3"])] == ["not_implemented"] * 2
    assert len(report["cell_errors"]) == 1 and "SyntaxError" in report["cell_errors"][0]["message"]


def test_infinite_loop_times_out_and_the_rest_is_still_graded(graded_folder):
    ex = _by_id(graded_folder["reports"]["infinite_loop.py"])
    assert ex["1.1"]["status"] == "timeout" and ex["1.1"]["points"] == 0
    assert f"did not finish within {TIMEOUT} s" in ex["1.1"]["message"]
    assert (ex["1.2"]["status"], ex["1.2"]["points"]) == ("passed", 5)
    assert (ex["1.3"]["status"], ex["1.3"]["points"]) == ("passed", 3)


def test_infinite_loop_at_top_level_times_out_every_exercise(graded_folder):
    report = graded_folder["reports"]["top_level_loop.py"]
    assert {ex["status"] for ex in report["exercises"]} == {"timeout"} and report["points"] == 0
    assert f"top-level code did not finish within {TIMEOUT} s" in report["exercises"][0]["message"]


def test_exception_at_import_time_is_reported_and_other_cells_still_run(graded_folder):
    report = graded_folder["reports"]["import_error.py"]
    ex = _by_id(report)
    assert "ModuleNotFoundError" in report["cell_errors"][0]["message"]
    assert "ebm_teach_no_such_module" in report["cell_errors"][0]["message"]
    # torch was never imported, so the functions that use it fail with a NameError pointing at the line ...
    assert ex["1.1"]["status"] == "error" and "NameError" in ex["1.1"]["message"]
    assert "line" in ex["1.1"]["message"] and "torch.as_tensor" in ex["1.1"]["message"]
    # ... while cd1_step, defined in a later cell and needing only math, is still graded.
    assert (ex["1.3"]["status"], ex["1.3"]["points"]) == ("passed", 3)
    assert report["points"] == 3


def test_a_process_exit_fails_that_exercise_only(graded_folder):
    ex = _by_id(graded_folder["reports"]["exits.py"])
    assert ex["1.2"]["status"] == "error" and "exit code 3" in ex["1.2"]["message"]
    assert [ex["1.1"]["status"], ex["1.3"]["status"]] == ["passed", "passed"]


def test_megabytes_of_printing_are_capped(graded_folder):
    report = graded_folder["reports"]["flood.py"]
    assert report["points"] == 13  # printing does not hurt the grade ...
    assert len(report["output"]) <= MAX_OUTPUT + 200  # ... and only MAX_OUTPUT characters are kept
    assert "more bytes of output were dropped" in report["output"]
    assert report["output"].startswith("#" * 100)


def test_wrong_answers_get_partial_credit(graded_folder):
    report = graded_folder["reports"]["wrong.py"]
    ex = _by_id(report)
    assert (ex["1.1"]["status"], ex["1.1"]["points"]) == ("failed", 4)  # all but the ValueError check
    assert "should raise ValueError" in ex["1.1"]["message"]
    assert (ex["1.3"]["status"], ex["1.3"]["points"]) == ("failed", 1)  # the worked example has batch size 1
    assert "batch sum" in ex["1.3"]["message"]
    assert (ex["1.2"]["status"], report["points"]) == ("passed", 10)


def test_csv_gradebook_has_one_row_per_file(graded_folder):
    rows = {Path(r["file"]).name: r for r in graded_folder["rows"]}
    assert set(rows) == set(_scenarios())
    assert rows["wrong.py"]["points"] == "10" and rows["wrong.py"]["max_points"] == "13"
    assert (rows["wrong.py"]["1.3 points"], rows["wrong.py"]["1.3 status"]) == ("1", "failed")
    assert rows["infinite_loop.py"]["1.1 status"] == "timeout"


def test_printed_summary_has_points_and_feedback(graded_folder):
    out = graded_folder["stdout"]
    assert "wrong.py (chapter 01_gaussian_ebm): 10/13 points" in out
    line = next(l for l in out.splitlines() if "1.3" in l and "cd1_step" in l and "failed" in l)
    assert "batch sum" in line
    assert f"{len(_scenarios())} files graded" in out


# ------------------------------------------------------------------------------------ files the grader cannot run
def test_corrupt_notebook_is_an_error_for_every_exercise(tmp_path):
    path = tmp_path / "01_gaussian_ebm.ipynb"
    path.write_text('{"cells": [')
    report = runner.grade_file(path)
    assert report["chapter"] == "01_gaussian_ebm"  # from the file name, as the marker cannot be read
    assert "not a valid notebook" in report["error"]
    assert [ex["status"] for ex in report["exercises"]] == ["error"] * 3 and report["points"] == 0


def test_file_of_unknown_chapter_is_a_file_level_error(tmp_path):
    path = tmp_path / "homework.py"
    path.write_text("# %%\nx = 1\n")
    report = runner.grade_file(path)
    assert report["exercises"] == [] and "cannot tell which chapter" in report["error"]
    path.write_text("# %%\n# ebm-teach exercises: 99_no_such_chapter\n")
    assert "no hidden checks for chapter '99_no_such_chapter'" in runner.grade_file(path)["error"]


def test_grade_file_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        runner.grade_file(CH1_SOLUTION, timeout=0)
    with pytest.raises(ValueError, match="max_output must be an int >= 0"):
        runner.grade_file(CH1_SOLUTION, max_output=-1)
    with pytest.raises(FileNotFoundError, match="no exercise file at"):
        runner.grade_file(tmp_path / "missing.ipynb")
    with pytest.raises(FileNotFoundError, match="holds no .ipynb or .py exercise files"):
        runner.submissions_in(tmp_path)
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        runner.grade_path(CH1_SOLUTION, jobs=0)


def test_folder_skips_the_py_twin_of_a_notebook(tmp_path):
    for name in ("01_a.ipynb", "01_a.py", "02_b.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in runner.submissions_in(tmp_path)] == ["01_a.ipynb", "02_b.py"]


def test_cli_rejects_bad_options_without_a_traceback(tmp_path):
    cmd = [sys.executable, "-m", "ebm_teach.grade"]
    bad_timeout = subprocess.run(cmd + [str(CH1_SOLUTION), "--timeout", "-1"], capture_output=True, text=True, cwd=ROOT)
    assert bad_timeout.returncode == 2 and "must be > 0" in bad_timeout.stderr
    missing = subprocess.run(cmd + [str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and "neither an exercise file nor a folder" in missing.stderr
    assert "Traceback" not in bad_timeout.stderr + missing.stderr


# ------------------------------------------------------------------------------------ reading submissions
def test_marker_line_names_the_chapter_and_the_file_name_is_the_fallback(tmp_path):
    assert find_chapter(CH1_EXERCISE.with_suffix(".ipynb"), read_cells(CH1_EXERCISE.with_suffix(".ipynb"))) == "01_gaussian_ebm"
    renamed = tmp_path / "alice (1).py"
    shutil.copy(CH1_EXERCISE.with_suffix(".py"), renamed)
    assert find_chapter(renamed, read_cells(renamed)) == "01_gaussian_ebm"
    assert find_chapter(tmp_path / "03_nce.ipynb", []) == "03_nce"
    with pytest.raises(SubmissionError, match="cannot tell which chapter"):
        find_chapter(tmp_path / "homework.ipynb", [])


def test_py_and_ipynb_twins_read_as_the_same_cells():
    py, nb = read_cells(CH1_EXERCISE.with_suffix(".py")), read_cells(CH1_EXERCISE.with_suffix(".ipynb"))
    assert [(c.kind, c.source, c.tags) for c in py] == [(c.kind, c.source, c.tags) for c in nb]
    assert any("self-check" in c.tags for c in nb)


def test_read_cells_rejects_other_files(tmp_path):
    with pytest.raises(SubmissionError, match="ends in .ipynb or .py"):
        read_cells(tmp_path / "answers.txt")
    (tmp_path / "x.ipynb").write_text('{"cells": 3}')
    with pytest.raises(SubmissionError, match="not a Jupyter notebook"):
        read_cells(tmp_path / "x.ipynb")


# ------------------------------------------------------------------------------------ spec and checking, in process
def _exercise(*checks):
    return Exercise(id="9.1", name="f", checks=[Check(f"check {i}", fn, points) for i, (fn, points) in enumerate(checks)])


def _passes(f):
    assert f(2) == 4


def _fails(f):
    if f(3) != 9:  # not `assert`: pytest would rewrite the message
        raise AssertionError("f(3) should be 9")


def test_run_exercise_sums_the_points_of_passed_checks():
    ex = _exercise((_passes, 2), (_fails, 3))
    result = run_exercise(ex, lambda x: 4)
    assert (result["status"], result["points"], result["max_points"]) == ("failed", 2, 5)
    assert result["message"] == "check 1: f(3) should be 9"
    assert run_exercise(ex, lambda x: x * x)["status"] == "passed"


def test_run_exercise_tells_stub_from_crash():
    ex = _exercise((_passes, 1), (_fails, 1))

    def stub(x):
        raise NotImplementedError()

    def crashes(x):
        return x.no_such_attribute

    assert run_exercise(ex, stub)["status"] == "not_implemented"
    crashed = run_exercise(ex, crashes)
    assert crashed["status"] == "error" and "AttributeError" in crashed["message"]


def test_spec_validates_exercises_and_checks():
    with pytest.raises(ValueError, match="id must look like '1.2'"):
        Exercise(id="one", name="f", checks=[Check("c", _passes)])
    with pytest.raises(ValueError, match="name must be the Python name"):
        Exercise(id="1.1", name="not a name", checks=[Check("c", _passes)])
    with pytest.raises(ValueError, match="checks must be a non-empty list"):
        Exercise(id="1.1", name="f", checks=[])
    with pytest.raises(ValueError, match="points must be a number > 0"):
        Check("c", _passes, 0)
    with pytest.raises(TypeError, match="fn must be a function"):
        Check("c", "not callable", 1)
    with pytest.raises(ValueError, match="two digits then a slug"):
        checks_module_name("gaussian")
    with pytest.raises(LookupError, match="no hidden checks for chapter '99_none'"):
        load_exercises("99_none")


def test_assert_helpers_write_messages_for_the_learner():
    with pytest.raises(AssertionError, match="forget the `return`"):
        as_float64(None, "f(1)")
    with pytest.raises(AssertionError, match=r"should have shape \(3,\); got shape \(2,\)"):
        assert_shape(torch.zeros(2), (3,), "x")
    with pytest.raises(AssertionError, match="should be 1; got 1.1"):
        assert_close(1.1, 1.0, "f(0)")
    with pytest.raises(AssertionError, match=r"wrong at 1 of 3 entries; at index \(2,\) it should be 3, got 4"):
        assert_close([1.0, 2.0, 4.0], [1.0, 2.0, 3.0], "v")
    with pytest.raises(AssertionError, match="contains NaN or inf"):
        assert_close(float("nan"), 1.0, "f(0)")
    assert_close(torch.tensor(1.0, dtype=torch.float32), 1.0 + 1e-7, "f(0)")
    with pytest.raises(AssertionError, match="should raise ValueError; it returned 1"):
        assert_raises(ValueError, lambda: 1, what="g()")
    with pytest.raises(NotImplementedError):
        assert_raises(ValueError, lambda: (_ for _ in ()).throw(NotImplementedError()), what="g()")
