"""Run one exercise's hidden checks on a learner's function, and sum up the result.

The grader (:mod:`~ebm_teach.grade.runner`) calls :func:`run_exercise` in its own, trusted process with a
:class:`~ebm_teach.grade.proxy.RemoteFunction` that calls the learner's code in the jailed child; a notebook
calls :func:`run_checks` with the function itself (that is what the solutions' ``hidden-test`` cells do, and
what nbgrader's autograder runs).

A check's outcome is ``passed``, ``failed`` (it raised AssertionError: a wrong answer), ``not_implemented``
(the learner's stub raised NotImplementedError), ``error`` (any other exception, including a
NotImplementedError that torch raised rather than the stub) or ``timeout``. The exercise is ``passed`` when
every check passed, ``not_implemented`` when every check hit the stub, ``timeout``/``error`` when a check
ran out of time or crashed, and ``failed`` otherwise; its points are the sum over the checks that passed.
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from typing import Callable, Optional

from .proxy import Abort
from .spec import STATUSES, Exercise, load_exercises

__all__ = ["run_exercise", "run_checks", "format_exception", "validate_result"]

NOT_IMPLEMENTED_MESSAGE = "not attempted yet: replace `raise NotImplementedError()` in {name} with your code."


def format_exception(err: BaseException, is_learner_file: Optional[Callable[[str], bool]] = None) -> str:
    """``"TypeError: message"``, plus where in the learner's code it happened when that can be told."""
    name = getattr(err, "_ebm_type", None) or type(err).__name__
    text = f"{name}: {err}".strip().rstrip(":")
    where = getattr(err, "_ebm_where", None)
    if where is None and is_learner_file is not None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if is_learner_file(f.filename)]
        if frames:
            last = frames[-1]
            code = f": `{last.line.strip()}`" if last.line else ""
            where = f"in {last.filename}, line {last.lineno}{code}"
    return f"{text} ({where})" if where else text


def _raised_by_stub(err: NotImplementedError, function) -> bool:
    """Whether the learner's own code raised it (the stub), rather than torch or a library underneath."""
    marked = getattr(err, "_ebm_stub", None)
    if marked is not None:
        return bool(marked)
    code = getattr(function, "__code__", None)
    frames = traceback.extract_tb(err.__traceback__)
    if code is None or not frames:
        return True
    # a `raise` line in the learner's file; torch's NotImplementedError comes from C code on another line
    return frames[-1].filename == code.co_filename and (frames[-1].line or "raise").lstrip().startswith("raise")


def _run_check(check, function, is_learner_file) -> dict:
    result = {"description": check.description, "points": 0, "max_points": check.points}
    try:
        check.fn(function)
    except NotImplementedError as err:
        if _raised_by_stub(err, function):
            result.update(status="not_implemented", message="")
        else:
            result.update(status="error", message=format_exception(err, is_learner_file))
    except AssertionError as err:
        result.update(status="failed", message=str(err) or "wrong answer (the check gave no details).")
    except Exception as err:
        result.update(status="error", message=format_exception(err, is_learner_file))
    else:
        result.update(status="passed", points=check.points, message="")
    return result


def run_exercise(exercise: Exercise, function, is_learner_file: Optional[Callable[[str], bool]] = None,
                 after_check: Optional[Callable[[], None]] = None,
                 describe_abort: Optional[Callable[[Abort], tuple]] = None) -> dict:
    """Run every check of ``exercise`` on the learner's ``function``; return the result as a dict.

    The dict has ``id, name, status, points, max_points, message`` and ``checks`` (one dict per check with
    ``description, status, points, max_points, message``). is_learner_file: tells a traceback frame of the
    learner's code by its file name, to point error messages at the line that failed. after_check: called
    after each check (the grader lets the child drop what it kept for gradients). describe_abort: turns an
    :class:`~ebm_teach.grade.proxy.Abort` (the learner's process stopped answering) into ``(status,
    message)``; the check it happened in gets them, the checks after it are not run, and the points of the
    checks before it are kept.
    """
    if not callable(function):
        raise TypeError(f"exercise {exercise.id}: {exercise.name} must be a function; got {type(function).__name__}.")
    checks, stopped = [], None
    for check in exercise.checks:
        if stopped is not None:
            checks.append({"description": check.description, "points": 0, "max_points": check.points,
                           "status": stopped[0], "message": "not run: the learner's process had stopped."})
            continue
        try:
            row = _run_check(check, function, is_learner_file)
        except Abort as abort:
            stopped = describe_abort(abort) if describe_abort else ("error", abort.message)
        # a check that caught the Abort itself (a bare `except:`) still loses it
        abort = stopped or getattr(function, "aborted", None)
        if abort is not None:
            stopped = stopped or (describe_abort(abort) if describe_abort else ("error", abort.message))
            row = {"description": check.description, "points": 0, "max_points": check.points,
                   "status": stopped[0], "message": stopped[1]}
        checks.append(row)
        if after_check is not None and stopped is None:
            try:
                after_check()
            except Abort as abort:  # this check had finished; the ones after it cannot run
                stopped = describe_abort(abort) if describe_abort else ("error", abort.message)
    statuses = {c["status"] for c in checks}
    if stopped is not None:
        status, message = stopped
    elif statuses == {"passed"}:
        status, message = "passed", f"all {len(checks)} checks passed."
    elif statuses == {"not_implemented"}:
        status, message = "not_implemented", NOT_IMPLEMENTED_MESSAGE.format(name=exercise.name)
    else:
        status = "error" if "error" in statuses else "failed"
        first = next(c for c in checks if c["status"] != "passed")
        detail = first["message"] or NOT_IMPLEMENTED_MESSAGE.format(name=exercise.name)
        message = f"{first['description']}: {detail}"
    return {
        "id": exercise.id,
        "name": exercise.name,
        "status": status,
        "points": sum(c["points"] for c in checks),
        "max_points": exercise.max_points,
        "message": message,
        "checks": checks,
    }


def validate_result(result: dict, exercise: Exercise) -> dict:
    """Refuse a result that the grader could not have produced: unknown id or status, points out of range."""
    problems = []
    if result.get("id") != exercise.id:
        problems.append(f"id {result.get('id')!r}")
    if result.get("status") not in STATUSES:
        problems.append(f"status {result.get('status')!r}")
    points = result.get("points")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 <= points <= exercise.max_points:
        problems.append(f"points {points!r}")
    for check in result.get("checks", []):
        if check.get("status") not in STATUSES or not 0 <= check.get("points", -1) <= check.get("max_points", 0):
            problems.append(f"a check with status {check.get('status')!r} and points {check.get('points')!r}")
    if problems:
        raise ValueError(f"exercise {exercise.id}: the grader produced an impossible result ({'; '.join(problems)}).")
    return result


@contextlib.contextmanager
def _stderr_to_stdout():
    """Send what is written to stderr (by Python or by C code) to stdout meanwhile.

    nbgrader gives no credit to a test cell that wrote anything to stderr, so a learner's function that prints
    a warning there must not cost points.
    """
    saved = None
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(1, 2)
    except (OSError, ValueError, AttributeError):  # no real descriptors (some notebook front ends)
        saved = None
    try:
        with contextlib.redirect_stderr(sys.stdout):
            yield
    finally:
        if saved is not None:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)


def run_checks(chapter: str, exercise_id: str, function) -> float:
    """Run exercise ``exercise_id`` of ``chapter`` on ``function`` here and now; print one line per check.

    Returns the points earned, so that the value is a notebook cell's output: nbgrader reads a number
    returned by an autograder-tests cell as partial credit. Warnings are silenced and anything written to
    stderr meanwhile goes to stdout, because nbgrader gives no credit to a cell that wrote to stderr.
    This runs the learner's code in this process: it is what a notebook and nbgrader do, not the isolated
    grading of ``python -m ebm_teach.grade``.
    """
    exercises = {e.id: e for e in load_exercises(chapter)}
    if exercise_id not in exercises:
        raise ValueError(f"chapter {chapter} has no exercise {exercise_id!r}; it has {sorted(exercises)}.")
    with warnings.catch_warnings(), _stderr_to_stdout():
        warnings.simplefilter("ignore")
        result = run_exercise(exercises[exercise_id], function)
    print(f"Exercise {result['id']} ({result['name']}): {result['points']:g}/{result['max_points']:g} points")
    for check in result["checks"]:
        mark = {"passed": "ok  ", "not_implemented": "todo"}.get(check["status"], "FAIL")
        print(f"  {mark} {check['description']}" + (f": {check['message']}" if check["message"] else ""))
    return result["points"]
