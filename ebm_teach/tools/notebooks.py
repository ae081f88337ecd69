"""Execute chapter notebooks and write their paired ``.ipynb`` (the stored outputs nbval compares).

    python -m ebm_teach.tools.notebooks refresh notebooks/01_gaussian_ebm.py [more.py ...]
    python -m ebm_teach.tools.notebooks check                      # pairing + outputs, as the tests do
    python -m ebm_teach.tools.notebooks spread notebooks/03_pcd_ais.py --shifts 8   # tolerances from seeds

``refresh`` reads the py:percent source with jupytext, executes it in a fresh ``python3`` kernel with the
notebook's folder as working directory, on the CPU (``EBM_TEACH_DEVICE=cpu``) with progress bars off
(``EBM_TEACH_QUIET=1``) -- the same conditions as the tests -- and writes ``NAME.ipynb`` beside it.
Needs the ``test`` extra (jupytext, nbclient).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

ENV = {"EBM_TEACH_DEVICE": "cpu", "EBM_TEACH_QUIET": "1", "PYTHONHASHSEED": "0"}
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def _source_cells(nb) -> List[tuple]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def problems(py_path: Path) -> List[str]:
    """What is wrong with the pair (py_path, its .ipynb): missing, inputs differ, or unexecuted code cells."""
    import jupytext

    ipynb = py_path.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb} is missing; run: python -m ebm_teach.tools.notebooks refresh {py_path}"]
    src, stored = jupytext.read(py_path), jupytext.read(ipynb)
    out = []
    a, b = _source_cells(src), _source_cells(stored)
    if a != b:
        n_diff = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        out.append(
            f"{ipynb.name} is stale: {n_diff} cell(s) differ from {py_path.name} (first at cell {first}); "
            f"refresh it with: python -m ebm_teach.tools.notebooks refresh {py_path}"
        )
    for i, cell in enumerate(stored.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None:
            out.append(f"{ipynb.name}: code cell {i} was never executed (nbval would skip it silently).")
        elif not cell.get("outputs") and "nbval-skip" not in cell.metadata.get("tags", []):
            out.append(
                f"{ipynb.name}: code cell {i} has no stored output, so nbval checks nothing in it; "
                "make it print or show something, or merge it into a neighbouring cell."
            )
    return out


def refresh(py_path: Path, timeout: int = 600) -> float:
    """Execute ``py_path`` and write its ``.ipynb``; returns the wall time in seconds."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    py_path = Path(py_path).resolve()
    nb = jupytext.read(py_path)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    old_env = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(py_path.parent)}}).execute()
        elapsed = time.perf_counter() - start
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for i, cell in enumerate(nb.cells):  # keep stored notebooks small and diff-friendly
        cell.metadata.pop("execution", None)
        cell["id"] = f"cell-{i}"  # stable ids: a refresh changes only what really changed
    nbformat.write(nb, py_path.with_suffix(".ipynb"))
    return elapsed


def spread(py_path: Path, shifts: List[int], env: Optional[dict] = None, timeout: int = 900) -> List[dict]:
    """Run a chapter as a script once per seed shift and collect what its :mod:`ebm_teach.expect` calls measured.

    Each run sets ``$EBM_TEACH_SEED_SHIFT`` (every seed in the chapter moves by that much) and
    ``$EBM_TEACH_EXPECT_RECORD``, so that ``expect``/``exact``/``claim`` record instead of raising. ``env``
    adds variables (e.g. ``ATEN_CPU_CAPABILITY=default`` for another code path). Returns one summary per call
    site: its source line, the expectation, the values over the runs, and whether it held in each.
    """
    import json
    import subprocess
    import tempfile

    import numpy as np

    py_path = Path(py_path).resolve()
    sites: dict = {}
    for shift in shifts:
        with tempfile.TemporaryDirectory() as tmp:
            record = Path(tmp) / "record.jsonl"
            run_env = {**os.environ, **ENV, "MPLBACKEND": "Agg", "EBM_TEACH_SEED_SHIFT": str(shift),
                       "EBM_TEACH_EXPECT_RECORD": str(record), **(env or {})}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, py_path.name], cwd=py_path.parent, env=run_env, timeout=timeout,
                                  capture_output=True, text=True)
            took = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{py_path.name} failed with seed shift {shift}:\n{proc.stderr[-3000:]}")
            print(f"  seed shift {shift}: {took:.0f} s", file=sys.stderr, flush=True)
            counts: dict = {}
            for line in record.read_text().splitlines() if record.exists() else []:
                rec = json.loads(line)
                n = counts[rec["where"]] = counts.get(rec["where"], 0) + 1
                key = rec["where"] + (f" #{n}" if n > 1 else "")
                site = sites.setdefault(key, {"where": key, "kind": rec["kind"], "source": rec["source"], "runs": []})
                site["runs"].append(rec)
    out = []
    for site in sites.values():
        runs = site["runs"]
        if site["kind"] == "claim":
            site["held"] = sum(r["holds"] for r in runs)
        else:
            vals = np.array([np.atleast_1d(r["value"]) for r in runs], dtype=float)
            site["mean"], site["sd"] = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(vals.shape[1:])
            site["min"], site["max"] = vals.min(0), vals.max(0)
            if site["kind"] == "expect":
                want, tol = np.atleast_1d(runs[0]["expected"]), runs[0]["tol"]
                site["expected"], site["tol"] = want, tol
                site["held"] = int(sum(bool(np.all(np.abs(v - want) <= tol)) for v in vals))
            else:
                texts = {format(float(r["value"]), r["fmt"]) for r in runs}
                site["held"] = len(runs) if len(texts) == 1 else 0
        out.append(site)
    return out


def _report(sites: List[dict], n_runs: int) -> str:
    """The spread tool's table: per call site, the measured range and a tolerance of 4 sd (or the bias)."""
    import numpy as np

    def f(a):
        a = np.atleast_1d(a)
        return ", ".join(f"{v:.4g}" for v in a[:4]) + (" …" if len(a) > 4 else "")

    rows = []
    for s in sites:
        rows.append(f"{s['where']}  [{s['kind']}]  {s['source'][:100]}")
        if s["kind"] == "claim":
            rows.append(f"    held in {s['held']}/{n_runs} runs")
        elif s["kind"] == "exact":
            rows.append(f"    values {f(s['min'])} .. {f(s['max'])}; same printed text in every run: "
                        f"{'yes' if s['held'] else 'NO'}")
        else:
            suggest = np.maximum(4 * np.atleast_1d(s["sd"]), np.abs(np.atleast_1d(s["mean"]) - s["expected"]) * 1.5)
            rows.append(f"    expected {f(s['expected'])} ± {s['tol']:g}; mean {f(s['mean'])}, sd {f(s['sd'])}, "
                        f"range {f(s['min'])} .. {f(s['max'])}; inside in {s['held']}/{n_runs} runs; "
                        f"4 sd = {f(suggest)}")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebm_teach.tools.notebooks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_ref = sub.add_parser("refresh", help="execute notebooks and write their .ipynb")
    p_ref.add_argument("paths", nargs="+", type=Path)
    p_chk = sub.add_parser("check", help="report stale or unexecuted notebooks")
    p_chk.add_argument("paths", nargs="*", type=Path)
    p_spr = sub.add_parser("spread", help="run a chapter over seed shifts and report what its expectations measured")
    p_spr.add_argument("paths", nargs="+", type=Path)
    p_spr.add_argument("--shifts", type=int, default=8, help="number of seed shifts to run (0, 1, ...; default 8)")
    p_spr.add_argument("--first", type=int, default=0, help="first seed shift (default 0)")
    p_spr.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                       help="extra environment for every run, e.g. ATEN_CPU_CAPABILITY=default (repeatable)")
    args = parser.parse_args(argv)
    if args.cmd == "spread":
        env = dict(item.split("=", 1) for item in args.env)
        shifts = list(range(args.first, args.first + args.shifts))
        for p in args.paths:
            print(f"== {p} over seed shifts {shifts[0]}..{shifts[-1]}" + (f" with {env}" if env else ""), flush=True)
            print(_report(spread(p, shifts, env), len(shifts)), flush=True)
        return 0
    if args.cmd == "refresh":
        for p in args.paths:
            if p.suffix != ".py":
                parser.error(f"{p}: pass the py:percent source (.py), not {p.suffix}")
            print(f"{p}: executed in {refresh(p):.1f} s", flush=True)
        return 0
    paths = args.paths or sorted(NOTEBOOK_DIR.glob("*.py"))
    found = [msg for p in paths for msg in problems(Path(p))]
    print("\n".join(found) if found else f"{len(paths)} notebook(s) paired and executed.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
