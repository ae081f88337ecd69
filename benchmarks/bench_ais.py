"""Time annealed importance sampling (ebm_teach.evaluate.ais_log_partition) on a 784 x 15 MNIST RBM, against the
chapter's reference loop and without the background random numbers, in one run.

    python benchmarks/bench_ais.py                                   # CPU: 100 chains, the standard 14,500 betas
    python benchmarks/bench_ais.py --device cuda                     # the same run on the GPU
    python benchmarks/bench_ais.py --rbm PATH.npz --data PATH.npz --chains 100 --n-betas 14500 --repeats 3
    python benchmarks/bench_ais.py --reference-betas 0               # skip the (slow) reference loop

The RBM is the trained 784 x 15 MNIST RBM shipped with the package (ebm_teach.data.load_mnist_rbm; or --rbm,
an .npz with keys W (784, 15), b_visible (784,), c_hidden (15,)); the base rates come from the training split
of the shipped binarized MNIST (or --data). With 15 hidden units log Z is exact (2^15 hidden states), so the
estimate's error is printed too. The wall time reported is the
best of --repeats runs (the least disturbed by other processes), with the CPU time (user + system, all
threads) of that run; a short warm-up run comes first (CUDA context, allocator). Three versions run interleaved,
so that background load hits them alike, and their ratios are printed: ``ais_log_partition`` as it is (on a
CPU with more than one torch thread it draws the next block of random numbers on a second thread),
``ais_log_partition`` with ``AIS_BACKGROUND_RNG = False`` (one thread), and ``ais_reference`` (the loop chapter 3
shows: one product, one softplus and one draw after another; run with ``--reference-betas`` temperatures and
its time scaled to ``--n-betas``, since it is slow).
Goals (issue 19): <= 4 s on 2 CPU cores and <= 1 s on a GPU for 100 chains x 14,500 temperatures, error
<= 0.1 nats.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("EBM_TEACH_QUIET", "1")

from ebm_teach.data import load_binarized_mnist, load_mnist_rbm  # noqa: E402
import ebm_teach.evaluate as evaluate  # noqa: E402
from ebm_teach.evaluate import (AIS_STANDARD_N_BETAS, ais_betas, ais_log_partition, ais_reference,  # noqa: E402
                                base_rate_bias)
from ebm_teach.rbm import BernoulliRBM  # noqa: E402

def load(rbm_path, data_path, device: torch.device, dtype: torch.dtype):
    """The RBM and the base-rate data: the shipped files unless paths are given."""
    params = load_mnist_rbm(rbm_path)
    rbm = BernoulliRBM.from_arrays(params["W"], params["b"], params["c"], device=device, dtype=dtype)
    label = Path(rbm_path).name if rbm_path else "the shipped 784 x 15 MNIST RBM"
    base = load_binarized_mnist("train", path=data_path, device=device, dtype=dtype)
    return rbm, label, base, "base rates of binarized MNIST (train)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--rbm", type=Path, default=None, help="an RBM .npz (default: the shipped MNIST RBM)")
    parser.add_argument("--data", type=Path, default=None, help="binarized MNIST .npz (default: the shipped copy)")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--n-betas", type=int, default=AIS_STANDARD_N_BETAS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-betas", type=int, default=1_450,
                        help="temperatures for the reference loop, its time scaled to --n-betas (0: skip it)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads before timing (default: torch's setting; AIS itself runs "
                             "small problems on one thread, see ebm_teach.evaluate.AIS_SINGLE_THREAD_BELOW)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but this torch sees no CUDA GPU")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    rbm, label, base, base_label = load(args.rbm, args.data, device, dtype)
    exact = rbm.log_partition_exact()
    print(f"{label}: {rbm}; {base_label}; exact log Z = {exact:.4f}")
    print(f"AIS: {args.chains} chains x {args.n_betas} betas, {args.repeats} repeats, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))

    ais_log_partition(rbm, n_chains=args.chains, n_betas=50, base=base, seed=0)  # warm-up
    b_A = base_rate_bias(base)
    reference_betas = ais_betas(args.reference_betas, device=None).tolist() if args.reference_betas else None

    def fast(seed):
        return ais_log_partition(rbm, n_chains=args.chains, n_betas=args.n_betas, base=base, seed=seed)

    def one_thread_rng(seed):
        before = evaluate.AIS_BACKGROUND_RNG
        evaluate.AIS_BACKGROUND_RNG = False
        try:
            return fast(seed)
        finally:
            evaluate.AIS_BACKGROUND_RNG = before

    def reference(seed):
        log_z, _ = ais_reference(rbm, reference_betas, b_A, args.chains, generator=torch.Generator(device).manual_seed(seed))
        return log_z

    versions = {"ais_log_partition": fast, "  without background RNG": one_thread_rng}
    if reference_betas is not None:
        versions["ais_reference (scaled)"] = reference
    runs = {name: [] for name in versions}
    for repeat in range(args.repeats):
        for name, run in versions.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            result = run(repeat)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu  # log_z is a float: already synced
            if name.startswith("ais_reference"):
                scale = args.n_betas / args.reference_betas
                wall, cpu, log_z, note = wall * scale, cpu * scale, result, f" (K = {args.reference_betas}, x{scale:g})"
            else:
                log_z, note = result.log_z, f", ESS {result.ess:.0f}/{args.chains}"
            runs[name].append((wall, cpu, log_z))
            print(f"  run {repeat} {name:26s} {wall:7.2f} s wall, {cpu:7.2f} s CPU; log Z^ = {log_z:.4f} "
                  f"(error {log_z - exact:+.4f}){note}", flush=True)
    best = {name: min(r, key=lambda t: t[0]) for name, r in runs.items()}
    base_wall = best["ais_log_partition"][0]
    print(f"best of {args.repeats} (wall; ratios in one run, as the machine's load drifts):")
    for name, (wall, cpu, _) in best.items():
        errors = np.array([r[2] - exact for r in runs[name]])
        print(f"  {name:26s} {wall:7.2f} s wall ({1e6 * wall / args.n_betas:4.0f} us per temperature), {cpu:6.2f} s CPU, "
              f"{wall / base_wall:5.2f} x ais_log_partition; errors {', '.join(f'{e:+.3f}' for e in errors)} nats")


if __name__ == "__main__":
    main()
