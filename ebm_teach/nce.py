"""Noise-contrastive estimation (NCE): learn an unnormalised model by telling data from noise.

The model carries its own log-normaliser c as a parameter, log p_theta(x) = -E_theta(x) - c, and a
logistic classifier with the logit

    Delta(x) = log p_theta(x) - log(nu * p_n(x)) = -E_theta(x) - c - log nu - log p_n(x)

is trained to tell the T_d data points (label 1) from T_n = nu * T_d samples of a noise distribution p_n
whose log-density we know (label 0). Gutmann & Hyvarinen (2010, 2012) maximise

    J = E_data[log sigma(Delta)] + nu * E_noise[log(1 - sigma(Delta))].

This module minimises the mean binary cross-entropy over all (1 + nu) T_d samples,

    L = [sum_data softplus(-Delta) + sum_noise softplus(Delta)] / (T_d + T_n) = -J / (1 + nu),

the same objective up to the constant factor 1/(1 + nu): the optimum does not move, and the loss keeps
the same scale for every nu, so one learning rate serves a whole sweep over nu. (Written for nu = 1 as the
sum of the two means, as some texts do, it is 2 L.) At the optimum p_theta = p_data, so c = log Z(theta):
the model normalises itself.

:func:`ranking_nce_loss` is the multi-class variant: each datum competes with its own K noise samples in a
softmax (ranking NCE; InfoNCE of contrastive representation learning has this form). There c cancels, so
the model is learned up to its normaliser only; :func:`importance_log_z` then estimates log Z with the
same noise as the importance-sampling proposal.

A noise distribution is any object with ``sample(n, generator) -> (n, d)`` and ``log_prob(x) -> (batch,)``;
:class:`GaussianNoise` and :class:`UniformNoise` are the two the chapter uses.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .core import DivergenceError, check_int, check_positive, check_tensor, progress
from .evaluate import grid

__all__ = [
    "GaussianNoise",
    "ImportanceEstimate",
    "NCEModel",
    "UniformNoise",
    "decision_boundary_1d",
    "fit_nce",
    "importance_log_z",
    "nce_asymptotic_covariance",
    "nce_logit",
    "nce_loss",
    "ranking_nce_loss",
    "train_nce",
]


class ImportanceEstimate(NamedTuple):
    """What :func:`importance_log_z` measured: the estimate, its standard error and the effective sample size."""

    log_z: float
    std_err: float
    ess: float


# --------------------------------------------------------------------------------------------- noise
class GaussianNoise:
    """Gaussian noise p_n = N(mean, cov): exact log-density and sampler.

    mean: (d,), cov: (d, d) symmetric positive definite. ``GaussianNoise.fit(x, widen)`` matches the data's
    mean and covariance and multiplies every standard deviation by ``widen`` (cov * widen^2): a Gaussian
    matched to the data's mean and covariance, optionally scaled wider, is the usual first choice of noise.
    """

    def __init__(self, mean, cov):
        mean = check_tensor(mean, "mean", ndim=1)
        d = mean.shape[0]
        cov = check_tensor(cov, "cov", shape=(d, d), like=mean)
        try:
            self._chol = torch.linalg.cholesky(cov)
        except RuntimeError as err:
            raise ValueError("cov must be symmetric positive definite; add a small multiple of the identity.") from err
        self.mean, self.cov = mean, cov

    @classmethod
    def fit(cls, x, widen: float = 1.0) -> GaussianNoise:
        """N(mean of x, widen^2 * covariance of x) for data x: (n, d) with n >= 2."""
        x = check_tensor(x, "x", ndim=2)
        if len(x) < 2:
            raise ValueError(f"fitting a Gaussian needs at least 2 data points; got {len(x)}.")
        widen = check_positive(widen, "widen", "Use widen > 1 for noise broader than the data.")
        cov = torch.atleast_2d(torch.cov(x.T, correction=0))
        return cls(x.mean(0), widen**2 * cov)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mean, cov) for x: (batch, d) -> (batch,)."""
        diff = x - self.mean
        z = torch.linalg.solve_triangular(self._chol, diff.T, upper=False)  # L^{-1}(x - mean), (d, batch)
        log_det = 2 * torch.log(torch.diagonal(self._chol)).sum()
        return -0.5 * (z**2).sum(0) - 0.5 * log_det - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, d): mean + L z with L L^T = cov, z ~ N(0, I). The generator must be on mean's device."""
        z = torch.randn(n, self.dim, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + z @ self._chol.T


class UniformNoise:
    """Uniform noise over the box [low_1, high_1] x ... x [low_d, high_d].

    log p_n(x) = -sum_i log(high_i - low_i) inside the box and -inf outside. low, high: (d,).
    """

    def __init__(self, low, high):
        low = check_tensor(low, "low", ndim=1)
        high = check_tensor(high, "high", shape=(low.shape[0],), like=low)
        if not bool((high > low).all()):
            raise ValueError(f"every high must exceed its low; got low={low.tolist()}, high={high.tolist()}.")
        self.low, self.high = low, high

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-log(volume) inside the box, -inf outside; x: (batch, d) -> (batch,)."""
        inside = ((x >= self.low) & (x <= self.high)).all(dim=1)
        log_volume = torch.log(self.high - self.low).sum()
        return torch.where(inside, -log_volume, torch.full_like(log_volume, -math.inf))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n uniform samples (n, d) in the box."""
        u = torch.rand(n, self.dim, generator=generator, device=self.low.device, dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)


# --------------------------------------------------------------------------------------------- model
class NCEModel(nn.Module):
    """An energy with a learned log-normaliser c: log p_theta(x) = -E_theta(x) - c.

    energy: a module mapping (batch, d) -> (batch,); c: the starting value of the log-normaliser (a scalar
    parameter on the energy's device and dtype). NCE learns c with the energy; at the optimum c = log Z
    (where the noise reaches, see chapter 5). If the energy already holds an additive constant (a network
    whose last layer has a bias), that constant and c enter the model only through their sum: NCE fixes
    the sum, and both receive the same gradient. Mnih & Teh (2012) drop c altogether (c = 0) for this reason.
    """

    def __init__(self, energy: nn.Module, c: float = 0.0):
        super().__init__()
        if not isinstance(energy, nn.Module):
            raise TypeError("energy must be a torch.nn.Module mapping (batch, d) to (batch,); got "
                            f"{type(energy).__name__}.")
        p = next(energy.parameters(), None)
        if p is None:
            raise ValueError("energy has no parameters, so there is nothing for NCE to learn.")
        self.energy = energy
        self.c = nn.Parameter(torch.tensor(float(c), device=p.device, dtype=p.dtype))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_theta(x) = -E_theta(x) - c, x: (batch, d) -> (batch,)."""
        return -self.energy(x) - self.c

    forward = log_prob


# --------------------------------------------------------------------------------------------- objective
def _check_nu(nu) -> float:
    return check_positive(nu, "nu", "nu is the number of noise samples per data sample, e.g. nu = 1 or 10.")


def nce_logit(energy: torch.Tensor, c, log_noise: torch.Tensor,
              nu: float) -> torch.Tensor:
    """The NCE logit Delta(x) = -E_theta(x) - c - log(nu * p_n(x)).

    energy: E_theta(x), (batch,); c: the log-normaliser (scalar or scalar
    tensor); log_noise: log p_n(x), (batch,); nu > 0. Returns Delta (batch,):
    sigma(Delta) is the classifier's P(data | x).
    Reference: Gutmann & Hyvarinen (2012), eq. (5)-(8).
    """
    nu = _check_nu(nu)
    if energy.shape != log_noise.shape or energy.dim() != 1:
        raise ValueError(
            "energy and log_noise must both have shape (batch,); got "
            f"{tuple(energy.shape)} and {tuple(log_noise.shape)}. A "
            "log-density must be summed over coordinates (one per point).")
    return -energy - c - math.log(nu) - log_noise


def _noise_log_prob(noise, x: torch.Tensor, name: str) -> torch.Tensor:
    out = noise.log_prob(x)
    if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0],):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"noise.log_prob({name}) must return one log-density per row, shape ({x.shape[0]},); got {shape}. "
            "If it returns per-coordinate log-densities, sum them over the last axis."
        )
    return out


def nce_loss(model: NCEModel, x_data: torch.Tensor, x_noise: torch.Tensor,
             noise, nu: float) -> torch.Tensor:
    """The NCE loss: mean binary cross-entropy of data (label 1) against nu
    noise samples per datum (label 0),

        L = [sum_data softplus(-Delta) + sum_noise softplus(Delta)]
            / (T_d + T_n) = -J / (1 + nu),

    with J = E_data[log sigma(Delta)] + nu E_noise[log(1 - sigma(Delta))]
    (Gutmann & Hyvarinen 2012) and Delta = -E_theta - c - log(nu p_n).
    x_data: (T_d, d); x_noise: (T_n, d) with T_n = round(nu T_d); noise: an
    object with ``log_prob(x) -> (batch,)``. Returns a scalar tensor.
    softplus(-Delta) = -log sigma(Delta) stays finite for any logit.
    """
    nu = _check_nu(nu)
    if not isinstance(model, NCEModel):
        raise TypeError("model must be an NCEModel (an energy with its "
                        f"log-normaliser c); got {type(model).__name__}.")
    # Shapes only: a NaN check would cost a GPU sync on every step. train_nce
    # and fit_nce check the data once, and their guard stops a NaN loss.
    x_data = check_tensor(x_data, "x_data", ndim=2, finite=False)
    x_noise = check_tensor(x_noise, "x_noise", shape=(None, x_data.shape[1]),
                           finite=False)
    if len(x_noise) != round(nu * len(x_data)):
        raise ValueError(
            f"x_noise has {len(x_noise)} rows but nu * len(x_data) = {nu:g} * "
            f"{len(x_data)} = {nu * len(x_data):g}: draw round(nu * T_d) noise "
            "samples for T_d data samples (nu is that ratio).")
    log_pn_data = _noise_log_prob(noise, x_data, "x_data")
    log_pn_noise = _noise_log_prob(noise, x_noise, "x_noise")
    delta_data = nce_logit(model.energy(x_data), model.c, log_pn_data, nu)
    delta_noise = nce_logit(model.energy(x_noise), model.c, log_pn_noise, nu)
    total = F.softplus(-delta_data).sum() + F.softplus(delta_noise).sum()
    return total / (len(x_data) + len(x_noise))


def ranking_nce_loss(model: NCEModel, x_data: torch.Tensor,
                     x_noise: torch.Tensor, noise) -> torch.Tensor:
    """Ranking NCE (InfoNCE): the softmax cross-entropy of picking each datum
    out of itself and its K noise samples.

    With scores s(x) = -E_theta(x) - log p_n(x) (log p_theta / p_n up to c),

        L = mean_i [ -s(x_i) + log( exp s(x_i) + sum_k exp s(y_ik) ) ],

    the cross-entropy of a (K+1)-way classifier that must find the datum x_i
    among {x_i, y_i1, ..., y_iK}, y_ik ~ p_n. Its population minimiser has
    s = log(p_data / p_n) + const, so the energy is learned up to an additive
    constant: c cancels from every softmax and receives no gradient (normalise
    afterwards, e.g. by :func:`importance_log_z` with the same noise). This is
    InfoNCE (van den Oord et al. 2018) with the model's density ratio as the
    critic; Jozefowicz et al. (2016) and Ma & Collins (2018) call it ranking
    NCE. x_data: (T, d); x_noise: (T, K, d), row i holding datum i's K noise
    samples; noise: ``log_prob(x) -> (batch,)``. Returns a scalar tensor.
    """
    if not isinstance(model, NCEModel):
        raise TypeError("model must be an NCEModel (an energy with its "
                        f"log-normaliser c); got {type(model).__name__}.")
    x_data = check_tensor(x_data, "x_data", ndim=2, finite=False)
    t, d = x_data.shape
    if (not isinstance(x_noise, torch.Tensor) or x_noise.dim() != 3
            or x_noise.shape[0] != t or x_noise.shape[2] != d):
        got = (tuple(x_noise.shape) if isinstance(x_noise, torch.Tensor)
               else type(x_noise).__name__)
        raise ValueError(
            "x_noise must hold K noise samples per datum, shape "
            f"({t}, K, {d}); got {got}. Draw noise.sample(T * K) and reshape "
            "it to (T, K, d).")
    k = x_noise.shape[1]
    flat = x_noise.reshape(t * k, d)
    s_data = -model.energy(x_data) - _noise_log_prob(noise, x_data, "x_data")
    s_noise = -model.energy(flat) - _noise_log_prob(noise, flat, "x_noise")
    scores = torch.cat([s_data[:, None], s_noise.reshape(t, k)], dim=1)
    # (T, K + 1), the datum in column 0: L = mean of -log softmax(scores)[:, 0]
    return (torch.logsumexp(scores, dim=1) - s_data).mean()


def importance_log_z(energy: Callable[[torch.Tensor], torch.Tensor],
                     x_noise: torch.Tensor, noise) -> ImportanceEstimate:
    """log Z = log of the integral of exp(-E), by importance sampling with
    the noise as the proposal:

        log Z_hat = log (1/n) sum_k w_k,  w_k = exp(-E(y_k)) / p_n(y_k),

    y_k ~ p_n, computed with a log-sum-exp. Z_hat is unbiased; log Z_hat is
    consistent and biased low by about var(w) / (2 n mean(w)^2) (Jensen). It
    needs the noise to reach wherever exp(-E) has mass: where p_n never lands,
    the estimate silently misses that mass. This is how a model fitted by
    ranking NCE (whose c is never learned) is normalised with its own noise.
    energy: callable (n, d) -> (n,); x_noise: (n, d) samples of ``noise``;
    noise: ``log_prob(x) -> (n,)``. Returns ImportanceEstimate(log_z,
    std_err, ess) as floats: std_err = sd(w) / (mean(w) sqrt(n)) is the
    delta-method standard error of log Z_hat, ess = (sum w)^2 / sum w^2 the
    effective sample size.
    Reference: Owen (2013), Monte Carlo theory, methods and examples, ch. 9.
    """
    x_noise = check_tensor(x_noise, "x_noise", ndim=2)
    if len(x_noise) < 2:
        raise ValueError("importance sampling needs at least 2 noise samples; "
                         f"got {len(x_noise)}.")
    with torch.no_grad():
        e = energy(x_noise)
        if not isinstance(e, torch.Tensor) or e.shape != (len(x_noise),):
            shape = (tuple(e.shape) if isinstance(e, torch.Tensor)
                     else type(e).__name__)
            raise ValueError("energy(x_noise) must return one energy per row, "
                             f"shape ({len(x_noise)},); got {shape}.")
        log_w = (-e - _noise_log_prob(noise, x_noise, "x_noise")).double()
        if not bool(torch.isfinite(log_w).all()):
            raise ValueError(
                "some importance weights are not finite: the energy is "
                "inf/nan at a noise sample, or the samples are not from the "
                "noise (log p_n = -inf there).")
        n = len(log_w)
        log_z = torch.logsumexp(log_w, 0) - math.log(n)
        w = torch.exp(log_w - log_w.max())  # scale-free for the ratios below
        rel_sd = float(w.std(correction=0) / w.mean())
        ess = float(w.sum() ** 2 / (w**2).sum())
    return ImportanceEstimate(float(log_z), rel_sd / math.sqrt(n), ess)


def decision_boundary_1d(logit: Callable[[torch.Tensor], torch.Tensor], bounds: Sequence[float], n_points: int = 10001,
                         dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The points where a 1-D logit Delta(x) crosses zero (the classifier's P(data | x) = 1/2).

    Finds sign changes of Delta on n_points grid points in [low, high] and refines each by 60 bisection steps
    (to float64 precision). logit: callable (batch, 1) -> (batch,), evaluated on points of ``dtype`` on
    ``device`` (pass the device of the tensors inside the logit). Returns the sorted roots (k,) on the CPU.
    Example: E = x^2/2 with c = 0, p_n = N(0, 4), nu = 1 has its roots at +-2.073 (chapter 5).
    """
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bounds must be a pair (low, high); got {bounds!r}.") from err
    if not high > low:
        raise ValueError(f"bounds need low < high; got ({low}, {high}).")
    n_points = check_int(n_points, "n_points", minimum=3)
    xs = torch.linspace(low, high, n_points, dtype=dtype, device=device)
    with torch.no_grad():
        f = logit(xs[:, None]).reshape(-1)
        crossing = (torch.sign(f[:-1]) * torch.sign(f[1:]) <= 0).nonzero().reshape(-1)
        if len(crossing) > 100:
            raise ValueError(
                f"the logit changes sign or is zero in {len(crossing)} of {n_points - 1} grid intervals: it is "
                "(numerically) zero over a whole stretch, so the classifier is undecided there and there is no "
                "boundary to find (e.g. noise equal to the model)."
            )
        roots = []
        for i in crossing.tolist():
            a, b = xs[i : i + 1], xs[i + 1 : i + 2]
            fa = f[i]
            for _ in range(60):
                mid = 0.5 * (a + b)
                fm = logit(mid[:, None]).reshape(-1)[0]
                if (fm > 0) == (fa > 0):
                    a, fa = mid, fm
                else:
                    b = mid
            roots.append(float(0.5 * (a + b)))
    roots = sorted({round(r, 12) for r in roots})
    return torch.tensor(roots, dtype=dtype)


def nce_asymptotic_covariance(score: Callable[[torch.Tensor], torch.Tensor], log_p_data: Callable[[torch.Tensor], torch.Tensor],
                              log_noise: Callable[[torch.Tensor], torch.Tensor], nu: float, bounds,
                              n_points: int = 4000, device=None) -> torch.Tensor:
    """The asymptotic covariance of the NCE estimator (Gutmann & Hyvarinen 2012, Theorem 3), by quadrature.

    With T_d data points and T_n = nu T_d noise samples, sqrt(T_d) (theta_hat - theta*) -> N(0, Sigma),
        Sigma = I_nu^{-1} - (1 + 1/nu) I_nu^{-1} m m^T I_nu^{-1},
        I_nu = int g g^T P_nu p_d dx,   m = int g P_nu p_d dx,   P_nu = nu p_n / (p_d + nu p_n),
    where g(x) = grad of log p_theta(x) = -E_theta(x) - c with respect to all k parameters (c included) at
    the true theta*. score: x (batch, d) -> g (batch, k); log_p_data, log_noise: x -> (batch,);
    bounds: [(low, high)] or [(low, high), (low, high)] covering the data; the grid is built in float64 on
    ``device`` (that of the tensors inside the callables). Returns Sigma (k, k) in float64;
    the estimator's covariance for T_d data points is Sigma / T_d (not differentiable). As nu -> infinity Sigma tends to the
    Cramer-Rao bound; with p_n = p_d it is (1 + 1/nu) times that bound (their Corollaries 5-7).
    """
    nu = _check_nu(nu)
    points, _, cell = grid(bounds, n_points, device=device, dtype=torch.float64)
    with torch.no_grad():
        g = score(points)
        log_pd, log_pn = log_p_data(points), log_noise(points)
    if g.dim() != 2 or g.shape[0] != points.shape[0]:
        raise ValueError(f"score(x) must return (batch, k), one gradient row per point; got {tuple(g.shape)}.")
    weight = torch.exp(log_pd) * torch.sigmoid(math.log(nu) + log_pn - log_pd) * cell  # p_d P_nu dx
    info = (g * weight[:, None]).T @ g
    m = g.T @ weight
    info_inv = torch.linalg.inv(info)
    return info_inv - (1 + 1 / nu) * info_inv @ torch.outer(m, m) @ info_inv


# --------------------------------------------------------------------------------------------- training
def _check_covered(noise, x: torch.Tensor) -> None:
    log_pn = _noise_log_prob(noise, x, "x")
    n_out = int((~torch.isfinite(log_pn)).sum())
    if n_out:
        raise ValueError(
            f"{n_out} of {len(x)} data points lie where the noise density is zero (log p_n = -inf); NCE can "
            "only learn where the noise reaches. Widen the noise (e.g. a larger uniform box)."
        )


def _check_sample(noise, n: int, d: int, generator) -> torch.Tensor:
    out = noise.sample(n, generator=generator)
    if not isinstance(out, torch.Tensor) or out.shape != (n, d):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"noise.sample({n}) must return a tensor of shape ({n}, {d}); got {shape}.")
    return out


def _guard(loss: torch.Tensor, step: int) -> None:
    if not bool(torch.isfinite(loss)):
        raise DivergenceError(
            f"the NCE loss became {float(loss)} at step {step}. Lower the learning rate, or use noise that "
            "covers the data (a density of zero or a tiny density where the data lie makes the logit explode)."
        )


def fit_nce(model: NCEModel, x_data: torch.Tensor, x_noise: torch.Tensor,
            noise, nu: float, max_iter: int = 200, tol: float = 1e-9,
            objective: str = "binary") -> dict:
    """The NCE estimator of Gutmann & Hyvarinen: minimise L on one fixed set
    of data and noise samples (the estimator their Theorem 3 describes).

    Full-batch L-BFGS (strong Wolfe line search): for a model with a handful
    of parameters (a Gaussian EBM) this reaches the minimiser of the sample
    objective (until every |dL/dparameter| < tol, or the loss stops changing
    at machine precision), so what remains is the estimator's own error.
    x_data: (T_d, d), x_noise: (T_n, d) with T_n = nu T_d. objective:
    "binary" (:func:`nce_loss`) or "ranking" (:func:`ranking_nce_loss`,
    nu = K an integer: row i's noise samples are x_noise[i*K:(i+1)*K]; c gets
    no gradient and keeps its value). Returns {"loss", "n_iter"}.
    """
    if objective not in ("binary", "ranking"):
        raise ValueError("objective must be 'binary' or 'ranking'; got "
                         f"{objective!r}.")
    nu = _check_nu(nu)
    if objective == "ranking" and nu != int(nu):
        raise ValueError("ranking NCE needs a whole number K = nu of noise "
                         f"samples per datum; got nu = {nu}.")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    x_data = check_tensor(x_data, "x_data", ndim=2)
    x_noise = check_tensor(x_noise, "x_noise", shape=(None, x_data.shape[1]))
    tol = check_positive(tol, "tol")
    _check_covered(noise, x_data)
    if objective == "ranking":
        k = int(nu)
        if len(x_noise) != k * len(x_data):
            raise ValueError(f"x_noise has {len(x_noise)} rows; ranking NCE "
                             f"with K = {k} needs K * T_d = {k * len(x_data)}.")
        x_noise_k = x_noise.reshape(len(x_data), k, x_data.shape[1])

    def objective_fn():
        if objective == "ranking":
            return ranking_nce_loss(model, x_data, x_noise_k, noise)
        return nce_loss(model, x_data, x_noise, noise, nu)

    eps = torch.finfo(x_data.dtype).eps
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter,
                            tolerance_grad=tol, tolerance_change=eps,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective_fn()
        loss.backward()
        return loss

    opt.step(closure)
    n_iter = opt.state_dict()["state"][0]["n_iter"]
    with torch.no_grad():
        loss = objective_fn()
    _guard(loss, n_iter)
    return {"loss": float(loss), "n_iter": n_iter}


def train_nce(model: NCEModel, x: torch.Tensor, noise, nu: float = 1.0,
              n_steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
              generator: torch.Generator | None = None,
              log_every: int = 50) -> dict:
    """Stochastic NCE: each Adam step takes a minibatch of data and draws
    round(nu * batch) fresh noise samples.

    Fresh noise at every step means that over a run the model sees far more
    noise than nu per datum (n_steps * nu * batch_size noise points for
    len(x) data points), so Theorem 3 of Gutmann & Hyvarinen (one fixed noise
    sample, see :func:`fit_nce`) does not describe this estimator exactly.
    x: (n, d) training data; noise: ``sample(n, generator)`` and
    ``log_prob(x)``; generator: on x's device. The divergence guard runs every
    ``log_every`` steps. Returns a history dict: "step", "loss" (mean over
    each window of log_every steps), "c".
    """
    nu = _check_nu(nu)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    log_every = check_int(log_every, "log_every", minimum=1)
    lr = check_positive(lr, "lr")
    x = check_tensor(x, "x", ndim=2)
    n_noise = round(nu * batch_size)
    if n_noise < 1:
        raise ValueError(f"nu * batch_size = {nu * batch_size:g} rounds to no "
                         "noise sample; raise nu or batch_size.")
    _check_covered(noise, x)
    _check_sample(noise, n_noise, x.shape[1], generator)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"step": [], "loss": [], "c": []}
    window = torch.zeros((), device=x.device, dtype=x.dtype)
    for step in progress(range(1, n_steps + 1), desc="NCE"):
        idx = torch.randint(len(x), (min(batch_size, len(x)),),
                            generator=generator, device=x.device)
        x_batch = x[idx]
        x_noise = noise.sample(round(nu * len(x_batch)), generator=generator)
        loss = nce_loss(model, x_batch, x_noise, noise, nu)
        opt.zero_grad()
        loss.backward()
        opt.step()
        window = window + loss.detach()
        if step % log_every == 0 or step == n_steps:
            n_win = (step - 1) % log_every + 1
            _guard(window, step)
            history["step"].append(step)
            history["loss"].append(float(window) / n_win)
            history["c"].append(float(model.c.detach()))
            window = torch.zeros_like(window)
    return history
