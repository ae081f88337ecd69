"""Command line: ``python -m ebm_teach.grade SUBMISSIONS [options]`` and ``python -m ebm_teach.grade build``.

SUBMISSIONS is a learner's exercise file (``.ipynb`` or ``.py``), a folder of them (one per learner, or one
folder per learner), or an nbgrader course folder (``submitted/<student>/<assignment>/``). Results are
written as each file is done. ``build`` regenerates ``exercises/`` from ``solutions/`` (or writes nbgrader
source notebooks).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import builder, report, runner, spec
from .sandbox import Limits, safeguards

SEED_VARIABLE = "EBM_TEACH_GRADING_SEED"

USAGE = """\
python -m ebm_teach.grade SUBMISSIONS [--json OUT] [--csv OUT] [--feedback DIR] [--chapter NN]
           [--assignment NAME] [--seed N] [--jobs J] [--timeout S] [--max-output N]
           [--memory MB] [--cpu-time S] [--max-processes N] [--max-file-size MB] [--no-landlock]
       python -m ebm_teach.grade build [--solutions DIR] [--out DIR] [--check | --nbgrader DIR [--chapter NN]]
       python -m ebm_teach.grade mutants [--chapter NN]  (do the checks catch flipped signs, dropped terms?)"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the grading seed must be an integer >= 0, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"the grading seed must be an integer >= 0, got {text}")
    return value


def _grade_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = argparse.ArgumentParser(
        prog="python -m ebm_teach.grade", usage=USAGE,
        description="Grade ebm-teach exercise files: each runs in a jailed process that only answers the "
                    "checks' calls; the checks and the points stay in this process.",
    )
    parser.add_argument("submission", metavar="SUBMISSIONS",
                        help="an exercise file (.ipynb or .py), a folder of them or of one folder per student, "
                             "or an nbgrader course folder")
    out = parser.add_argument_group("results (written as each file is done)")
    out.add_argument("--json", metavar="OUT", help="the full report as JSON")
    out.add_argument("--csv", metavar="OUT", help="a gradebook: one row per file, with the student's id")
    out.add_argument("--feedback", metavar="DIR", help="one Markdown file per student and file, with every check's message")
    what = parser.add_argument_group("what to grade")
    what.add_argument("--chapter", metavar="NN", help="require this chapter (number or name); files of another chapter get 0")
    what.add_argument("--assignment", metavar="NAME", help="only the files of this nbgrader assignment folder")
    what.add_argument("--seed", type=_seed, metavar="N",
                      help=f"secret grading seed for the checks' random inputs (or set ${SEED_VARIABLE}, which "
                           "other users cannot see in the process list)")
    run = parser.add_argument_group("running")
    run.add_argument("--jobs", type=int, default=1, metavar="J",
                     help="files graded at the same time (default 1; at most the number of free CPU cores)")
    run.add_argument("--timeout", type=_positive_float, default=runner.DEFAULT_TIMEOUT, metavar="S",
                     help="seconds for the file's top-level code, and again for each exercise "
                          f"(default {runner.DEFAULT_TIMEOUT:g})")
    run.add_argument("--max-output", type=int, default=runner.DEFAULT_MAX_OUTPUT, metavar="N",
                     help=f"characters of printed output kept per file (default {runner.DEFAULT_MAX_OUTPUT})")
    limits = parser.add_argument_group("limits of each submission's process")
    limits.add_argument("--memory", type=int, default=defaults.memory_mb, metavar="MB",
                        help=f"address space (default {defaults.memory_mb}; torch needs about 700)")
    limits.add_argument("--cpu-time", type=int, default=defaults.cpu_seconds, metavar="S",
                        help=f"CPU seconds over the process's life (default {defaults.cpu_seconds})")
    limits.add_argument("--max-processes", type=int, default=defaults.max_processes, metavar="N",
                        help=f"processes and threads it may start (default {defaults.max_processes})")
    limits.add_argument("--max-file-size", type=int, default=defaults.max_file_mb, metavar="MB",
                        help=f"largest file it may write (default {defaults.max_file_mb})")
    limits.add_argument("--no-landlock", action="store_true",
                        help="do not use Linux's Landlock to keep it from changing files outside its folder")
    return parser


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebm_teach.grade build",
                                     description="Generate exercises/ from solutions/.")
    parser.add_argument("--solutions", default="solutions", help="folder of NN_slug.py solutions (default solutions)")
    parser.add_argument("--out", default="exercises", help="folder to write to (default exercises)")
    parser.add_argument("--check", action="store_true", help="only report files that are out of date (exit 1 if any)")
    parser.add_argument("--nbgrader", metavar="DIR",
                        help="instead, write the solutions as nbgrader source notebooks into DIR")
    parser.add_argument("--chapter", metavar="NN", help="with --nbgrader: only this chapter (one assignment)")
    return parser


def build_main(argv: List[str]) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.chapter and not args.nbgrader:
        parser.error("--chapter goes with --nbgrader (an assignment holds one chapter)")
    try:
        if args.check:
            problems = builder.differences(args.solutions, args.out)
            for problem in problems:
                print(problem)
            if problems:
                print("exercises are out of date: run python -m ebm_teach.grade build")
            return 1 if problems else 0
        if args.nbgrader:
            chapter = spec.resolve_chapter(args.chapter) if args.chapter else None
            for path in builder.nbgrader_sources(args.solutions, args.nbgrader, chapter=chapter):
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
    if argv[:1] == ["mutants"]:
        from . import mutants

        return mutants.main(argv[1:])
    parser = _grade_parser()
    args = parser.parse_args(argv)
    if args.max_output < 0:
        parser.error(f"--max-output must be >= 0, got {args.max_output}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        limits = Limits(memory_mb=args.memory, cpu_seconds=args.cpu_time, max_processes=args.max_processes,
                        max_file_mb=args.max_file_size, landlock=not args.no_landlock)
        chapter = spec.resolve_chapter(args.chapter) if args.chapter else None
    except ValueError as err:
        parser.error(str(err))
    seed = args.seed
    if seed is None and os.environ.get(SEED_VARIABLE, "").strip():
        try:
            seed = _seed(os.environ[SEED_VARIABLE].strip())
        except argparse.ArgumentTypeError as err:
            parser.error(f"${SEED_VARIABLE}: {err}")
    spec.set_grading_seed(seed)
    guards = safeguards(limits)
    extra = {"chapter": chapter, "secret_seed": seed is not None, "safeguards": guards}

    def written(one: dict, reports: List[Optional[dict]]) -> None:
        done = [r for r in reports if r is not None]
        print(f"[{len(done)}/{len(reports)}] {one['file']}: {one['points']:g}/{one['max_points']:g}", flush=True)
        if args.json:
            report.write_json(done, args.json, args.timeout, **extra)
        if args.csv:
            report.write_csv(done, args.csv)
        if args.feedback:
            report.write_feedback(one, args.feedback)

    try:
        reports = runner.grade_path(args.submission, timeout=args.timeout, max_output=args.max_output,
                                    jobs=args.jobs, limits=limits, chapter=chapter, assignment=args.assignment,
                                    on_report=written)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        spec.set_grading_seed(None)
    print(report.summary(reports, guards))
    for where, what in ((args.json, "JSON report"), (args.csv, "CSV gradebook"), (args.feedback, "feedback")):
        if where:
            print(f"{what}: {where}")
    return 0
