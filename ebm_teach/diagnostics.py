"""MCMC diagnostics: autocorrelation, integrated autocorrelation time, effective sample size, split-R-hat,
and the energy gap E[E(x_data)] - E[E(x_model)] of EBM training.

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
    "energy_gap",
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
    # sum while positive, forcing monotone decrease; tau = -1 + 2 sum_k Gamma_k.
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
    (Vehtari et al. 2021), so chains stuck in different modes have an ESS near the number of chains, not
    near the number of draws. method as in :func:`integrated_autocorr_time` (Geyer's by default, as in Stan).
    """
    xc = _chains(x)
    tau = integrated_autocorr_time(xc if xc.shape[0] > 1 else xc[0], method=method, quiet=True)
    m, n = xc.shape
    # Strongly anticorrelated chains can give tau << 1; like Stan, cap the ESS at N log10(N).
    return m * n / max(tau, 1.0 / np.log10(max(m * n, 10)))


def split_rhat(x) -> float:
    """Split potential scale reduction factor R-hat of several chains (Gelman et al., BDA3 sec. 11.4).

    Each chain is cut into halves (so a single drifting chain is caught too), giving m chains of n draws;
    W = mean within-chain variance, B = n * variance of the chain means, var_plus = (n-1)/n W + B/n,
    R-hat = sqrt(var_plus / W). Near 1 (< 1.01 is Vehtari et al.'s threshold) when the chains agree;
    well above 1 when they sample different regions (e.g. stuck in different modes).
    x: (n_chains, n_steps) with n_steps >= 4 (a single chain (n_steps,) is also accepted).
    """
    xc = _chains(x, min_steps=4)
    half = xc.shape[1] // 2
    # drop the middle draw of odd-length chains so both halves have n = half draws
    halves = torch.cat([xc[:, :half], xc[:, -half:]], dim=0)
    n = halves.shape[1]
    W = halves.var(dim=1, unbiased=True).mean()
    B = n * halves.mean(dim=1).var(unbiased=True)
    if float(W) == 0.0:
        raise ValueError("every half-chain is constant (zero within-chain variance): R-hat is undefined.")
    var_plus = (n - 1) / n * W + B / n
    return float(torch.sqrt(var_plus / W))


# --------------------------------------------------------------------------------------------- energy gap
def energy_gap(e_data: torch.Tensor, e_model: torch.Tensor) -> torch.Tensor:
    """E[E(x_data)] - E[E(x_model)] from two batches of energies (a 0-d tensor, detached, on their device).

    e_data: (n,) energies of data; e_model: (n',) energies of model samples (negatives). During
    maximum-likelihood training it is the first term of the loss; it should hover near 0 (the sampler
    finds points as good as the data). Far below 0: the model rates data much better than its own samples
    (the sampler is not reaching the model's low-energy regions); drifting steadily: the energies are
    running away (seed 000, "energy gap").
    """
    e_data = check_tensor(e_data, "e_data", ndim=1, finite=False)
    e_model = check_tensor(e_model, "e_model", ndim=1, finite=False)
    return (e_data.detach().mean() - e_model.detach().mean()).to(torch.float64)


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
