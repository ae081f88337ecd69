"""The grader: `python -m ebm_teach.grade` on good, untouched, broken and hostile submissions.

The slow part (a jailed child process per file) runs once: `graded_folder` grades, through the command line,
a folder holding the chapter-1 solution (the "victim" that other files try to harm) and one file per failure
mode or exploit, and the tests below read its JSON report, CSV gradebook and feedback files. Each scenario
file is the chapter-1 solution or exercise file with one edit, made by `_edit`, which fails loudly if the
text it edits has changed. The proxy (arguments in, plain data out, side effects and gradients back) is
tested without a child process, against a server thread.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

import pytest
import torch

from ebm_teach.grade import builder, cli, mutants, runner, sandbox, spec
from ebm_teach.grade.asserts import as_float64, assert_close, assert_raises, assert_shape
from ebm_teach.grade.checking import format_exception, run_checks, run_exercise, validate_result
from ebm_teach.grade.child import _Server
from ebm_teach.grade.notebook import SubmissionError, find_chapter, read_cells
from ebm_teach.grade.proxy import (Abort, LearnerError, LearnerObject, RemoteFunction, Session, _Malformed,
                                   load_plain, tensor_from_raw, tensor_to_raw)
from ebm_teach.grade.report import feedback_markdown, summary
from ebm_teach.grade.spec import Check, Exercise, check_seed, checks_module_name, load_exercises

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
CH1_SOLUTION = ROOT / "solutions" / "01_gaussian_ebm.py"
CH1_EXERCISE = ROOT / "exercises" / "01_gaussian_ebm"
CH1 = load_exercises("01_gaussian_ebm")  # the scenarios below follow whatever chapter 1's exercises are
CH1_MAX = sum(e.max_points for e in CH1)
E1, E2, E3 = CH1[0], CH1[1], CH1[2]
CHECKS_DIR = ROOT / "ebm_teach" / "grade" / "checks"
TIMEOUT = 8  # seconds per step in the folder run; each looping exercise costs exactly this
MAX_OUTPUT = 5000
CANARY = f"ebm-canary-{uuid.uuid4().hex[:12]}"  # in the command line of every process a submission starts
SECRET = f"secret-{uuid.uuid4().hex[:12]}"  # in the grader's environment, never in a submission's
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"


def _with_cell(text: str, code: str, first: bool = False) -> str:
    """The py:percent file with one more code cell, at the end (after the functions) or before all others."""
    cell = "# %%\n" + code.strip("\n") + "\n"
    if first:
        at = text.index("# %%")
        return text[:at] + cell + "\n" + text[at:]
    return text.rstrip("\n") + "\n\n" + cell


def _replace_function(text: str, name: str, body: str) -> str:
    """The exercise file with the stub of `name` replaced by `body` (indented code)."""
    head = text.index(f"def {name}(")
    stub = text.index(STUB, head)
    return text[:stub] + body.rstrip("\n") + text[stub + len(STUB):]


def _inject(text: str, name: str, code: str) -> str:
    """The solutions file with `code` run first in the answer of `name` (just after its BEGIN SOLUTION)."""
    head = text.index(f"def {name}(")
    marker = text.index("### BEGIN SOLUTION\n", head)
    indent = text[text.rindex("\n", 0, marker) + 1:marker]
    lines = "".join(indent + line + "\n" for line in code.strip("\n").splitlines())
    at = marker + len("### BEGIN SOLUTION\n")
    return text[:at] + lines + text[at:]


LIAR = '''
class Liar(torch.Tensor):
    """Answers every comparison in its own favour."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal", "eq", "__eq__", "isclose", "le", "lt", "ge", "gt", "__le__", "__gt__",
                    "isfinite", "all", "any", "__bool__"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
'''


def _scenarios(victim: Path, poison: dict) -> dict:
    """File name -> contents: one submission per thing the grader must survive, made from chapter 1's
    solutions and exercise files by edits that do not depend on what the answers are."""
    solution = CH1_SOLUTION.read_text()
    exercise = CH1_EXERCISE.with_suffix(".py").read_text()
    flood = _with_cell(_inject(solution, E1.name, "print('log Z! ' * 20_000)\nimport sys\n"
                                                 "print('a warning on stderr', file=sys.stderr)"),
                       "for _ in range(3):\n    print('#' * 1_000_000)", first=True)
    counter = "global _calls\n_calls = globals().get('_calls', 0) + 1\nif _calls > 1:\n    return None"
    forged = "".join(f"\ndef {e.name}(*args, **kwargs):\n    _forge({how})\n    return 0.0\n" for e, how in zip(CH1, (
        'struct.pack("<Q", 5) + b"junk!"',  # not a reply at all
        '_framed(pickle.dumps(("return", {"event": "result", "status": "passed", "points": 500}, [], None)))',
        'struct.pack("<Q", 2**40)',  # announces a terabyte
    )))
    return {
        "victim.py": solution,
        "untouched.ipynb": CH1_EXERCISE.with_suffix(".ipynb").read_text(),
        "syntax_error.py": _replace_function(exercise, E1.name, "    return 1 +\n" + STUB),
        "infinite_loop.py": _inject(solution, E1.name, "while True:\n    pass"),
        "import_error.py": _with_cell(solution, "import ebm_teach_no_such_module", first=True),
        "top_level_loop.py": _with_cell(solution, "while True:\n    pass"),
        "exits.py": _inject(solution, E2.name, "import os\nos._exit(3)"),
        "flood.py": flood,
        "wrong.py": _inject(solution, E1.name, counter),  # right the first time it is called, then None
        # ---- exploits: each an untouched stub that tries to reach full marks another way
        "patcher.py": _with_cell(exercise, '''
import __main__
import ebm_teach.grade.checking as checking
from ebm_teach.grade import asserts, child
from ebm_teach.grade.checks import ch01_gaussian_ebm as hidden
from ebm_teach.grade.spec import load_exercises

def full_marks(check, function, is_learner_file=None):
    return {"description": check.description, "status": "passed", "points": 500, "max_points": 1, "message": ""}
checking._run_check = full_marks
__main__.run_exercise = lambda exercise, *a, **k: {"id": exercise.id, "status": "passed", "points": 500}
for e in load_exercises("01_gaussian_ebm"):
    e.checks.clear()
for module in (hidden, asserts):
    module.assert_close = module.assert_shape = module.as_float64 = lambda *a, **k: None
child._Server.call = lambda self, *a: self.reply(("return", {"__dict__": [["points", 500], ["status", "passed"]]}, [], None))
'''),
        "frames.py": _replace_function(exercise, E1.name, '''
    import sys
    frame = sys._getframe(1)
    while frame is not None:  # disarm whatever compares the answer, in every caller's module
        for key in ("assert_close", "assert_shape", "as_float64", "assert_raises"):
            if key in frame.f_globals:
                frame.f_globals[key] = lambda *a, **k: None
        frame = frame.f_back
    return 0.0
'''),
        "forged.py": _with_cell(exercise, '''
import os, pickle, struct

def _forge(payload):
    for fd in range(3, 64):
        try:
            os.write(fd, payload)
        except OSError:
            pass

def _framed(data):
    return struct.pack("<Q", len(data)) + data
''' + forged),
        "poison.py": _with_cell(exercise, f'''
import os
for path, text in [({str(poison["canary"])!r}, "POISON"), ({str(poison["checks"])!r}, ""),
                   ({str(poison["new"])!r}, "EXERCISES = []")]:
    try:
        with open(path, "a") as f:
            f.write(text)
        print("POISON-WROTE", path)
    except OSError as err:
        print("POISON-BLOCKED", path, type(err).__name__)
'''),
        "vandal.py": _with_cell(exercise, f'''
import glob, os, tempfile
done = []
for path in [{str(victim)!r}] + glob.glob(os.path.join({tempfile.gettempdir()!r}, "ebm-grade-*", "**", "*"), recursive=True):
    if os.path.isfile(path) and not os.path.samefile(os.path.dirname(path), os.getcwd()):
        for attempt in (lambda p: open(p, "w").write("vandalised"), os.remove):
            try:
                attempt(path)
                done.append(path)
            except OSError:
                pass
print("VANDAL-DONE", len(done))
'''),
        "processes.py": _with_cell(exercise, f'''
import os, subprocess, sys
sleeper = [sys.executable, "-c", "import time; time.sleep(60)", {CANARY!r}]
started = []
try:
    for _ in range(300):
        started.append(subprocess.Popen(sleeper))
    print("FORK-ALL", len(started))
except OSError as err:
    print("FORK-STOPPED", len(started), type(err).__name__)
for proc in started:
    proc.kill()
    proc.wait()
subprocess.Popen(sleeper, start_new_session=True)  # a new session: not in the child's process group
if os.fork() == 0:  # a double fork: the daemon's parent exits at once
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
'''),
        "limits.py": _with_cell(_replace_function(exercise, E1.name, "    return torch.empty(2**31, dtype=torch.float64)  # 16 GB"),
                                '''
with open("big.bin", "wb") as f:
    f.write(b"0" * (100 * 2**20))  # 100 MB
'''),
        "spy.py": _with_cell(exercise, '''
import os, socket
print("ENV-NAMES", sorted(os.environ))
try:
    print("PARENT-ENV", open(f"/proc/{os.getppid()}/environ", "rb").read().decode(errors="replace"))
except OSError as err:
    print("PARENT-ENV-BLOCKED", type(err).__name__)
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)
    print("NET-CONNECTED")
except OSError as err:
    print("NET-BLOCKED", type(err).__name__)
'''),
        "odd_values.py": _with_cell(exercise, LIAR + "".join(f"\ndef {e.name}(*args, **kwargs):\n    {body}\n" for e, body in zip(CH1, (
            'raise ValueError("x" * 2_000_000)',
            'return torch.empty(3, device="meta")',
            "return torch.zeros(3).as_subclass(Liar)")))),
        "imports_package.py": _with_cell(exercise, f'''
from ebm_teach.evaluate import log_mean_exp as {E3.name}
from ebm_teach.grade.checks import ch01_gaussian_ebm
'''),
    }


def _canary_processes() -> list:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if CANARY.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def graded_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    tag = uuid.uuid4().hex[:12]
    poison = {"canary": CHECKS_DIR / f"_poison_canary_{tag}.txt", "checks": CHECKS_DIR / "ch01_gaussian_ebm.py",
              "new": CHECKS_DIR / f"_poison_new_{tag}.py"}
    checks_before = poison["checks"].read_bytes()
    scenarios = _scenarios(folder / "victim.py", poison)
    for name, text in scenarios.items():
        (folder / name).write_text(text)
    victim_before = (folder / "victim.py").read_bytes()
    out = tmp_path_factory.mktemp("reports")
    cmd = [sys.executable, "-m", "ebm_teach.grade", str(folder), "--json", str(out / "report.json"),
           "--csv", str(out / "gradebook.csv"), "--feedback", str(out / "feedback"), "--timeout", str(TIMEOUT),
           "--max-output", str(MAX_OUTPUT), "--jobs", "2"]
    env = dict(os.environ, EBM_TEACH_GRADING_SEED="12345", EBM_TEST_SECRET=SECRET)
    try:
        poison["canary"].write_text("canary\n")  # a file of the package that the poison tries to change
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)
        seconds = time.monotonic() - start
        canary_after = poison["canary"].read_text()
        new_file_exists = poison["new"].exists()
    finally:
        for path in (poison["canary"], poison["new"]):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((out / "report.json").read_text())
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"data": data, "reports": {r["file"]: r for r in data["submissions"]}, "rows": rows,
            "stdout": proc.stdout, "stderr": proc.stderr, "feedback": out / "feedback", "seconds": seconds,
            "scenarios": scenarios, "canary_after": canary_after, "new_file_exists": new_file_exists,
            "checks_unchanged": poison["checks"].read_bytes() == checks_before,
            "victim_unchanged": (folder / "victim.py").read_bytes() == victim_before,
            "leftover_processes": _canary_processes()}


def _by_id(report):
    return {ex["id"]: ex for ex in report["exercises"]}


def _landlock_on(report) -> bool:
    return report["sandbox"].get("landlock", "").startswith("on")


# ------------------------------------------------------------------------------------ full marks for solutions
@pytest.fixture(scope="module")
def graded_solutions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solutions")
    for path in SOLUTIONS:
        shutil.copy(path, folder / path.name)
    return {r["file"]: r for r in runner.grade_path(folder, timeout=60, jobs=2)}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_get_full_marks(graded_solutions, solution):
    report = graded_solutions[solution.name]
    assert report["error"] is None and report["cell_errors"] == [] and report["flags"] == []
    assert [ex["status"] for ex in report["exercises"]] == ["passed"] * len(report["exercises"]), summary([report])
    assert report["points"] == report["max_points"] == sum(e.max_points for e in load_exercises(solution.stem))


# ------------------------------------------------------------------------------------ what the grader survives
def test_the_victim_keeps_full_marks_and_the_run_completes(graded_folder):
    assert set(graded_folder["reports"]) == set(graded_folder["scenarios"])
    assert len(graded_folder["rows"]) == len(graded_folder["scenarios"])
    victim = graded_folder["reports"]["victim.py"]
    assert (victim["points"], victim["max_points"]) == (CH1_MAX, CH1_MAX), summary([victim])
    assert graded_folder["data"]["secret_seed"] is True and str(12345) not in json.dumps(graded_folder["data"])


def test_untouched_file_scores_zero_without_tracebacks(graded_folder):
    report = graded_folder["reports"]["untouched.ipynb"]
    assert report["chapter"] == "01_gaussian_ebm"  # from the marker line: the file name says nothing
    assert report["points"] == 0 and report["max_points"] == CH1_MAX
    assert {ex["status"] for ex in report["exercises"]} == {"not_implemented"}
    assert report["cell_errors"] == []  # self-check cells, which would raise, are not run
    text = json.dumps(report) + graded_folder["stdout"] + graded_folder["stderr"]
    assert "Traceback" not in text
    assert f"replace `raise NotImplementedError()` in {E1.name}" in _by_id(report)[E1.id]["message"]


def test_syntax_error_scores_zero_with_a_clear_message(graded_folder):
    report = graded_folder["reports"]["syntax_error.py"]
    ex = _by_id(report)
    assert report["points"] == 0
    assert ex[E1.id]["status"] == "error"
    assert "SyntaxError" in ex[E1.id]["message"] and f"`{E1.name}` is not defined" in ex[E1.id]["message"]
    assert "`return 1 +`" in ex[E1.id]["message"]  # quotes the offending line
    assert {ex[e.id]["status"] for e in CH1[1:]} == {"not_implemented"}
    assert len(report["cell_errors"]) == 1 and "SyntaxError" in report["cell_errors"][0]["message"]


def test_infinite_loop_times_out_and_the_rest_is_still_graded(graded_folder):
    ex = _by_id(graded_folder["reports"]["infinite_loop.py"])
    assert ex[E1.id]["status"] == "timeout" and ex[E1.id]["points"] == 0
    assert f"did not finish within {TIMEOUT} s" in ex[E1.id]["message"]
    assert [c["status"] for c in ex[E1.id]["checks"]] == ["timeout"] * len(E1.checks)  # the first ran out; not run
    assert [(ex[e.id]["status"], ex[e.id]["points"]) for e in CH1[1:]] == [("passed", e.max_points) for e in CH1[1:]]


def test_infinite_loop_at_top_level_times_out_every_exercise(graded_folder):
    report = graded_folder["reports"]["top_level_loop.py"]
    assert {ex["status"] for ex in report["exercises"]} == {"timeout"} and report["points"] == 0
    assert f"top-level code did not finish within {TIMEOUT} s" in report["exercises"][0]["message"]


def test_exception_at_import_time_is_reported_and_other_cells_still_run(graded_folder):
    report = graded_folder["reports"]["import_error.py"]
    assert len(report["cell_errors"]) == 1
    assert "ModuleNotFoundError" in report["cell_errors"][0]["message"]
    assert "ebm_teach_no_such_module" in report["cell_errors"][0]["message"]
    assert report["points"] == CH1_MAX  # every other cell ran: the functions are all there


def test_a_process_exit_fails_that_exercise_only(graded_folder):
    ex = _by_id(graded_folder["reports"]["exits.py"])
    assert ex[E2.id]["status"] == "error" and "exit code 3" in ex[E2.id]["message"]
    assert {ex[e.id]["status"] for e in CH1 if e is not E2} == {"passed"}  # a fresh child graded the rest


def test_megabytes_of_printing_and_stderr_cost_nothing(graded_folder):
    report = graded_folder["reports"]["flood.py"]
    assert report["points"] == CH1_MAX  # printing, to stdout or stderr, does not hurt the grade ...
    assert len(report["output"]) <= MAX_OUTPUT + 200  # ... and only MAX_OUTPUT characters are kept
    assert "more bytes of output were dropped" in report["output"]
    assert report["output"].startswith("#" * 100)


def test_wrong_answers_get_partial_credit(graded_folder):
    report = graded_folder["reports"]["wrong.py"]
    ex = _by_id(report)[E1.id]  # right on its first call, None after: some checks pass, others do not
    passed = [c for c in ex["checks"] if c["status"] == "passed"]
    assert ex["status"] == "failed" and passed and len(passed) < len(ex["checks"])
    assert ex["points"] == sum(c["points"] for c in passed) and 0 < ex["points"] < E1.max_points
    assert "returned None" in ex["message"]
    assert report["points"] == CH1_MAX - E1.max_points + ex["points"]


# ------------------------------------------------------------------------------------ exploits earn nothing
def test_patching_the_grader_in_the_submission_earns_nothing(graded_folder):
    # _run_check, run_exercise on __main__, the exercises' check lists, the assert helpers, the child's replies:
    # all live in the child, which holds no check and no point.
    report = graded_folder["reports"]["patcher.py"]
    assert report["points"] == 0 and report["cell_errors"] == []
    assert {ex["status"] for ex in report["exercises"]} <= {"failed", "error", "not_implemented"}


def test_rewriting_the_callers_globals_through_frames_earns_nothing(graded_folder):
    ex = _by_id(graded_folder["reports"]["frames.py"])
    assert ex[E1.id]["points"] == 0 and ex[E1.id]["status"] == "failed"


def test_a_tensor_subclass_that_wins_every_comparison_earns_nothing(graded_folder):
    ex = _by_id(graded_folder["reports"]["odd_values.py"])
    assert ex[E3.id]["points"] == 0 and ex[E3.id]["status"] == "failed"


def test_forged_replies_are_that_submissions_error_only(graded_folder):
    report = graded_folder["reports"]["forged.py"]
    ex = _by_id(report)
    assert report["points"] == 0
    assert [ex[e.id]["status"] for e in (E1, E2, E3)] == ["error"] * 3
    assert "cannot be read safely" in ex[E1.id]["message"]
    assert "malformed reply" in ex[E2.id]["message"]  # the "result" with 500 points is not a value at all
    assert "a reply of 1,099,511,627,776 bytes" in ex[E3.id]["message"]


def test_the_installed_checks_cannot_be_poisoned(graded_folder):
    report = graded_folder["reports"]["poison.py"]
    assert graded_folder["checks_unchanged"] and graded_folder["canary_after"] == "canary\n"
    assert not graded_folder["new_file_exists"]
    assert report["output"].count("POISON-BLOCKED") == 3 and "POISON-WROTE" not in report["output"]


def test_other_students_files_cannot_be_changed_or_deleted(graded_folder):
    report = graded_folder["reports"]["vandal.py"]
    assert "VANDAL-DONE 0" in report["output"]
    assert graded_folder["victim_unchanged"]
    assert graded_folder["reports"]["victim.py"]["points"] == CH1_MAX


def test_every_process_a_submission_starts_is_killed_and_their_number_is_limited(graded_folder):
    report = graded_folder["reports"]["processes.py"]
    assert "FORK-STOPPED" in report["output"] and "FORK-ALL" not in report["output"]
    stopped_after = int(report["output"].split("FORK-STOPPED")[1].split()[0])
    assert stopped_after < sandbox.Limits().max_processes  # the child's own threads count too
    assert graded_folder["leftover_processes"] == []  # the setsid and double-forked daemons too


def test_memory_and_file_size_are_limited(graded_folder):
    report = graded_folder["reports"]["limits.py"]
    ex = _by_id(report)
    assert "File too large" in report["cell_errors"][0]["message"]
    assert ex[E1.id]["status"] == "error" and "allocate" in ex[E1.id]["message"]
    assert {ex[e.id]["status"] for e in CH1[1:]} == {"not_implemented"}  # the same child goes on


def test_the_environment_is_scrubbed_and_the_grader_out_of_reach(graded_folder):
    report = graded_folder["reports"]["spy.py"]
    output = report["output"]
    names = output.split("ENV-NAMES")[1].splitlines()[0]
    assert "EBM_TEST_SECRET" not in names and "EBM_TEACH_GRADING_SEED" not in names
    assert SECRET not in output and "12345" not in output
    if _landlock_on(report) or os.geteuid() == 0:
        assert "PARENT-ENV-BLOCKED" in output
    if "no TCP" in report["sandbox"].get("landlock", ""):
        assert "NET-BLOCKED PermissionError" in output


def test_odd_values_are_failed_answers_not_crashes(graded_folder):
    report = graded_folder["reports"]["odd_values.py"]
    ex = _by_id(report)
    big = ex[E1.id]["checks"][0]  # a 2 MB exception message, cut
    assert big["status"] in ("error", "failed") and len(big["message"]) < 25_000 and "ValueError: xxx" in big["message"]
    meta = ex[E2.id]["checks"][0]  # a tensor on the meta device is a wrong answer, not "not attempted"
    assert meta["status"] == "failed" and "meta device" in meta["message"] and ex[E2.id]["status"] == "failed"


def test_imports_of_the_graded_function_are_flagged_not_failed(graded_folder):
    report = graded_folder["reports"]["imports_package.py"]
    ex = _by_id(report)
    assert any("log_mean_exp" in f and "ebm_teach.evaluate" in f for f in ex[E3.id]["flags"])
    assert any("it comes from ebm_teach.evaluate" in f for f in ex[E3.id]["flags"])
    assert all(any("ebm_teach.grade.checks" in f for f in ex[i]["flags"]) for i in ex)
    row = next(r for r in graded_folder["rows"] if r["file"] == "imports_package.py")
    assert "ebm_teach.evaluate" in row["flags"]
    assert graded_folder["reports"]["victim.py"]["flags"] == []


# ------------------------------------------------------------------------------------ reports
def test_csv_gradebook_has_one_row_per_file_with_the_student(graded_folder):
    rows = {r["file"]: r for r in graded_folder["rows"]}
    assert set(rows) == set(graded_folder["scenarios"])
    wrong = graded_folder["reports"]["wrong.py"]
    assert rows["wrong.py"]["student"] == "wrong" and rows["wrong.py"]["file"] == "wrong.py"  # no full path
    assert (rows["wrong.py"]["points"], rows["wrong.py"]["max_points"]) == (f"{wrong['points']:g}", f"{CH1_MAX:g}")
    assert rows["wrong.py"][f"{E1.id} status"] == "failed"
    assert rows["infinite_loop.py"][f"{E1.id} status"] == "timeout"


def test_printed_summary_has_points_and_feedback(graded_folder):
    out = graded_folder["stdout"]
    wrong = graded_folder["reports"]["wrong.py"]
    heading = f"wrong.py (chapter 01_gaussian_ebm): {wrong['points']:g}/{CH1_MAX:g} points"
    assert heading in out
    line = next(l for l in out.split(heading)[1].splitlines() if E1.name in l)
    assert "failed" in line and "returned None" in line
    assert f"{len(graded_folder['scenarios'])} files graded" in out
    assert f"[{len(graded_folder['scenarios'])}/{len(graded_folder['scenarios'])}]" in out  # progress, file by file


def test_feedback_files_hold_every_checks_message(graded_folder):
    report = graded_folder["reports"]["wrong.py"]
    text = (graded_folder["feedback"] / "wrong" / "01_gaussian_ebm.md").read_text()
    assert f"**{report['points']:g} / {CH1_MAX:g} points**" in text
    for ex in report["exercises"]:
        for check in ex["checks"]:
            assert check["description"] in text
            if check["message"]:
                assert check["message"].splitlines()[0] in text  # whole, not cut at 160 characters
    assert len(list(graded_folder["feedback"].iterdir())) == len(graded_folder["scenarios"])


# ------------------------------------------------------------------------------------ limits set on the command line
def test_end_child_kills_detached_descendants_without_a_cgroup():
    script = (f"import os, subprocess, sys, time\n"
              f"sleeper = [sys.executable, '-c', 'import time; time.sleep(60)', {CANARY!r}]\n"
              "subprocess.Popen(sleeper, start_new_session=True)\n"
              "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv(sys.executable, sleeper)\n"
              "    os._exit(0)\nprint('started', flush=True)\ntime.sleep(60)\n")
    sandbox._set_subreaper()
    keep = set(sandbox._children_of(os.getpid()))
    process = subprocess.Popen([sys.executable, "-c", script, CANARY], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout.readline().strip() == b"started"

    def daemons():  # the two sleepers, once exec'd (a process's command line reads empty during exec)
        found = []
        for pid in _canary_processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].startswith(b"import time"):
                    found.append(pid)
        return found

    deadline = time.monotonic() + 20
    while len(daemons()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(daemons()) == 2
    sandbox.end_child(sandbox.Child(process, -1, -1, keep, None))
    assert _canary_processes() == [] and process.returncode is not None


def test_limits_validate_their_values():
    with pytest.raises(ValueError, match="memory_mb must be at least 1024"):
        sandbox.Limits(memory_mb=512)
    with pytest.raises(ValueError, match="max_processes must be an int >= 1"):
        sandbox.Limits(max_processes=0)
    with pytest.raises(TypeError, match="limits must be an ebm_teach.grade.sandbox.Limits"):
        runner.grade_file(CH1_SOLUTION, limits={"memory_mb": 2048})


# ------------------------------------------------------------------------------------ the secret seed
SEED_CHAPTER = "99_secret_seed"


def _doubles_its_input(double):
    g = torch.Generator().manual_seed(check_seed(0))
    x = torch.rand(3, generator=g, dtype=torch.float64)
    assert_close(double(x), 2 * x, "double(x)")


@pytest.fixture
def seed_chapter(monkeypatch):
    module = types.ModuleType(checks_module_name(SEED_CHAPTER))
    module.EXERCISES = [Exercise("99.1", "double", [Check("doubles a random input", _doubles_its_input, 1)])]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    yield
    spec.set_grading_seed(None)


def test_a_secret_seed_changes_the_inputs_the_learner_sees(tmp_path, seed_chapter):
    path = tmp_path / "double.py"
    path.write_text(f"# %%\n# ebm-teach exercises: {SEED_CHAPTER}\nimport torch\n\n"
                    "def double(x):\n    print('INPUT', repr(x.tolist()))\n    return 2 * x\n")
    spec.set_grading_seed(2024)
    report = runner.grade_file(path)
    seen = eval(report["output"].split("INPUT")[1].splitlines()[0])
    secret_input = torch.rand(3, generator=torch.Generator().manual_seed(check_seed(0)), dtype=torch.float64)
    spec.set_grading_seed(None)
    public_input = torch.rand(3, generator=torch.Generator().manual_seed(check_seed(0)), dtype=torch.float64)
    assert report["points"] == 1
    assert seen == secret_input.tolist() and seen != public_input.tolist()


def test_cpu_time_is_limited(tmp_path, seed_chapter):
    path = tmp_path / "burner.py"
    path.write_text(f"# %%\n# ebm-teach exercises: {SEED_CHAPTER}\n\ndef double(x):\n    while True:\n        pass\n")
    report = runner.grade_file(path, timeout=120, limits=sandbox.Limits(cpu_seconds=5))
    assert report["exercises"][0]["status"] == "error"
    assert "more than its 5 s of CPU time" in report["exercises"][0]["message"]


def test_cli_takes_the_seed_from_the_option_or_the_environment(tmp_path, monkeypatch, capsys):
    path = tmp_path / "01_gaussian_ebm.ipynb"
    path.write_text('{"cells": [')  # graded without a child: it cannot be read
    assert cli.main([str(path), "--seed", "7", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["secret_seed"] is True
    assert spec.check_seed(3) == 3  # the seed is cleared after the run
    monkeypatch.setenv(cli.SEED_VARIABLE, "not a number")
    with pytest.raises(SystemExit):
        cli.main([str(path)])
    assert "EBM_TEACH_GRADING_SEED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(path), "--seed", "-1"])


# ------------------------------------------------------------------------------------ files the grader cannot run
def test_corrupt_notebook_is_zero_of_the_chapters_points(tmp_path):
    path = tmp_path / "01_gaussian_ebm.ipynb"
    path.write_text('{"cells": [')
    report = runner.grade_file(path)
    assert report["chapter"] == "01_gaussian_ebm"  # from the file name, as the marker cannot be read
    assert "not a valid notebook" in report["error"]
    assert [ex["status"] for ex in report["exercises"]] == ["error"] * len(CH1)
    assert (report["points"], report["max_points"]) == (0, CH1_MAX)
    renamed = tmp_path / "alice.ipynb"  # the marker line is found in the broken file's text
    renamed.write_text('{"cells": [{"source": ["# ebm-teach exercises: 01_gaussian_ebm\\n"], ')
    assert (runner.grade_file(renamed)["max_points"], runner.grade_file(renamed)["chapter"]) == (CH1_MAX, "01_gaussian_ebm")
    unnamed = tmp_path / "bob.ipynb"  # nothing says which chapter: --chapter does
    unnamed.write_text("{")
    assert runner.grade_file(unnamed)["max_points"] == 0
    assert runner.grade_file(unnamed, chapter="1")["max_points"] == CH1_MAX


def test_a_file_of_another_chapter_earns_nothing_under_chapter(tmp_path):
    report = runner.grade_file(ROOT / "solutions" / "02_rbm_cd.py", chapter="01")
    assert (report["chapter"], report["points"], report["max_points"]) == ("02_rbm_cd", 0, CH1_MAX)
    assert "this run grades chapter 01_gaussian_ebm only" in report["error"]
    assert [ex["id"] for ex in report["exercises"]] == [e.id for e in CH1]  # no columns of chapter 2
    with pytest.raises(ValueError, match="no chapter '42'"):
        runner.grade_file(CH1_SOLUTION, chapter="42")


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


def test_cli_rejects_bad_options_without_a_traceback(tmp_path, capsys):
    for argv, message in [([str(CH1_SOLUTION), "--timeout", "-1"], "must be > 0"),
                          ([str(CH1_SOLUTION), "--memory", "100"], "at least 1024"),
                          ([str(CH1_SOLUTION), "--chapter", "42"], "no chapter '42'")]:
        with pytest.raises(SystemExit) as exit_code:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_code.value.code == 2 and message in err and "Traceback" not in err
    assert cli.main([str(tmp_path / "nope")]) == 1
    assert "neither an exercise file nor a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ course logistics
def _touch(root: Path, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")


def test_folder_layouts_name_the_students(tmp_path):
    flat = tmp_path / "flat"
    _touch(flat, "alice.ipynb", "alice.py", "bob.py", "notes.txt", ".ipynb_checkpoints/alice-checkpoint.ipynb")
    assert [(s.file, s.student) for s in runner.submissions_in(flat)] == [("alice.ipynb", "alice"), ("bob.py", "bob")]
    per_student = tmp_path / "per_student"
    _touch(per_student, "alice/01_gaussian_ebm.ipynb", "bob/01_gaussian_ebm.py", "bob/02_rbm_cd.py")
    assert [(s.student, s.file) for s in runner.submissions_in(per_student)] == [
        ("alice", "alice/01_gaussian_ebm.ipynb"), ("bob", "bob/01_gaussian_ebm.py"), ("bob", "bob/02_rbm_cd.py")]
    course = tmp_path / "course"  # nbgrader: submitted/<student>/<assignment>/
    _touch(course, "submitted/alice/ch01/01_gaussian_ebm.ipynb", "submitted/alice/ch01/timestamp.txt",
           "submitted/bob/ch01/01_gaussian_ebm.ipynb", "submitted/bob/ch02/02_rbm_cd.ipynb",
           "source/ch01/01_gaussian_ebm.ipynb", "release/ch01/01_gaussian_ebm.ipynb")
    found = runner.submissions_in(course)
    assert [(s.student, s.assignment) for s in found] == [("alice", "ch01"), ("bob", "ch01"), ("bob", "ch02")]
    assert [s.student for s in runner.submissions_in(course, assignment="ch01")] == ["alice", "bob"]
    assert runner.submissions_in(course / "submitted") == found


def test_results_are_reported_as_each_file_finishes(tmp_path):
    for name in ("alice.ipynb", "bob.ipynb"):
        (tmp_path / name).write_text("{")  # unreadable: graded without a child
    seen = []
    reports = runner.grade_path(tmp_path, chapter="1", on_report=lambda one, so_far: seen.append(
        (one["student"], [r and r["student"] for r in so_far])))
    assert seen == [("alice", ["alice", None]), ("bob", ["alice", "bob"])]
    assert [r["max_points"] for r in reports] == [CH1_MAX, CH1_MAX]


def test_feedback_markdown_lists_every_check():
    report = {"file": "alice/01_gaussian_ebm.ipynb", "student": "alice", "assignment": "ch01",
              "chapter": "01_gaussian_ebm", "points": 1, "max_points": 3, "error": None,
              "cell_errors": [{"cell": 4, "first_line": "import foo", "message": "ModuleNotFoundError: foo"}],
              "exercises": [{"id": "1.1", "name": "f", "status": "failed", "points": 1, "max_points": 3,
                             "message": "...", "checks": [
                                 {"description": "first", "status": "passed", "points": 1, "max_points": 1, "message": ""},
                                 {"description": "second", "status": "failed", "points": 0, "max_points": 2,
                                  "message": "f(2) should be 4;\ngot 5 " + "x" * 500}]}]}
    text = feedback_markdown(report)
    assert "**1 / 3 points**" in text and "ModuleNotFoundError: foo" in text
    assert "✔ first (1 / 1)" in text and "✘ second (0 / 2):\n  f(2) should be 4;\n  got 5 " + "x" * 500 in text
    from ebm_teach.grade.report import feedback_path
    assert feedback_path(report, "fb") == Path("fb/alice/ch01-01_gaussian_ebm.md")


def test_build_writes_one_nbgrader_assignment_per_chapter(tmp_path):
    written = builder.nbgrader_sources(ROOT / "solutions", tmp_path / "ch02", chapter="02_rbm_cd")
    assert [p.name for p in written] == ["02_rbm_cd.ipynb"]
    cells = json.loads(written[0].read_text())["cells"]
    points = sum(c["metadata"]["nbgrader"].get("points", 0) for c in cells if "nbgrader" in c["metadata"])
    assert points == sum(e.max_points for e in load_exercises("02_rbm_cd"))
    assert cli.main(["build", "--solutions", str(ROOT / "solutions"), "--nbgrader", str(tmp_path / "c1"),
                     "--chapter", "1"]) == 0
    assert [p.name for p in (tmp_path / "c1").iterdir()] == ["01_gaussian_ebm.ipynb"]
    with pytest.raises(SystemExit):
        cli.main(["build", "--chapter", "1"])


def test_run_checks_sends_stderr_to_stdout_for_nbgrader(capfd, seed_chapter):
    def double(x):
        print("python stderr", file=sys.stderr)
        os.write(2, b"C-level stderr\n")
        return 2 * x

    assert run_checks(SEED_CHAPTER, "99.1", double) == 1
    out, err = capfd.readouterr()
    assert err == "" and "python stderr" in out and "C-level stderr" in out


def test_mutants_flip_signs_and_drop_terms_in_the_answers_only(tmp_path, seed_chapter):
    path = tmp_path / f"{SEED_CHAPTER}.py"
    path.write_text(f"# %%\n# ebm-teach exercises: {SEED_CHAPTER}\nimport torch\n\n"
                    "def double(x):\n    y = x - 1\n    ### BEGIN SOLUTION\n    return x + x\n    ### END SOLUTION\n")
    found = mutants.mutants(path)
    assert [m.what for m in found] == ["line 8, `x + x`: - instead", "line 8, `x + x`: only `x`"]  # not `x - 1`
    results = [mutants.grade_mutant(m, SEED_CHAPTER, 60) for m in found]
    assert [r["points"] for r in results] == [0, 0]  # x - x and x: both caught
    assert "return x - x" in found[0].text and "y = x - 1" in found[0].text


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


def test_import_flags_read_the_code_not_the_names(tmp_path):
    source = ("# %%\nimport ebm_teach.evaluate as ev\nfrom ebm_teach.jem import auroc\nimport solutions\n"
              "def expected_calibration_error(probs, y, n_bins=15):\n"
              "    return ev.expected_calibration_error(probs, y, n_bins)\n")
    (tmp_path / "f.py").write_text(source)
    exercises = load_exercises("07_jem")
    flags = runner.import_flags(read_cells(tmp_path / "f.py"), exercises)
    ece = next(e.id for e in exercises if e.name == "expected_calibration_error")
    assert any("ebm_teach.evaluate….expected_calibration_error" in f for f in flags[ece])
    assert all(any("imports solutions" in f for f in flags[e.id]) for e in exercises)
    assert runner.import_flags(read_cells(ROOT / "solutions" / "07_jem.py"), exercises) == {}


# ------------------------------------------------------------------------------------ the proxy, against a server thread
class _Alive:
    def poll(self):
        return None


@pytest.fixture
def remote():
    """(call, session): call(function, *args) runs `function` through the proxy in a server thread."""
    command_r, command_w = os.pipe()
    reply_r, reply_w = os.pipe()
    server = _Server(command_r, reply_w)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    session = Session(_Alive(), command_w, reply_r)

    def call(function, *args, **kwargs):
        server.functions[function.__name__] = function
        session.budget = 30
        return RemoteFunction(session, function.__name__)(*args, **kwargs)

    call.server = server
    yield call, session
    os.close(command_w)  # the server sees the end of its input and returns
    thread.join(timeout=5)
    for fd in (command_r, reply_r, reply_w):
        os.close(fd)


def test_a_generator_comes_back_advanced_as_in_one_process(remote):
    call, _ = remote

    def draw(n, generator):
        return torch.randn(n, generator=generator, dtype=torch.float64)

    here, there = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(call(draw, 4, there), draw(4, here))
    assert torch.equal(torch.rand(3, generator=there), torch.rand(3, generator=here))  # the same stream after


def test_side_effects_come_back_to_the_callers_objects(remote):
    call, _ = remote
    seen = []

    def noise_fn(n):  # a closure over a list, as a check's recorder
        rows = torch.full((n, 2), -1.0)
        seen.append(rows)
        return rows

    def learner(x, noise, store):
        x.add_(1.0)  # in place, against the rules: the check must see it
        store["calls"] = store.get("calls", 0) + 1
        return noise(3)

    x, store = torch.zeros(2), {}
    out = call(learner, x, noise_fn, store)
    assert torch.equal(x, torch.ones(2)) and store == {"calls": 1}
    assert len(seen) == 1 and torch.equal(seen[0], out)


def test_gradients_flow_back_through_the_result(remote):
    call, _ = remote
    theta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(score, x):
        y = x.detach().requires_grad_(True)
        s = score(y)
        (div,) = torch.autograd.grad(s.sum(), y, create_graph=True)  # needs the graph inside, as sliced SM does
        return (div.sum(1) + 0.5 * (s**2).sum(1)).mean()

    remote_out = call(loss, lambda y: -theta * y, x)
    local_out = loss(lambda y: -theta * y, x)
    assert remote_out.requires_grad
    (g_remote,), (g_local,) = torch.autograd.grad(remote_out, theta), torch.autograd.grad(local_out, theta)
    assert torch.allclose(remote_out.detach(), local_out.detach()) and torch.allclose(g_remote, g_local)

    def scale(x, theta):
        return theta * x

    with torch.no_grad():
        assert not call(scale, x, theta).requires_grad  # torch.no_grad() reaches the learner's code
    assert call(scale, x, theta).requires_grad


def test_a_modules_gradient_and_detached_results_are_seen_by_the_caller(remote):
    call, _ = remote
    net = torch.nn.Linear(2, 1).double()

    def backward_inside(x, energy):
        energy(x).sum().backward()  # writes the parameters' .grad, which a check may forbid
        return x

    call(backward_inside, torch.ones(3, 2, dtype=torch.float64), net)
    assert net.weight.grad is not None and torch.allclose(net.weight.grad, torch.full((1, 2), 3.0, dtype=torch.float64))

    def not_detached(x):
        return x.detach().requires_grad_(True) * 2

    assert call(not_detached, torch.ones(2)).requires_grad


def test_exceptions_keep_their_meaning(remote):
    call, _ = remote

    def raises(kind):
        if kind == "value":
            raise ValueError("a must be > 0")
        if kind == "stub":
            raise NotImplementedError()
        if kind == "torch":
            return torch.empty(2, device="meta").cpu()  # torch's own NotImplementedError
        if kind == "custom":
            class Oops(Exception):
                pass
            raise Oops("mine")
        raise SystemExit(3)

    namespace = {}  # the stub as the child sees it: a `raise` line in a cell of the submission
    exec(compile("def stub():\n    raise NotImplementedError()\n", "submission, cell 3", "exec"), namespace)
    with pytest.raises(ValueError, match="a must be > 0"):
        call(raises, "value")
    with pytest.raises(NotImplementedError):
        call(namespace["stub"])
    with pytest.raises(LearnerError):
        call(raises, "stub")  # not in the submission's file: some library's NotImplementedError
    with pytest.raises(Exception) as custom:  # the nearest built-in type, named as the learner named it
        call(raises, "custom")
    assert type(custom.value) is Exception and format_exception(custom.value) == "Oops: mine"
    with pytest.raises(LearnerError) as torch_error:
        call(raises, "torch")
    assert torch_error.value.learner_type == "NotImplementedError"  # not the stub: not "not attempted"
    with pytest.raises(LearnerError) as exit_error:
        call(raises, "exit")
    assert exit_error.value.learner_type == "SystemExit"


def test_values_that_are_not_plain_data_arrive_as_placeholders(remote):
    call, _ = remote

    def odd(kind):
        return {"meta": torch.empty(2, device="meta"), "object": threading.Lock(), "tuple": (1, 2.5, "x", None),
                "complex": 1 + 2j, "bool": torch.tensor([True, False])}[kind]

    meta = call(odd, "meta")
    assert isinstance(meta, LearnerObject)
    with pytest.raises(AssertionError, match="got Tensor on the meta device"):
        as_float64(meta, "f()")
    assert isinstance(call(odd, "object"), LearnerObject)
    assert call(odd, "tuple") == (1, 2.5, "x", None) and call(odd, "complex") == 1 + 2j
    assert torch.equal(call(odd, "bool"), torch.tensor([True, False]))


def test_a_timeout_is_an_abort_that_checks_cannot_swallow(remote):
    call, session = remote

    def slow():
        time.sleep(1)

    call.server.functions["slow"] = slow

    def swallowing_check(f):
        try:
            f()
        except Exception:  # a check that catches everything still loses the timeout
            pass

    session.budget = 0.2
    with pytest.raises(Abort) as abort:
        swallowing_check(RemoteFunction(session, "slow"))
    assert abort.value.status == "timeout"
    with pytest.raises(Abort):
        session.request(("probe", []), ("probe",))  # a session that failed stays failed


def test_run_exercise_keeps_the_points_before_an_abort():
    class Stops:
        aborted = None

        def __call__(self, x):
            if x == 3:
                raise Abort("died", "x")
            return x * x

    ex = _exercise((_passes, 2), (_fails, 3), (_passes, 1))
    result = run_exercise(ex, Stops(), describe_abort=lambda a: ("error", "the process stopped"))
    assert [c["status"] for c in result["checks"]] == ["passed", "error", "error"]
    assert (result["status"], result["points"], result["message"]) == ("error", 2, "the process stopped")
    assert result["checks"][2]["message"].startswith("not run")


def test_replies_are_read_without_running_code():
    evil = pickle.dumps(types.SimpleNamespace())  # names a class
    with pytest.raises(_Malformed, match="names types.SimpleNamespace"):
        load_plain(evil)
    reduce_os = b"cos\nsystem\n(S'echo hacked'\ntR."  # the classic: os.system by protocol 0
    with pytest.raises(_Malformed, match="names os.system"):
        load_plain(reduce_os)
    with pytest.raises(_Malformed):
        load_plain(b"\x80\x05junk")
    assert load_plain(pickle.dumps(("return", [1, 2.5, "x", b"y", None, True], {"a": (1,)}))) == (
        "return", [1, 2.5, "x", b"y", None, True], {"a": (1,)})


def test_tensors_cross_as_checked_bytes():
    t = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(tensor_from_raw(tensor_to_raw(t)), t)
    assert torch.equal(tensor_from_raw(tensor_to_raw(t.T)), t.T)  # any layout arrives contiguous
    name, shape, data = tensor_to_raw(t)
    with pytest.raises(_Malformed, match="with 96 bytes"):
        tensor_from_raw([name, [3, 5], data])  # the shape does not match the bytes
    with pytest.raises(_Malformed, match="dtype or shape"):
        tensor_from_raw(["object", shape, data])
    with pytest.raises(_Malformed):
        tensor_from_raw([name, [2**40, 2**40], data], limit=2**26)  # no tensor bigger than the limit


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
    assert validate_result(result, ex) is result
    with pytest.raises(ValueError, match="impossible result"):
        validate_result(dict(result, points=500), ex)


def test_run_exercise_tells_stub_from_crash():
    ex = _exercise((_passes, 1), (_fails, 1))

    def stub(x):
        raise NotImplementedError()

    def crashes(x):
        return x.no_such_attribute

    def meta(x):  # torch raises NotImplementedError here, not the learner: an error, not "not attempted"
        return torch.empty(2, device="meta").cpu()

    assert run_exercise(ex, stub)["status"] == "not_implemented"
    crashed = run_exercise(ex, crashes)
    assert crashed["status"] == "error" and "AttributeError" in crashed["message"]
    assert run_exercise(ex, meta)["status"] == "error"


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
    assert spec.resolve_chapter("1") == spec.resolve_chapter("01") == "01_gaussian_ebm"


def test_assert_helpers_write_messages_for_the_learner():
    with pytest.raises(AssertionError, match="forget the `return`"):
        as_float64(None, "f(1)")
    with pytest.raises(AssertionError, match="meta device"):
        as_float64(torch.empty(2, device="meta"), "f(1)")
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
