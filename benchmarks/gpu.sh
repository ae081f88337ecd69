#!/usr/bin/env bash
# Every GPU measurement of issue 19 in one command, for a machine with a CUDA GPU (none was available when this
# was written, so none of these numbers has been measured yet):
#
#   bash benchmarks/gpu.sh [OUT]          # OUT: where the MNIST experiment writes its results (default /tmp/mnist_rbm_gpu)
#
# 1. the AIS, RBM and experiment tests on CUDA (the `device` fixture adds CUDA when present);
# 2. AIS, 100 chains x 14,500 temperatures on the 784 x 15 RBM (goal: <= 1 s, error <= 0.1 nats);
# 3. one CD-1 epoch of a 784 x 500 RBM on 50,000 images at batch 100 and 1000, against the naive loop
#    (goals: <= 0.05 s and <= 0.01 s);
# 4. the whole reproduction at the paper's scale (goal: <= 8 min; PCD >= -90 nats).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/mnist_rbm_gpu}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -m pytest tests/test_ais.py tests/test_rbm.py tests/test_mnist_experiment.py -q -x -k "device or contracts"
"$PY" benchmarks/bench_ais.py --device cuda --repeats 3 --reference-betas 145
for batch in 100 1000; do
    "$PY" benchmarks/bench_rbm.py --skip-digits --mnist --device cuda --mnist-batch "$batch" --mnist-repeats 3
done
time "$PY" experiments/mnist_rbm.py --preset paper --device cuda --out "$OUT" --note "benchmarks/gpu.sh"
cat "$OUT/mnist_rbm.md"
