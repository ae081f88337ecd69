"""Chapter 10's full grid: every method on every target, same budget, several seeds; writes the results table.

    python experiments/comparison.py                                   # the CPU run stored in the repository
    python experiments/comparison.py --scale 8 --seeds 5 --device cuda # a larger run on a GPU: one command

Continuous part: the targets ring8, moons and mixture (``compare.TARGETS``), every method of
``compare.CONTINUOUS_METHODS``, ``--budget-2d`` x ``--scale`` energy-gradient evaluations each, the test
log-likelihood and mode-weight error measured by quadrature at budget / 2^j (the compute-vs-quality
curves), then chapter 4's diagnostics of Langevin chains on the final model. Binary part: 8x8 binarized
digits, an RBM with ``--n-hidden`` hidden units (exact log Z by enumeration), every method of
``compare.BINARY_METHODS``, ``--budget-rbm`` x ``--scale`` evaluations, the exact log-likelihood at the same
checkpoints and every proxy of ``compare.rbm_measures`` at the end.

Writes into ``--out`` (default experiments/results): comparison_2d.csv and comparison_rbm.csv (one row per
checkpoint of every run; the final row of a run also holds the end-of-run measures), comparison.png (the
compute-vs-quality curves) and comparison.md (the command, device, date, wall time and the summary tables).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from ebm_teach import compare, get_device, make_generator
from ebm_teach.data import load_digits, train_test_split

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=1, help="multiplies both budgets (default 1)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method and target (default 3)")
    p.add_argument("--budget-2d", type=int, default=2**20, help="energy-gradient evaluations per 2-D run at scale 1")
    p.add_argument("--budget-rbm", type=int, default=2**19, help="evaluations per RBM run at scale 1")
    p.add_argument("--checkpoints", type=int, default=6, help="measurements per run, at budget / 2^j (default 6)")
    p.add_argument("--targets", default=",".join(compare.TARGETS), help="comma-separated 2-D targets")
    p.add_argument("--methods", default=",".join(compare.CONTINUOUS_METHODS), help="comma-separated 2-D methods")
    p.add_argument("--rbm-methods", default=",".join(compare.BINARY_METHODS), help="comma-separated RBM methods")
    p.add_argument("--n-hidden", type=int, default=16, help="hidden units of the RBM (<= 20 for exact log Z)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: $EBM_TEACH_DEVICE, else CUDA if present)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"), help="output folder")
    p.add_argument("--skip-rbm", action="store_true", help="only the 2-D grid")
    p.add_argument("--skip-2d", action="store_true", help="only the RBM grid")
    p.add_argument("--replot", action="store_true", help="only redraw comparison.png from the CSV files in --out")
    p.add_argument("--note", default="", help="a sentence for comparison.md (e.g. how loaded the machine was)")
    return p.parse_args(argv)


def write_csv(path: Path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def run_2d(args, device):
    rows = []
    budget = args.budget_2d * args.scale
    for name in args.targets.split(","):
        target = compare.make_target(name, device=device)
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                start = time.perf_counter()
                run = compare.fit_2d(method, target, seed, budget, n_checkpoints=args.checkpoints)
                diag = compare.langevin_diagnostics(run["energy"], target, generator=make_generator(100 + seed, device))
                for i, rec in enumerate(run["records"]):
                    row = {"target": name, "method": method, "seed": seed, "true_ll": target.true_test_ll,
                           **{k: rec[k] for k in ("evaluations", "steps", "seconds", "ll", "mode_error")}}
                    if i == len(run["records"]) - 1:
                        row.update({k: diag[k] for k in ("rhat", "ess", "gap", "mmd2", "sample_mode_error")})
                    rows.append(row)
                last = run["records"][-1]
                print(f"{name:8s} {method:13s} seed {seed}: LL {last['ll']:7.3f} (true {target.true_test_ll:.3f}), "
                      f"mode error {last['mode_error']:.3f}, {time.perf_counter() - start:5.1f} s", flush=True)
    return rows


def run_rbm(args, device):
    rows = []
    budget = args.budget_rbm * args.scale
    x_train, x_test = train_test_split(load_digits(binarize=True, device=device), seed=0)
    checkpoints = [budget >> j for j in range(args.checkpoints - 1, 0, -1)]
    for method in args.rbm_methods.split(","):
        for seed in range(args.seeds):
            start = time.perf_counter()
            run = compare.fit_rbm(method, x_train, seed, budget, n_hidden=args.n_hidden, checkpoints=checkpoints,
                                  v_test=x_test)
            m = compare.rbm_measures(run["rbm"], x_test, generator=make_generator(100 + seed, device))
            for i, rec in enumerate(run["records"]):
                row = {"method": method, "seed": seed, **{k: rec[k] for k in ("evaluations", "steps", "seconds", "ll")}}
                if i == len(run["records"]) - 1:
                    row.update({k: m[k] for k in ("recon", "pl", "gap", "mmd2", "log_z")})
                    if "c" in run:
                        row["c_minus_log_z"] = run["c"] - m["log_z"]
                rows.append(row)
            print(f"RBM {method:18s} seed {seed}: LL {m['ll']:8.3f}, {time.perf_counter() - start:5.1f} s", flush=True)
    return rows


def summary_2d(rows):
    lines = ["| target | method | test LL | mode-weight error | R-hat | sample mode error | MMD² |",
             "|---|---|---|---|---|---|---|"]
    finals = [r for r in rows if "rhat" in r]
    for target in dict.fromkeys(r["target"] for r in finals):
        true_ll = next(r["true_ll"] for r in finals if r["target"] == target)
        lines.append(f"| {target} | *true density* | {true_ll:.3f} | 0 | | | |")
        for method in dict.fromkeys(r["method"] for r in finals):
            sel = [r for r in finals if r["target"] == target and r["method"] == method]
            cells = []
            for key in ("ll", "mode_error", "rhat", "sample_mode_error", "mmd2"):
                m, s = compare.mean_spread([r[key] for r in sel])
                cells.append(f"{m:.3g} ± {s:.2g}")
            lines.append(f"| {target} | {method} | " + " | ".join(cells) + " |")
    return lines


def summary_rbm(rows):
    lines = ["| method | exact test LL | reconstruction error | pseudo-LL | energy gap | MMD² |", "|---|---|---|---|---|---|"]
    finals = [r for r in rows if "recon" in r]
    for method in dict.fromkeys(r["method"] for r in finals):
        sel = [r for r in finals if r["method"] == method]
        cells = []
        for key in ("ll", "recon", "pl", "gap", "mmd2"):
            m, s = compare.mean_spread([r[key] for r in sel])
            cells.append(f"{m:.4g} ± {s:.2g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def figure(rows2d, rows_rbm, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ebm_teach.plotting.compare import method_colours, plot_compute_vs_quality

    targets = list(dict.fromkeys(r["target"] for r in rows2d))
    panels = len(targets) + (1 if rows_rbm else 0)
    fig, axes = plt.subplots((panels + 1) // 2, 2, figsize=(8, 3.3 * ((panels + 1) // 2)), squeeze=False)
    colours = method_colours(compare.CONTINUOUS_METHODS)
    for ax, target in zip(axes.flat, targets):
        sel = [r for r in rows2d if r["target"] == target]
        true_ll = sel[0]["true_ll"]
        lows = [r["ll"] for r in sel if r["evaluations"] == max(s["evaluations"] for s in sel if s["method"] == r["method"])]
        plot_compute_vs_quality(sel, ax=ax, title=target, reference=true_ll, colours=colours,
                                legend=target == targets[0], ylim=(max(min(lows) - 0.3, true_ll - 3), true_ll + 0.2))
    if rows_rbm:
        ax = axes.flat[len(targets)]
        plot_compute_vs_quality(rows_rbm, ax=ax, title="RBM on binarized digits", colours=method_colours(compare.BINARY_METHODS))
    for ax in axes.flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    args = parse_args(argv)
    device = get_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # thousands of tiny operations: see DEVELOPING.md, "CPU threads"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        rbm_csv = out / "comparison_rbm.csv"
        figure(compare.read_results(out / "comparison_2d.csv"),
               compare.read_results(rbm_csv) if rbm_csv.is_file() else [], out / "comparison.png")
        return
    start = time.perf_counter()
    rows2d = [] if args.skip_2d else run_2d(args, device)
    rows_rbm = [] if args.skip_rbm else run_rbm(args, device)
    wall = time.perf_counter() - start
    if rows2d:
        write_csv(out / "comparison_2d.csv", rows2d)
    if rows_rbm:
        write_csv(out / "comparison_rbm.csv", rows_rbm)
    if rows2d:
        figure(rows2d, rows_rbm, out / "comparison.png")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + (argv or sys.argv[1:]))
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, 1 torch thread)"
    md = [
        "# Chapter 10's comparison grid: stored results",
        "",
        f"- command: `{command}`",
        f"- device: {where}; torch {torch.__version__}, Python {platform.python_version()}",
        f"- date: {datetime.date.today().isoformat()}",
        f"- wall time: {wall / 60:.1f} min",
        f"- budgets: {args.budget_2d * args.scale} energy-gradient evaluations per 2-D run, "
        f"{args.budget_rbm * args.scale} per RBM run ({args.n_hidden} hidden units); {args.seeds} seeds; "
        f"measured at budget / 2^j, j = {args.checkpoints - 1}..0",
    ] + ([f"- note: {args.note}"] if args.note else []) + [
        "",
        "Every cell is the mean ± the sample standard deviation over seeds, at the full budget. The per-checkpoint",
        "numbers are in the CSV files; comparison.png plots them (compute against quality).",
        "",
    ]
    if rows2d:
        md += ["## Continuous 2-D targets", ""] + summary_2d(rows2d) + [""]
    if rows_rbm:
        md += ["## RBM on 8x8 binarized digits", ""] + summary_rbm(rows_rbm) + [""]
    (out / "comparison.md").write_text("\n".join(md))
    print(f"wrote {out} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
