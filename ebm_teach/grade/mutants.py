"""Do the hidden checks catch a flipped sign or a dropped term? Grade small mutations of the solutions.

``python -m ebm_teach.grade mutants [--chapter NN] [--jobs J]`` takes each exercise's answer (the code
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in ``solutions/NN_slug.py``), makes one mutant per
``+``/``-`` in it (the sign flipped, or the right-hand term dropped) and per unary minus (removed), runs the
exercise's hidden checks on every mutant (in this process: the mutants are the book's own code), and lists
the mutants that still earn the exercise's full points: each one is a mistake the checks let through (or a
mutation that does not change the answer, which a reader of the list can tell at a glance).
"""
from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
import tempfile
from pathlib import Path
from typing import List, NamedTuple, Optional

from .spec import load_exercises

__all__ = ["Mutant", "mutants", "main"]

_BEGIN = re.compile(r"^\s*#+\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")


class Mutant(NamedTuple):
    """One mutated solutions file: the exercise it changes, what was changed, the whole file's text."""

    exercise_id: str
    what: str
    text: str


def _regions(lines: List[str]) -> List[tuple]:
    regions, start = [], None
    for number, line in enumerate(lines, start=1):
        if _BEGIN.match(line):
            start = number
        elif _END.match(line) and start is not None:
            regions.append((start, number))
            start = None
    return regions


def _sites(function: ast.FunctionDef, regions) -> List[tuple]:
    """(index in ast.walk order, node) of every + / - and unary minus inside a solution region."""
    inside = lambda node: any(a < getattr(node, "lineno", 0) <= b for a, b in regions)  # noqa: E731
    return [(i, node) for i, node in enumerate(ast.walk(function))
            if inside(node) and ((isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)))
                                 or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)))]


def _mutate(function: ast.FunctionDef, index: int, how: str) -> ast.FunctionDef:
    clone = copy.deepcopy(function)
    target = list(ast.walk(clone))[index]
    replacement = None
    if how == "flip":
        target.op = ast.Sub() if isinstance(target.op, ast.Add) else ast.Add()
    elif how == "drop":
        replacement = target.left
    else:  # "plus": -x becomes x
        replacement = target.operand
    if replacement is not None:
        for parent in ast.walk(clone):
            for field, value in ast.iter_fields(parent):
                if value is target:
                    setattr(parent, field, replacement)
                elif isinstance(value, list):
                    value[:] = [replacement if v is target else v for v in value]
    return clone


def mutants(solution) -> List[Mutant]:
    """The mutants of one solutions file, exercise by exercise (see the module docstring)."""
    solution = Path(solution)
    text = solution.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    regions = _regions(lines)
    tree = ast.parse(text)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    out = []
    for exercise in load_exercises(solution.stem):
        function = functions.get(exercise.name)
        if function is None:
            continue
        for index, node in _sites(function, regions):
            shown = ast.unparse(node)
            options = ([("flip", f"`{shown}`: {'+' if isinstance(node.op, ast.Sub) else '-'} instead"),
                        ("drop", f"`{shown}`: only `{ast.unparse(node.left)}`")] if isinstance(node, ast.BinOp)
                       else [("plus", f"`{shown}`: without the minus")])
            for how, what in options:
                mutated = ast.unparse(_mutate(function, index, how)) + "\n"
                start, end = function.lineno - 1, function.end_lineno
                new_text = "".join(lines[:start]) + mutated + "".join(lines[end:])
                out.append(Mutant(exercise.id, f"line {node.lineno}, {what}"[:200], new_text))
    return out


class _Timeout(Exception):
    pass


def grade_mutant(mutant: Mutant, chapter: str, timeout: float) -> dict:
    """Run the mutated exercise's checks here (the mutants are our own code: no jail needed)."""
    import signal

    import torch

    from .checking import run_exercise
    from .notebook import read_cells

    exercise = next(e for e in load_exercises(chapter) if e.id == mutant.exercise_id)
    with tempfile.TemporaryDirectory(prefix="ebm-mutant-") as folder:
        path = Path(folder) / f"{chapter}.py"
        path.write_text(mutant.text, encoding="utf-8")
        cells = read_cells(path)
    namespace = {"__name__": "__main__"}

    def alarm(signum, frame):
        raise _Timeout(f"no answer within {timeout:g} s")

    previous, threads = signal.signal(signal.SIGALRM, alarm), torch.get_num_threads()
    torch.set_num_threads(1)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        for cell in cells:
            if cell.kind == "code" and not {"self-check", "hidden-test"} & set(cell.tags):
                exec(compile(cell.source, f"mutant cell {cell.number}", "exec"), namespace)
        return run_exercise(exercise, namespace[exercise.name])
    except _Timeout as err:
        return {"status": "timeout", "points": 0, "max_points": exercise.max_points, "message": str(err)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        torch.set_num_threads(threads)


def main(argv: Optional[List[str]] = None) -> int:
    import warnings

    from . import spec

    parser = argparse.ArgumentParser(prog="python -m ebm_teach.grade mutants",
                                     description="List the sign flips and dropped terms the hidden checks let through.")
    parser.add_argument("--solutions", default="solutions", help="folder of NN_slug.py solutions (default solutions)")
    parser.add_argument("--chapter", metavar="NN", help="only this chapter")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per mutant (default 60)")
    args = parser.parse_args(argv)
    chapters = [spec.resolve_chapter(args.chapter)] if args.chapter else spec.available_chapters()
    survivors = 0
    for chapter in chapters:
        path = Path(args.solutions) / f"{chapter}.py"
        if not path.exists():
            continue
        found = mutants(path)
        print(f"{chapter}: {len(found)} mutants", flush=True)
        for mutant in found:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = grade_mutant(mutant, chapter, args.timeout)
            full = result["points"] == result["max_points"]
            survivors += full
            print(f"  {'SURVIVES' if full else 'caught  '} {mutant.exercise_id} "
                  f"{result['points']:g}/{result['max_points']:g} {mutant.what}", flush=True)
    print(f"{survivors} mutants earn full points.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
