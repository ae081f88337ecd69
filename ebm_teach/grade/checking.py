"""Run one exercise's hidden checks on a learner's function, in this process, and sum up the result.

The grader's child process calls :func:`run_exercise`; a notebook can call :func:`run_checks` directly
(that is what the solutions' ``hidden-test`` cells do, and what nbgrader's autograder runs).

A check's outcome is ``passed``, ``failed`` (it raised AssertionError: a wrong answer), ``not_implemented``
(the learner's stub raised NotImplementedError) or ``error`` (any other exception). The exercise is
``passed`` when every check passed, ``not_implemented`` when every check hit the stub, ``error`` when some
check crashed, and ``failed`` otherwise; its points are the sum over the checks that passed.
"""
from __future__ import annotations

import traceback
import warnings
from typing import Callable, Optional

from .spec import Exercise, load_exercises

__all__ = ["run_exercise", "run_checks", "format_exception"]

NOT_IMPLEMENTED_MESSAGE = "not attempted yet: replace `raise NotImplementedError()` in {name} with your code."


def format_exception(err: BaseException, is_learner_file: Optional[Callable[[str], bool]] = None) -> str:
    """``"TypeError: message"``, plus where in the learner's code it happened when that can be told."""
    text = f"{type(err).__name__}: {err}".strip().rstrip(":")
    if is_learner_file is not None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if is_learner_file(f.filename)]
        if frames:
            last = frames[-1]
            code = f": `{last.line.strip()}`" if last.line else ""
            text += f" (in {last.filename}, line {last.lineno}{code})"
    return text


def _run_check(check, function, is_learner_file) -> dict:
    result = {"description": check.description, "points": 0, "max_points": check.points}
    try:
        check.fn(function)
    except NotImplementedError:
        result.update(status="not_implemented", message="")
    except AssertionError as err:
        result.update(status="failed", message=str(err) or "wrong answer (the check gave no details).")
    except Exception as err:
        result.update(status="error", message=format_exception(err, is_learner_file))
    else:
        result.update(status="passed", points=check.points, message="")
    return result


def run_exercise(exercise: Exercise, function, is_learner_file: Optional[Callable[[str], bool]] = None) -> dict:
    """Run every check of ``exercise`` on the learner's ``function``; return the result as a dict.

    The dict has ``id, name, status, points, max_points, message`` and ``checks`` (one dict per check with
    ``description, status, points, max_points, message``). is_learner_file: tells a traceback frame of the
    learner's code by its file name, to point error messages at the line that failed.
    """
    if not callable(function):
        raise TypeError(f"exercise {exercise.id}: {exercise.name} must be a function; got {type(function).__name__}.")
    checks = [_run_check(check, function, is_learner_file) for check in exercise.checks]
    statuses = {c["status"] for c in checks}
    if statuses == {"passed"}:
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


def run_checks(chapter: str, exercise_id: str, function) -> float:
    """Run exercise ``exercise_id`` of ``chapter`` on ``function`` here and now; print one line per check.

    Returns the points earned, so that the value is a notebook cell's output: nbgrader reads a number
    returned by an autograder-tests cell as partial credit. Warnings are silenced meanwhile, because
    nbgrader gives no credit to a cell that wrote anything to stderr.
    """
    exercises = {e.id: e for e in load_exercises(chapter)}
    if exercise_id not in exercises:
        raise ValueError(f"chapter {chapter} has no exercise {exercise_id!r}; it has {sorted(exercises)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_exercise(exercises[exercise_id], function)
    print(f"Exercise {result['id']} ({result['name']}): {result['points']:g}/{result['max_points']:g} points")
    for check in result["checks"]:
        mark = {"passed": "ok  ", "not_implemented": "todo"}.get(check["status"], "FAIL")
        print(f"  {mark} {check['description']}" + (f": {check['message']}" if check["message"] else ""))
    return result["points"]
