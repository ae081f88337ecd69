"""Chapter 10's full grid: every method on every target, the same budget and the same tuning; writes the results.

    python experiments/comparison.py                                   # the CPU run stored in the repository
    python experiments/comparison.py --scale 8 --seeds 5 --device cuda # a larger run on a GPU: one command

Every method gets the same **tuning budget** and the same **evaluation budget**: each (target, method) pair is
trained at every learning rate of ``--lrs-2d`` (``compare.LEARNING_RATES_2D``) on every seed, so tuning costs
three times the evaluation budget, the same for every method. The chapter then reads, at each budget, the
learning rate with the best mean validation log-likelihood (``compare.choose_learning_rates``) and reports
the test numbers of that learning rate. Adam's learning rate is constant, so the checkpoint of a run at
budget b is the same model as a run of budget b: one run per (learning rate, seed) serves every budget.

Continuous part: the targets ring8, moons and mixture (``compare.TARGETS``), every method of
``compare.CONTINUOUS_METHODS``, ``--budget-2d`` x ``--scale`` energy-gradient evaluations each; test and
validation log-likelihood and mode-weight error by quadrature at budget / 2^j (the compute-vs-quality
curves); then, for the learning rate chosen at the full budget, chapter 4's diagnostics of 1000 Langevin
chains on each final model and the share of its mass outside the quadrature box. Binary part: 8x8 binarized
digits (a validation split carved from the training images), an RBM with ``--n-hidden`` hidden units (exact
log Z by enumeration), every method of ``compare.BINARY_METHODS`` at every rate of ``--lrs-rbm``, the exact
test and validation log-likelihood at the same checkpoints and every proxy of ``compare.rbm_measures`` (one
MMD bandwidth for all models) at the end; and two long reference runs (CD-1 and the pseudo-likelihood at
``--budget-reference`` evaluations, one seed) that show where a well-trained RBM of this size ends.

Writes into ``--out`` (default experiments/results): comparison_2d.csv and comparison_rbm.csv (one row per
checkpoint of every run; the final row of a run also holds the end-of-run measures), comparison.png and
comparison_time.png (the compute-vs-quality curves of the tuned runs, against the count and against seconds)
and comparison.md (the command, device, date, wall time and the summary tables).
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

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=1, help="multiplies every budget (default 1)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method, target and learning rate (default 3)")
    p.add_argument("--budget-2d", type=int, default=2**18, help="energy-gradient evaluations per 2-D run at scale 1")
    p.add_argument("--budget-rbm", type=int, default=2**19, help="evaluations per RBM run at scale 1")
    p.add_argument("--budget-reference", type=int, default=2**20, help="evaluations of the long RBM reference runs")
    p.add_argument("--checkpoints", type=int, default=6, help="measurements per run, at budget / 2^j (default 6)")
    p.add_argument("--lrs-2d", default=",".join(f"{v:g}" for v in compare.LEARNING_RATES_2D),
                   help="comma-separated learning rates: every 2-D method's tuning grid")
    p.add_argument("--lrs-rbm", default=",".join(f"{v:g}" for v in compare.LEARNING_RATES_RBM),
                   help="comma-separated learning rates: every RBM method's tuning grid")
    p.add_argument("--targets", default=",".join(compare.TARGETS), help="comma-separated 2-D targets")
    p.add_argument("--methods", default=",".join(compare.CONTINUOUS_METHODS), help="comma-separated 2-D methods")
    p.add_argument("--rbm-methods", default=",".join(compare.BINARY_METHODS), help="comma-separated RBM methods")
    p.add_argument("--n-hidden", type=int, default=16, help="hidden units of the RBM (<= 20 for exact log Z)")
    p.add_argument("--n-chains", type=int, default=1000, help="Langevin chains per final 2-D model (default 1000)")
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


def nominal_budgets(budget: int, n_checkpoints: int):
    """The budgets at which a run is measured: budget / 2^j, j = n_checkpoints - 1, ..., 0."""
    return [budget >> j for j in range(n_checkpoints - 1, -1, -1)]


def run_2d(args, device):
    rows = []
    budget = args.budget_2d * args.scale
    budgets = nominal_budgets(budget, args.checkpoints)
    lrs = [float(v) for v in args.lrs_2d.split(",")]
    for name in args.targets.split(","):
        target = compare.make_target(name, device=device)
        h = compare.median_bandwidth(target.test[: len(target.test) // 2], target.test[len(target.test) // 2 :])
        floor = compare.mode_error_floor(target.true_masses, args.n_chains, generator=torch.Generator().manual_seed(0))
        for method in args.methods.split(","):
            start = time.perf_counter()
            runs, mine = {}, []
            for lr in lrs:
                for seed in range(args.seeds):
                    run = compare.fit_2d(method, target, seed, budget, lr=lr, n_checkpoints=args.checkpoints)
                    assert len(run["records"]) == len(budgets), (method, lr, seed)
                    runs[lr, seed] = run
                    for b, rec in zip(budgets, run["records"]):
                        mine.append({"target": name, "method": method, "lr": lr, "seed": seed, "budget": b,
                                     "true_ll": target.true_test_ll,
                                     **{k: rec[k] for k in ("evaluations", "steps", "seconds", "val_ll", "ll", "mode_error")},
                                     "masses": "/".join(f"{v:.4f}" for v in rec["masses"])})
            chosen = compare.choose_learning_rates([r for r in mine if r["budget"] == budget])[name, method, budget]
            for seed in range(args.seeds):
                energy = runs[chosen, seed]["energy"]
                diag = compare.langevin_diagnostics(energy, target, n_chains=args.n_chains,
                                                    generator=make_generator(100 + seed, device), bandwidth=h)
                final = next(r for r in mine if r["lr"] == chosen and r["seed"] == seed and r["budget"] == budget)
                final.update({k: diag[k] for k in ("rhat", "ess", "crossed", "gap", "mmd2", "sample_mode_error")})
                final.update({"floor": floor, "outside": compare.mass_outside_box(energy, target)})
            rows += mine
            sel = [r for r in mine if r["lr"] == chosen and r["budget"] == budget]
            ll = compare.mean_spread([r["ll"] for r in sel])
            me = compare.mean_spread([r["mode_error"] for r in sel])
            print(f"{name:8s} {method:13s} lr {chosen:g}: LL {ll[0]:7.3f} ± {ll[1]:.3f} (true {target.true_test_ll:.3f}), "
                  f"mode error {me[0]:.3f}, {time.perf_counter() - start:5.1f} s", flush=True)
    return rows


def run_rbm(args, device):
    rows = []
    budget = args.budget_rbm * args.scale
    budgets = nominal_budgets(budget, args.checkpoints)
    lrs = [float(v) for v in args.lrs_rbm.split(",")]
    x_fit, x_val, x_test = compare.digits_split(device)
    h = compare.median_bandwidth(x_test[: len(x_test) // 2], x_test[len(x_test) // 2 :])
    for method in args.rbm_methods.split(","):
        start = time.perf_counter()
        for lr in lrs:
            for seed in range(args.seeds):
                run = compare.fit_rbm(method, x_fit, seed, budget, lr=lr, checkpoints=budgets[:-1], v_test=x_test,
                                      v_val=x_val)
                m = compare.rbm_measures(run["rbm"], x_test, generator=make_generator(100 + seed, device), bandwidth=h)
                for i, (b, rec) in enumerate(zip(budgets, run["records"])):
                    row = {"method": method, "lr": lr, "seed": seed, "budget": b,
                           **{k: rec[k] for k in ("evaluations", "steps", "seconds", "val_ll", "ll")}}
                    if i == len(budgets) - 1:
                        row.update({k: m[k] for k in ("recon", "pl", "gap", "mmd2", "log_z")})
                        if "c" in run:
                            row["c_minus_log_z"] = run["c"] - m["log_z"]
                    rows.append(row)
        print(f"RBM {method:18s} {len(lrs)} rates x {args.seeds} seeds, {time.perf_counter() - start:5.1f} s", flush=True)
    reference = args.budget_reference * args.scale
    for method in ("CD-1", "pseudo-likelihood"):
        start = time.perf_counter()
        run = compare.fit_rbm(method, x_fit, 0, reference, lr=min(lrs), v_test=x_test, v_val=x_val)
        rec = run["records"][-1]
        rows.append({"method": f"reference {method}", "lr": min(lrs), "seed": 0, "budget": reference,
                     **{k: rec[k] for k in ("evaluations", "steps", "seconds", "val_ll", "ll")}})
        print(f"RBM reference {method}: LL {rec['ll']:.3f} after {reference} evaluations, "
              f"{time.perf_counter() - start:5.1f} s", flush=True)
    return rows


def summary_2d(rows):
    lines = ["Tuned runs (the learning rate with the best mean validation LL at the full budget):", "",
             "| target | method | lr | test LL | mode error | samples' mode error | R-hat | crossed | MMD² | outside |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    finals = [r for r in rows if "rhat" in r]
    for target in dict.fromkeys(r["target"] for r in finals):
        first = next(r for r in finals if r["target"] == target)
        lines.append(f"| {target} | *true density* | | {first['true_ll']:.3f} | 0 | floor {first['floor']:.3f} | | | | |")
        for method in dict.fromkeys(r["method"] for r in finals):
            sel = [r for r in finals if r["target"] == target and r["method"] == method]
            cells = [f"{sel[0]['lr']:g}"]
            for key in ("ll", "mode_error", "sample_mode_error", "rhat", "crossed", "mmd2", "outside"):
                m, s = compare.mean_spread([r[key] for r in sel])
                cells.append(f"{m:.3g} ± {s:.2g}")
            lines.append(f"| {target} | {method} | " + " | ".join(cells) + " |")
    budget = max(r["budget"] for r in rows)
    lrs = sorted(dict.fromkeys(r["lr"] for r in rows))
    lines += ["", f"The tuning sweep: mean validation LL over seeds at {budget} evaluations, per learning rate:", "",
              "| target | method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |", "|---|---|" + "---|" * len(lrs)]
    for target in dict.fromkeys(r["target"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = [compare.mean_spread([r["val_ll"] for r in rows if r["target"] == target and r["method"] == method
                                          and r["lr"] == lr and r["budget"] == budget])[0] for lr in lrs]
            lines.append(f"| {target} | {method} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return lines


def summary_rbm(rows):
    budget = max(r["budget"] for r in rows if not r["method"].startswith("reference"))
    finals = [r for r in rows if "recon" in r]
    chosen = compare.choose_learning_rates(finals, group=("method",))
    lines = ["Tuned runs (the learning rate with the best mean validation LL at the full budget):", "",
             "| method | lr | exact test LL | reconstruction error | pseudo-LL | energy gap | MMD² |",
             "|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in finals):
        sel = [r for r in finals if r["method"] == method and r["lr"] == chosen[(method,)]]
        cells = [f"{chosen[(method,)]:g}"]
        for key in ("ll", "recon", "pl", "gap", "mmd2"):
            m, s = compare.mean_spread([r[key] for r in sel])
            cells.append(f"{m:.4g} ± {s:.2g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lrs = sorted(dict.fromkeys(r["lr"] for r in finals))
    lines += ["", f"The tuning sweep: mean validation LL over seeds at {budget} evaluations, per learning rate:", "",
              "| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for method in dict.fromkeys(r["method"] for r in finals):
        cells = [compare.mean_spread([r["val_ll"] for r in finals if r["method"] == method and r["lr"] == lr])[0]
                 for lr in lrs]
        lines.append(f"| {method} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    for r in rows:
        if r["method"].startswith("reference"):
            lines.append(f"\n{r['method']}: exact test LL {r['ll']:.3f} after {int(r['evaluations'])} evaluations "
                         f"(lr {r['lr']:g}, seed 0, {r['seconds']:.0f} s)")
    return lines


def figure(rows2d, rows_rbm, path: Path, x: str = "evaluations"):
    """The tuned runs' test LL against ``x`` (the count, or "seconds"): one panel per data set, the legend in
    the last panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ebm_teach.plotting.compare import method_colours, plot_compute_vs_quality

    tuned2d = compare.tuned_rows(rows2d) if rows2d else []
    rbm = [dict(r, target="digits") for r in rows_rbm if not r["method"].startswith("reference")]
    tuned_rbm = compare.tuned_rows(rbm) if rbm else []
    sets = list(dict.fromkeys(r["target"] for r in tuned2d)) + (["digits"] if tuned_rbm else [])
    n_cols = 3
    n_rows = (len(sets) + n_cols) // n_cols  # one spare panel for the legend
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(8, 2.9 * n_rows), squeeze=False)
    colours = method_colours(compare.CONTINUOUS_METHODS + compare.BINARY_METHODS)
    for ax, name in zip(axes.flat, sets):
        sel = [r for r in (tuned_rbm if name == "digits" else tuned2d) if r["target"] == name]
        ref = sel[0].get("true_ll")
        finals = [r["ll"] for r in sel if r["budget"] == max(s["budget"] for s in sel)]
        ylim = None if ref is None else (max(min(finals) - 0.4, ref - 2.5), ref + 0.2)
        plot_compute_vs_quality(sel, x, ax=ax, reference=ref, colours=colours, legend=False, ylim=ylim,
                                title="RBM, digits" if name == "digits" else name, ylabel="test LL (nats)")
    for ax in axes.flat[len(sets):]:
        ax.axis("off")
    shown = [m for m in colours if any(r["method"] == m for r in tuned2d + tuned_rbm)]
    handles = [plt.Line2D([], [], color=colours[m], marker="o", ms=4, label=m) for m in shown]
    handles.append(plt.Line2D([], [], color="k", ls="--", lw=1, label="true density"))
    axes.flat[len(sets)].legend(handles=handles, loc="center", fontsize=9, frameon=False, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figures(rows2d, rows_rbm, out: Path):
    figure(rows2d, rows_rbm, out / "comparison.png")
    figure(rows2d, rows_rbm, out / "comparison_time.png", x="seconds")


def main(argv=None):
    args = parse_args(argv)
    device = get_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # thousands of tiny operations: see DEVELOPING.md, "CPU threads"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        rbm_csv = out / "comparison_rbm.csv"
        figures(compare.read_results(out / "comparison_2d.csv"),
                compare.read_results(rbm_csv) if rbm_csv.is_file() else [], out)
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
        figures(rows2d, rows_rbm, out)
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
        (f"- budgets: {args.budget_2d * args.scale} energy-gradient evaluations per 2-D run, "
        f"{args.budget_rbm * args.scale} per RBM run ({args.n_hidden} hidden units); {args.seeds} seeds; "
        f"measured at budget / 2^j, j = {args.checkpoints - 1}..0"),
        (f"- tuning: every method at learning rates {args.lrs_2d} (2-D) and {args.lrs_rbm} (RBM), every seed; "
        "the chapter reports the rate with the best mean validation LL at each budget"),
    ] + ([f"- note: {args.note}"] if args.note else []) + [
        "",
        "Every cell is the mean ± the sample standard deviation over seeds, at the full budget. The per-checkpoint",
        "numbers of every learning rate are in the CSV files; comparison.png and comparison_time.png plot the tuned",
        "runs (compute against quality, by count and by seconds).",
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
