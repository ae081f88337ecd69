"""Grade one exercise file, or a folder of them, by running it in a separate, time-limited Python process.

For a file, :func:`grade_file` reads its cells and chapter, then starts :mod:`ebm_teach.grade.child` with
every exercise of the chapter to grade. It follows the child's events (see ``child.py``) and gives the
learner's code at most ``timeout`` seconds for the notebook's top-level cells and ``timeout`` seconds for
each exercise's checks. When an exercise runs over, the child is killed, that exercise is marked
``timeout``, and a fresh child grades the exercises that are left. A child that dies without a result
(a crash, ``os._exit``) marks the exercise it was on as ``error`` in the same way. The child's stdout and
stderr are read as they come and only the first ``max_output`` characters are kept, so megabytes of
printing cost nothing but the time to print them (the cap counts bytes per process, then characters).

This isolates crashes, hangs and floods of output; it is not a security sandbox. Grade untrusted files
inside a container or a throw-away account.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

from .notebook import SUFFIXES, SubmissionError, find_chapter, read_cells
from .spec import load_exercises

__all__ = ["grade_file", "grade_path", "submissions_in", "DEFAULT_TIMEOUT", "DEFAULT_MAX_OUTPUT"]

DEFAULT_TIMEOUT = 60.0  # seconds for the top-level cells, and again for each exercise's checks
DEFAULT_MAX_OUTPUT = 20_000  # characters of the submission's printed output kept in the report
STARTUP_LIMIT = 120.0  # seconds for the child to import torch and the checks (the grader's own code)
POLL_SECONDS = 0.05
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds ebm_teach/


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


def _kill(process: subprocess.Popen) -> None:
    """Kill the child and anything it started (it leads its own process group)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _run_child(job: dict, workdir: Path, cwd: Path, timeout: float, max_output: int):
    """Run one child on ``job`` until it exits or overruns a limit.

    Returns (events, ending, returncode, output): the events the child wrote, "exited" or "killed", its exit
    code, and its output as (text kept, bytes dropped). The limit is STARTUP_LIMIT until the first event,
    then ``timeout`` from each event on: each step of the learner's code (the cells, then each exercise)
    gets its own limit.
    """
    events_path = workdir / f"events-{time.monotonic_ns()}.jsonl"
    events_path.touch()
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(dict(job, events=str(events_path))), encoding="utf-8")
    # One CPU thread: exercises are small, and torch's thread pool on a busy machine makes small
    # operations a hundred times slower. No plotting windows, no progress bars.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", EBM_TEACH_QUIET="1",
               PYTHONIOENCODING="utf-8")
    # The child runs in the submission's folder (as Jupyter would); let it find this package from there.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "ebm_teach.grade.child", str(job_path)],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = _CappedOutput(process.stdout, max_output)
    events: List[dict] = []
    deadline = time.monotonic() + STARTUP_LIMIT
    try:
        with open(events_path, "rb") as stream:
            while True:
                exited = process.poll() is not None
                for line in stream.readlines():
                    if not line.endswith(b"\n"):  # still being written: read it whole next time
                        stream.seek(-len(line), os.SEEK_CUR)
                        break
                    events.append(json.loads(line))
                    deadline = time.monotonic() + timeout
                if exited or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
    finally:
        _kill(process)  # on Ctrl-C too; also ends whatever the learner's code left running
    ending = "exited" if exited else "killed"
    return events, ending, process.returncode, output.result()


def _exercise_row(exercise, status: str, message: str) -> dict:
    return {"id": exercise.id, "name": exercise.name, "status": status, "points": 0,
            "max_points": exercise.max_points, "message": message, "checks": []}


def _stopped_in_exercise(exercise, ending: str, returncode: int, timeout: float) -> dict:
    if ending == "killed":
        return _exercise_row(exercise, "timeout", f"{exercise.name} did not finish within {timeout:g} s "
                             "(an infinite loop, or far more work than the exercise needs?).")
    return _exercise_row(exercise, "error", f"the Python process stopped while checking {exercise.name} "
                         f"(exit code {returncode}); does your code call exit() or crash the interpreter?")


def _stopped_outside_exercises(last_event, ending: str, returncode: int, output_text: str, timeout: float):
    """(status, message) for every exercise left when the child ended before reaching them."""
    if last_event is None:
        return "error", (f"the grader's process failed to start (exit code {returncode}): "
                         f"{output_text.strip()[-500:] or 'no output'}")
    if ending == "killed" and last_event == "ready":
        return "timeout", (f"the file's top-level code did not finish within {timeout:g} s; move long "
                           "computations into functions, or look for an infinite loop outside them.")
    return "error", (f"the Python process stopped while running the file (exit code {returncode}); "
                     "does the file call exit() or crash the interpreter?")


def grade_file(path, timeout: float = DEFAULT_TIMEOUT, max_output: int = DEFAULT_MAX_OUTPUT) -> dict:
    """Grade one exercise file; return its report.

    path: a learner's ``.ipynb`` or ``.py`` exercise file. timeout: seconds (> 0) allowed to the file's
    top-level cells, and separately to each exercise's checks. max_output: characters of printed output kept.
    The report is a dict: ``file, chapter, points, max_points, error`` (a file-level problem or None),
    ``cell_errors`` (cells that raised when the file ran: ``cell, first_line, message``), ``output`` (the
    capped printed output) and ``exercises``, one dict per exercise with ``id, name, status
    (passed / failed / not_implemented / error / timeout), points, max_points, message, checks``.
    """
    path = Path(path)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0; got {timeout!r}.")
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be an int >= 0 (characters kept); got {max_output!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"no exercise file at {path}.")
    report = {"file": str(path), "chapter": None, "points": 0, "max_points": 0, "error": None,
              "cell_errors": [], "output": "", "exercises": []}
    cells: Optional[list] = None
    try:
        cells = read_cells(path)
    except SubmissionError as err:
        report["error"] = str(err)
    try:
        report["chapter"] = find_chapter(path, cells)
        exercises = load_exercises(report["chapter"])
    except (SubmissionError, LookupError) as err:
        report["error"] = report["error"] or str(err)
        return report
    report["max_points"] = sum(e.max_points for e in exercises)
    if cells is None:  # unreadable file of a known chapter: every exercise gets the reason
        report["exercises"] = [_exercise_row(e, "error", report["error"]) for e in exercises]
        return report

    results, kept, dropped = {}, "", 0
    job = {"chapter": report["chapter"], "label": path.name, "cells": [c._asdict() for c in cells]}
    with tempfile.TemporaryDirectory(prefix="ebm-grade-") as workdir:
        while len(results) < len(exercises):
            pending = [e for e in exercises if e.id not in results]
            job["exercise_ids"] = [e.id for e in pending]
            events, ending, returncode, output = _run_child(
                job, Path(workdir), path.parent.resolve(), timeout, max_output)
            text, lost = output
            room = max(max_output - len(kept), 0)
            kept, dropped = kept + text[:room], dropped + lost + len(text[room:].encode("utf-8"))
            results.update((ev["result"]["id"], ev["result"]) for ev in events if ev["event"] == "result")
            cell_events = [ev for ev in events if ev["event"] == "cells"]
            if cell_events and not report["cell_errors"]:
                report["cell_errors"] = cell_events[0]["errors"]
            last = events[-1] if events else {"event": None}
            if last["event"] == "start":  # stuck in (or crashed during) this exercise: a fresh child goes on
                stuck = next(e for e in pending if e.id == last["id"])
                results[stuck.id] = _stopped_in_exercise(stuck, ending, returncode, timeout)
            elif len(results) < len(exercises):  # ended before the exercises: no point in trying again
                status, message = _stopped_outside_exercises(last["event"], ending, returncode, text, timeout)
                for e in pending:
                    results.setdefault(e.id, _exercise_row(e, status, message))

    report["exercises"] = [results[e.id] for e in exercises]
    report["points"] = sum(r["points"] for r in report["exercises"])
    report["output"] = kept + (f"\n[... {dropped:,} more bytes of output were dropped]" if dropped else "")
    return report


def submissions_in(path) -> List[Path]:
    """The exercise files to grade: ``path`` itself, or the ``.ipynb``/``.py`` files in a folder (sorted).

    In a folder, a ``.py`` that is the Jupytext twin of a ``.ipynb`` next to it is left out (one row per
    submission), and so are Jupyter's checkpoint folders.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an exercise file nor a folder of them.")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    notebooks = {p.stem for p in files if p.suffix == ".ipynb"}
    files = [p for p in files if not (p.suffix == ".py" and p.stem in notebooks)]
    if not files:
        raise FileNotFoundError(f"{path} holds no .ipynb or .py exercise files.")
    return files


def grade_path(path, timeout: float = DEFAULT_TIMEOUT, max_output: int = DEFAULT_MAX_OUTPUT,
               jobs: int = 1) -> List[dict]:
    """Grade ``path`` (a file or a folder of files, see :func:`submissions_in`); one report per file, in order.

    jobs: how many files are graded at the same time (each in its own process). Time limits are wall-clock
    time, so keep ``jobs`` at or below the number of free CPU cores.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (files graded at once); got {jobs!r}.")
    files = submissions_in(path)
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait on the child processes
        return list(pool.map(lambda p: grade_file(p, timeout=timeout, max_output=max_output), files))
