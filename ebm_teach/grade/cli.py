"""Command line: ``python -m ebm_teach.grade SUBMISSION [--json OUT] [--csv OUT] [--timeout S]``.

SUBMISSION is a learner's exercise file (``.ipynb`` or ``.py``) or a folder of them. The second form,
``python -m ebm_teach.grade build [--check]``, regenerates ``exercises/`` from ``solutions/``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import builder, report, runner

USAGE = """\
python -m ebm_teach.grade SUBMISSION [--json OUT] [--csv OUT] [--timeout S] [--max-output N] [--jobs J]
       python -m ebm_teach.grade build [--solutions DIR] [--out DIR] [--check | --nbgrader DIR]"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _grade_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ebm_teach.grade", usage=USAGE,
        description="Grade ebm-teach exercise files: run each in a separate process, then the hidden checks.",
    )
    parser.add_argument("submission", help="a learner's exercise file (.ipynb or .py), or a folder of them")
    parser.add_argument("--json", metavar="OUT", help="write the full report as JSON to OUT")
    parser.add_argument("--csv", metavar="OUT", help="write a gradebook (one row per file) to OUT")
    parser.add_argument("--timeout", type=_positive_float, default=runner.DEFAULT_TIMEOUT, metavar="S",
                        help="seconds for the file's top-level code, and again for each exercise "
                             f"(default {runner.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--max-output", type=int, default=runner.DEFAULT_MAX_OUTPUT, metavar="N",
                        help=f"characters of printed output kept per file (default {runner.DEFAULT_MAX_OUTPUT})")
    parser.add_argument("--jobs", type=int, default=1, metavar="J",
                        help="files graded at the same time (default 1; at most the number of free CPU cores)")
    return parser


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebm_teach.grade build",
                                     description="Generate exercises/ from solutions/.")
    parser.add_argument("--solutions", default="solutions", help="folder of NN_slug.py solutions (default solutions)")
    parser.add_argument("--out", default="exercises", help="folder to write to (default exercises)")
    parser.add_argument("--check", action="store_true", help="only report files that are out of date (exit 1 if any)")
    parser.add_argument("--nbgrader", metavar="DIR",
                        help="instead, write the solutions as nbgrader source notebooks into DIR")
    return parser


def build_main(argv: List[str]) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.check:
            problems = builder.differences(args.solutions, args.out)
            for problem in problems:
                print(problem)
            if problems:
                print("exercises are out of date: run python -m ebm_teach.grade build")
            return 1 if problems else 0
        if args.nbgrader:
            for path in builder.nbgrader_sources(args.solutions, args.nbgrader):
                print(f"wrote {path}")
            return 0
        for path in builder.build(args.solutions, args.out):
            print(f"wrote {path}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["build"]:
        return build_main(argv[1:])
    args = _grade_parser().parse_args(argv)
    if args.max_output < 0:
        _grade_parser().error(f"--max-output must be >= 0, got {args.max_output}")
    if args.jobs < 1:
        _grade_parser().error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        reports = runner.grade_path(args.submission, timeout=args.timeout, max_output=args.max_output,
                                    jobs=args.jobs)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary(reports))
    if args.json:
        report.write_json(reports, args.json, args.timeout)
        print(f"JSON report: {args.json}")
    if args.csv:
        report.write_csv(reports, args.csv)
        print(f"CSV gradebook: {args.csv}")
    return 0
