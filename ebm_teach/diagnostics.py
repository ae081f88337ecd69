"""MCMC diagnostics: autocorrelation, integrated autocorrelation time, effective sample size, split-R-hat,
the rank-normalised R-hat of Vehtari et al., and the energy gap E[E(x_data)] - E[E(x_model)] of EBM training.

A chain is a 1-D tensor or array x: (n_steps,) of a scalar summary (a coordinate, the energy); several
chains are x: (n_chains, n_steps). Everything is computed in float64 on the input's device; the scalar
results come back as Python floats (these are end-of-run summaries, not inner-loop code).
References: Sokal (1997) "Monte Carlo methods in statistical mechanics"; Geyer (1992) "Practical Markov
chain Monte Carlo"; emcee's autocorr.py (Foreman-Mackey et al. 2013); Gelman et al., Bayesian Data
Analysis, 3rd ed., sec. 11.4-11.5; Vehtari et al. (2021) "Rank-normalization, folding, and localization".
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import numpy as np
import torch

from .core import check_int, check_positive, check_tensor

__all__ = [
    "autocovariance",
    "autocorrelation",
    "integrated_autocorr_time",
    "effective_sample_size",
    "split_rhat",
    "rank_normalize",
    "rank_normalized_rhat",
    "bulk_tail_ess",
    "energy_gap",
    "regularized_gap",
    "EnergyGapTracker",
]

_METHODS = ("sokal", "geyer")


def _chains(x, name: str = "x", min_steps: int = 4) -> torch.Tensor:
    """x as float64 (n_chains, n_steps), validated."""
    x = check_tensor(x, name)
    if x.dim() == 1:
        x = x[None, :]
    if x.dim() != 2:
        raise ValueError(
            f"{name} must be one chain (n_steps,) or several (n_chains, n_steps); got shape {tuple(x.shape)}. "
            "For a multivariate chain pass one coordinate (or the energy) at a time."
        )
    if x.shape[1] < min_steps:
        raise ValueError(f"{name} needs at least {min_steps} steps per chain; got {x.shape[1]}. Run a longer chain.")
    return x.to(torch.float64)


def autocovariance(x) -> torch.Tensor:
    """Autocovariance of each chain at lags 0..n-1 by FFT: gamma(t) = (1/n) sum_{s<n-t} (x_s - m)(x_{s+t} - m).

    x: (n_steps,) or (n_chains, n_steps) -> same shape, float64. The 1/n (biased) normalisation keeps the
    sequence positive semi-definite (Sokal 1997). Zero-padding to a power of two >= 2n makes the FFT's
    circular correlation equal to the linear one, in O(n log n) instead of O(n^2).
    """
    squeeze = torch.is_tensor(x) and x.dim() == 1 or (not torch.is_tensor(x) and np.ndim(x) == 1)
    x = _chains(x, min_steps=2)
    n = x.shape[1]
    size = 1 << (2 * n - 1).bit_length()
    xc = x - x.mean(dim=1, keepdim=True)
    f = torch.fft.rfft(xc, n=size, dim=1)
    acov = torch.fft.irfft(f * f.conj(), n=size, dim=1)[:, :n] / n
    return acov[0] if squeeze else acov


def autocorrelation(x) -> torch.Tensor:
    """Normalised autocorrelation rho(t) = gamma(t) / gamma(0), t = 0..n-1, of one chain or several.

    x: (n_steps,) -> (n_steps,). For x: (n_chains, n_steps) with n_chains >= 2 the chains are combined as
    in Stan (Vehtari et al. 2021, eq. 10): rho(t) = 1 - (W - mean_j gamma_j(t)) / var_plus, with W the
    mean within-chain variance and var_plus = (n-1)/n W + B/n. Chains that disagree (B >> W) then look
    strongly correlated, which is what a stuck sampler is. For a single chain both formulas agree up to
    the n/(n-1) of W.
    """
    xc = _chains(x, min_steps=2)
    acov = autocovariance(xc)
    if xc.shape[0] == 1:
        if float(acov[0, 0]) == 0.0:
            raise ValueError("the chain is constant (zero variance): its autocorrelation is undefined.")
        return acov[0] / acov[0, 0]
    m, n = xc.shape
    within = xc.var(dim=1, unbiased=True)  # s_j^2
    W = within.mean()
    B = n * xc.mean(dim=1).var(unbiased=True)
    var_plus = (n - 1) / n * W + B / n
    if float(var_plus) == 0.0:
        raise ValueError("all chains are constant and equal: the autocorrelation is undefined.")
    return 1.0 - (W - acov.mean(dim=0)) / var_plus


def _tau_sokal(rho: torch.Tensor, c: float) -> float:
    # tau(M) = 1 + 2 sum_{t=1}^{M} rho(t); the window is the smallest M with M >= c tau(M) (Sokal 1997).
    taus = 2.0 * torch.cumsum(rho, dim=0) - 1.0
    lags = torch.arange(len(rho), device=rho.device, dtype=rho.dtype)
    ok = lags >= c * taus
    if bool(ok.any()):
        return float(taus[int(torch.nonzero(ok)[0, 0])])
    return float(taus[-1])


def _tau_geyer(rho: torch.Tensor) -> float:
    # Gamma_k = rho(2k) + rho(2k+1) is positive, decreasing and convex for a reversible chain (Geyer 1992):
    # sum the pairs while they stay positive, each replaced by the running minimum of the pairs so far (the
    # initial monotone sequence); tau = -1 + 2 sum_k Gamma_k.
    n_pairs = len(rho) // 2
    gamma = (rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]).cpu().numpy()
    stop = int(np.argmax(gamma <= 0)) if np.any(gamma <= 0) else n_pairs
    gamma = np.minimum.accumulate(gamma[:stop])
    return float(-1.0 + 2.0 * gamma.sum())


def integrated_autocorr_time(x, method: str = "sokal", c: float = 5.0, quiet: bool = False) -> float:
    """Integrated autocorrelation time tau = 1 + 2 sum_{t>=1} rho(t) of a chain (the variance inflation of its mean).

    Var(chain mean) ~= tau Var(x) / n, so a chain of n steps is worth n / tau independent draws.
    method "sokal": the FFT autocorrelation summed up to the automatic window, the smallest M with
    M >= c tau(M) (c = 5, as in emcee). method "geyer": Geyer's initial monotone sequence estimator.
    For AR(1), x_t = rho x_{t-1} + e_t, tau = (1 + rho) / (1 - rho) exactly.

    x: (n_steps,) one chain, or (n_chains, n_steps) (combined as in :func:`autocorrelation`).
    Warns when the chain is shorter than 50 tau (the estimate is then unreliable; run a longer chain),
    unless quiet. Returns tau as a float >= 0 (it can fall below 1 for anticorrelated chains).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    c = check_positive(c, "c")
    xc = _chains(x)
    rho = autocorrelation(xc if xc.shape[0] > 1 else xc[0])
    tau = _tau_sokal(rho, c) if method == "sokal" else _tau_geyer(rho)
    n = xc.shape[1]
    if not quiet and n < 50 * tau:
        warnings.warn(
            f"the chain ({n} steps) is shorter than 50 tau = {50 * tau:.0f}: the estimate tau = {tau:.3g} is "
            "unreliable and probably too small. Run a longer chain.",
            RuntimeWarning,
            stacklevel=2,
        )
    return tau


def effective_sample_size(x, method: str = "geyer") -> float:
    """Effective sample size n_chains * n_steps / tau: how many independent draws the chains are worth.

    x: (n_steps,) or (n_chains, n_steps). With several chains tau comes from the combined autocorrelation
    (Vehtari et al. 2021), so chains stuck in different modes get an ESS of about half the number of chains
    (whatever the number of modes), not near the number of draws: their combined autocorrelation stays at a
    plateau near 1 at every lag, Geyer's sum runs to the end of the chains, and tau ~ 2 n_steps.
    method as in :func:`integrated_autocorr_time` (Geyer's by default, as in Stan).
    """
    xc = _chains(x)
    tau = integrated_autocorr_time(xc if xc.shape[0] > 1 else xc[0], method=method, quiet=True)
    m, n = xc.shape
    # Strongly anticorrelated chains can give tau << 1; like Stan, cap the ESS at N log10(N).
    return m * n / max(tau, 1.0 / np.log10(max(m * n, 10)))


def _split(xc: torch.Tensor) -> torch.Tensor:
    """(m, n) chains -> (2m, n // 2) half-chains; the middle draw of odd-length chains is dropped."""
    half = xc.shape[1] // 2
    return torch.cat([xc[:, :half], xc[:, -half:]], dim=0)


def _rhat_of_halves(halves: torch.Tensor) -> float:
    n = halves.shape[1]
    W = halves.var(dim=1, unbiased=True).mean()
    B = n * halves.mean(dim=1).var(unbiased=True)
    if float(W) == 0.0:
        raise ValueError("every half-chain is constant (zero within-chain variance): R-hat is undefined.")
    var_plus = (n - 1) / n * W + B / n
    return float(torch.sqrt(var_plus / W))


def split_rhat(x) -> float:
    """Split potential scale reduction factor R-hat of several chains (Gelman et al., BDA3 sec. 11.4).

    Each chain is cut into halves (so a single drifting chain is caught too), giving m chains of n draws;
    W = mean within-chain variance, B = n * variance of the chain means, var_plus = (n-1)/n W + B/n,
    R-hat = sqrt(var_plus / W). Near 1 when the chains agree; well above 1 when they sample different
    regions (e.g. stuck in different modes). This is the classic split-R-hat of BDA3: it compares means and
    variances, so heavy tails or chains that differ only in their spread can fool it. Vehtari et al.'s
    threshold R-hat < 1.01 is meant for :func:`rank_normalized_rhat`.
    x: (n_chains, n_steps) with n_steps >= 4 (a single chain (n_steps,) is also accepted).
    """
    return _rhat_of_halves(_split(_chains(x, min_steps=4)))


def rank_normalize(x) -> torch.Tensor:
    """Rank-normalised z-scores of all draws pooled: z = Phi^{-1}((r - 3/8) / (S + 1/4)) (float64, x's shape).

    r is the rank of each draw among all S draws of all chains (ties get their average rank); 3/8 is Blom's
    offset. The z-scores are normally distributed whatever the draws' law (Cauchy, bounded, skewed), which
    is what makes R-hat computed on them robust (Vehtari et al. 2021).
    x: (n_chains, n_steps) or (n_steps,).
    """
    two_d = (x.dim() if torch.is_tensor(x) else np.ndim(x)) == 2
    xc = _chains(x, min_steps=2)
    flat = xc.reshape(-1)
    _, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
    # The k-th distinct value (sorted) holds ranks start+1 .. start+count; its average rank is
    # start + (count + 1) / 2.
    start = (torch.cumsum(counts, 0) - counts).to(torch.float64)
    ranks = (start + (counts.to(torch.float64) + 1) / 2)[inverse]
    z = torch.special.ndtri((ranks - 0.375) / (flat.numel() + 0.25))
    return z.reshape(xc.shape) if two_d else z


def rank_normalized_rhat(x) -> float:
    """Vehtari et al.'s (2021) R-hat: the larger of the bulk and the tail rank-normalised split-R-hat.

    bulk: split-R-hat (:func:`split_rhat`'s formula) of the rank-normalised draws (:func:`rank_normalize`),
    which catches chains whose locations differ, whatever the tails; tail: the same for the folded draws
    |x - median(x)|, which catches chains whose spreads differ. Vehtari et al. recommend using the chains
    only when this R-hat is below 1.01 (and the bulk and tail ESS above 400).
    x: (n_chains, n_steps) with n_steps >= 4, or one chain (n_steps,). Returns a float >= 0.
    Reference: Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), Bayesian Analysis 16(2), sec. 4.
    """
    xc = _split(_chains(x, min_steps=4))
    bulk = _rhat_of_halves(rank_normalize(xc))
    folded = (xc - xc.reshape(-1).median()).abs()
    tail = _rhat_of_halves(rank_normalize(folded))
    return max(bulk, tail)


def bulk_tail_ess(x) -> dict:
    """Vehtari et al.'s (2021) bulk and tail effective sample sizes: {"bulk": float, "tail": float}.

    bulk: :func:`effective_sample_size` of the rank-normalised split chains (how well the centre of the
    distribution is estimated, whatever its tails); tail: the smaller ESS of the indicators I(x <= q_0.05)
    and I(x <= q_0.95) of the split chains (how well the 5 % and 95 % quantiles are estimated). Vehtari et
    al. ask for both above 400 (100 per chain for 4 chains), alongside rank-normalised R-hat < 1.01.
    x: (n_chains, n_steps) with n_steps >= 8, or one chain (n_steps,).
    Reference: Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), Bayesian Analysis 16(2), sec. 4.3.
    """
    xc = _split(_chains(x, min_steps=8))
    bulk = effective_sample_size(rank_normalize(xc))
    flat = xc.reshape(-1)
    tails = []
    for q in (0.05, 0.95):
        indicator = (xc <= torch.quantile(flat, q)).to(torch.float64)
        if float(indicator.std()) == 0.0:
            raise ValueError(
                "the chains take too few distinct values to estimate the 5 % and 95 % quantiles; tail-ESS "
                "is undefined. Run longer chains or summarise a continuous quantity."
            )
        tails.append(effective_sample_size(indicator))
    return {"bulk": bulk, "tail": min(tails)}


# --------------------------------------------------------------------------------------------- energy gap
def energy_gap(e_data: torch.Tensor, e_model: torch.Tensor) -> torch.Tensor:
    """E[E(x_data)] - E[E(x_model)] from two batches of energies (a 0-d tensor, detached, on their device).

    e_data: (n,) energies of data; e_model: (n',) energies of model samples (negatives). During
    maximum-likelihood training it is the first term of the loss. What it should settle at depends on the
    loss. Without regularisation a stationary point of training has gap = 0 (for a network whose last
    layer is linear, the gradient with respect to that layer's weights w is mean h(x+) - mean h(x-), and
    w . (mean h(x+) - mean h(x-)) is the gap). With the L2 penalty alpha (mean E(x+)^2 + mean E(x-)^2) of
    Du & Mordatch (2019) the same argument gives gap = -2 alpha (mean E(x+)^2 + mean E(x-)^2) < 0: see
    :func:`regularized_gap`. Both statements hold for *any* negatives, a useless sampler included: they
    only say that the last layer is at its optimum for the negatives it is given, so a gap that tracks its
    stationary value does not certify the sampler. The gap's size does carry information: it says how far
    above the data the current model puts its negatives' energies (much more negative with poor negatives
    than with good ones), and a gap or energies drifting without bound mean the energies are running away.
    """
    e_data = check_tensor(e_data, "e_data", ndim=1, finite=False)
    e_model = check_tensor(e_model, "e_model", ndim=1, finite=False)
    return (e_data.detach().mean() - e_model.detach().mean()).to(torch.float64)


def regularized_gap(e_data: torch.Tensor, e_model: torch.Tensor, alpha: float) -> torch.Tensor:
    """Where the energy gap settles under the L2-regularised loss: -2 alpha (mean E(x+)^2 + mean E(x-)^2).

    For the loss L = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2) and an energy whose last
    layer is linear with a bias, E(x) = w . h(x) + b, a stationary point (dL/dw = 0, dL/db = 0) has
    mean E(x+) + mean E(x-) = 0 (from b) and, taking the dot product of dL/dw = 0 with w,
    gap = mean E(x+) - mean E(x-) = -2 alpha (mean E(x+)^2 + mean E(x-)^2). The negatives are held fixed
    in this argument (as the detached loss does), so it holds whatever sampler made them. Compare it with
    :func:`energy_gap` on the same batches: a measured gap that tracks this value says that the last layer
    is at its optimum, and that the gap is below 0 because of the regulariser; it says nothing about whether
    the negatives are samples of the model. e_data: (n,), e_model: (n',), alpha >= 0. Returns a 0-d float64
    tensor.
    """
    e_data = check_tensor(e_data, "e_data", ndim=1, finite=False)
    e_model = check_tensor(e_model, "e_model", ndim=1, finite=False)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0 (the weight of the L2 energy penalty); got {alpha!r}.")
    e_data, e_model = e_data.detach().to(torch.float64), e_model.detach().to(torch.float64)
    return -2.0 * alpha * ((e_data**2).mean() + (e_model**2).mean())


class EnergyGapTracker:
    """Records the energy gap E[E(x_data)] - E[E(x_model)] over training without a GPU sync per update.

    ``update(e_data, e_model, step)`` stores the gap as a device tensor; ``gaps()`` and ``steps`` read the
    history back once, at the end.
    """

    def __init__(self):
        self.steps: List[int] = []
        self._gaps: List[torch.Tensor] = []

    def update(self, e_data: torch.Tensor, e_model: torch.Tensor, step: Optional[int] = None) -> None:
        step = len(self.steps) if step is None else check_int(step, "step", minimum=0)
        self.steps.append(step)
        self._gaps.append(energy_gap(e_data, e_model))

    def gaps(self) -> np.ndarray:
        """The recorded gaps as a NumPy array (n_updates,)."""
        if not self._gaps:
            return np.zeros(0)
        return torch.stack([g.cpu() for g in self._gaps]).numpy()

    def __len__(self) -> int:
        return len(self.steps)
