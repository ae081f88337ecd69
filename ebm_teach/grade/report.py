"""The grader's reports: the printed summary, the JSON report, the CSV gradebook and per-student feedback.

Every file written here is replaced in one step (written beside, then renamed), so that a run that stops
leaves the last complete version: the runner rewrites them after each graded file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import List, Optional

__all__ = ["summary", "write_json", "write_csv", "feedback_markdown", "write_feedback", "feedback_path"]

FEEDBACK_WIDTH = 160  # characters of each exercise's message in the printed summary (all of it elsewhere)


def _short(text: str, width: int = FEEDBACK_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _write(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _who(report: dict) -> str:
    student = report.get("student") or ""
    return f"{report['file']}" + (f" [{student}]" if student and student != Path(report["file"]).stem else "")


def summary(reports: List[dict], safeguards: Optional[dict] = None) -> str:
    """Per file: the total, then one line per exercise with its points, status and feedback."""
    lines = []
    if safeguards:
        limits = safeguards["limits"]
        landlock = next((r["sandbox"]["landlock"] for r in reports if r.get("sandbox", {}).get("landlock")),
                        safeguards.get("landlock", "off"))
        lines.append(f"Safeguards: each file runs in its own folder with at most {limits['memory_mb']} MB, "
                     f"{limits['cpu_seconds']} CPU s, {limits['max_processes']} processes "
                     f"[{safeguards['process count']}] and {limits['max_file_mb']} MB files; as "
                     f"{safeguards['user']}; Landlock {landlock}.")
    for report in reports:
        lines.append(f"{_who(report)} (chapter {report['chapter'] or '?'}): "
                     f"{report['points']:g}/{report['max_points']:g} points")
        if report["error"]:
            lines.append(f"  error: {_short(report['error'])}")
        for flag in report.get("flags", []):
            lines.append(f"  flag: {_short(flag)}")
        for err in report.get("cell_errors", []):
            lines.append(f"  cell {err['cell']} (`{err['first_line']}`) raised {_short(err['message'], 120)}")
        for ex in report["exercises"] if not report["error"] else []:
            lines.append(f"  {ex['id']:>5} {ex['name']:<28} {ex['points']:>4g}/{ex['max_points']:<4g} "
                         f"{ex['status']:<15} {_short(ex['message'])}")
    if len(reports) > 1:
        total = sum(r["points"] for r in reports)
        lines.append(f"{len(reports)} files graded; mean {total / len(reports):.2f} points.")
    return "\n".join(lines)


def write_json(reports: List[dict], path, timeout: float, **extra) -> None:
    """Write ``{"grader", "timeout", …extra, "submissions": [report, …]}`` (see runner.grade_file for a report)."""
    data = {"grader": "ebm_teach.grade", "timeout": timeout, **extra, "submissions": reports}
    _write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _exercise_ids(reports: List[dict]) -> List[str]:
    return sorted({ex["id"] for r in reports for ex in r["exercises"]},
                  key=lambda i: tuple(int(p) for p in i.split(".")))


def write_csv(reports: List[dict], path) -> None:
    """A gradebook: one row per file (student, assignment, file, chapter, total, error, flags), then the points
    and status of each exercise."""
    ids = _exercise_ids(reports)
    header = ["student", "assignment", "file", "chapter", "points", "max_points", "error", "flags"]
    for i in ids:
        header += [f"{i} points", f"{i} status"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for r in reports:
        by_id = {ex["id"]: ex for ex in r["exercises"]}
        row = [r.get("student", ""), r.get("assignment", ""), r["file"], r["chapter"] or "", f"{r['points']:g}",
               f"{r['max_points']:g}", r["error"] or "", "; ".join(r.get("flags", []))]
        for i in ids:
            ex = by_id.get(i)
            row += [f"{ex['points']:g}", ex["status"]] if ex else ["", ""]
        writer.writerow(row)
    _write(path, buffer.getvalue())


_MARK = {"passed": "✔", "failed": "✘", "not_implemented": "…", "error": "✘", "timeout": "⏱"}
_STATUS = {"passed": "passed", "failed": "wrong answer", "not_implemented": "not attempted", "error": "error",
           "timeout": "ran out of time"}


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def feedback_markdown(report: dict) -> str:
    """The learner's feedback: the total, then every exercise and every check with its message."""
    title = report["chapter"] or Path(report["file"]).stem
    lines = [f"# Feedback: {title}", "",
             f"**{report['points']:g} / {report['max_points']:g} points** for `{report['file']}`.", ""]
    if report["error"]:
        lines += [f"**This file could not be graded:** {_indent(report['error'])}", ""]
    if report["exercises"] and not report["error"]:
        lines += ["| exercise | function | points | result |", "|---|---|---|---|"]
        for ex in report["exercises"]:
            lines.append(f"| {ex['id']} | `{ex['name']}` | {ex['points']:g} / {ex['max_points']:g} | "
                         f"{_STATUS.get(ex['status'], ex['status'])} |")
        lines.append("")
    if report.get("cell_errors"):
        lines += ["## Cells that raised an error", ""]
        lines += [f"- cell {e['cell']} (`{e['first_line']}`): {_indent(e['message'])}" for e in report["cell_errors"]]
        lines.append("")
    for ex in report["exercises"] if not report["error"] else []:
        lines += [f"## Exercise {ex['id']}: `{ex['name']}` ({ex['points']:g} / {ex['max_points']:g} points)", ""]
        if not ex["checks"]:
            lines += [f"{_MARK.get(ex['status'], '-')} {_indent(ex['message'])}", ""]
            continue
        for check in ex["checks"]:
            line = f"- {_MARK.get(check['status'], '-')} {check['description']} ({check['points']:g} / {check['max_points']:g})"
            if check["status"] == "not_implemented":
                line += ": not attempted yet"
            elif check["message"]:
                line += ":\n  " + _indent(check["message"])
            lines.append(line)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", text).strip(".") or "_"


def feedback_path(report: dict, folder) -> Path:
    """``folder/<student>/[<assignment>-]<chapter>[-<file stem>].md`` (names made safe for a file system).

    The file's stem is added when it is neither the chapter nor the student, so two files of one student
    never share a feedback file.
    """
    stem, student = Path(report["file"]).stem, report.get("student") or "unknown"
    parts = [report["assignment"]] if report.get("assignment") else []
    parts.append(report["chapter"] or stem)
    if stem not in (report["chapter"], student):
        parts.append(stem)
    return Path(folder) / _safe_name(student) / f"{_safe_name('-'.join(parts))}.md"


def write_feedback(report: dict, folder) -> Path:
    """Write the report's feedback as Markdown (see :func:`feedback_path`); return the path."""
    path = feedback_path(report, folder)
    _write(path, feedback_markdown(report))
    return path
