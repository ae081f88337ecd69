"""Execute chapter notebooks and write their paired ``.ipynb`` (the stored outputs nbval compares).

    python -m ebm_teach.tools.notebooks refresh notebooks/01_gaussian_ebm.py [more.py ...]
    python -m ebm_teach.tools.notebooks check                      # pairing + outputs, as the tests do

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
from typing import List

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
        elif not cell.get("outputs") and "NBVAL_SKIP" not in cell.source:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebm_teach.tools.notebooks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_ref = sub.add_parser("refresh", help="execute notebooks and write their .ipynb")
    p_ref.add_argument("paths", nargs="+", type=Path)
    p_chk = sub.add_parser("check", help="report stale or unexecuted notebooks")
    p_chk.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
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
