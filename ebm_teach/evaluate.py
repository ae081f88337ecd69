"""Evaluating EBMs: log Z and log-likelihood by quadrature on a grid (1-D and 2-D, chapter 1), annealed
importance sampling for RBMs (chapter 3) run forwards and backwards (reverse AIS from exact samples and RAISE,
chapter 11), and classifier metrics: accuracy, calibration, AUROC (chapter 7).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F_

from .core import check_binary, check_int, check_probability, check_tensor, make_generator, single_thread_if_small

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


# --- annealed importance sampling (chapter 3), run forwards and backwards (chapter 11) ---


#: The annealing schedule of Salakhutdinov & Murray (2008): 500 steps of 1e-3 from 0 to 0.5, 4,000 of 1e-4
#: up to 0.9 and 10,000 of 1e-5 up to 1; :func:`ais_betas` keeps these proportions for any number of steps.
AIS_SEGMENTS = ((0.5, 500), (0.9, 4_000), (1.0, 10_000))
AIS_STANDARD_N_BETAS = sum(n for _, n in AIS_SEGMENTS)  # 14,500

#: On the CPU, AIS runs on one thread while n_chains * n_visible * (n_hidden + 1) is below this many
#: multiply-adds: each temperature is two small matrix products and the random numbers (one stream). Measured
#: with 100 chains of a 784 x 15 RBM on 2 cores: a second thread saved 10 % of the wall time at twice the CPU
#: time on an idle machine, and made it over 10x slower while another process held the other core.
#: 0 keeps torch's setting.
AIS_SINGLE_THREAD_BELOW = 2**24

#: On a CPU where torch may use more than one thread, the annealing loop draws the uniform random numbers of
#: the next block of temperatures on a second thread while the current block is used. Drawing them is serial
#: and, for an RBM with few hidden units, most of the work (100 chains of a 784 x 15 RBM need 80,000 per
#: temperature, 3 ns each). The numbers, their order and so the results are the same either way (tested);
#: False keeps everything on the calling thread. No effect on a GPU, or where torch uses one thread.
AIS_BACKGROUND_RNG = True


class AISResult(NamedTuple):
    """What :func:`ais_log_partition` (or :func:`reverse_ais_log_partition`) measured.

    log_z: the estimate log Z^ (a float, nats): log Z_A + log((1/M) sum_m w_m) for AIS, a stochastic lower
        bound; log Z_A - log((1/M) sum_m r_m) for reverse AIS, a stochastic upper bound when its chains start
        at exact samples of the RBM.
    std_error: its delta-method standard error std(w) / (mean(w) sqrt(M)) (r for reverse AIS): the spread of
        log Z^ over repeated runs while it is small (say < 0.3); a large value means too few temperatures or
        chains.
    log_z_lower, log_z_upper: log Z^ moved by the weights' mean -+ 3 sigma^, sigma^ = std(w) / sqrt(M) (the
        interval Salakhutdinov & Murray report); a bound is -inf or +inf when mean - 3 sigma^ <= 0.
    ess: the effective sample size (sum w)^2 / sum w^2 in [1, M] of the importance weights.
    log_z_base: log Z_A of the base distribution (beta = 0).
    log_weights: (M,) float64 tensor of the log importance weights log w_m (log r_m, each r_m an unbiased
        estimate of Z_A / Z, for reverse AIS), on the RBM's device.
    """

    log_z: float
    std_error: float
    log_z_lower: float
    log_z_upper: float
    ess: float
    log_z_base: float
    log_weights: torch.Tensor


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log((1/n) sum_i exp(x_i)) along ``dim``, computed stably as m + log(mean(exp(x - m))) with m = max x.

    x: a tensor with n > 0 entries along ``dim``; returns x with ``dim`` removed. Entries of -inf are allowed
    (they contribute 0); +inf or NaN give +inf / NaN.
    """
    x = check_tensor(x, "x", finite=False)
    if x.dim() == 0 or x.shape[dim] == 0:
        raise ValueError(f"log_mean_exp needs at least one entry along dim {dim}; got shape {tuple(x.shape)}.")
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


def ais_betas(n_betas: int = AIS_STANDARD_N_BETAS, device=None) -> torch.Tensor:
    """The inverse temperatures 0 = beta_0 < beta_1 < ... < beta_K = 1 of an AIS run with K = ``n_betas`` steps.

    Salakhutdinov & Murray's (2008) schedule, scaled to K: K * 500/14,500 equal steps from 0 to 0.5,
    K * 4,000/14,500 from 0.5 to 0.9 and the rest (K * 10,000/14,500) from 0.9 to 1: the distributions change
    fastest near beta = 1, where the RBM's couplings reach full strength. n_betas = 14,500 gives their
    schedule exactly; below 3 steps the betas are equally spaced. Returns (K + 1,) float64.
    """
    n_betas = check_int(n_betas, "n_betas", minimum=1)
    if n_betas < len(AIS_SEGMENTS):
        return torch.linspace(0.0, 1.0, n_betas + 1, dtype=torch.float64, device=device)
    counts = [max(1, round(n_betas * n / AIS_STANDARD_N_BETAS)) for _, n in AIS_SEGMENTS[:-1]]
    counts.append(n_betas - sum(counts))
    parts, start = [], 0.0
    for (stop, _), count in zip(AIS_SEGMENTS, counts):
        parts.append(torch.linspace(start, stop, count + 1, dtype=torch.float64, device=device)[:-1])
        start = stop
    parts.append(torch.ones(1, dtype=torch.float64, device=device))
    return torch.cat(parts)


def base_rate_bias(v, eps: float = 1e-3) -> torch.Tensor:
    """Visible biases of the base-rate RBM (W = 0) fitted to binary data: b_A,i = log(p_i / (1 - p_i)).

    p_i is the mean of pixel i over the rows of v: (n, n_visible) in {0, 1}, clipped to [eps, 1 - eps] so that
    a pixel that is never (or always) on gets a large finite bias. The base-rate RBM p_A(v) = prod_i
    sigma(b_A,i)^v_i (1 - sigma(b_A,i))^(1 - v_i) is the maximum-likelihood model with independent pixels.
    Returns (n_visible,) in v's dtype and device. Salakhutdinov & Murray (2008), section 4.2.
    """
    # the binary check also rejects NaN and inf (neither is 0 or 1): no separate pass for finiteness
    v = check_binary(check_tensor(v, "v", ndim=2, finite=False), "v")
    if len(v) == 0:
        raise ValueError("v is empty; pass the training data (n, n_visible) the base rates are fitted to.")
    eps = check_probability(eps, "eps", allow_zero=False)
    if eps >= 0.5:
        raise ValueError(f"eps must be < 0.5 (it clips the pixel means to [eps, 1 - eps]); got {eps}.")
    p = v.mean(0).clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def _check_rbm(rbm):
    try:
        W, b, c = rbm.W, rbm.b, rbm.c
    except AttributeError as err:
        raise TypeError(
            f"rbm must be a BernoulliRBM (an object with W, b and c); got {type(rbm).__name__}."
        ) from err
    W = check_tensor(W, "rbm.W", ndim=2)
    n_visible, n_hidden = W.shape
    b = check_tensor(b, "rbm.b", shape=(n_visible,), like=W)
    c = check_tensor(c, "rbm.c", shape=(n_hidden,), like=W)
    return W.detach(), b.detach(), c.detach()


def ais_base_bias(base, n_visible: int, like: torch.Tensor) -> torch.Tensor:
    """The visible biases b_A of an AIS base RBM (W = 0), from any of the forms ``base`` may take.

    base: "uniform" (b_A = 0), a (n_visible,) vector b_A, or binary data (n, n_visible) whose base rates give
    b_A (:func:`base_rate_bias`). Returns (n_visible,) on ``like``'s device and dtype. Shared by the AIS of
    RBMs here and of deep Boltzmann machines (:mod:`ebm_teach.dbm`).
    """
    if isinstance(base, str):
        if base != "uniform":
            raise ValueError(
                f"base must be 'uniform', a (n_visible,) vector of base biases b_A, or the binary training data "
                f"(n, n_visible) to fit the base rates to; got the string {base!r}."
            )
        return torch.zeros(n_visible, device=like.device, dtype=like.dtype)
    base = check_tensor(base, "base", finite=False)
    if base.dim() == 2:
        if base.shape[1] != n_visible:
            raise ValueError(f"base data must have {n_visible} columns (the RBM's n_visible); got {base.shape[1]}.")
        return base_rate_bias(base).to(device=like.device, dtype=like.dtype)
    if base.shape != (n_visible,):
        raise ValueError(
            f"base must be a vector of {n_visible} visible biases or data (n, {n_visible}); got shape {tuple(base.shape)}."
        )
    return check_tensor(base, "base").to(device=like.device, dtype=like.dtype)


def ais_schedule(n_betas: int = AIS_STANDARD_N_BETAS, betas=None) -> list:
    """The inverse temperatures of an AIS run as a list of floats: ``ais_betas(n_betas)`` when ``betas`` is None,
    else ``betas`` (a sequence or tensor), checked to rise strictly from beta_0 = 0 to beta_K = 1."""
    if betas is None:
        return ais_betas(n_betas).tolist()
    betas = check_tensor(betas, "betas", ndim=1, like=torch.empty(0, dtype=torch.float64)).cpu()
    if len(betas) < 2 or float(betas[0]) != 0.0 or float(betas[-1]) != 1.0 or not bool((betas.diff() > 0).all()):
        raise ValueError(
            "betas must increase strictly from 0 to 1 (beta_0 = 0 is the base, beta_K = 1 the RBM); "
            "make them with ais_betas(n_betas)."
        )
    return betas.tolist()


def ais_result(log_weights: torch.Tensor, log_z_base: float, reverse: bool = False) -> AISResult:
    """An :class:`AISResult` from the log-weights of M chains and the base's log Z_A.

    AIS (``reverse`` False): each w_m is an unbiased estimate of Z / Z_A, and log Z^ = log Z_A + log mean(w).
    Reverse AIS: each r_m is an unbiased estimate of Z_A / Z, and log Z^ = log Z_A - log mean(r). The standard
    error, the +-3 sigma interval and the ESS come from the spread of the weights (see AISResult).
    log_weights: (M,) float64.
    """
    M = len(log_weights)
    log_mean_w = float(log_mean_exp(log_weights))
    w = torch.exp(log_weights - log_weights.max())  # scaled weights, max 1
    rel_sd = float(w.std() / w.mean()) if M > 1 else float("inf")  # std(w) / mean(w)
    std_error = rel_sd / math.sqrt(M)
    ess = float(w.sum() ** 2 / (w**2).sum())
    up = math.log1p(3 * std_error)  # log(mean + 3 sigma) - log(mean)
    down = math.log1p(-3 * std_error) if 3 * std_error < 1 else float("-inf")  # log(mean - 3 sigma) - log(mean)
    if not reverse:
        log_z = log_z_base + log_mean_w
        return AISResult(log_z, std_error, log_z + down, log_z + up, ess, log_z_base, log_weights)
    log_z = log_z_base - log_mean_w
    return AISResult(log_z, std_error, log_z - up, log_z - down, ess, log_z_base, log_weights)


_ais_result, _ais_base_bias, _ais_betas_list = ais_result, ais_base_bias, ais_schedule  # earlier names


def _one_thread_if_small(work: int, device: torch.device):
    return single_thread_if_small(work, AIS_SINGLE_THREAD_BELOW, device)


def _generator_for(generator, seed, device) -> Optional[torch.Generator]:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both.")
    if seed is not None:
        generator = make_generator(seed, device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"the generator lives on {generator.device} but the RBM on {device}; use one on {device}.")
    return generator


def _log_z_base(b_A: torch.Tensor, n_hidden: int) -> float:
    """log Z_A = sum_i softplus(b_A,i) + n_h log 2: independent pixels and fair hidden coins."""
    return float(F_.softplus(b_A.double()).sum()) + n_hidden * math.log(2.0)


class _Uniforms:
    """The uniform numbers of the Gibbs steps, (n_h + n_v, M) per step, drawn ``chunk`` steps at a time by one
    ``uniform_`` call each, in order. With ``background`` the next chunk is drawn on a worker thread (torch
    releases the GIL) into a second buffer while the current one is read; the stream is the same."""

    def __init__(self, n_steps: int, per_step: Tuple[int, int], generator, opts: dict, background: bool):
        self.chunk = max(1, min(32, 2**19 // (per_step[0] * per_step[1])))  # ~2 MB (float32): stays in cache
        self.n_chunks = -(-n_steps // self.chunk)
        self.generator, self.index = generator, 0
        background = background and self.n_chunks > 1
        self.buffers = [torch.empty(self.chunk, *per_step, **opts) for _ in range(2 if background else 1)]
        self.pool = ThreadPoolExecutor(max_workers=1) if background else None
        self.pending = self.pool.submit(self._fill, self.buffers[0]) if background else None

    def _fill(self, buffer: torch.Tensor) -> torch.Tensor:
        return buffer.uniform_(generator=self.generator)

    def next_chunk(self) -> torch.Tensor:
        """The uniforms of the next ``chunk`` steps: (chunk, n_h + n_v, M)."""
        self.index += 1
        if self.pool is None:
            return self._fill(self.buffers[0])
        u = self.pending.result()
        if self.index < self.n_chunks:  # the other buffer's steps are done: refill it meanwhile
            self.pending = self.pool.submit(self._fill, self.buffers[self.index % 2])
        return u

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


#: The log-weight increments are computed in the RBM's dtype by the cancellation-free form of
#: :func:`_softplus_steps` while every |(beta_k - beta_(k-1)) a_j| is at most this (a_j: a hidden unit's input);
#: coarser steps take the float64 difference of two softplus values instead.
AIS_FINE_STEP = 20.0


def _softplus_steps(a, x, beta_prev: float, d_beta: float, out):
    """softplus(x) - softplus(y) for x = beta_k a and y = beta_(k-1) a = x - d, d = d_beta a, without
    cancellation: with lo = min(x, y), softplus(max) - softplus(min) = log1p(sigmoid(lo) expm1(|d|)), and the
    sign is d's. Exact in any dtype up to a few rounding errors of the increment itself (not of softplus(x),
    ~10^5 times larger on a fine schedule), so float32 suffices; needs |d| <= AIS_FINE_STEP (expm1 overflows).
    a, x: (n_h, M); ``out``: three buffers of that shape. Returns out[0]."""
    t, lo, d = out
    torch.mul(a, beta_prev, out=lo)
    torch.minimum(x, lo, out=lo).sigmoid_()
    torch.mul(a, d_beta, out=d)
    torch.abs(d, out=t).expm1_().mul_(lo).log1p_()
    return torch.copysign(t, d, out=t)


def _anneal(W, b, c, b_A, betas: Sequence[float], v: torch.Tensor, generator) -> torch.Tensor:
    """Run M chains through the RBMs p_beta, beta = betas[0], betas[1], ..., betas[K]; return their log-weights.

    p_beta has couplings beta W, visible biases (1 - beta) b_A + beta b and hidden biases beta c. The chains
    start at the columns of v: (n_v, M) (v_1) and, for k = 1..K, collect
    log w += F_{beta_(k-1)}(v_k) - F_{beta_k}(v_k), then (k < K) move to v_(k+1) by a block Gibbs step at
    beta_k. Rising betas from 0 with v_1 ~ p_A: AIS. Falling betas from 1 with v_1 from the RBM or the data:
    reverse AIS and RAISE. Returns (M,) float64 on W's device; v is overwritten.
    """
    n_visible, n_hidden = W.shape
    M, K = v.shape[1], len(betas) - 1
    device, dtype = W.device, W.dtype
    opts = dict(device=device, dtype=dtype)
    background = AIS_BACKGROUND_RNG and device.type == "cpu" and torch.get_num_threads() > 1
    # |c_j + (W^T v)_j| <= |c_j| + sum_i |W_ij| for binary v: decides, once, how the increments are computed
    largest_input = float((c.abs() + W.abs().sum(0)).max()) if n_hidden else 0.0
    fine = max(abs(betas[k] - betas[k - 1]) for k in range(1, K + 1)) * largest_input <= AIS_FINE_STEP
    uniforms = _Uniforms(max(K - 1, 1), (n_hidden + n_visible, M), generator, opts, background)
    try:
        with torch.no_grad(), _one_thread_if_small(M * n_visible * (n_hidden + 1), device):
            # Everything is stored unit-major (units x chains), and b - b_A rides along as one more "hidden"
            # column, so one product gives both c + W^T v (for the hidden units) and (b - b_A)^T v (for the
            # weights), and one product with h~ = (h, 1) gives W h + b - b_A (for the visible units).
            Wb = torch.cat([W, (b - b_A)[:, None]], 1)  # (n_v, n_h + 1)
            Wb_t = Wb.T.contiguous()  # (n_h + 1, n_v)
            c_ext = torch.cat([c, torch.zeros(1, **opts)])[:, None]  # (n_h + 1, 1)
            b_A_col = b_A[:, None].contiguous()  # (n_v, 1)
            a = torch.empty(n_hidden + 1, M, **opts)  # rows c + W^T v, then (b - b_A)^T v
            a_h = a[:n_hidden]
            x = torch.empty(n_hidden, M, **opts)  # beta_k a
            work = [torch.empty(n_hidden, M, **opts) for _ in range(3)]
            h = torch.ones(n_hidden + 1, M, **opts)  # last row: the always-on unit
            p_v = torch.empty(n_visible, M, **opts)
            log_w = torch.zeros(M, device=device, dtype=torch.float64)
            for k in range(1, K + 1):
                torch.addmm(c_ext, Wb_t, v, out=a)
                # log w += F_{beta_(k-1)}(v) - F_beta_k(v)
                #        = (beta_k - beta_(k-1)) (b - b_A)^T v + sum_j [softplus(beta_k a_j) - softplus(beta_(k-1) a_j)]
                log_w.add_(a[n_hidden], alpha=betas[k] - betas[k - 1])
                torch.mul(a_h, betas[k], out=x)
                if fine:
                    log_w.add_(_softplus_steps(a_h, x, betas[k - 1], betas[k] - betas[k - 1], work).sum(0))
                else:
                    a64 = a_h.double()
                    log_w.add_((F_.softplus(betas[k] * a64) - F_.softplus(betas[k - 1] * a64)).sum(0))
                if k == K:
                    break
                # one Gibbs step that leaves p_beta_k invariant
                step = (k - 1) % uniforms.chunk
                if step == 0:
                    u = uniforms.next_chunk()
                torch.lt(u[step, :n_hidden], x.sigmoid_(), out=h[:n_hidden])
                torch.addmm(b_A_col, Wb, h, alpha=betas[k], out=p_v)  # (1 - beta) b_A + beta (b + W h)
                torch.sigmoid(p_v, out=p_v)
                torch.lt(u[step, n_hidden:], p_v, out=v)
    finally:
        uniforms.close()
    return log_w


def ais_log_partition(
    rbm,
    n_chains: int = 100,
    n_betas: int = AIS_STANDARD_N_BETAS,
    betas=None,
    base: Union[str, torch.Tensor] = "uniform",
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> AISResult:
    """Estimate log Z of a Bernoulli RBM by annealed importance sampling (AIS) from a base RBM with W = 0.

    The path runs from the base RBM with visible biases b_A (beta = 0) to the target RBM (W, b, c) (beta = 1)
    through the RBMs whose joint energy is (1 - beta) E_A + beta E,

        p_beta(v, h) ~ exp((1 - beta) b_A^T v + beta (v^T W h + b^T v + c^T h)),
        -F_beta(v) = (1 - beta) b_A^T v + beta b^T v + sum_j softplus(beta (c_j + (v^T W)_j)),

    so beta sits inside the softplus and each p_beta is itself an RBM, sampled by block Gibbs:
    h_j ~ sigma(beta (c_j + (v^T W)_j)), then v_i ~ sigma((1 - beta) b_A,i + beta (b_i + (W h)_i)). At beta = 0
    the pixels are independent Bernoulli(sigma(b_A)) and the n_h hidden units fair coins:
    log Z_A = sum_i softplus(b_A,i) + n_h log 2. Each of the M chains draws v_1 ~ p_A, then for k = 1..K

        log w += F_{beta_(k-1)}(v_k) - F_{beta_k}(v_k),     v_(k+1) ~ T_k(v_k)  (one Gibbs step at beta_k),

    accumulated in float64. E[w] = Z / Z_A exactly, so Z^ = Z_A mean(w) is unbiased, and by Jensen's inequality
    log Z^ = log Z_A + log_mean_exp(log w) underestimates log Z on average (a stochastic lower bound).

    rbm: a BernoulliRBM (anything with tensors W (n_v, n_h), b (n_v,), c (n_h,)); it runs on their device and
    dtype, vectorised over the chains, with no host synchronisation inside the loop.
    n_chains: M >= 1. n_betas: K, the number of annealing steps, used when ``betas`` is None (the standard
    14,500; see :func:`ais_betas`). betas: the whole schedule 0 = beta_0 < ... < beta_K = 1 instead.
    base: "uniform" (b_A = 0), a (n_v,) vector b_A, or binary training data (n, n_v) whose base rates give
    b_A (:func:`base_rate_bias`; much better than uniform). generator (on the RBM's device) or seed: the
    randomness (neither: torch's global generator). Returns an :class:`AISResult`.
    Reference: Neal (2001) "Annealed importance sampling"; Salakhutdinov & Murray (2008) "On the quantitative
    analysis of deep belief networks", section 4.
    """
    W, b, c = _check_rbm(rbm)
    n_visible, n_hidden = W.shape
    M = check_int(n_chains, "n_chains", minimum=1)
    beta = ais_schedule(n_betas, betas)
    generator = _generator_for(generator, seed, W.device)
    b_A = ais_base_bias(base, n_visible, W)
    v = torch.rand(n_visible, M, generator=generator, device=W.device, dtype=W.dtype) < torch.sigmoid(b_A)[:, None]
    log_w = _anneal(W, b, c, b_A, beta, v.to(W.dtype), generator)  # v_1 ~ p_A, then up the path
    if not bool(torch.isfinite(log_w).all()):
        raise ValueError("AIS produced NaN/inf log-weights; check that the RBM's parameters are finite and moderate.")
    return ais_result(log_w, _log_z_base(b_A, n_hidden))


def ais_reference(rbm, betas, b_A, n_chains: int, generator: Optional[torch.Generator] = None):
    """AIS for an RBM, written as the chapter derives it; :func:`ais_log_partition` is the fast version.

    Anneals M = n_chains chains from the base RBM (W = 0, visible biases b_A) through p_beta with
    -F_beta(v) = ((1 - beta) b_A + beta b)^T v + sum_j softplus(beta (c_j + (v^T W)_j)) to the RBM (beta = 1).
    betas: 0 = beta_0 < ... < beta_K = 1 (a list); b_A: (n_v,). Returns (log Z^, log w: (M,) float64).
    On the CPU it draws the same random numbers as ais_log_partition (float64 RBMs: the same chains).
    """
    W, b, c = _check_rbm(rbm)  # input checks: the RBM, the base, the chains, the schedule
    b_A = check_tensor(b_A, "b_A", shape=(W.shape[0],), like=W)
    n_chains, betas = check_int(n_chains, "n_chains", minimum=1), ais_schedule(None, betas)

    def log_p_star(v, beta):  # log p*_beta(v) = -F_beta(v), in float64: the steps are tiny
        a = (v @ W + c).double()  # the hidden units' inputs
        return v.double() @ ((1 - beta) * b_A + beta * b).double() + F_.softplus(beta * a).sum(1)

    def bernoulli(p):  # 1 where u < p; uniforms drawn unit by unit, as the fast version stores them
        u = torch.rand(p.shape[::-1], generator=generator, dtype=p.dtype, device=p.device).T
        return (u < p).to(p.dtype)

    v = bernoulli(torch.sigmoid(b_A).expand(n_chains, -1))  # v_1 ~ p_A
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=W.device)
    for k in range(1, len(betas)):
        log_w += log_p_star(v, betas[k]) - log_p_star(v, betas[k - 1])  # w *= p*_k / p*_(k-1) at v_k
        if k < len(betas) - 1:  # v_(k+1) ~ T_k(v_k): a Gibbs step that leaves p_beta_k invariant
            h = bernoulli(torch.sigmoid(betas[k] * (v @ W + c)))
            v = bernoulli(torch.sigmoid((1 - betas[k]) * b_A + betas[k] * (h @ W.T + b)))
    log_z_A = float(F_.softplus(b_A.double()).sum()) + W.shape[1] * math.log(2.0)  # the base's log Z
    return log_z_A + float(log_mean_exp(log_w)), log_w


def reverse_ais_log_partition(
    rbm,
    v_samples,
    n_betas: int = AIS_STANDARD_N_BETAS,
    betas=None,
    base: Union[str, torch.Tensor] = "uniform",
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> AISResult:
    """Estimate log Z of a Bernoulli RBM by reverse AIS: chains that start at samples of the RBM and anneal down.

    The path of :func:`ais_log_partition`, walked backwards: chain m starts at v_K = v_samples[m] and, for
    k = K, ..., 1, collects

        log r += F_{beta_k}(v_k) - F_{beta_(k-1)}(v_k),     v_(k-1) ~ T_(k-1)(v_k)  (a Gibbs step at beta_(k-1)),

    (block Gibbs on v is reversible with respect to p_beta, so T_(k-1) is its own reversal). When the v_K are
    exact samples of the RBM, the proposal is the reversed chain and the target the forward one: the argument
    that makes AIS unbiased, with the roles swapped, gives E[r] = Z_A / Z exactly. So
    log Z^ = log Z_A - log_mean_exp(log r) overestimates log Z on average (Jensen) and exceeds it by less than
    b nats with probability at least 1 - e^-b (Markov): a stochastic upper bound. With
    :func:`ais_log_partition`'s stochastic lower bound it brackets log Z: bidirectional Monte Carlo. Exact
    samples exist when a layer can be enumerated (``BernoulliRBM.sample_exact``); samples from a Markov chain
    only approximate p, and then nothing is guaranteed (the estimate may land below log Z).

    v_samples: (M, n_v) binary, one chain per row (M >= 1). n_betas, betas, base, generator, seed: as for
    :func:`ais_log_partition` (betas rising from 0 to 1; they are walked from 1 down). Returns an
    :class:`AISResult` whose log_weights are the log r_m. Reference: Grosse, Ghahramani & Adams (2015)
    "Sandwiching the marginal likelihood using bidirectional Monte Carlo"; Neal (2001).
    """
    W, b, c = _check_rbm(rbm)
    n_visible, n_hidden = W.shape
    v = check_tensor(v_samples, "v_samples", shape=(None, n_visible), like=W, finite=False)
    v = check_binary(v, "v_samples")
    if len(v) == 0:
        raise ValueError("v_samples is empty; pass at least one sample of the RBM (M, n_visible), "
                         "one per chain.")
    beta = ais_schedule(n_betas, betas)[::-1]  # from beta_K = 1 down to beta_0 = 0
    generator = _generator_for(generator, seed, W.device)
    b_A = ais_base_bias(base, n_visible, W)
    log_r = _anneal(W, b, c, b_A, beta, v.T.clone(memory_format=torch.contiguous_format), generator)
    if not bool(torch.isfinite(log_r).all()):
        raise ValueError("reverse AIS produced NaN/inf log-weights; check that the RBM's parameters "
                         "are finite.")
    return ais_result(log_r, _log_z_base(b_A, n_hidden), reverse=True)


class RAISEResult(NamedTuple):
    """What :func:`raise_log_likelihood` measured.

    log_likelihood: the mean over the data of log p^_ann(v_i) (nats): a stochastic lower bound on the mean
        log-likelihood of the annealing model.
    std_error: the standard deviation of the log p^_ann(v_i) over the data, divided by sqrt(n): the
        uncertainty of the mean from the finite data set and the Monte Carlo noise together.
    log_p: (n,) float64 tensor of the per-example estimates log p^_ann(v_i).
    log_z_base: log Z_A of the base distribution.
    log_weights: (n, M) float64 tensor of the log-weights of each example's M chains.
    """

    log_likelihood: float
    std_error: float
    log_p: torch.Tensor
    log_z_base: float
    log_weights: torch.Tensor


def raise_log_likelihood(
    rbm,
    v,
    n_chains: int = 1,
    n_betas: int = AIS_STANDARD_N_BETAS,
    betas=None,
    base: Union[str, torch.Tensor] = "uniform",
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    batch_size: Optional[int] = None,
) -> RAISEResult:
    """RAISE: a conservative estimate of the log-likelihood of data, by reverse AIS started at each example.

    Forward AIS is a generative model in its own right, the *annealing model*: draw v_1 ~ p_A, take the
    K - 1 Gibbs steps of the path, output v_K. Its probability of an example v is a sum over the hidden path,
    p_ann(v) = E over the reverse chain from v_K = v of p_A(v_1) prod_k p*_k(v_(k+1)) / p*_k(v_k), so
    the reverse chain of :func:`reverse_ais_log_partition`, started at the example itself, estimates it without
    bias:

        p^_ann(v) = exp(-F(v)) / Z_A * mean over the M chains of r_m,   log r = sum_k [F_beta_k - F_beta_(k-1)](v_k),

    and log p^_ann(v) is a stochastic lower bound on log p_ann(v) (Jensen). p_ann tends to the RBM's p as the
    path gets finer and its Gibbs steps mix; with a coarse path it is a worse model than the RBM on data like
    the training data, which is why RAISE tends to err low: conservative in practice, but a bound only on
    log p_ann, not on the RBM's log p. No exact samples and no log Z are needed.

    v: (n, n_v) binary examples (e.g. the test set). n_chains: M >= 1 chains per example (Burda et al. use 1;
    more tighten the bound). n_betas, betas, base, generator, seed: as for :func:`ais_log_partition`.
    batch_size: examples annealed at once (default all: n * M chains of n_v + n_h units each, plus their
    random numbers). Returns a :class:`RAISEResult`. Reference: Burda, Grosse & Salakhutdinov (2015)
    "Accurate and conservative estimates of MRF log-likelihood using reverse annealing".
    """
    W, b, c = _check_rbm(rbm)
    n_visible, n_hidden = W.shape
    v = check_binary(check_tensor(v, "v", shape=(None, n_visible), like=W, finite=False), "v")
    if len(v) == 0:
        raise ValueError("v is empty; pass at least one example (n, n_visible).")
    M = check_int(n_chains, "n_chains", minimum=1)
    batch_size = len(v) if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    beta = ais_schedule(n_betas, betas)[::-1]
    generator = _generator_for(generator, seed, W.device)
    b_A = ais_base_bias(base, n_visible, W)
    log_z_base = _log_z_base(b_A, n_hidden)
    log_weights = []
    for rows in v.split(batch_size):
        start = rows.repeat_interleave(M, dim=0).T.clone(memory_format=torch.contiguous_format)  # M chains each
        log_weights.append(_anneal(W, b, c, b_A, beta, start, generator).view(len(rows), M))
    log_weights = torch.cat(log_weights)
    if not bool(torch.isfinite(log_weights).all()):
        raise ValueError("RAISE produced NaN/inf log-weights; check that the RBM's parameters are finite.")
    v64, W64 = v.double(), W.double()
    neg_free_energy = v64 @ b.double() + F_.softplus(v64 @ W64 + c.double()).sum(1)
    log_p = neg_free_energy - log_z_base + log_mean_exp(log_weights, dim=1)
    sd = float(log_p.std()) if len(log_p) > 1 else float("inf")
    return RAISEResult(float(log_p.mean()), sd / math.sqrt(len(log_p)), log_p, log_z_base, log_weights)


def ais_log_likelihood(rbm, v, log_z: Union[float, AISResult, None] = None, **ais_kwargs) -> float:
    """Mean log-likelihood of a batch under an RBM with log Z from AIS: (1/n) sum_i [-F(v_i)] - log Z^.

    F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j) is exact (in float64); only log Z is estimated, so the
    result inherits the AIS uncertainty (``std_error`` of the AISResult) and, on average, overestimates the
    log-likelihood a little (log Z^ is a stochastic lower bound). With log Z^ from
    :func:`reverse_ais_log_partition` started at exact samples, it underestimates it instead. v: (n, n_visible)
    binary. log_z: a float or an AISResult; when None, :func:`ais_log_partition` runs with ``ais_kwargs``.
    """
    W, b, c = _check_rbm(rbm)
    v = check_binary(check_tensor(v, "v", shape=(None, W.shape[0]), like=W, finite=False), "v")
    if len(v) == 0:
        raise ValueError("v is empty; pass at least one example.")
    if log_z is None:
        log_z = ais_log_partition(rbm, **ais_kwargs).log_z
    elif ais_kwargs:
        raise ValueError("pass either log_z or arguments for ais_log_partition, not both.")
    log_z = log_z.log_z if isinstance(log_z, AISResult) else float(log_z)
    if not math.isfinite(log_z):
        raise ValueError(f"log_z must be finite; got {log_z}.")
    v, W, b, c = v.double(), W.double(), b.double(), c.double()
    neg_free_energy = v @ b + F_.softplus(v @ W + c).sum(1)
    return float(neg_free_energy.mean()) - log_z


__all__ += ["AISResult", "log_mean_exp", "ais_betas", "base_rate_bias", "ais_log_partition", "ais_log_likelihood",
            "ais_reference", "AIS_STANDARD_N_BETAS", "ais_schedule", "ais_base_bias", "ais_result",
            "reverse_ais_log_partition", "RAISEResult", "raise_log_likelihood"]
