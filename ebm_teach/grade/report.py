"""The grader's reports: a short printed summary, the JSON report and the CSV gradebook (one row per file)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List

__all__ = ["summary", "write_json", "write_csv"]

FEEDBACK_WIDTH = 160  # characters of each exercise's message in the printed summary (all of it in the JSON)


def _short(text: str, width: int = FEEDBACK_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(reports: List[dict]) -> str:
    """Per file: the total, then one line per exercise with its points, status and feedback."""
    lines = []
    for report in reports:
        lines.append(f"{report['file']} (chapter {report['chapter'] or '?'}): "
                     f"{report['points']:g}/{report['max_points']:g} points")
        if report["error"] and not report["exercises"]:
            lines.append(f"  error: {_short(report['error'])}")
        for err in report.get("cell_errors", []):
            lines.append(f"  cell {err['cell']} (`{err['first_line']}`) raised {_short(err['message'], 120)}")
        for ex in report["exercises"]:
            lines.append(f"  {ex['id']:>5} {ex['name']:<28} {ex['points']:>4g}/{ex['max_points']:<4g} "
                         f"{ex['status']:<15} {_short(ex['message'])}")
    if len(reports) > 1:
        total = sum(r["points"] for r in reports)
        lines.append(f"{len(reports)} files graded; mean {total / len(reports):.2f} points.")
    return "\n".join(lines)


def write_json(reports: List[dict], path, timeout: float) -> None:
    """Write ``{"timeout": …, "submissions": [report, …]}`` (see runner.grade_file for a report's fields)."""
    data = {"grader": "ebm_teach.grade", "timeout": timeout, "submissions": reports}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_csv(reports: List[dict], path) -> None:
    """A gradebook: one row per file with its total, then points and status per exercise id."""
    ids = sorted({ex["id"] for r in reports for ex in r["exercises"]},
                 key=lambda i: tuple(int(p) for p in i.split(".")))
    header = ["file", "chapter", "points", "max_points", "error"]
    for i in ids:
        header += [f"{i} points", f"{i} status"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in reports:
            by_id = {ex["id"]: ex for ex in r["exercises"]}
            row = [r["file"], r["chapter"] or "", f"{r['points']:g}", f"{r['max_points']:g}", r["error"] or ""]
            for i in ids:
                ex = by_id.get(i)
                row += [f"{ex['points']:g}", ex["status"]] if ex else ["", ""]
            writer.writerow(row)
