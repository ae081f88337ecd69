"""Evaluating EBMs: log Z and log-likelihood by quadrature on a grid (1-D and 2-D).

Later chapters add annealed importance sampling (chapter 3) and classifier metrics (chapter 7).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Tuple

import torch

from .core import check_int, check_tensor

__all__ = ["grid", "log_partition_grid", "log_likelihood_grid"]

Bounds = Sequence[Tuple[float, float]]


def _check_bounds(bounds) -> list:
    try:
        bounds = [(float(lo), float(hi)) for lo, hi in bounds]
    except (TypeError, ValueError) as err:
        raise ValueError("bounds must be a list of (low, high) pairs, one per dimension, e.g. [(-5, 5), (-5, 5)].") from err
    if len(bounds) not in (1, 2):
        raise ValueError(f"quadrature on a grid is for 1-D or 2-D energies; got {len(bounds)} dimensions.")
    for lo, hi in bounds:
        if not hi > lo:
            raise ValueError(f"each bound needs low < high; got ({lo}, {hi}).")
    return bounds


def grid(bounds: Bounds, n_points: int = 200, device=None, dtype=torch.float64):
    """Cell centres of a uniform grid over ``bounds`` (midpoint rule).

    Returns points (n_points**d, d), the per-axis centre coordinates (a list of d tensors (n_points,)) and
    the volume of one cell. For d = 2 the points are ordered row-major: reshape values to
    (n_points, n_points) with axis 0 = y (second coordinate) and axis 1 = x, ready for ``contourf``.
    """
    bounds = _check_bounds(bounds)
    n_points = check_int(n_points, "n_points", minimum=2)
    axes, cell = [], 1.0
    for lo, hi in bounds:
        h = (hi - lo) / n_points
        axes.append(torch.linspace(lo + h / 2, hi - h / 2, n_points, device=device, dtype=dtype))
        cell *= h
    if len(axes) == 1:
        return axes[0][:, None], axes, cell
    yy, xx = torch.meshgrid(axes[1], axes[0], indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), axes, cell


def _energy_on(points: torch.Tensor, energy: Callable, batch_size: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for chunk in points.split(batch_size):
            out.append(energy(chunk).reshape(-1).to(torch.float64))
    e = torch.cat(out)
    if not bool(torch.isfinite(e).all()):
        raise ValueError("the energy is NaN/inf somewhere on the grid; check the model or shrink the bounds.")
    return e


def log_partition_grid(
    energy: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds,
    n_points: int = 400,
    device=None,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 65536,
) -> float:
    """log Z = log int exp(-E(x)) dx by the midpoint rule on a uniform grid over ``bounds``.

    log Z ~= logsumexp_i(-E(x_i)) + log(cell volume), summed in float64 with log-sum-exp. For a smooth
    density that has decayed to ~0 at the edges of the box this is accurate to many digits; mass outside
    the box is lost, so choose bounds that cover the density. energy: callable (batch, d) -> (batch,);
    the grid is built with ``dtype`` on ``device`` (pass the model's dtype/device for a network).
    """
    points, _, cell = grid(bounds, n_points, device=device, dtype=dtype)
    e = _energy_on(points, energy, batch_size)
    return float(torch.logsumexp(-e, dim=0)) + math.log(cell)


def log_likelihood_grid(
    energy: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bounds: Bounds,
    n_points: int = 400,
    batch_size: int = 65536,
) -> float:
    """Mean log-likelihood (1/n) sum_i [-E(x_i)] - log Z of data x: (n, d), with log Z by quadrature."""
    x = check_tensor(x, "x", ndim=2)
    if x.shape[1] != len(bounds):
        raise ValueError(f"x has {x.shape[1]} dimensions but bounds has {len(bounds)}.")
    log_z = log_partition_grid(energy, bounds, n_points, device=x.device, dtype=x.dtype, batch_size=batch_size)
    return float(_energy_on(x, energy, batch_size).neg().mean()) - log_z


# --- classifier metrics (chapter 7) ---
from typing import NamedTuple  # noqa: E402  (this section is appended; keep it self-contained)


def _check_probs(probs, name: str = "probs") -> torch.Tensor:
    probs = check_tensor(probs, name, ndim=2)
    row_sums = probs.sum(dim=1)
    if bool((probs < 0).any()) or not bool(((row_sums - 1).abs() <= 1e-4).all()):
        raise ValueError(
            f"{name} must hold one row of class probabilities per example (non-negative, each row summing to "
            f"1); got row sums in [{float(row_sums.min()):.3g}, {float(row_sums.max()):.3g}]. "
            "Pass torch.softmax(logits, dim=1), not the logits."
        )
    return probs


def _check_labels(y, n: int, n_classes: int, name: str = "y") -> torch.Tensor:
    y = check_tensor(y, name, ndim=1, floating=False)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels; got dtype {y.dtype}. Use y.long().")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels but there are {n} predictions; pass one label per example.")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name} must be class indices in [0, {n_classes - 1}]; got [{int(y.min())}, {int(y.max())}].")
    return y


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose most probable class is the label: (1/n) sum_i 1[argmax_k p_ik = y_i].

    probs: (n, K) class probabilities (or any scores with the same argmax, such as logits); y: (n,) labels in
    [0, K). Ties in a row go to the lowest class index (torch.argmax).
    """
    probs = check_tensor(probs, "probs", ndim=2)
    y = _check_labels(y, probs.shape[0], probs.shape[1]).to(probs.device)
    if probs.shape[0] == 0:
        raise ValueError("probs is empty; pass at least one example.")
    return float((probs.argmax(dim=1) == y).double().mean())


class ReliabilityBins(NamedTuple):
    """Per-bin reliability data: what a reliability diagram draws and ECE sums (empty bins hold NaN).

    edges (M+1,): bin edges 0, 1/M, ..., 1; bin m holds confidences in (edges[m], edges[m+1]] (the first
    bin also takes 0). count (M,): examples per bin. confidence (M,): their mean max-probability.
    accuracy (M,): the fraction of them classified correctly. All float64 on the CPU.
    """

    edges: torch.Tensor
    count: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor


def reliability_bins(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Bin predictions by confidence c_i = max_k p_ik into M equal-width bins B_m = ((m-1)/M, m/M].

    probs: (n, K) class probabilities; y: (n,) labels. Returns a :class:`ReliabilityBins` with the count,
    mean confidence conf(B_m) and accuracy acc(B_m) of each bin. Reference: Guo et al. 2017, "On
    calibration of modern neural networks" (M = 15 bins there and here).
    """
    probs = _check_probs(probs)
    y = _check_labels(y, probs.shape[0], probs.shape[1]).to(probs.device)
    n_bins = check_int(n_bins, "n_bins", minimum=1)
    if probs.shape[0] == 0:
        raise ValueError("probs is empty; pass at least one example.")
    conf, pred = probs.to(torch.float64).max(dim=1)
    correct = (pred == y).to(torch.float64)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=conf.device)
    # bucketize with right=False gives m with edges[m] < c <= edges[m+1] (interior edges only).
    m = torch.bucketize(conf, edges[1:-1], right=False)
    count = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(0, m, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).index_add_(0, m, conf)
    correct_sum = torch.zeros_like(count).index_add_(0, m, correct)
    nan = torch.full_like(count, float("nan"))
    filled = count > 0
    mean_conf = torch.where(filled, conf_sum / count.clamp(min=1), nan)
    mean_acc = torch.where(filled, correct_sum / count.clamp(min=1), nan)
    return ReliabilityBins(edges.cpu(), count.cpu(), mean_conf.cpu(), mean_acc.cpu())


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """ECE = sum_m |B_m|/n * |acc(B_m) - conf(B_m)| over M equal-width confidence bins (empty bins add 0).

    probs: (n, K) class probabilities; y: (n,) labels; bins as in :func:`reliability_bins`. 0 for a
    perfectly calibrated classifier, up to 1. Reference: Naeini et al. 2015; Guo et al. 2017.
    """
    bins = reliability_bins(probs, y, n_bins)
    filled = bins.count > 0
    gap = (bins.accuracy[filled] - bins.confidence[filled]).abs()
    return float((bins.count[filled] / bins.count.sum() * gap).sum())


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Area under the ROC curve of a score meant to be higher in-distribution than out of it.

    AUROC = P(s_in > s_out) + 1/2 P(s_in = s_out) over independent pairs (the Mann-Whitney U statistic
    divided by n_in n_out), computed from midranks in O(n log n): U = R_in - n_in (n_in + 1)/2, where R_in is
    the sum of the in-distribution scores' ranks in the pooled sample and tied scores share their mean rank.
    scores_in: (n_in,), scores_out: (n_out,), finite. 1 = perfect separation, 0.5 = chance.
    """
    scores_in = check_tensor(scores_in, "scores_in", ndim=1)
    scores_out = check_tensor(scores_out, "scores_out", ndim=1, like=scores_in)
    n_in, n_out = len(scores_in), len(scores_out)
    if n_in == 0 or n_out == 0:
        raise ValueError(f"AUROC needs scores on both sides; got {n_in} in-distribution and {n_out} out.")
    pooled = torch.cat([scores_in, scores_out]).to(torch.float64)
    _, group, count = torch.unique(pooled, sorted=True, return_inverse=True, return_counts=True)
    last_rank = count.cumsum(0).to(torch.float64)  # 1-based rank of the last member of each tie group
    midrank = last_rank - (count.to(torch.float64) - 1) / 2
    u = midrank[group[:n_in]].sum() - n_in * (n_in + 1) / 2
    return float(u / (n_in * n_out))


__all__ += ["accuracy", "ReliabilityBins", "reliability_bins", "expected_calibration_error", "auroc"]
