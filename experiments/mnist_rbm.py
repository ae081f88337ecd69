"""Salakhutdinov & Murray (2008) on binarized MNIST: 784 x 500 RBMs trained with CD-1, CD-3, CD-25 and PCD, their
test log-likelihood estimated by AIS with the paper's settings, and bracketed from below by RAISE.

    python experiments/mnist_rbm.py --preset cpu                   # the run stored in the repository (CPU, ~25 min)
    python experiments/mnist_rbm.py --preset paper --device cuda   # the paper's scale on a GPU: one command
    python experiments/mnist_rbm.py --preset test --out /tmp/x     # seconds: what the test suite runs
    python experiments/mnist_rbm.py --replot                       # redraw the figure from the stored CSV

**Data.** The fixed binarization of MNIST shipped with the package (``ebm_teach.data.load_binarized_mnist``):
its train and valid splits together are MNIST's 60,000 training images, on which the paper trained; the
10,000 test images are the test set. **Models.** 784 visible and ``--n-hidden`` (500) hidden units, visible
biases started at the pixels' log-odds, W ~ N(0, 0.01^2), minibatches of 100, momentum 0.5 for five epochs
then ``--momentum`` (0.9), weight decay 2e-4 (the habits of Hinton's 2010 guide and of Hinton & Salakhutdinov's
2006 code; the paper does not list its own, so these are ours). CD-k uses a constant step size
(``--step-size``, 0.05); PCD (100 persistent chains, one Gibbs step per update) starts at ``--pcd-step-size``
(0.02: at 0.05 its chains lagged in pilot runs) and lets it decay linearly to 0 over the run, as stochastic
maximum likelihood needs (Robbins-Monro; Tieleman 2008).

**Estimates and what each one bounds.**

- *AIS* (Neal 2001; Salakhutdinov & Murray 2008, section 4): base-rate base RBM, the paper's 14,500
  temperatures (``ebm_teach.evaluate.ais_betas``), ``--ais-runs`` independent runs of ``--ais-chains`` (100)
  chains each. Z^ is unbiased, so by Jensen log Z^ is a stochastic *lower* bound on log Z, and the test
  log-likelihood mean(-F(v)) - log Z^ a stochastic *upper* bound on the RBM's: optimistic. The spread over
  runs is printed; it does not show a bias shared by all runs (a path too coarse for the model).
- *RAISE* (Burda, Grosse & Salakhutdinov 2015, ``ebm_teach.evaluate.raise_log_likelihood``): reverse AIS
  from each test image, one chain each, ``--raise-betas`` temperatures. It is a stochastic *lower* bound on
  the log-likelihood of the *annealing model* (the distribution of AIS's final state), not of the RBM; it
  is conservative for the RBM as far as the annealing model is the worse model of the test digits, which
  Burda et al. found on every model they checked and which holds exactly for data drawn from the RBM
  itself (Gibbs' inequality). It runs on ``--raise-images`` test images (all 10,000 at the paper preset);
  on a subset, the full-test-set figure is the AIS estimate minus the mean AIS - RAISE gap on the subset
  (paired, so its standard error is small).
- *Reverse AIS from exact samples* (bidirectional Monte Carlo, Grosse, Ghahramani & Adams 2015), a
  stochastic *upper* bound on log Z and so a rigorous stochastic lower bound on the RBM's log-likelihood,
  needs exact samples of the RBM: possible here only when the hidden layer can be enumerated
  (``--n-hidden`` <= 20), where the exact log Z is computed too. At 500 hidden units RAISE is the
  conservative side.

**Published numbers** (test log-likelihood in nats, Salakhutdinov & Murray 2008, Table 2, RBMs with 500 hidden
units trained with CD-1, CD-3 and CD-25, AIS with 14,500 temperatures and 100 runs): CD-1 -125.53, CD-3
-105.50, CD-25 -86.34. The paper reports no PCD model; Tieleman (2008) introduced PCD the same year.

**Presets.** ``paper``: all 60,000 images, 50 epochs, AIS with 14,500 temperatures in 3 runs of 100
chains, RAISE on all 10,000 test images with 14,500 temperatures; not yet run (no GPU was available when this
was written; its time is unmeasured). ``cpu``, the run stored in the repository (what 2 shared CPU cores do in
about half an hour, on one torch thread): the same models, AIS and RAISE path, but 5 epochs (the momentum
never reaches 0.9) and RAISE on 100 test images. ``test``: 784 x 8 RBMs on 1,000 images, minibatches of 20,
seconds; with 8 hidden units the exact log Z and exact samples are available, so reverse AIS runs too. Any
setting can be overridden (``--epochs``, ``--n-hidden``, ``--threads``, ...).

Writes into ``--out`` (default experiments/results): ``mnist_rbm.csv`` (one row per model), ``mnist_rbm.md``
(the command, device, date, wall time, settings, and the table next to the published numbers) and
``mnist_rbm.png`` (the brackets against the published values).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EBM_TEACH_QUIET", "1")

from ebm_teach import get_device, make_generator  # noqa: E402
from ebm_teach.data import load_binarized_mnist  # noqa: E402
from ebm_teach.evaluate import (ais_log_partition, base_rate_bias, log_mean_exp, raise_log_likelihood,  # noqa: E402
                                reverse_ais_log_partition)
from ebm_teach.rbm import BernoulliRBM  # noqa: E402

#: Salakhutdinov & Murray (2008), Table 2: average test log-probability (nats) of RBMs with 500 hidden units.
PUBLISHED = {"CD-1": -125.53, "CD-3": -105.50, "CD-25": -86.34}
PUBLISHED_SOURCE = "Salakhutdinov & Murray (2008), Table 2 (500 hidden units; AIS, 14,500 temperatures, 100 runs)"

#: name -> (Gibbs steps k, persistent)
METHODS = {"CD-1": (1, False), "CD-3": (3, False), "CD-25": (25, False), "PCD": (1, True)}

PRESETS = {
    "paper": dict(n_hidden=500, epochs=50, train_images=60_000, ais_betas=14_500, ais_chains=100, ais_runs=3,
                  raise_images=10_000, raise_betas=14_500, threads=0, batch_size=100),
    "cpu": dict(n_hidden=500, epochs=5, train_images=60_000, ais_betas=14_500, ais_chains=100, ais_runs=3,
                raise_images=100, raise_betas=14_500, threads=1, batch_size=100),
    "test": dict(n_hidden=8, epochs=2, train_images=1_000, ais_betas=300, ais_chains=20, ais_runs=2,
                 raise_images=40, raise_betas=300, threads=0, batch_size=20),
}

EXACT_HIDDEN = 20  # up to this many hidden units: exact log Z, exact samples, reverse AIS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="settings to start from (default cpu)")
    for name, kind in [("n_hidden", int), ("epochs", int), ("train_images", int), ("ais_betas", int),
                       ("ais_chains", int), ("ais_runs", int), ("raise_images", int), ("raise_betas", int),
                       ("threads", int), ("batch_size", int)]:
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"override the preset's {name}")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from " + ", ".join(METHODS))
    p.add_argument("--step-size", type=float, default=0.05, help="CD-k's (constant) step size")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum after the first 5 epochs (0.5 before; 0: none)")
    p.add_argument("--pcd-step-size", type=float, default=0.02, help="PCD's starting step size, decaying to 0")
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: $EBM_TEACH_DEVICE, else CUDA if present)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"), help="output folder")
    p.add_argument("--replot", action="store_true", help="only redraw mnist_rbm.png from mnist_rbm.csv in --out")
    p.add_argument("--note", default="", help="a sentence for mnist_rbm.md (e.g. how loaded the machine was)")
    args = p.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    return args


def load_data(args, device):
    """Training images (train + valid, shuffled, the first --train-images), test images, all on ``device``."""
    train = torch.cat([load_binarized_mnist("train"), load_binarized_mnist("valid")])
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    train = train[order[: args.train_images]].to(device)
    return train, load_binarized_mnist("test", device=device)


def train(method: str, args, x_train, device):
    """One RBM trained with ``method``; returns it and the training seconds (from fit's own clock)."""
    k, persistent = METHODS[method]
    epochs = args.epochs
    rbm = BernoulliRBM(784, args.n_hidden, device=device, seed=args.seed)
    rbm.init_visible_biases(x_train)
    step = (lambda e: args.pcd_step_size * (1 - (e - 1) / epochs)) if persistent else args.step_size
    momentum = (lambda e: 0.5 if e <= 5 else args.momentum) if args.momentum > 0 else 0.0
    history = rbm.fit(x_train, n_epochs=epochs, batch_size=args.batch_size, step_size=step, k=k,
                      persistent=persistent, n_chains=args.batch_size if persistent else None,
                      momentum=momentum, weight_decay=args.weight_decay,
                      generator=make_generator(args.seed + 1, device))
    return rbm, history["seconds"][-1]


def neg_free_energy(rbm, v) -> torch.Tensor:
    """-F(v) in float64, (n,)."""
    v, W, b, c = v.double(), rbm.W.double(), rbm.b.double(), rbm.c.double()
    return v @ b + torch.nn.functional.softplus(v @ W + c).sum(1)


def evaluate(rbm, args, x_train, x_test, device, seed: int) -> dict:
    """Every estimate of one model's log-likelihood (see the module docstring for what each one bounds)."""
    row = {}
    nf_test, nf_train = neg_free_energy(rbm, x_test), neg_free_energy(rbm, x_train[:10_000])
    start = time.perf_counter()
    ais = ais_log_partition(rbm, n_chains=args.ais_runs * args.ais_chains, n_betas=args.ais_betas, base=x_train,
                            generator=make_generator(seed, device))
    per_run = ais.log_z_base + log_mean_exp(ais.log_weights.view(args.ais_runs, args.ais_chains), dim=1)
    row["ais_seconds"] = time.perf_counter() - start
    runs_ll = float(nf_test.mean()) - per_run
    row.update(log_z=ais.log_z, log_z_se=ais.std_error, ais_ess=ais.ess,
               log_z_runs=" ".join(f"{x:.3f}" for x in per_run.tolist()),
               log_z_run_sd=float(per_run.std()) if args.ais_runs > 1 else float("nan"),
               test_ll_ais=float(nf_test.mean()) - ais.log_z, train_ll_ais=float(nf_train.mean()) - ais.log_z,
               test_ll_ais_run_min=float(runs_ll.min()), test_ll_ais_run_max=float(runs_ll.max()))
    start = time.perf_counter()
    pick = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[: args.raise_images]
    subset = x_test[pick.to(device)]
    rse = raise_log_likelihood(rbm, subset, n_chains=1, n_betas=args.raise_betas, base=x_train,
                               generator=make_generator(seed + 1, device), batch_size=2_000)
    row["raise_seconds"] = time.perf_counter() - start
    ais_on_subset = nf_test[pick.to(device)] - ais.log_z
    gap = ais_on_subset - rse.log_p  # paired: the AIS estimate minus RAISE, image by image
    gap_se = float(gap.std()) / math.sqrt(len(gap)) if len(gap) > 1 else float("nan")
    row.update(raise_images=len(subset), raise_ll_subset=rse.log_likelihood, ais_ll_subset=float(ais_on_subset.mean()),
               raise_gap=float(gap.mean()), raise_gap_se=gap_se, test_ll_conservative=row["test_ll_ais"] - float(gap.mean()))
    if args.n_hidden <= EXACT_HIDDEN:  # small enough to enumerate: the exact answer and exact samples
        exact = rbm.log_partition_exact()
        samples, _ = rbm.sample_exact(args.ais_chains, generator=make_generator(seed + 2, device))
        rev = reverse_ais_log_partition(rbm, samples, n_betas=args.ais_betas, base=x_train,
                                        generator=make_generator(seed + 3, device))
        row.update(exact_log_z=exact, exact_test_ll=float(nf_test.mean()) - exact, reverse_log_z=rev.log_z,
                   reverse_log_z_se=rev.std_error, test_ll_reverse=float(nf_test.mean()) - rev.log_z,
                   exact_ll_subset=float(nf_test[pick.to(device)].mean()) - exact)
    return row


def write_csv(path: Path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in r.items()})


def read_csv(path: Path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def plot(rows, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    from ebm_teach.plotting.mnist import plot_likelihood_brackets

    ax = plot_likelihood_brackets(rows, PUBLISHED, title=title)
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s))"


def markdown(args, rows, device, wall: float, command: str) -> str:
    fmt = lambda x, spec=".2f": "" if x in ("", None) or (isinstance(x, float) and math.isnan(x)) else format(float(x), spec)  # noqa: E731
    lines = [
        "# MNIST RBMs: Salakhutdinov & Murray (2008) reproduced, with a bracket",
        "",
        f"- command: `{command}`",
        f"- device: {device_name(device)}; torch {torch.__version__}",
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; wall time {wall / 60:.1f} min",
        f"- preset `{args.preset}`: 784 x {args.n_hidden} RBMs, {args.train_images:,} training images, {args.epochs} "
        f"epochs, minibatches of {args.batch_size}, step size {args.step_size:g} for CD-k and from "
        f"{args.pcd_step_size:g} decaying linearly to 0 for PCD ({args.batch_size} persistent chains), momentum 0.5 "
        f"(then {args.momentum:g} after epoch 5), weight decay {args.weight_decay:g}; AIS: base rates, {args.ais_betas:,} temperatures, "
        f"{args.ais_runs} runs of {args.ais_chains} chains; RAISE: {args.raise_images:,} test images, one chain each, "
        f"{args.raise_betas:,} temperatures; seed {args.seed}",
    ]
    if args.note:
        lines.append(f"- note: {args.note}")
    lines += [
        "",
        "Test log-likelihood, nats per image (10,000 test images). *AIS* is optimistic (log Z^ is a stochastic lower "
        "bound on log Z); *RAISE* is conservative (a stochastic lower bound on the log-likelihood of the annealing "
        "model, below the RBM's as far as that model is the worse one). The true value of each RBM lies, with high "
        "probability, between them or close to them.",
        "",
        "| model | published | AIS (optimistic) | AIS runs: lowest, highest | RAISE-based (conservative) | gap (s.e.) "
        "| train LL (AIS) | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pub = PUBLISHED.get(r["method"])
        lines.append(
            f"| {r['method']} | {fmt(pub) if pub is not None else 'not reported'} | {fmt(r['test_ll_ais'])} "
            f"| {fmt(r['test_ll_ais_run_min'])}, {fmt(r['test_ll_ais_run_max'])} | {fmt(r['test_ll_conservative'])} "
            f"| {fmt(r['raise_gap'])} ({fmt(r['raise_gap_se'])}) | {fmt(r['train_ll_ais'])} | {fmt(r['train_seconds'], '.0f')} |")
    if any("exact_log_z" in r for r in rows):
        lines += ["", "Small enough to enumerate: exact values and reverse AIS from exact samples.", "",
                  "| model | exact log Z | AIS log Z | reverse AIS log Z | exact test LL |", "|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['method']} | {fmt(r['exact_log_z'], '.3f')} | {fmt(r['log_z'], '.3f')} "
                         f"| {fmt(r['reverse_log_z'], '.3f')} | {fmt(r['exact_test_ll'])} |")
    lines += ["", f"Published: {PUBLISHED_SOURCE}.", "",
              "Per model: log Z by AIS (all chains pooled) and its standard error, the ESS, the seconds of training, "
              "AIS and RAISE are in `mnist_rbm.csv`; the figure is `mnist_rbm.png`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(read_csv(out / "mnist_rbm.csv"), out / "mnist_rbm.png", "stored run")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    command = "python experiments/mnist_rbm.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    start = time.perf_counter()
    x_train, x_test = load_data(args, device)
    print(f"{len(x_train):,} training and {len(x_test):,} test images on {device_name(device)}", flush=True)
    rows = []
    for i, method in enumerate(args.methods.split(",")):
        rbm, seconds = train(method, args, x_train, device)
        row = {"method": method, "k": METHODS[method][0], "persistent": METHODS[method][1], "n_hidden": args.n_hidden,
               "epochs": args.epochs, "train_images": len(x_train), "train_seconds": seconds}
        row.update(evaluate(rbm, args, x_train, x_test, device, seed=1000 * (i + 1) + args.seed))
        row["published_test_ll"] = PUBLISHED.get(method, float("nan"))
        rows.append(row)
        print(f"{method:6s} trained {seconds:7.1f} s; test LL: AIS {row['test_ll_ais']:8.2f} (runs {row['log_z_runs']}), "
              f"RAISE-based {row['test_ll_conservative']:8.2f}; AIS {row['ais_seconds']:.1f} s, "
              f"RAISE {row['raise_seconds']:.1f} s", flush=True)
    wall = time.perf_counter() - start
    write_csv(out / "mnist_rbm.csv", rows)
    (out / "mnist_rbm.md").write_text(markdown(args, rows, device, wall, command))
    plot(rows, out / "mnist_rbm.png", f"preset {args.preset}, {args.epochs} epochs, {device.type}")
    print(f"wrote {out / 'mnist_rbm.csv'}, .md, .png in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
