"""The grader's child process: run a submission's cells, then the hidden checks of the exercises asked for.

Started by :mod:`ebm_teach.grade.runner` as ``python -m ebm_teach.grade.child JOB.json``. The job names the
submission's cells, its chapter, the exercise ids to grade and an events file. The child appends one JSON
line to the events file at each step, so that the parent, which enforces the time limits, always knows
where the child is:

    {"event": "ready"}                      the grader's own imports are done (checks module loaded)
    {"event": "cells", "errors": [...]}     every code cell has run; the ones that raised, with messages
    {"event": "start", "id": "1.2"}         exercise 1.2's checks begin
    {"event": "result", "result": {...}}    exercise 1.2's result (see checking.run_exercise)

Cells run one by one in a shared namespace, like a notebook run top to bottom; an exception in one cell is
recorded and the next cell runs anyway, so a broken cell does not hide the functions defined in others.
Cells tagged ``self-check`` or ``hidden-test`` are skipped. Whatever the learner's code prints goes to this
process's stdout/stderr, which the parent reads and caps.
"""
from __future__ import annotations

import builtins
import json
import linecache
import os
import re
import sys

from .checking import format_exception, run_exercise
from .spec import load_exercises

SKIP_TAGS = {"self-check", "hidden-test"}
_MAGIC_LINE = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


def _emit(events, **event) -> None:
    events.write(json.dumps(event) + "\n")
    events.flush()


def _compile_cell(source: str, filename: str):
    """Compile a cell; IPython magics (``%matplotlib``, ``!pip``) are skipped if plain Python fails to parse."""
    try:
        return compile(source, filename, "exec")
    except SyntaxError:
        if not _MAGIC_LINE.search(source):
            raise
    without_magics = _MAGIC_LINE.sub(lambda m: m.group(1) + "pass", re.sub(r"\A%%.*\n?", "", source))
    try:
        return compile(without_magics, filename, "exec")
    except SyntaxError:
        return compile(source, filename, "exec")  # report the error in the code as written


def run_cells(cells, namespace: dict, label: str) -> list:
    """Execute the code cells in ``namespace``; return ``[{"cell": n, "message": …}]`` for those that raised."""
    errors = []
    for cell in cells:
        if cell["kind"] != "code" or SKIP_TAGS & set(cell["tags"]) or not cell["source"].strip():
            continue
        filename = f"{label}, cell {cell['number']}"
        # linecache lets tracebacks quote the learner's line, as they would in Jupyter.
        lines = cell["source"].splitlines(keepends=True)
        linecache.cache[filename] = (len(cell["source"]), None, lines, filename)
        first_line = cell["source"].strip().splitlines()[0][:60]
        try:
            exec(_compile_cell(cell["source"], filename), namespace)
        except SyntaxError as err:
            where = f"line {err.lineno}: `{(err.text or '').strip()}`" if err.lineno else "somewhere"
            errors.append({"cell": cell["number"], "first_line": first_line,
                           "message": f"SyntaxError: {err.msg} ({where})"})
        except BaseException as err:  # SystemExit, KeyboardInterrupt from the learner's code included
            errors.append({"cell": cell["number"], "first_line": first_line,
                           "message": format_exception(err, lambda f: f.startswith(label + ", cell "))})
    return errors


def _missing_function(exercise, cell_errors) -> dict:
    message = f"no function named `{exercise.name}` is defined in the file; keep the name the exercise gives."
    if cell_errors:
        failed = "; ".join(f"cell {e['cell']} (`{e['first_line']}`) raised {e['message']}" for e in cell_errors)
        message = f"`{exercise.name}` is not defined because a cell failed: {failed}"
    return {
        "id": exercise.id, "name": exercise.name, "status": "error", "points": 0,
        "max_points": exercise.max_points, "message": message, "checks": [],
    }


def main(job_path: str) -> None:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    events = open(job["events"], "a", encoding="utf-8")
    exercises = {e.id: e for e in load_exercises(job["chapter"])}
    _emit(events, event="ready")

    label = job["label"]
    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": print}
    cell_errors = run_cells(job["cells"], namespace, label)
    _emit(events, event="cells", errors=cell_errors)

    for exercise_id in job["exercise_ids"]:
        exercise = exercises[exercise_id]
        _emit(events, event="start", id=exercise_id)
        function = namespace.get(exercise.name)
        if callable(function):
            result = run_exercise(exercise, function, lambda f: f.startswith(label + ", cell "))
        else:
            result = _missing_function(exercise, cell_errors)
        _emit(events, event="result", result=result)
    events.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: threads or atexit handlers left by the learner's code must not hang us.
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ebm_teach.grade.child JOB.json (started by ebm_teach.grade.runner)")
    main(sys.argv[1])
