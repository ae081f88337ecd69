"""Every method on the same data, with the same budget, by the same measures (chapter 10).

The chapters each teach one way to train an energy-based model. Here they share one training loop and
differ only where the methods really differ: where the **negatives** come from (Langevin chains from the data,
from noise or from a replay buffer; Gibbs chains; samples of a noise distribution; none at all) and which
**loss** compares them with the data (the maximum-likelihood surrogate, NCE's cross-entropy, sliced or
denoising score matching, the pseudo-likelihood). Every method and every loss is the chapters' own code
(``training.ml_loss``, ``samplers.ula``, ``samplers.ReplayBuffer``, ``nce.nce_loss``, ``score.*``,
``rbm.BernoulliRBM``); this module only wires them to one loop and one budget.

The budget is counted in **energy-gradient evaluations**: one unit each time a gradient flows back through
the energy at one point (a Langevin step on a batch of B chains costs B; the parameter gradient of a loss
that evaluates E at B data and B negative points costs 2B). :class:`CountedEnergy` is the one place that
counts them: a hook on the energy's output fires exactly when autograd differentiates it, whatever the
method. Score-matching losses differentiate the gradient once more for the parameter update (a second-order
pass that costs about as much again); the count does not see that pass, the wall-clock time does, and
chapter 10 shows both. For an RBM a Gibbs sweep (a product with W, then with W^T) costs what one
free-energy gradient costs, so it counts as one evaluation per chain; the pseudo-likelihood's n_v flipped
free energies share one product with W and add one W-sized pass, so it counts as two per example (measured,
its steps take several times longer than that count says; chapter 10 shows the time view beside the count).

An equal budget is not enough: a setting shared by all methods favours some of them. Every method therefore
gets the same tuning budget too: the learning rates ``LEARNING_RATES_2D`` (``LEARNING_RATES_RBM``), the
best chosen on validation data (:func:`choose_learning_rates`), as Lucic et al. (2018) and Melis et al.
(2018) argue a fair comparison must.

The measures: exact test log-likelihood (quadrature in 2-D, enumeration for small RBMs), the error in the
weights of a mixture's modes (against :func:`mode_error_floor` for samples), the kernel two-sample statistic
:func:`mmd2` with its permutation test, and the proxies of chapters 2-4.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .core import (
    DivergenceError,
    check_binary,
    check_int,
    check_positive,
    check_probability,
    check_tensor,
    make_generator,
)
from .data import GaussianMixture, ring_of_gaussians, toy_data_labelled
from .energies import MLPEnergy
from .evaluate import grid
from .nce import GaussianNoise, NCEModel, nce_loss
from .rbm import BernoulliRBM
from .samplers import ReplayBuffer, ula
from .score import (
    EnergyScore,
    denoising_score_matching_loss,
    geometric_sigmas,
    noise_conditional_dsm_loss,
    sliced_score_matching_loss,
)
from .training import divergence_guard, ml_loss

__all__ = [
    "CountedEnergy",
    "Method",
    "LangevinML",
    "NCE",
    "SlicedSM",
    "DSM",
    "NoiseConditionalDSM",
    "NoiseConditionalEnergy",
    "noise_conditional_score",
    "RBMEnergy",
    "GibbsML",
    "PseudoLikelihood",
    "BernoulliNoise",
    "train",
    "mmd2",
    "mmd2_permutation",
    "median_bandwidth",
    "Target",
    "make_target",
    "mixture_target",
    "moons_log_prob",
    "target_law",
    "blurred_test_ll",
    "evaluate_2d",
    "mode_weight_error",
    "sample_mode_error",
    "mode_error_floor",
    "mass_outside_box",
    "TARGETS",
    "langevin_diagnostics",
    "rbm_measures",
    "kendall_tau",
    "mean_spread",
    "CONTINUOUS_METHODS",
    "BINARY_METHODS",
    "LEARNING_RATES_2D",
    "LEARNING_RATES_RBM",
    "choose_learning_rates",
    "tuned_rows",
    "continuous_method",
    "binary_method",
    "new_energy",
    "fit_2d",
    "fit_rbm",
    "digits_split",
    "read_results",
]


# --------------------------------------------------------------------------------------------- the counter
class CountedEnergy(nn.Module):
    """Wraps an energy and counts energy-gradient evaluations: the one place the budget is measured.

    Each forward pass whose output autograd will differentiate registers a hook on that output; the hook
    fires once per backward pass that flows through it (a sampler's grad_x E, a loss's parameter gradient)
    and adds the number of points, B for a (B,) output. A forward pass under ``torch.no_grad()``
    (evaluation) costs nothing, and a gradient of a gradient (score matching's parameter step) is not
    counted again. :meth:`add` counts work that happens outside autograd (Gibbs sweeps of an RBM).
    ``n_evaluations`` is a plain int: counting never reads back from the GPU.

    energy: a module x -> (batch,) (extra arguments, e.g. a noise level, are passed through).
    """

    def __init__(self, energy: nn.Module):
        super().__init__()
        if not isinstance(energy, nn.Module):
            raise TypeError(f"energy must be a torch.nn.Module mapping x to (batch,); got {type(energy).__name__}.")
        self.energy = energy
        self.n_evaluations = 0

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        e = self.energy(x, *args)
        if e.requires_grad:
            e.register_hook(self._count)
        return e

    def _count(self, grad: torch.Tensor) -> None:
        self.n_evaluations += grad.shape[0]

    def add(self, n: int) -> None:
        """Count n evaluations done outside autograd (e.g. n chains x k Gibbs sweeps)."""
        self.n_evaluations += check_int(n, "n", minimum=0)


# --------------------------------------------------------------------------------------------- methods
class Method:
    """A training recipe: where the negatives come from (:meth:`negatives`) and the loss (:meth:`loss`).

    :func:`train` calls ``reset(energy, data, generator)`` once (fresh buffers, noise fitted to the data), then
    per step ``x_neg = negatives(energy, x_pos, generator)`` and ``loss(energy, x_pos, x_neg, generator)``.
    ``parameters()`` lists extra trainable parameters (NCE's log-normaliser c). ``energy`` is the counted
    energy, so every gradient the method takes is on the budget.
    """

    name = "method"

    def reset(self, energy: nn.Module, data: torch.Tensor, generator=None) -> None:
        pass

    def parameters(self) -> List[torch.Tensor]:
        return []

    def negatives(self, energy, x_pos: torch.Tensor, generator=None) -> Optional[torch.Tensor]:
        return None

    def loss(self, energy, x_pos, x_neg, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LangevinML(Method):
    """Maximum likelihood with k unadjusted Langevin steps for the negatives (chapter 4's ``ula`` and
    ``ml_loss``): loss = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2).

    start: "data" (CD-k: the chains start at the data batch), "noise" (short-run chains from uniform noise
    over ``box``; Nijkamp et al. 2019) or "buffer" (a replay buffer of past negatives with ``reinit_fraction``
    fresh noise; Du & Mordatch 2019, the continuous form of PCD). box: ((low, high), ...) per dimension: the
    noise is drawn and the chains are clamped there. Cost per step: (k + 2) * batch evaluations.
    """

    def __init__(self, k: int, step_size: float, start: str = "data", box=((-6.0, 6.0), (-6.0, 6.0)),
                 alpha: float = 0.1, buffer_size: int = 2000, reinit_fraction: float = 0.05, name: Optional[str] = None):
        self.k = check_int(k, "k", minimum=1)
        self.step_size = check_positive(step_size, "step_size", "A typical value for 2-D data is 0.01-0.1.")
        if start not in ("data", "noise", "buffer"):
            raise ValueError(f"start must be 'data' (CD-k), 'noise' (short-run) or 'buffer' (replay); got {start!r}.")
        self.start = start
        self.box = _check_box(box)
        if not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0 (0 switches the energy regulariser off); got {alpha!r}.")
        self.alpha = float(alpha)
        self.buffer_size = check_int(buffer_size, "buffer_size", minimum=1)
        self.reinit_fraction = check_probability(reinit_fraction, "reinit_fraction")
        default = {"data": f"CD-{k}", "noise": f"short-run {k}", "buffer": f"replay {k}"}[start]
        self.name = name or default
        self.buffer = None

    def reset(self, energy, data, generator=None):
        lows = [lo for lo, _ in self.box]
        highs = [hi for _, hi in self.box]
        if len(self.box) != data.shape[1]:
            raise ValueError(f"box has {len(self.box)} dimensions but the data {data.shape[1]}.")
        self._clamp = (min(lows), max(highs))
        low = torch.tensor(lows, device=data.device, dtype=data.dtype)
        high = torch.tensor(highs, device=data.device, dtype=data.dtype)
        self.noise_fn = lambda n, g=None: low + (high - low) * torch.rand(n, len(lows), generator=g, device=data.device,
                                                                          dtype=data.dtype)
        self.buffer = ReplayBuffer(self.buffer_size, self.noise_fn, self.reinit_fraction) if self.start == "buffer" else None

    def negatives(self, energy, x_pos, generator=None):
        if self.start == "data":
            x0 = x_pos
        elif self.start == "noise":
            x0 = self.noise_fn(len(x_pos), generator)
        else:
            x0 = self.buffer.sample(len(x_pos), generator)[0]
        x_neg = ula(x0, energy, self.k, self.step_size, generator, clamp=self._clamp)
        if self.buffer is not None:
            self.buffer.push(x_neg)
        return x_neg

    def loss(self, energy, x_pos, x_neg, generator=None):
        return ml_loss(energy(x_pos), energy(x_neg.detach()), self.alpha)


class NCE(Method):
    """Noise-contrastive estimation (chapter 5's ``NCEModel`` and ``nce_loss``) with noise fitted to the data.

    nu: noise samples per data point; fit_noise: data -> a noise distribution with ``sample(n, generator)``
    and ``log_prob(x)`` (default: ``GaussianNoise.fit``, a Gaussian with the data's mean and covariance,
    widened by ``widen``; use ``BernoulliNoise.fit`` for binary data). The learned log-normaliser is
    ``self.model.c``. Cost per step: (1 + nu) * batch evaluations.
    """

    def __init__(self, nu: float = 4.0, widen: float = 1.0, fit_noise: Optional[Callable] = None, name: Optional[str] = None):
        self.nu = check_positive(nu, "nu", "nu is the number of noise samples per data point, e.g. 1 or 4.")
        self.widen = check_positive(widen, "widen")
        if fit_noise is not None and not callable(fit_noise):
            raise TypeError(f"fit_noise must be a callable data -> noise distribution; got {type(fit_noise).__name__}.")
        self.fit_noise = fit_noise
        self.name = name or f"NCE (nu = {nu:g})"
        self.n_init = 1000
        self.model = None

    def reset(self, energy, data, generator=None):
        self.noise = self.fit_noise(data) if self.fit_noise is not None else GaussianNoise.fit(data, self.widen)
        # c starts at an importance-sampling estimate of log Z with the noise as proposal,
        # log mean exp(-E(x_n) - log p_n(x_n)), so that training need not first walk c from 0 to log Z
        # (tens of nats for an RBM). Not counted: it is one forward pass without gradients.
        with torch.no_grad():
            x_n = self.noise.sample(self.n_init, generator=generator)
            log_w = (-energy(x_n) - self.noise.log_prob(x_n)).to(torch.float64)
            c0 = float(torch.logsumexp(log_w, 0)) - math.log(self.n_init)
        self.model = NCEModel(energy, c=c0)

    def parameters(self):
        return [self.model.c]

    def negatives(self, energy, x_pos, generator=None):
        return self.noise.sample(round(self.nu * len(x_pos)), generator=generator)

    def loss(self, energy, x_pos, x_neg, generator=None):
        return nce_loss(self.model, x_pos, x_neg, self.noise, self.nu)


class SlicedSM(Method):
    """Sliced score matching on the energy's score s = -grad_x E (chapter 6's ``sliced_score_matching_loss``
    with ``EnergyScore``). Cost per step: n_projections * batch evaluations (plus the uncounted second-order
    pass)."""

    def __init__(self, n_projections: int = 1, name: Optional[str] = None):
        self.n_projections = check_int(n_projections, "n_projections", minimum=1)
        self.name = name or "sliced SM"

    def loss(self, energy, x_pos, x_neg, generator=None):
        return sliced_score_matching_loss(EnergyScore(energy), x_pos, self.n_projections, generator,
                                          variance_reduction=True)


class DSM(Method):
    """Denoising score matching at one noise level sigma on s = -grad_x E (chapter 6). The energy then models
    the noisy data p * N(0, sigma^2 I), not p. Cost per step: batch evaluations."""

    def __init__(self, sigma: float = 0.3, name: Optional[str] = None):
        self.sigma = check_positive(sigma, "sigma")
        self.name = name or f"DSM (sigma = {sigma:g})"

    def loss(self, energy, x_pos, x_neg, generator=None):
        return denoising_score_matching_loss(EnergyScore(energy), x_pos, self.sigma, generator)


class NoiseConditionalEnergy(nn.Module):
    """A noise-conditional energy E(x, sigma) = g(x, log sigma) / sigma, g an ``MLPEnergy`` on (x, log sigma).

    Its score -grad_x E = -grad_x g / sigma has the 1/sigma size of the true noisy score, as in
    ``score.NoiseConditionalScoreNet`` (Song & Ermon 2020). ``forward(x)`` without sigma uses ``sigma_eval``,
    the smallest training level, so that the model is an ordinary energy for evaluation and sampling.
    x: (batch, dim); sigma: a float or (batch,) -> (batch,).
    """

    def __init__(self, dim: int = 2, hidden: int = 32, n_layers: int = 2, sigma_eval: float = 0.1):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.body = MLPEnergy(self.dim + 1, hidden, n_layers)
        self.sigma_eval = check_positive(sigma_eval, "sigma_eval")

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}.")
        sigma = torch.as_tensor(self.sigma_eval if sigma is None else sigma, device=x.device, dtype=x.dtype)
        sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        return self.body(torch.cat([x, sigma.log()[:, None]], dim=1)) / sigma


class NoiseConditionalDSM(Method):
    """Noise-conditional DSM (Song & Ermon 2019; chapter 6's ``noise_conditional_dsm_loss``) on the score
    -grad_x E(x, sigma) of a :class:`NoiseConditionalEnergy`, whose ``sigma_eval`` it sets to sigma_min: the
    trained model is the energy at the smallest level, a model of p * N(0, sigma_min^2 I) like single-level DSM.
    Cost per step: batch evaluations."""

    def __init__(self, sigma_max: float = 2.0, sigma_min: float = 0.3, n_levels: int = 6, name: Optional[str] = None):
        self.sigma_max = check_positive(sigma_max, "sigma_max")
        self.sigma_min = check_positive(sigma_min, "sigma_min")
        self.n_levels = check_int(n_levels, "n_levels", minimum=1)
        self.name = name or "NC-DSM"

    def reset(self, energy, data, generator=None):
        inner = energy.energy if isinstance(energy, CountedEnergy) else energy
        if not isinstance(inner, NoiseConditionalEnergy):
            raise TypeError(f"noise-conditional DSM trains a NoiseConditionalEnergy E(x, sigma); got {type(inner).__name__}.")
        inner.sigma_eval = self.sigma_min  # the model of the data: the energy at the smallest level
        self.sigmas = geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels, device=data.device, dtype=data.dtype)

    def loss(self, energy, x_pos, x_neg, generator=None):
        return noise_conditional_dsm_loss(noise_conditional_score(energy), x_pos, self.sigmas, generator)


def noise_conditional_score(energy: Callable) -> Callable:
    """The score s(x, sigma) = -grad_x E(x, sigma) of a noise-conditional energy, as ``score.EnergyScore`` gives it
    at each level: for ``noise_conditional_dsm_loss`` (training) and ``annealed_langevin`` (sampling; under
    ``torch.no_grad()`` the score comes back detached). x: (batch, d); sigma: a float or (batch,)."""
    if not callable(energy):
        raise TypeError(f"energy must be a callable (x, sigma) -> (batch,); got {type(energy).__name__}.")
    return lambda x, sigma: EnergyScore(lambda y: energy(y, sigma))(x)


# --------------------------------------------------------------------------------------------- binary data
class RBMEnergy(nn.Module):
    """An RBM's free energy F(v) as a module, so that one loop trains RBMs by any loss.

    F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j) is ``BernoulliRBM.free_energy`` of ``self.rbm``, whose
    parameter matrix theta = [[W, b], [c^T, 0]] is this module's ``theta`` parameter; ``self.sampler`` is a
    second view of the same numbers without autograd, for Gibbs sampling (chapter 2). An optimiser step on
    ``theta`` changes both. v: (batch, n_visible) in {0, 1} -> (batch,).
    """

    def __init__(self, rbm: BernoulliRBM):
        super().__init__()
        if not isinstance(rbm, BernoulliRBM):
            raise TypeError(f"rbm must be an ebm_teach.rbm.BernoulliRBM; got {type(rbm).__name__}.")
        self.theta = nn.Parameter(rbm.theta.clone())
        self.rbm = BernoulliRBM(rbm.n_visible, rbm.n_hidden, device=rbm.device, dtype=rbm.dtype, init_std=0.0)
        self.rbm.theta = self.theta
        self.sampler = BernoulliRBM(rbm.n_visible, rbm.n_hidden, device=rbm.device, dtype=rbm.dtype, init_std=0.0,
                                    generator=rbm.generator)
        self.sampler.theta = self.theta.detach()  # shares storage with theta

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.rbm.free_energy(v)


def _rbm_of(energy) -> RBMEnergy:
    inner = energy.energy if isinstance(energy, CountedEnergy) else energy
    if not isinstance(inner, RBMEnergy):
        raise TypeError(f"this method trains an RBMEnergy (an RBM's free energy); got {type(inner).__name__}.")
    return inner


class GibbsML(Method):
    """Maximum likelihood for an RBM with k block-Gibbs sweeps for the negatives: CD-k (chains start at the
    data batch) or PCD-k (``persistent``: n_chains chains continue from the previous step; Tieleman 2008).

    The loss mean F(v+) - mean F(v-) has the CD/PCD gradient of chapter 2 (dF/dW = -v p(h|v)^T). Cost per step:
    k sweeps per chain (counted with :meth:`CountedEnergy.add`) + the free-energy gradients at the data and
    the negatives: (k + 2) * batch with batch = n_chains.
    """

    def __init__(self, k: int = 1, persistent: bool = False, name: Optional[str] = None):
        self.k = check_int(k, "k", minimum=1)
        self.persistent = bool(persistent)
        self.name = name or f"{'PCD' if persistent else 'CD'}-{k}"
        self.chains = None

    def reset(self, energy, data, generator=None):
        check_binary(data, "data")
        self.chains = None

    def negatives(self, energy, x_pos, generator=None):
        start = x_pos
        if self.persistent:
            if self.chains is None:
                self.chains = (torch.rand(x_pos.shape, generator=generator, device=x_pos.device) < 0.5).to(x_pos.dtype)
            start = self.chains
        v = _rbm_of(energy).sampler.gibbs(start, self.k, generator)
        energy.add(self.k * len(start))
        if self.persistent:
            self.chains = v
        return v

    def loss(self, energy, x_pos, x_neg, generator=None):
        return ml_loss(energy(x_pos), energy(x_neg), alpha=0.0)


class PseudoLikelihood(Method):
    """Maximum pseudo-likelihood for an RBM (Besag 1975): loss = -mean sum_i log p(v_i | v_-i), chapter 2's
    ``BernoulliRBM.pseudo_log_likelihood``. No negatives and no Z. Cost per step: 2 * batch (see the module
    docstring)."""

    name = "pseudo-likelihood"

    def loss(self, energy, x_pos, x_neg, generator=None):
        energy.add(2 * len(x_pos))
        return -_rbm_of(energy).rbm.pseudo_log_likelihood(x_pos).mean()


class BernoulliNoise:
    """Independent Bernoulli noise p_n(v) = prod_i q_i^v_i (1 - q_i)^(1 - v_i) for binary data (NCE on an RBM).

    q: (n_visible,) in (0, 1). ``BernoulliNoise.fit(v)`` takes the data's pixel means, clipped to
    [eps, 1 - eps] so that every binary vector has a finite log-density.
    """

    def __init__(self, q):
        q = check_tensor(q, "q", ndim=1)
        if not bool(((q > 0) & (q < 1)).all()):
            raise ValueError("every q_i must lie strictly between 0 and 1 (clip them, e.g. to [1e-3, 1 - 1e-3]).")
        self.q = q

    @classmethod
    def fit(cls, v, eps: float = 1e-3) -> "BernoulliNoise":
        """The product of Bernoullis with the data's pixel means (clipped to [eps, 1 - eps]); v: (n, n_visible)."""
        v = check_binary(check_tensor(v, "v", ndim=2), "v")
        eps = check_probability(eps, "eps", allow_zero=False)
        return cls(v.mean(0).clamp(eps, 1 - eps))

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log p_n(v) = sum_i [v_i log q_i + (1 - v_i) log(1 - q_i)], v: (batch, n_visible) -> (batch,)."""
        return v @ self.q.log() + (1 - v) @ torch.log1p(-self.q)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """n samples (n, n_visible) of 0/1 floats."""
        u = torch.rand(n, len(self.q), generator=generator, device=self.q.device, dtype=self.q.dtype)
        return (u < self.q).to(self.q.dtype)


# --------------------------------------------------------------------------------------------- the loop
def train(method: Method, energy: nn.Module, data: torch.Tensor, budget: Optional[int] = None, batch_size: int = 64,
          lr: float = 2e-3, generator: Optional[torch.Generator] = None, checkpoints: Sequence[int] = (),
          on_checkpoint: Optional[Callable] = None, check_every: int = 10, max_steps: Optional[int] = None) -> dict:
    """Train ``energy`` on ``data`` with ``method`` until ``budget`` energy-gradient evaluations are spent.

    Each step: a minibatch x+ of ``batch_size`` rows, x- = method.negatives(...), loss = method.loss(...), one
    Adam step (PyTorch's default betas, the same for every method) on the energy's parameters and the
    method's own (NCE's c), and the divergence guard on the loss every ``check_every`` steps. Training stops
    after the first step at which the count reaches ``budget`` (so it overshoots by less than one step's
    cost), or after ``max_steps`` steps (give at least one of the two).
    energy: a module x -> (batch,), or a :class:`CountedEnergy` to go on counting from its current count.
    checkpoints: counts at which ``on_checkpoint(energy, method)`` is called (e.g. to measure the test
    log-likelihood); each checkpoint's record holds "evaluations", "seconds" (training time so far, callbacks
    excluded) and "steps", and the dict the callback returns is merged into it.

    Returns a dict: "evaluations" (the exact count), "steps", "seconds", "records" (one per checkpoint
    reached, plus the end). Raises DivergenceError when the loss becomes NaN/inf or explodes.
    """
    if not isinstance(method, Method):
        raise TypeError(f"method must be an ebm_teach.compare.Method (e.g. LangevinML, NCE, DSM); got {type(method).__name__}.")
    data = check_tensor(data, "data", ndim=2)
    if budget is None and max_steps is None:
        raise ValueError("give a budget (energy-gradient evaluations) or max_steps, or both.")
    budget = math.inf if budget is None else check_int(budget, "budget", minimum=1)
    max_steps = math.inf if max_steps is None else check_int(max_steps, "max_steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=len(data))
    lr = check_positive(lr, "lr")
    check_every = check_int(check_every, "check_every", minimum=1)
    checkpoints = sorted(check_int(c, "checkpoint", minimum=1) for c in checkpoints)
    if generator is not None and generator.device.type != data.device.type:
        raise ValueError(f"generator is on {generator.device} but data is on {data.device}; put them on one device.")
    counted = energy if isinstance(energy, CountedEnergy) else CountedEnergy(energy)
    method.reset(counted, data, generator)
    params = list(counted.parameters()) + list(method.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    records, seconds, step, next_cp = [], 0.0, 0, 0
    start = time.perf_counter()
    while counted.n_evaluations < budget and step < max_steps:
        idx = torch.randint(0, len(data), (batch_size,), generator=generator, device=data.device)
        x_pos = data[idx]
        x_neg = method.negatives(counted, x_pos, generator)
        loss = method.loss(counted, x_pos, x_neg, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        divergence_guard(step, max_abs=1e6, check_every=check_every, loss=loss.detach())
        while next_cp < len(checkpoints) and counted.n_evaluations >= checkpoints[next_cp]:
            seconds += time.perf_counter() - start
            records.append(_record(counted, method, on_checkpoint, counted.n_evaluations, seconds, step))
            next_cp += 1
            start = time.perf_counter()
    seconds += time.perf_counter() - start
    if not records or records[-1]["evaluations"] != counted.n_evaluations:
        records.append(_record(counted, method, on_checkpoint, counted.n_evaluations, seconds, step))
    return {"evaluations": counted.n_evaluations, "steps": step, "seconds": seconds, "records": records}


def _record(counted, method, on_checkpoint, evaluations, seconds, step) -> dict:
    rec = {"evaluations": evaluations, "seconds": seconds, "steps": step}
    if on_checkpoint is not None:
        rec.update(on_checkpoint(counted.energy, method) or {})
    return rec


def _check_box(box):
    try:
        box = tuple((float(lo), float(hi)) for lo, hi in box)
    except (TypeError, ValueError) as err:
        raise ValueError(f"box must be ((low, high), ...) per dimension, e.g. ((-6, 6), (-6, 6)); got {box!r}.") from err
    if not box or any(not hi > lo for lo, hi in box):
        raise ValueError(f"box needs low < high in every dimension; got {box}.")
    return box


# --------------------------------------------------------------------------------------------- MMD
def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """The median heuristic: the median distance between all pairs of the pooled points x: (m, d), y: (n, d)."""
    z = torch.cat([check_tensor(x, "x", ndim=2), check_tensor(y, "y", ndim=2, like=x)])
    dist = torch.cdist(z.double(), z.double())
    return float(dist[torch.triu(torch.ones_like(dist, dtype=torch.bool), diagonal=1)].median())


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float, biased: bool = False) -> float:
    """The squared maximum mean discrepancy between samples x: (m, d) and y: (n, d), Gaussian kernel.

    k(a, b) = exp(-|a - b|^2 / (2 h^2)) with h = bandwidth. Unbiased (default; Gretton et al. 2012, eq. 3):

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1))
                  - 2 sum_{i, j} k(x_i, y_j) / (m n),

    whose expectation is MMD^2 exactly (it can be slightly negative when the laws agree). ``biased=True`` keeps
    the diagonal terms i = j and divides by m^2 and n^2 (the V-statistic, always >= 0, biased upwards by
    O(1/m + 1/n)). Computed in float64; returns a float. Needs m, n >= 2.
    """
    x = check_tensor(x, "x", ndim=2)
    y = check_tensor(y, "y", ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {x.shape[1]} and {y.shape[1]}.")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"each sample needs at least 2 points; got {len(x)} and {len(y)}.")
    h = check_positive(bandwidth, "bandwidth", "median_bandwidth(x, y) gives a standard choice.")
    x, y = x.double(), y.to(device=x.device, dtype=torch.float64)

    def kernel_sum(a, b, drop_diagonal):
        k = torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))
        return k.sum() - (k.diagonal().sum() if drop_diagonal else 0.0)

    m, n = len(x), len(y)
    if biased:
        return float(kernel_sum(x, x, False) / m**2 + kernel_sum(y, y, False) / n**2 - 2 * kernel_sum(x, y, False) / (m * n))
    return float(kernel_sum(x, x, True) / (m * (m - 1)) + kernel_sum(y, y, True) / (n * (n - 1))
                 - 2 * kernel_sum(x, y, False) / (m * n))


def mmd2_permutation(x: torch.Tensor, y: torch.Tensor, bandwidth: float, n_permutations: int = 200,
                     generator: Optional[torch.Generator] = None) -> dict:
    """The unbiased MMD^2 of x: (m, d) and y: (n, d) with its permutation test (Gretton et al. 2012, sec. 5).

    Under the null hypothesis "x and y come from one law" the labels x/y are exchangeable: relabelling the
    pooled m + n points at random n_permutations times gives the statistic's null distribution. Returns
    {"mmd2", "p_value": (1 + #{null >= mmd2}) / (1 + n_permutations), "null_sd": the null's standard
    deviation (the size of a difference that sampling noise alone makes)}. One kernel matrix, float64.
    """
    x = check_tensor(x, "x", ndim=2)
    y = check_tensor(y, "y", ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {x.shape[1]} and {y.shape[1]}.")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"each sample needs at least 2 points; got {m} and {n}.")
    h = check_positive(bandwidth, "bandwidth", "median_bandwidth(x, y) gives a standard choice.")
    n_permutations = check_int(n_permutations, "n_permutations", minimum=10)
    z = torch.cat([x.double(), y.to(device=x.device, dtype=torch.float64)])
    k = torch.exp(-torch.cdist(z, z) ** 2 / (2 * h * h))
    k.fill_diagonal_(0.0)  # the unbiased statistic leaves out i = j
    labels = [torch.arange(m + n, device=z.device)]
    labels += [torch.randperm(m + n, generator=generator, device=z.device) for _ in range(n_permutations)]
    a = torch.zeros(len(labels), m + n, dtype=torch.float64, device=z.device)
    for row, perm in enumerate(labels):
        a[row, perm[:m]] = 1.0
    ka = a @ k  # (P + 1, m + n)
    s_xx = (ka * a).sum(1)
    s_yy = ((k.sum(0) - ka) * (1 - a)).sum(1)
    s_xy = (ka * (1 - a)).sum(1)
    stats = s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - 2 * s_xy / (m * n)
    observed, null = float(stats[0]), stats[1:]
    return {"mmd2": observed, "p_value": float((1 + (null >= observed).sum()) / (1 + n_permutations)),
            "null_sd": float(null.std())}


# --------------------------------------------------------------------------------------------- 2-D targets
def moons_log_prob(x: torch.Tensor, n_arc: int = 1000, blur: float = 0.0) -> torch.Tensor:
    """The exact log-density of ``toy_data("moons")`` at x: (batch, 2) -> (batch,), by quadrature along the arcs.

    toy_data draws a moon (upper or lower, probability 1/2 each), t ~ U(0, pi), the arc point, adds N(0, 0.1^2 I)
    noise, then maps z -> 2 (z - (0.5, 0.25)). So p(x) = 1/2 sum_moon (1/pi) int_0^pi N(x; a_moon(t), 0.2^2 I) dt
    with the arcs mapped the same way; the t-integral uses the midpoint rule with n_arc points. Along t the
    integrand is a Gaussian of width 0.1 (0.2 over the arcs' radius 2), so with n_arc = 1000 (step 0.003)
    the relative error is below 1e-4 even at the arcs' ends (tested against n_arc = 8000). blur: the density
    of x + blur * z, z ~ N(0, I), instead (the variance 0.2^2 becomes 0.2^2 + blur^2).
    """
    x = check_tensor(x, "x", shape=(None, 2))
    return _moons_components(x, n_arc, blur).logsumexp(1) + math.log(0.5)


def _moons_components(x: torch.Tensor, n_arc: int = 1000, blur: float = 0.0) -> torch.Tensor:
    """log of each moon's density (without the 1/2 weight) at x: (batch, 2) -> (batch, 2), float64."""
    xd = x.to(torch.float64)
    t = (torch.arange(n_arc, dtype=torch.float64, device=x.device) + 0.5) * (math.pi / n_arc)
    shift = torch.tensor([0.5, 0.25], dtype=torch.float64, device=x.device)
    upper = 2 * (torch.stack([t.cos(), t.sin()], 1) - shift)
    lower = 2 * (torch.stack([1 - t.cos(), 0.5 - t.sin()], 1) - shift)
    s2 = 0.2**2 + float(blur) ** 2
    out = []
    for arc in (upper, lower):
        d2 = torch.cdist(xd, arc) ** 2  # (batch, n_arc)
        out.append(torch.logsumexp(-d2 / (2 * s2), dim=1) - math.log(n_arc) - math.log(2 * math.pi * s2))
    return torch.stack(out, 1)


@dataclass
class Target:
    """A 2-D data set with a known density: train/test data, a quadrature box, the exact log-density, and the
    regions (one per mode) in which mode weights are measured.

    region(x: (batch, 2)) -> (batch,) long: the mode a point belongs to (nearest mode centre for a mixture,
    nearer arc for the moons); true_masses: (K,) the true density's mass in each region on the box; val: an
    optional validation set (n, 2), drawn like the test set but used only to choose settings (learning rates),
    so that the test set judges the chosen model untouched.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    bounds: Tuple[Tuple[float, float], Tuple[float, float]]
    log_prob: Callable[[torch.Tensor], torch.Tensor]
    region: Callable[[torch.Tensor], torch.Tensor]
    n_modes: int
    true_masses: torch.Tensor = field(default=None)
    true_test_ll: float = field(default=None)
    val: Optional[torch.Tensor] = field(default=None, repr=False)
    _grids: dict = field(default_factory=dict, repr=False)

    def grid(self, n_grid: int):
        """The quadrature grid on the box with n_grid^2 points, the region of every point and the cell volume
        (cached: the regions of the moons need a distance to 4000 arc points per grid point)."""
        key = (n_grid, self.test.dtype, self.test.device)
        if key not in self._grids:
            points, _, cell = grid(self.bounds, n_grid, device=self.test.device, dtype=self.test.dtype)
            self._grids[key] = (points, self.region(points), cell)
        return self._grids[key]


TARGETS = ("ring8", "moons", "mixture", "ring8-unequal")
_BOUNDS = {"ring8": ((-6.5, 6.5), (-6.5, 6.5)), "moons": ((-4.0, 4.0), (-3.0, 3.0)), "mixture": ((-5.0, 5.0), (-5.0, 5.0)),
           "ring8-unequal": ((-6.5, 6.5), (-6.5, 6.5))}


def _toy_mixture() -> GaussianMixture:
    """The law toy_data("mixture") samples from: weights 0.5/0.3/0.2 at (-2,-2), (2,2), (2,-2), std 0.6."""
    means = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [2.0, -2.0]], dtype=torch.float64)
    return GaussianMixture.isotropic(means, 0.6, [0.5, 0.3, 0.2])


def _unequal_ring() -> GaussianMixture:
    """The ring of ring8 (8 Gaussians, radius 4, std 0.5) with alternating weights 3/16 and 1/16: unequal
    weights on a symmetric geometry."""
    ring = ring_of_gaussians(8, 4.0, 0.5)
    weights = torch.tensor([3.0, 1.0] * 4, dtype=torch.float64) / 16
    return GaussianMixture.isotropic(ring.means, 0.5, weights)


def target_law(name: str, blur: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exact log-density x: (batch, 2) -> (batch,) of target ``name`` (one of ``TARGETS``), or with
    blur > 0 that of the blurred data x + blur * z, z ~ N(0, I): what DSM at sigma = blur can at best learn."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}.")
    if not (isinstance(blur, (int, float)) and blur >= 0):
        raise ValueError(f"blur must be a number >= 0; got {blur!r}.")
    if name == "moons":
        return lambda x: moons_log_prob(x, blur=blur)
    law = {"ring8": lambda: ring_of_gaussians(8, 4.0, 0.5), "mixture": _toy_mixture, "ring8-unequal": _unequal_ring}[name]()
    law = law.convolve(blur) if blur > 0 else law
    return lambda x: law.to(device=x.device).log_prob(x.to(torch.float64))


def make_target(name: str, n_train: int = 2000, n_test: int = 2000, seed: int = 0, device=None,
                n_grid: int = 150, n_val: int = 2000) -> Target:
    """One of ``TARGETS``: "ring8" (8 equal Gaussians on a circle), "moons", "mixture" (weights 0.5/0.3/0.2),
    "ring8-unequal" (the ring with alternating weights 3/16 and 1/16, sampled from its law with
    ``make_generator(seed)``, ``seed + 1000``, ``seed + 2000``).

    Training data from ``seed``, test data from ``seed + 1000``, validation data (for choosing learning
    rates) from ``seed + 2000`` (``toy_data``), float32 on ``device``; the true masses per region and the
    true test log-likelihood are computed here (quadrature on n_grid^2 points, exact log-density on the test
    points).
    """
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}.")
    train = _target_data(name, check_int(n_train, "n_train", minimum=2), seed, device)
    test = _target_data(name, check_int(n_test, "n_test", minimum=2), seed + 1000, device)
    val = _target_data(name, check_int(n_val, "n_val", minimum=2), seed + 2000, device)
    if name != "moons":
        law = {"ring8": lambda: ring_of_gaussians(8, 4.0, 0.5), "mixture": _toy_mixture, "ring8-unequal": _unequal_ring}[name]()
        return mixture_target(name, law, _BOUNDS[name], train, test, n_grid, val=val)
    region = lambda x: _moons_components(x).argmax(1)  # noqa: E731
    target = Target(name, train, test, _BOUNDS[name], moons_log_prob, region, 2, val=val)
    points, _, cell = grid(target.bounds, n_grid, device=device, dtype=torch.float64)
    comp = _moons_components(points)  # one pass over the arcs gives both the density and the regions
    log_p, regions = comp.logsumexp(1) + math.log(0.5), comp.argmax(1)
    return _finish(target, log_p, regions, points, cell, n_grid)


def _target_data(name: str, n: int, seed: int, device) -> torch.Tensor:
    """n points of target ``name`` drawn from ``seed`` (float32 on device), as make_target draws them."""
    if name == "ring8-unequal":
        return _unequal_ring().sample(n, generator=make_generator(seed)).to(device=device, dtype=torch.float32)
    return toy_data_labelled(name, n, seed=seed, device=device)[0]


def blurred_test_ll(name: str, sigma: float, n_test: int = 2000, seed: int = 0, device=None) -> float:
    """The mean log-density of the blurred target p * N(0, sigma^2 I) on ``make_target(name, seed=seed)``'s test
    set: the best test log-likelihood that a model of the blurred data (DSM at noise level sigma) can reach on
    clean test data (normalised on the whole plane). name: one of ``TARGETS``; sigma > 0."""
    sigma = check_positive(sigma, "sigma")
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}.")
    test = _target_data(name, check_int(n_test, "n_test", minimum=1), seed + 1000, device)
    return float(target_law(name, blur=sigma)(test).mean())


def mixture_target(name: str, law: GaussianMixture, bounds, train: torch.Tensor, test: torch.Tensor,
                   n_grid: int = 150, val: Optional[torch.Tensor] = None) -> Target:
    """A :class:`Target` for data from a Gaussian mixture ``law``: exact log-density, one region per component
    (the points nearest to its mean), true masses per region by quadrature on ``bounds`` with n_grid^2 points.
    train, test (and optionally val): (n, 2) samples (e.g. ``law.sample(n, generator)``), float32 on the
    device to use."""
    if not isinstance(law, GaussianMixture) or law.dim != 2:
        raise TypeError("law must be a 2-D ebm_teach.data.GaussianMixture.")
    bounds = _check_box(bounds)
    train = check_tensor(train, "train", shape=(None, 2))
    test = check_tensor(test, "test", shape=(None, 2), like=train)
    if val is not None:
        val = check_tensor(val, "val", shape=(None, 2), like=train)

    def log_prob(x, law=law):
        return law.to(device=x.device).log_prob(x.to(torch.float64))

    def region(x, means=law.means):
        return torch.cdist(x.to(torch.float64), means.to(x.device)).argmin(1)

    target = Target(name, train, test, bounds, log_prob, region, len(law.weights), val=val)
    points, _, cell = grid(bounds, n_grid, device=test.device, dtype=torch.float64)
    return _finish(target, log_prob(points), region(points), points, cell, n_grid)


def _finish(target: Target, log_p, regions, points, cell, n_grid) -> Target:
    target.true_masses = _masses(log_p, regions, target.n_modes)
    target._grids[(n_grid, target.test.dtype, target.test.device)] = (points.to(target.test.dtype), regions, cell)
    target.true_test_ll = float(target.log_prob(target.test).mean())
    return target


def _masses(log_density: torch.Tensor, region: torch.Tensor, n_modes: int) -> torch.Tensor:
    p = torch.softmax(log_density.to(torch.float64), 0)
    return torch.zeros(n_modes, dtype=torch.float64, device=p.device).index_add_(0, region, p)


def mode_weight_error(masses, true_masses) -> float:
    """Total-variation distance 1/2 sum_k |m_k - m*_k| between a model's and the truth's masses per mode."""
    masses = check_tensor(masses, "masses", ndim=1).double()
    true_masses = check_tensor(true_masses, "true_masses", shape=(len(masses),)).double().to(masses.device)
    return float(0.5 * (masses - true_masses).abs().sum())


def evaluate_2d(energy: Callable, target: Target, n_grid: int = 150) -> dict:
    """Test log-likelihood and mode-weight error of exp(-E)/Z on ``target``'s box, Z by the midpoint rule.

    One pass over n_grid^2 points gives log Z (log-sum-exp in float64) and the mass of each mode's region;
    mean -E(test) - log Z is the test log-likelihood of the model normalised on the box (mass outside the
    box is not counted: every model is judged on the same box; :func:`mass_outside_box` says how much that
    leaves out). Returns {"ll", "mode_error", "masses"}, and "val_ll" (the same on the validation set) when
    the target has one.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a compare.Target (see make_target); got {type(target).__name__}.")
    n_grid = check_int(n_grid, "n_grid", minimum=10)
    points, regions, cell = target.grid(n_grid)
    with torch.no_grad():
        neg_e = -energy(points).to(torch.float64)
        neg_e_test = -energy(target.test).to(torch.float64)
        neg_e_val = None if target.val is None else -energy(target.val).to(torch.float64)
    if not bool(torch.isfinite(neg_e).all()):
        raise ValueError("the energy is NaN/inf on the quadrature grid; the model has diverged.")
    log_z = float(torch.logsumexp(neg_e, 0)) + math.log(cell)
    masses = _masses(neg_e, regions, target.n_modes)
    out = {"ll": float(neg_e_test.mean()) - log_z, "mode_error": mode_weight_error(masses, target.true_masses),
           "masses": masses.cpu()}
    if neg_e_val is not None:
        out["val_ll"] = float(neg_e_val.mean()) - log_z
    return out


def mass_outside_box(energy: Callable, target: Target, factor: float = 2.0, n_grid: int = 300) -> float:
    """The share of exp(-E)'s mass on a box ``factor`` times as wide (same centre) that lies outside the
    target's box: what :func:`evaluate_2d`, which normalises on the box, does not charge the model for.

    Midpoint rule on n_grid^2 points of the wide box (float64 log-sum-exp). A share s means the log-likelihood
    normalised on the wide box is lower by -log(1 - s) (about s for a small s).
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a compare.Target (see make_target); got {type(target).__name__}.")
    factor = check_positive(factor, "factor")
    if factor <= 1:
        raise ValueError(f"factor must be > 1 (the wide box contains the target's box); got {factor}.")
    n_grid = check_int(n_grid, "n_grid", minimum=10)
    wide = tuple(((lo + hi) / 2 - factor * (hi - lo) / 2, (lo + hi) / 2 + factor * (hi - lo) / 2)
                 for lo, hi in target.bounds)
    points, _, _ = grid(wide, n_grid, device=target.test.device, dtype=target.test.dtype)
    with torch.no_grad():
        neg_e = -energy(points).to(torch.float64)
    if not bool(torch.isfinite(neg_e).all()):
        raise ValueError("the energy is NaN/inf on the wide grid; the model has diverged.")
    inside = torch.ones(len(points), dtype=torch.bool, device=points.device)
    for d, (lo, hi) in enumerate(target.bounds):
        inside &= (points[:, d] >= lo) & (points[:, d] <= hi)
    log_all = torch.logsumexp(neg_e, 0)
    log_in = torch.logsumexp(neg_e[inside], 0)
    return float(-torch.expm1(log_in - log_all))


def sample_mode_error(x: torch.Tensor, target: Target) -> float:
    """The mode-weight error of samples x: (n, 2): the total-variation distance between the share of the
    samples in each mode's region and the true masses (:func:`mode_weight_error`)."""
    if not isinstance(target, Target):
        raise TypeError(f"target must be a compare.Target (see make_target); got {type(target).__name__}.")
    x = check_tensor(x, "x", shape=(None, 2))
    counts = torch.bincount(target.region(x), minlength=target.n_modes).to(torch.float64)
    return mode_weight_error(counts / counts.sum(), target.true_masses)


def mode_error_floor(masses, n: int, n_draws: int = 20000, generator: Optional[torch.Generator] = None) -> float:
    """The mode-weight error that n perfect samples already have: E[ 1/2 sum_k |N_k / n - m_k| ] with
    (N_1, ..., N_K) ~ Multinomial(n, m).

    A sampler's measured error is comparable only against this floor (it falls like 1/sqrt(n)). Exact for
    K <= 3 modes (a sum over every count vector, in float64); for K > 3, a Monte Carlo mean over n_draws
    multinomial draws (pass a generator to make it repeatable). masses: (K,) summing to 1; n >= 1.
    """
    m = check_tensor(masses, "masses", ndim=1).to(torch.float64).cpu()
    if len(m) < 2 or bool((m < 0).any()) or abs(float(m.sum()) - 1) > 1e-6:
        raise ValueError(f"masses must be K >= 2 non-negative numbers summing to 1; got {m.tolist()}.")
    n = check_int(n, "n", minimum=1)
    m = m / m.sum()
    if len(m) <= 3:
        m3 = torch.cat([m, torch.zeros(3 - len(m), dtype=torch.float64)])
        a = torch.arange(n + 1, dtype=torch.float64)
        n1, n2 = torch.meshgrid(a, a, indexing="ij")
        n3 = n - n1 - n2
        ok = n3 >= 0
        n1, n2, n3 = n1[ok], n2[ok], n3[ok]
        log_m = torch.log(m3.clamp_min(1e-300))
        log_pmf = (math.lgamma(n + 1) - torch.lgamma(n1 + 1) - torch.lgamma(n2 + 1) - torch.lgamma(n3 + 1)
                   + n1 * log_m[0] + n2 * log_m[1] + n3 * log_m[2])
        log_pmf = torch.where(((n2 > 0) & (m3[1] == 0)) | ((n3 > 0) & (m3[2] == 0)), -math.inf, log_pmf)
        tv = 0.5 * ((n1 / n - m3[0]).abs() + (n2 / n - m3[1]).abs() + (n3 / n - m3[2]).abs())
        return float((log_pmf.exp() * tv).sum())
    n_draws = check_int(n_draws, "n_draws", minimum=10)
    draws = torch.multinomial(m.float(), n * n_draws, replacement=True, generator=generator).reshape(n_draws, n)
    counts = torch.zeros(n_draws, len(m), dtype=torch.float64).scatter_add_(1, draws, torch.ones(n_draws, n, dtype=torch.float64))
    return float(0.5 * (counts / n - m).abs().sum(1).mean())


# --------------------------------------------------------------------------------------------- samplers, proxies
def langevin_diagnostics(energy: Callable, target: Target, n_chains: int = 1000, n_steps: int = 200,
                         step_size: float = 0.02, generator: Optional[torch.Generator] = None,
                         bandwidth: Optional[float] = None) -> dict:
    """Run the sampler a 2-D energy model is used with, and measure it with chapter 4's diagnostics.

    n_chains unadjusted Langevin chains (``samplers.langevin_step``, step ``step_size``) start from uniform
    noise over the target's box (dispersed starts) and run n_steps steps, clamped to the box; the second half
    is kept. Returns {"rhat": split R-hat of the chains' energy traces, "ess": their effective sample size
    (how many independent draws the n_chains x n_kept energies are worth), "crossed": the share of chains
    whose mode region at the end differs from the one at the start of the kept half, "gap": mean E(test) -
    mean E(final samples) (``diagnostics.energy_gap``), "mmd2": unbiased MMD^2 between the final samples and
    the test set (Gaussian kernel of width ``bandwidth``; the median heuristic when None),
    "sample_mode_error": the mode-weight error of the n_chains final samples (compare it with
    :func:`mode_error_floor` for n_chains perfect samples), "samples": the final samples (n_chains, 2)}.
    """
    from .diagnostics import effective_sample_size, energy_gap, split_rhat
    from .samplers import langevin_step, run_chain

    if not isinstance(target, Target):
        raise TypeError(f"target must be a compare.Target (see make_target); got {type(target).__name__}.")
    n_chains = check_int(n_chains, "n_chains", minimum=2)
    n_steps = check_int(n_steps, "n_steps", minimum=8)
    step_size = check_positive(step_size, "step_size")
    if bandwidth is not None:
        bandwidth = check_positive(bandwidth, "bandwidth")
    test = target.test
    low = torch.tensor([lo for lo, _ in target.bounds], device=test.device, dtype=test.dtype)
    high = torch.tensor([hi for _, hi in target.bounds], device=test.device, dtype=test.dtype)
    x0 = low + (high - low) * torch.rand(n_chains, 2, generator=generator, device=test.device, dtype=test.dtype)
    clamp = (float(low.min()), float(high.max()))
    trace = run_chain(lambda x: langevin_step(x, energy, step_size, generator, clamp=clamp)[0], x0, n_steps)
    kept = trace[n_steps // 2 :]  # (n_kept, n_chains, 2)
    with torch.no_grad():
        e_trace = energy(kept.reshape(-1, 2)).reshape(len(kept), n_chains).T  # (n_chains, n_kept)
        e_test = energy(test)
    samples = kept[-1]
    if not bool(torch.isfinite(e_trace).all()):
        raise DivergenceError("the energy is NaN/inf along the Langevin chains; lower step_size or check the model.")
    h = bandwidth if bandwidth is not None else median_bandwidth(samples, test)
    return {
        "rhat": split_rhat(e_trace),
        "ess": effective_sample_size(e_trace),
        "crossed": float((target.region(kept[0]) != target.region(samples)).to(torch.float64).mean()),
        "gap": float(energy_gap(e_test, e_trace[:, -1])),
        "mmd2": mmd2(samples, test, h),
        "sample_mode_error": sample_mode_error(samples, target),
        "samples": samples,
    }


def rbm_measures(rbm: BernoulliRBM, v_test: torch.Tensor, n_samples: int = 500, n_sweeps: int = 200,
                 generator: Optional[torch.Generator] = None, bandwidth: Optional[float] = None) -> dict:
    """Every measure of chapter 10 for a small RBM: the exact one and the proxies people quote instead.

    Returns {"ll": exact mean test log-likelihood (log Z by enumeration), "recon": reconstruction error,
    "pl": mean log pseudo-likelihood per test example, "gap": mean F(test) - mean F(samples), "mmd2":
    unbiased MMD^2 between samples and test data (Gaussian kernel of width ``bandwidth``, the median
    heuristic when None; pass one width for every model so that the statistic is the same for all of them),
    "log_z": log Z, "samples"}. The samples come from n_samples Gibbs chains run n_sweeps sweeps from
    uniformly random binary vectors. v_test: (n, n_visible) binary.
    """
    from .diagnostics import energy_gap

    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be an ebm_teach.rbm.BernoulliRBM; got {type(rbm).__name__}.")
    v_test = check_binary(check_tensor(v_test, "v_test", shape=(None, rbm.n_visible), like=rbm.theta), "v_test")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
    if bandwidth is not None:
        bandwidth = check_positive(bandwidth, "bandwidth")
    with torch.no_grad():
        log_z = rbm.log_partition_exact()
        start = (torch.rand(n_samples, rbm.n_visible, generator=generator, device=rbm.device) < 0.5).to(rbm.dtype)
        samples = rbm.gibbs(start, n_sweeps, generator)
        h = bandwidth if bandwidth is not None else median_bandwidth(samples, v_test)
        return {
            "ll": rbm.log_likelihood_exact(v_test, log_z),
            "recon": rbm.reconstruction_error(v_test),
            "pl": float(rbm.pseudo_log_likelihood(v_test).mean()),
            "gap": float(energy_gap(rbm.free_energy(v_test), rbm.free_energy(samples))),
            "mmd2": mmd2(samples, v_test, h),
            "log_z": log_z,
            "samples": samples,
        }


def kendall_tau(a, b) -> float:
    """Kendall's rank correlation tau_a = (concordant - discordant pairs) / (n (n - 1) / 2) of two score lists.

    +1: the two orders agree on every pair; -1: they are reversed; tied pairs count as neither. a, b: (n,),
    n >= 2. Used to ask whether a proxy orders models as the exact log-likelihood does.
    """
    a = check_tensor(a, "a", ndim=1).double()
    b = check_tensor(b, "b", shape=(len(a),)).double()
    if len(a) < 2:
        raise ValueError(f"rank correlation needs at least 2 models; got {len(a)}.")
    sa = torch.sign(a[:, None] - a[None, :])
    sb = torch.sign(b[:, None] - b[None, :])
    n = len(a)
    return float((sa * sb).triu(1).sum() / (n * (n - 1) / 2))


def mean_spread(values) -> Tuple[float, float]:
    """(mean, sample standard deviation) of a list of numbers (sd 0 for a single value)."""
    v = torch.as_tensor([float(x) for x in values], dtype=torch.float64)
    if v.numel() == 0:
        raise ValueError("mean_spread needs at least one value.")
    return float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0


# --------------------------------------------------------------------------------------------- the line-up
#: The continuous methods of chapter 10, with the settings every run uses (see :func:`continuous_method`).
CONTINUOUS_METHODS = ("CD-1", "CD-10", "short-run 10", "replay 10", "NCE", "sliced SM", "DSM", "NC-DSM")
#: The binary (RBM) methods of chapter 10 (see :func:`binary_method`).
BINARY_METHODS = ("CD-1", "CD-10", "PCD-1", "NCE", "pseudo-likelihood")
#: Every method's tuning budget: these three Adam learning rates, the best chosen on validation data.
LEARNING_RATES_2D = (3e-3, 1e-2, 3e-2)
#: The same for the RBMs (a linear model of 64 pixels moves more slowly, so the grid sits higher).
LEARNING_RATES_RBM = (1e-2, 3e-2, 1e-1)


def continuous_method(name: str, box) -> Method:
    """A fresh :class:`Method` for one of ``CONTINUOUS_METHODS``, with chapter 10's settings.

    CD-k: k ULA steps of size 0.05 from the data batch; short-run / replay: 10 steps of size 0.1 from uniform
    noise on ``box`` / from a replay buffer (2000 samples, 5 % fresh noise), all with alpha = 0.1 (chapter 4);
    NCE: nu = 4, Gaussian noise fitted to the data (chapter 5); sliced SM: one Gaussian projection with the
    variance-reduced norm term; DSM: sigma = 0.3; NC-DSM: 6 levels from 2 to 0.3 (chapter 6).
    """
    makers = {
        "CD-1": lambda: LangevinML(1, 0.05, "data", box),
        "CD-10": lambda: LangevinML(10, 0.05, "data", box),
        "short-run 10": lambda: LangevinML(10, 0.1, "noise", box),
        "replay 10": lambda: LangevinML(10, 0.1, "buffer", box),
        "NCE": lambda: NCE(4, name="NCE"),
        "sliced SM": lambda: SlicedSM(),
        "DSM": lambda: DSM(0.3, name="DSM"),
        "NC-DSM": lambda: NoiseConditionalDSM(),
    }
    if name not in makers:
        raise ValueError(f"unknown continuous method {name!r}; choose one of {', '.join(CONTINUOUS_METHODS)}.")
    return makers[name]()


def binary_method(name: str) -> Method:
    """A fresh :class:`Method` for one of ``BINARY_METHODS``: CD-1, CD-10, PCD-1 (persistent chains, one per
    batch row), NCE (nu = 4, independent Bernoulli noise with the data's pixel means), pseudo-likelihood."""
    makers = {
        "CD-1": lambda: GibbsML(1),
        "CD-10": lambda: GibbsML(10),
        "PCD-1": lambda: GibbsML(1, persistent=True),
        "NCE": lambda: NCE(4, fit_noise=BernoulliNoise.fit, name="NCE"),
        "pseudo-likelihood": lambda: PseudoLikelihood(),
    }
    if name not in makers:
        raise ValueError(f"unknown binary method {name!r}; choose one of {', '.join(BINARY_METHODS)}.")
    return makers[name]()


def new_energy(method: Method, seed: int, hidden: int = 32, n_layers: int = 2, device=None,
               rbm_shape: Optional[Tuple[int, int]] = None) -> nn.Module:
    """The energy a method trains, initialised from ``seed`` (torch's global generator is left as it was).

    An ``MLPEnergy(2, hidden, n_layers)`` for every continuous method, a :class:`NoiseConditionalEnergy` of the
    same size for NC-DSM, and an :class:`RBMEnergy` with rbm_shape = (n_visible, n_hidden) for the binary ones.
    ``$EBM_TEACH_SEED_SHIFT`` moves the seed, like every other seed of the package.
    """
    from .core import seed_shift

    seed = check_int(seed, "seed", minimum=0)
    if rbm_shape is not None:
        n_v, n_h = rbm_shape
        return RBMEnergy(BernoulliRBM(n_v, n_h, device=device, generator=make_generator(seed, device or "cpu")))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + seed_shift())
        if isinstance(method, NoiseConditionalDSM):
            energy = NoiseConditionalEnergy(2, hidden, n_layers)
        else:
            energy = MLPEnergy(2, hidden, n_layers)
    return energy.to(device)


def fit_2d(name: str, target: Target, seed: int, budget: int, batch_size: int = 256, lr: float = 1e-2,
           n_checkpoints: int = 4, hidden: int = 32, n_grid: int = 150) -> dict:
    """Train method ``name`` on ``target`` with ``budget`` energy-gradient evaluations; measure it on the way.

    At budget / 2^j, j = n_checkpoints - 1, ..., 0, the test log-likelihood and the mode-weight error are
    measured by quadrature (:func:`evaluate_2d`), and the validation log-likelihood when the target has a
    validation set. Adam's learning rate is constant, so a checkpoint at budget b of a longer run is the same
    model as a run of budget b. Returns {"method", "energy" (the trained module), "records" (one dict per
    checkpoint: evaluations, seconds, steps, ll, val_ll, mode_error, masses: the model's mass per mode region),
    "history"}.
    """
    method = continuous_method(name, target.bounds)
    device = target.train.device
    energy = new_energy(method, seed, hidden, device=device)
    checkpoints = [max(1, budget >> j) for j in range(n_checkpoints - 1, 0, -1)]

    def measure(e, m):
        r = evaluate_2d(e, target, n_grid)
        return {k: (r[k].tolist() if k == "masses" else r[k]) for k in ("ll", "val_ll", "mode_error", "masses") if k in r}

    history = train(method, energy, target.train, budget, batch_size=batch_size, lr=lr,
                    generator=make_generator(seed, device), checkpoints=checkpoints, on_checkpoint=measure)
    return {"method": method, "energy": energy, "records": history["records"], "history": history}


def fit_rbm(name: str, v_train: torch.Tensor, seed: int, budget: int, n_hidden: int = 16, batch_size: int = 128,
            lr: float = 3e-2, checkpoints: Sequence[int] = (), v_test: Optional[torch.Tensor] = None,
            v_val: Optional[torch.Tensor] = None) -> dict:
    """Train an RBM with method ``name`` (one of ``BINARY_METHODS``) on binary v_train with ``budget`` evaluations.

    With v_test (v_val), the exact test (validation) log-likelihood is recorded at each checkpoint, from one
    log Z by enumeration. Returns {"method", "rbm" (a detached ``BernoulliRBM`` with the trained
    parameters), "records", "history"}; for NCE also "c" (its learned log-normaliser).
    """
    method = binary_method(name)
    device = v_train.device
    energy = new_energy(method, seed, device=device, rbm_shape=(v_train.shape[1], n_hidden))

    def measure(e, m):
        if v_test is None and v_val is None:
            return {}
        log_z = e.sampler.log_partition_exact()
        out = {} if v_test is None else {"ll": e.sampler.log_likelihood_exact(v_test, log_z)}
        if v_val is not None:
            out["val_ll"] = e.sampler.log_likelihood_exact(v_val, log_z)
        return out

    history = train(method, energy, v_train, budget, batch_size=batch_size, lr=lr, generator=make_generator(seed, device),
                    checkpoints=checkpoints, on_checkpoint=measure)
    rbm = BernoulliRBM.from_arrays(energy.sampler.W.clone(), energy.sampler.b.clone(), energy.sampler.c.clone(),
                                   generator=make_generator(seed + 1, device))
    out = {"method": method, "rbm": rbm, "records": history["records"], "history": history}
    if isinstance(method, NCE):
        out["c"] = float(method.model.c.detach())
    return out


def choose_learning_rates(rows: Sequence[dict], group: Sequence[str] = ("target", "method", "budget"),
                          score: str = "val_ll") -> dict:
    """The tuning step: for each group of rows (e.g. one method on one target at one budget), the learning
    rate whose mean ``score`` over seeds is highest.

    rows: dicts with "lr", ``score`` and the ``group`` keys (keys a row lacks count as None), one per seed and
    checkpoint, e.g. from ``experiments/comparison.py``. The score must be measured on validation data, never
    on the test set that reports the result. Returns {group values (a tuple): chosen lr}.
    """
    means: dict = {}
    for r in rows:
        if "lr" not in r or score not in r:
            raise ValueError(f"every row needs 'lr' and {score!r}; got a row with keys {sorted(r)}.")
        key = tuple(r.get(g) for g in group)
        means.setdefault(key, {}).setdefault(float(r["lr"]), []).append(float(r[score]))
    return {key: max(by_lr, key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr])) for key, by_lr in means.items()}


def tuned_rows(rows: Sequence[dict], group: Sequence[str] = ("target", "method", "budget"),
               score: str = "val_ll") -> List[dict]:
    """The rows of the learning rate :func:`choose_learning_rates` picks for their group (the tuned runs)."""
    chosen = choose_learning_rates(rows, group, score)
    return [r for r in rows if float(r["lr"]) == chosen[tuple(r.get(g) for g in group)]]


def digits_split(device=None):
    """Chapter 10's binary data: the 8x8 digits binarized (``data.load_digits``), split into training,
    validation and test images: the test split of ``train_test_split(seed=0)`` (20 %), and 20 % of the rest
    (``seed=1``) for validation, which chooses learning rates. Returns (x_train, x_val, x_test)."""
    from .data import load_digits, train_test_split

    x_rest, x_test = train_test_split(load_digits(binarize=True, device=device), seed=0)
    x_train, x_val = train_test_split(x_rest, seed=1)
    return x_train, x_val, x_test


def read_results(path) -> List[dict]:
    """The rows of a results CSV written by ``experiments/comparison.py``, numbers as floats (empty cells dropped)."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}; run python experiments/comparison.py to make it.")
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for k, v in raw.items():
                if v in ("", None):
                    continue
                try:
                    row[k] = float(v)
                except ValueError:
                    row[k] = v
            rows.append(row)
    return rows
