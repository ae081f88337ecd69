"""Time annealed importance sampling (ebm_teach.evaluate.ais_log_partition) on a 784 x 15 MNIST RBM.

    python benchmarks/bench_ais.py                                   # CPU: 100 chains, the standard 14,500 betas
    python benchmarks/bench_ais.py --device cuda                     # the same run on the GPU
    python benchmarks/bench_ais.py --rbm PATH.npz --data PATH.npz --chains 100 --n-betas 14500 --repeats 3

The RBM is the trained 784 x 15 MNIST RBM shipped with the package (ebm_teach.data.load_mnist_rbm; or --rbm,
an .npz with keys W (784, 15), b_visible (784,), c_hidden (15,)); the base rates come from the training split
of the shipped binarized MNIST (or --data). With 15 hidden units log Z is exact (2^15 hidden states), so the
estimate's error is printed too. The wall time reported is the
best of --repeats runs (the least disturbed by other processes), with the CPU time (user + system, all
threads) of that run; a short warm-up run comes first (CUDA context, allocator).
Goals (chapter 3's issue): <= 30 s on 2 CPU cores, <= 3 s on a GPU.
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
from ebm_teach.evaluate import AIS_STANDARD_N_BETAS, ais_log_partition  # noqa: E402
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
    runs = []
    for repeat in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        result = ais_log_partition(rbm, n_chains=args.chains, n_betas=args.n_betas, base=base, seed=repeat)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu  # log_z is a float: already synced
        runs.append((wall, cpu, result))
        print(f"  run {repeat}: {wall:7.2f} s wall, {cpu:7.2f} s CPU; log Z^ = {result.log_z:.4f} "
              f"+- {result.std_error:.4f} (error {result.log_z - exact:+.4f}), ESS {result.ess:.0f}/{args.chains}")
    wall, cpu, _ = min(runs, key=lambda r: r[0])
    errors = np.array([r[2].log_z - exact for r in runs])
    print(f"best: {wall:.2f} s wall ({1e6 * wall / args.n_betas:.0f} us per temperature), {cpu:.2f} s CPU; "
          f"mean error {errors.mean():+.4f} nats over {len(runs)} runs")


if __name__ == "__main__":
    main()
