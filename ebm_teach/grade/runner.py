"""Grade exercise files: the learner's code runs in a jailed child; the checks and the points stay here.

For one file, :func:`grade_file` reads its cells and chapter, starts a child (:mod:`~ebm_teach.grade.sandbox`,
:mod:`~ebm_teach.grade.jail`), has it run the cells, and then runs each exercise's hidden checks *in this
process*, handing them a :class:`~ebm_teach.grade.proxy.RemoteFunction` that calls the learner's function in
the child. The child never sees a check, an expected value or a point: it only answers calls, with plain
data that this process reads with a loader that cannot run code. So nothing a submission does (patching
the grader, forging results, returning tensor subclasses) can change its grade except answering right.

The learner's code gets ``timeout`` seconds for the file's top-level cells and ``timeout`` seconds of its
own running time for each exercise. An exercise that runs over is marked ``timeout``; a child that dies
(``exit()``, a crash, a limit) marks the exercise it was in as ``error``; in both cases the checks that had
passed keep their points, the child is killed with everything it started, and a fresh child grades the
exercises that are left. Output is read as it comes and only the first ``max_output`` characters are kept.

:func:`grade_path` grades a file or a folder: one file per learner (``alice.ipynb``), one folder per learner
(``alice/01_gaussian_ebm.ipynb``), or nbgrader's ``submitted/<student>/<assignment>/`` layout; it copies
every file to a private folder first, grades ``jobs`` files at a time (each in its own worker process), and
reports each file as soon as it is done.
"""
from __future__ import annotations

import ast
import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import torch

from . import spec
from .checking import run_exercise, validate_result
from .notebook import SUFFIXES, SubmissionError, find_chapter, read_cells
from .proxy import Abort, RemoteFunction, Session
from .sandbox import Limits, end_child, make_workdir, remove_workdir, start_child
from .spec import load_exercises

__all__ = ["grade_file", "grade_path", "submissions_in", "Submission", "import_flags", "DEFAULT_TIMEOUT",
           "DEFAULT_MAX_OUTPUT", "STARTUP_LIMIT"]

DEFAULT_TIMEOUT = 60.0  # seconds for the top-level cells, and again for each exercise's calls
DEFAULT_MAX_OUTPUT = 20_000  # characters of the submission's printed output kept in the report
STARTUP_LIMIT = 120.0  # seconds for the child to import torch and the package (the grader's own code)
_GRADING = threading.Lock()  # one child at a time per process: end_child kills what it does not know


class _CappedOutput:
    """Reads a pipe to its end in a thread, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, pipe, limit: int):
        self.kept, self.dropped, self.limit = bytearray(), 0, limit
        self.thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self.thread.start()

    def _drain(self, pipe):
        for chunk in iter(lambda: pipe.read1(65536), b""):
            room = self.limit - len(self.kept)
            self.kept += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def result(self):
        """(the text kept, the number of bytes dropped)."""
        self.thread.join(timeout=5)
        return self.kept.decode("utf-8", errors="replace"), self.dropped


class _Child:
    """One jailed child: its process, the session that talks to it, its captured output."""

    def __init__(self, workdir: Path, limits: Limits, max_output: int):
        self.limits = limits
        self.child = start_child(workdir, limits)
        self.process = self.child.process
        self.output = _CappedOutput(self.process.stdout, max_output)
        self.session = Session(self.process, self.child.command_fd, self.child.reply_fd)

    def exit_text(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except Exception:
            return "it stopped answering"
        if code >= 0:
            return f"exit code {code}"
        signum = -code
        if signum == getattr(signal, "SIGXCPU", None):
            return f"it used more than its {self.limits.cpu_seconds} s of CPU time"
        if signum == signal.SIGKILL:
            return "it was killed, perhaps for using too much memory"
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"

    def stop(self):
        end_child(self.child)
        for fd in (self.child.command_fd, self.child.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        return self.output.result()


def _exercise_row(exercise, status: str, message: str) -> dict:
    return {"id": exercise.id, "name": exercise.name, "status": status, "points": 0,
            "max_points": exercise.max_points, "message": message, "checks": []}


def _missing_function(exercise, cell_errors) -> dict:
    message = f"no function named `{exercise.name}` is defined in the file; keep the name the exercise gives."
    if cell_errors:
        failed = "; ".join(f"cell {e['cell']} (`{e['first_line']}`) raised {e['message']}" for e in cell_errors)
        message = f"`{exercise.name}` is not defined because a cell failed: {failed}"
    return _exercise_row(exercise, "error", message)


# ------------------------------------------------------------------------------------------- flags
_FORBIDDEN_SOURCES = ("solutions", "ebm_teach.grade.checks")


def _is_forbidden(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _FORBIDDEN_SOURCES)


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        try:  # cells with IPython magics
            return ast.parse("\n".join("pass" if l.lstrip()[:1] in "%!" and l.strip() else l
                                       for l in source.splitlines()))
        except SyntaxError:
            return None


def import_flags(cells, exercises) -> dict:
    """{exercise id: [why]} for a file that takes a graded function from the package, the checks or solutions.

    Looks at the file's code (not run): ``from ebm_teach.x import <name>`` (also under another name), a use
    of ``<module>.<name>`` for a module imported from ebm_teach, and any import of ``solutions`` or of the
    hidden checks. A flag is for the instructor to look at; it costs no points.
    """
    names = {e.name: e.id for e in exercises}
    flags = {}

    def flag(exercise_id, why):
        flags.setdefault(exercise_id, [])
        if why not in flags[exercise_id]:
            flags[exercise_id].append(why)

    package_aliases = {}
    for cell in cells:
        if cell.kind != "code" or {"self-check", "hidden-test"} & set(cell.tags):
            continue
        tree = _parse(cell.source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_forbidden(alias.name):
                        for exercise_id in names.values():
                            flag(exercise_id, f"imports {alias.name} (cell {cell.number})")
                    elif alias.name.split(".")[0] == "ebm_teach":
                        package_aliases[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if _is_forbidden(node.module):
                        for exercise_id in names.values():
                            flag(exercise_id, f"imports from {node.module} (cell {cell.number})")
                    elif node.module.split(".")[0] == "ebm_teach":
                        if alias.name in names or (alias.asname or "") in names:
                            name = alias.name if alias.name in names else alias.asname
                            flag(names[name], f"imports `{alias.name}` from {node.module} (cell {cell.number})")
                        package_aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
                func = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                arg = node.args[0] if node.args else None
                if func in ("import_module", "__import__") and isinstance(arg, ast.Constant) and \
                        isinstance(arg.value, str) and _is_forbidden(arg.value):
                    for exercise_id in names.values():
                        flag(exercise_id, f"imports {arg.value} (cell {cell.number})")
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Attribute) and node.attr in names:
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in package_aliases:
                    flag(names[node.attr], f"uses {package_aliases[base.id]}….{node.attr} (cell {cell.number})")
    return flags


# ------------------------------------------------------------------------------------------- one file
@contextlib.contextmanager
def _one_thread():
    """The checks' own work is small: one CPU thread (see DEVELOPING.md, "CPU threads"), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _text_list(value, limit=2000) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _body(reply):
    if len(reply) != 2:
        raise Abort("protocol", f"a malformed {reply[0]!r} reply")
    return reply[1]


def _valid_cell_errors(errors) -> list:
    if not isinstance(errors, list) or len(errors) > 10_000:
        raise Abort("protocol", "a malformed list of cell errors")
    out = []
    for e in errors:
        if not (isinstance(e, dict) and isinstance(e.get("cell"), int) and isinstance(e.get("first_line"), str)
                and isinstance(e.get("message"), str)):
            raise Abort("protocol", "a malformed cell error")
        out.append({"cell": e["cell"], "first_line": e["first_line"][:60], "message": e["message"][:20_000]})
    return out


def _valid_probe(found, names) -> dict:
    if not isinstance(found, dict) or set(found) != set(names):
        raise Abort("protocol", "a malformed list of functions")
    for info in found.values():
        if not (isinstance(info, dict) and isinstance(info.get("callable"), bool)
                and isinstance(info.get("file"), str) and isinstance(info.get("module"), str)):
            raise Abort("protocol", "a malformed description of a function")
    return found


def _grade_with_children(path: Path, cells, exercises, timeout: float, max_output: int, limits: Limits) -> dict:
    """Run the cells and every exercise's checks; returns results, cell errors, flags, output, sandbox info."""
    label = path.name
    results, cell_errors, flags, sandbox_info = {}, None, {}, {}
    kept, dropped = "", 0
    cells_message = ("cells", label, [c._asdict() for c in cells])
    workdir = make_workdir(path)
    try:
        while len(results) < len(exercises):
            pending = [e for e in exercises if e.id not in results]
            child = _Child(workdir, limits, max_output)
            session = child.session
            stage, current = "startup", None
            try:
                session.budget = STARTUP_LIMIT
                ready = _body(session.request(None, ("ready",)))
                if isinstance(ready, dict) and all(isinstance(k, str) and _text_list(v, 500) for k, v in ready.items()):
                    sandbox_info = sandbox_info or ready
                stage = "cells"
                session.budget = timeout
                errors = _valid_cell_errors(_body(session.request(cells_message, ("cells",))))
                cell_errors = errors if cell_errors is None else cell_errors
                stage = "probe"
                session.budget = timeout
                names = [e.name for e in pending]
                found = _valid_probe(_body(session.request(("probe", names), ("probe",))), names)
                stage = "exercises"
                for exercise in pending:
                    current = exercise
                    info = found[exercise.name]
                    if not info["callable"]:
                        results[exercise.id] = _missing_function(exercise, cell_errors)
                        continue
                    if not info["file"].startswith(label + ", cell "):
                        origin = info["module"] or info["file"] or "somewhere else"
                        why = f"`{exercise.name}` is not defined in this file: it comes from {origin[:200]}"
                        if why not in flags.setdefault(exercise.id, []):
                            flags[exercise.id].append(why)
                    session.budget = timeout

                    def describe(abort, exercise=exercise):
                        return _describe_abort(abort, child, f"checking {exercise.name}", exercise.name, timeout)

                    result = run_exercise(exercise, RemoteFunction(session, exercise.name),
                                          after_check=session.release, describe_abort=describe)
                    results[exercise.id] = validate_result(result, exercise)
                    if session.broken is not None:
                        break  # a fresh child grades the exercises left
            except Abort as abort:
                if stage == "exercises":  # cannot happen inside run_exercise, which ends the exercise itself
                    results.setdefault(current.id, _exercise_row(current, *_describe_abort(
                        abort, child, f"checking {current.name}", current.name, timeout)))
                    continue
                status, message = _describe_stage_abort(abort, child, stage, timeout)
                for e in pending:
                    results.setdefault(e.id, _exercise_row(e, status, message))
            finally:
                text, lost = child.stop()
                room = max(max_output - len(kept), 0)
                kept, dropped = kept + text[:room], dropped + lost + len(text[room:].encode("utf-8"))
    finally:
        remove_workdir(workdir)
    output = kept + (f"\n[... {dropped:,} more bytes of output were dropped]" if dropped else "")
    return {"results": results, "cell_errors": cell_errors or [], "flags": flags, "output": output,
            "sandbox": sandbox_info}


def _describe_abort(abort: Abort, child: _Child, step: str, name: str, timeout: float):
    if abort.status == "timeout":
        return "timeout", (f"{name} did not finish within {timeout:g} s (an infinite loop, or far more work "
                           "than the exercise needs?).")
    if abort.status == "died":
        return "error", (f"the Python process stopped while {step} ({child.exit_text()}); does your code "
                         "call exit() or crash the interpreter?")
    return "error", f"the learner's process sent the grader {abort.message}, so {name} cannot be graded."


def _describe_stage_abort(abort: Abort, child: _Child, stage: str, timeout: float):
    if stage == "startup":
        text, _ = child.output.result() if child.process.poll() is not None else ("", 0)
        if abort.status == "timeout":
            return "error", f"the grader's process did not start within {STARTUP_LIMIT:g} s."
        return "error", (f"the grader's process failed to start ({child.exit_text()}): "
                         f"{text.strip()[-500:] or 'no output'}")
    if abort.status == "timeout":
        return "timeout", (f"the file's top-level code did not finish within {timeout:g} s; move long "
                           "computations into functions, or look for an infinite loop outside them.")
    if abort.status == "died":
        return "error", (f"the Python process stopped while running the file ({child.exit_text()}); does the "
                         "file call exit() or crash the interpreter?")
    return "error", f"the learner's process sent the grader {abort.message} while running the file."


def grade_file(path, timeout: float = DEFAULT_TIMEOUT, max_output: int = DEFAULT_MAX_OUTPUT,
               limits: Optional[Limits] = None, chapter: Optional[str] = None, file: Optional[str] = None,
               student: Optional[str] = None, assignment: str = "") -> dict:
    """Grade one exercise file; return its report.

    path: a learner's ``.ipynb`` or ``.py`` exercise file. timeout: seconds (> 0) allowed to the file's
    top-level cells, and to the learner's code in each exercise. max_output: characters of printed output
    kept. limits: the child's resource limits (:class:`~ebm_teach.grade.sandbox.Limits`). chapter: require
    this chapter (a file of another chapter gets 0 points of this one; a file that does not say is graded
    as this one). file, student, assignment: how the report names the file (default: its path and stem).

    The report is a dict: ``file, student, assignment, chapter, points, max_points, error`` (a file-level
    problem or None), ``flags`` (why an instructor may want to look: a graded function imported rather than
    written), ``cell_errors`` (cells that raised: ``cell, first_line, message``), ``output`` (the capped
    printed output), ``sandbox`` (what the child reported of its jail) and ``exercises``, one dict per exercise
    with ``id, name, status (passed / failed / not_implemented / error / timeout), points, max_points,
    message, flags, checks``.
    """
    path = Path(path)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0; got {timeout!r}.")
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be an int >= 0 (characters kept); got {max_output!r}.")
    limits = Limits() if limits is None else limits
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be an ebm_teach.grade.sandbox.Limits; got {type(limits).__name__}.")
    if chapter is not None:
        chapter = spec.resolve_chapter(chapter)
    if not path.is_file():
        raise FileNotFoundError(f"no exercise file at {path}.")
    report = {"file": file or str(path), "student": path.stem if student is None else student,
              "assignment": assignment, "chapter": None, "points": 0, "max_points": 0, "error": None,
              "flags": [], "cell_errors": [], "output": "", "sandbox": {}, "exercises": []}
    cells: Optional[list] = None
    try:
        cells = read_cells(path)
    except SubmissionError as err:
        report["error"] = str(err)
    try:
        found = find_chapter(path, cells)
    except SubmissionError as err:
        found, problem = None, str(err)
    if found is None and chapter is None:
        report["error"] = report["error"] or problem
        return report
    report["chapter"] = found or chapter
    try:
        exercises = load_exercises(chapter or found)
    except LookupError as err:
        report["error"] = report["error"] or str(err)
        return report
    report["max_points"] = sum(e.max_points for e in exercises)
    if chapter is not None and found not in (None, chapter):
        report["error"] = (f"this file holds the exercises of chapter {found}; this run grades chapter {chapter} "
                           "only (--chapter), so it earns no points here.")
    if report["error"]:  # unreadable, or another chapter: every exercise gets the reason
        report["exercises"] = [_exercise_row(e, "error", report["error"]) for e in exercises]
        return report

    with _GRADING, _one_thread():
        graded = _grade_with_children(path, cells, exercises, timeout, max_output, limits)
    flags = import_flags(cells, exercises)
    for exercise_id, why in graded["flags"].items():
        flags.setdefault(exercise_id, []).extend(w for w in why if w not in flags.get(exercise_id, []))
    report["exercises"] = [dict(graded["results"][e.id], flags=flags.get(e.id, [])) for e in exercises]
    report["flags"] = [f"{e.id}: {why}" for e in exercises for why in flags.get(e.id, [])]
    report["points"] = sum(r["points"] for r in report["exercises"])
    report["cell_errors"], report["output"], report["sandbox"] = graded["cell_errors"], graded["output"], graded["sandbox"]
    return report


# ------------------------------------------------------------------------------------------- many files
@dataclass(frozen=True)
class Submission:
    """A file to grade: ``path`` on disk; ``file``, ``student`` and ``assignment`` as the reports name them."""

    path: Path
    file: str
    student: str
    assignment: str = ""


def _exercise_files(folder: Path) -> List[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    notebooks = {p.stem for p in files if p.suffix == ".ipynb"}
    return [p for p in files if not (p.suffix == ".py" and p.stem in notebooks)]  # a notebook's Jupytext twin


def submissions_in(path, assignment: Optional[str] = None) -> List[Submission]:
    """The exercise files to grade under ``path``, with the student each belongs to.

    - a file: itself (the student is the file's stem);
    - a folder of files (``alice.ipynb``, ``bob.py``): one student per file, named by the stem;
    - a folder of folders (``alice/01_gaussian_ebm.ipynb``): one student per folder;
    - nbgrader's ``submitted/<student>/<assignment>/*.ipynb`` (give the course folder or ``submitted``):
      one student per folder, ``assignment`` from the folder below it.

    A ``.py`` next to a ``.ipynb`` of the same name is taken for its Jupytext twin and left out; hidden folders
    and Jupyter's checkpoints are skipped. assignment: keep only the files of that assignment folder.
    """
    path = Path(path)
    if path.is_file():
        return [Submission(path, path.name, path.stem)]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an exercise file nor a folder of them.")
    root = path / "submitted" if (path / "submitted").is_dir() else path
    found = []
    for folder, subfolders, _ in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__")
        parts = Path(folder).relative_to(root).parts
        if len(parts) > 2:
            subfolders[:] = []
            continue
        for file in _exercise_files(Path(folder)):
            rel = file.relative_to(root)
            student = rel.parts[0] if len(rel.parts) > 1 else file.stem
            folder_assignment = rel.parts[1] if len(rel.parts) > 2 else ""
            found.append(Submission(file, rel.as_posix(), student, folder_assignment))
    if assignment is not None:
        found = [s for s in found if s.assignment == assignment]
    if not found:
        where = f" for assignment {assignment!r}" if assignment is not None else ""
        raise FileNotFoundError(f"{path} holds no .ipynb or .py exercise files{where}.")
    return sorted(found, key=lambda s: (s.student, s.assignment, s.file))


def _error_report(submission: Submission, message: str) -> dict:
    return {"file": submission.file, "student": submission.student, "assignment": submission.assignment,
            "chapter": None, "points": 0, "max_points": 0, "error": message, "flags": [], "cell_errors": [],
            "output": "", "sandbox": {}, "exercises": []}


def _grade_one(submission: Submission, options: dict) -> dict:
    try:
        return grade_file(submission.path, file=submission.file, student=submission.student,
                          assignment=submission.assignment, **options)
    except Exception as err:  # never let one file end the run
        return _error_report(submission, f"the grader could not grade this file ({type(err).__name__}: {err}).")


def _init_worker(seed) -> None:
    spec.set_grading_seed(seed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


def _snapshot(submissions: List[Submission], folder: Path) -> List[Submission]:
    """Copy every file into ``folder`` first: a submission cannot then change another one before it is graded."""
    copies = []
    for index, s in enumerate(submissions):
        target = folder / f"{index:05d}" / s.path.name
        target.parent.mkdir()
        try:
            shutil.copyfile(s.path, target)
        except OSError:
            target = s.path  # reported as unreadable when graded
        copies.append(Submission(target, s.file, s.student, s.assignment))
    return copies


def grade_path(path, timeout: float = DEFAULT_TIMEOUT, max_output: int = DEFAULT_MAX_OUTPUT, jobs: int = 1,
               limits: Optional[Limits] = None, chapter: Optional[str] = None, assignment: Optional[str] = None,
               on_report: Optional[Callable[[dict, List[dict]], None]] = None) -> List[dict]:
    """Grade ``path`` (see :func:`submissions_in`); one report per file, in order.

    jobs: files graded at the same time, each in its own worker process (keep it at or below the number of
    free CPU cores: time limits are wall-clock time). on_report(report, reports): called as each file is
    done, with the reports so far (in order, None for files not done yet), so that results can be written
    as they come. chapter, limits, timeout, max_output: see :func:`grade_file`. The grading seed set with
    :func:`~ebm_teach.grade.spec.set_grading_seed` applies to the workers too.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (files graded at once); got {jobs!r}.")
    if chapter is not None:
        chapter = spec.resolve_chapter(chapter)
    options = {"timeout": timeout, "max_output": max_output, "limits": limits, "chapter": chapter}
    submissions = submissions_in(path, assignment)
    reports: List[Optional[dict]] = [None] * len(submissions)

    def done(index, report):
        reports[index] = report
        if on_report is not None:
            on_report(report, reports)

    with tempfile.TemporaryDirectory(prefix="ebm-grade-snapshot-") as folder:
        copies = _snapshot(submissions, Path(folder))
        if jobs == 1:
            for index, submission in enumerate(copies):
                done(index, _grade_one(submission, options))
            return reports
        left = list(range(len(copies)))
        for attempt in range(2):  # a worker that dies breaks the pool: the files left get one more try
            context = multiprocessing.get_context("spawn")
            try:
                with ProcessPoolExecutor(max_workers=min(jobs, len(left)), mp_context=context,
                                         initializer=_init_worker, initargs=(spec._GRADING_SEED,)) as pool:
                    futures = {pool.submit(_grade_one, copies[i], options): i for i in left}
                    for future in as_completed(futures):
                        index = futures[future]
                        try:
                            done(index, future.result())
                        except BrokenProcessPool:
                            continue
                        except Exception as err:
                            done(index, _error_report(copies[index], f"the grader failed on this file ({err})."))
            except BrokenProcessPool:
                pass
            left = [i for i in left if reports[i] is None]
            if not left:
                break
        for index in left:
            done(index, _error_report(copies[index], "the grader's worker process died while grading this file."))
    return reports
