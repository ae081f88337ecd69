"""Score matching (chapter 6): learn the score s(x) ~ grad_x log p(x), which does not involve Z.

A *score model* here is either
  * a callable ``score(x) -> (batch, d)`` (a network that outputs a vector, an analytic score, or
    ``EnergyScore(energy)``, whose score is -grad_x E), used by the exact, sliced and single-level
    denoising objectives, or
  * a noise-conditional callable ``score_model(x, sigma) -> (batch, d)``, where ``sigma`` is a float (one
    level for the whole batch, as in sampling) or a (batch,) tensor (one level per example, as in
    training); used by the noise-conditional DSM loss and by annealed Langevin dynamics.

Objectives (each returns a scalar to minimise, averaged over the batch):
  exact (Hyvarinen 2005)    J(theta) = E_p[ tr grad_x s(x) + 1/2 |s(x)|^2 ]
  sliced (Song et al. 2019) J_S      = E_p E_v[ v^T grad_x(v^T s(x)) + 1/2 (v^T s(x))^2 ]
  denoising (Vincent 2011)  l(sigma) = E 1/2 |s(x~) - (x - x~)/sigma^2|^2,  x~ = x + sigma z
  noise-conditional (Song & Ermon 2019)  average over levels of sigma_i^2 l(sigma_i)
and annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) samples with a noise-conditional model.
Tweedie's formula turns a score into a denoiser, and Song & Ermon (2020, "Improved techniques for training
score-based generative models") give rules for the noise levels, the step size and an exponential moving
average (EMA) of the weights: ``sigma_max_rule``, ``sigma_ratio_rule``, ``annealed_variance_ratio``,
``choose_step_size``, ``ema_update``.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Union

import torch
from torch import nn

from .core import DivergenceError, check_int, check_positive, check_tensor
from .data import GaussianMixture

__all__ = [
    "EnergyScore",
    "NoiseConditionalScoreNet",
    "fisher_divergence",
    "exact_score_matching_loss",
    "sliced_score_matching_loss",
    "dsm_target",
    "denoising_score_matching_loss",
    "geometric_sigmas",
    "noise_conditional_dsm_loss",
    "mixture_noisy_score",
    "train_score_model",
    "AnnealedLangevinInfo",
    "annealed_langevin",
    "tweedie_denoise",
    "ema_update",
    "sigma_max_rule",
    "sigma_ratio_rule",
    "annealed_variance_ratio",
    "choose_step_size",
]

Score = Callable[[torch.Tensor], torch.Tensor]
NoiseScore = Callable[[torch.Tensor, Union[float, torch.Tensor]], torch.Tensor]


# --------------------------------------------------------------------------------------------- score models
class EnergyScore(nn.Module):
    """The score of an energy network: s(x) = grad_x log p(x) = -grad_x E(x) (Z drops out of the gradient).

    energy: a module (or any callable) mapping x: (batch, d) -> (batch,). ``forward(x, sigma=None)`` returns (batch, d); sigma
    is accepted and ignored so that the same samplers and losses take an energy and a noise-conditional
    network. The graph is kept (create_graph) whenever autograd is on, so a loss on s(x) trains the energy's
    parameters and the exact objective can differentiate s once more; under ``torch.no_grad()`` (sampling)
    the score comes back detached. Reference: Hyvarinen (2005), Vincent (2011).
    """

    def __init__(self, energy: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        if not callable(energy):
            raise TypeError(f"energy must be a callable module x -> E(x); got {type(energy).__name__}.")
        self.energy = energy

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            e = self.energy(x)
            (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
        return -grad


class NoiseConditionalScoreNet(nn.Module):
    """A noise-conditional MLP score network for low-dimensional data: s(x, sigma) = f(x, log sigma) / sigma.

    f is an MLP (SiLU) on the point and the log noise level; dividing by sigma gives the output the size
    of the true noisy score, which scales like 1/sigma (Song & Ermon 2020, technique 3), so that
    -sigma * s(x~, sigma) is a noise prediction of order 1, like DDPM's epsilon network.
    x: (batch, dim); sigma: a float or a (batch,) tensor of noise levels > 0 -> (batch, dim).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, n_layers: int = 3):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        n_layers = check_int(n_layers, "n_layers", minimum=1)
        sizes = [self.dim + 1] + [hidden] * n_layers
        layers: list = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.SiLU()]
        layers.append(nn.Linear(hidden, self.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}.")
        sigma = _sigma_per_example(sigma, x)
        return self.net(torch.cat([x, sigma.log()[:, None]], dim=1)) / sigma[:, None]


def _sigma_per_example(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma as a (batch,) tensor on x's device and dtype (a float is repeated for every example)."""
    sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if sigma.dim() == 0:
        return sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a float or have shape ({x.shape[0]},); got {tuple(sigma.shape)}.")
    return sigma


def _check_x(x, name: str = "x") -> torch.Tensor:
    x = check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must be a batch (batch, d); got shape {tuple(x.shape)}. For one point use x[None].")
    return x


def _sum_event(t: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the batch axis: (batch, ...) -> (batch,)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def _checked_score(score: Callable, x: torch.Tensor, *args) -> torch.Tensor:
    s = score(x, *args)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(
            f"the score model must return a tensor shaped like its input {tuple(x.shape)}; got {got}. "
            "A score is a vector field: one gradient per point (for an energy network wrap it in EnergyScore)."
        )
    return s


# --------------------------------------------------------------------------------------------- objectives
def fisher_divergence(score: Score, data_score: Score, x: torch.Tensor) -> torch.Tensor:
    """The Fisher divergence 1/2 E_p |s(x) - grad_x log p(x)|^2, estimated on samples x ~ p: (batch, d) -> scalar.

    Needs the data score, so it is for checking models on data whose density is known.
    """
    x = _check_x(x)
    return 0.5 * _sum_event((_checked_score(score, x) - _checked_score(data_score, x)) ** 2).mean()


def exact_score_matching_loss(score: Score, x: torch.Tensor) -> torch.Tensor:
    """Hyvarinen's score-matching objective J = E_p[ tr grad_x s(x) + 1/2 |s(x)|^2 ], x: (batch, d) -> scalar.

    By integration by parts J = 1/2 E_p|s - grad log p|^2 - 1/2 E_p|grad log p|^2: the Fisher divergence minus
    a constant that does not depend on the model. The trace of the Jacobian takes one backward pass per
    dimension (d passes), so this is for small d. The graph is kept, so the loss can be minimised.
    Reference: Hyvarinen (2005), "Estimation of non-normalized statistical models by score matching".
    """
    x = _check_x(x, "x").detach().requires_grad_(True)
    if x.dim() != 2:
        raise ValueError(f"exact score matching takes flat data (batch, d); got shape {tuple(x.shape)}.")
    with torch.enable_grad():  # the trace needs autograd even when the caller only evaluates the loss
        s = _checked_score(score, x)
        trace = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for i in range(x.shape[1]):
            (grad_si,) = torch.autograd.grad(s[:, i].sum(), x, create_graph=True)
            trace = trace + grad_si[:, i]
        return (trace + 0.5 * (s**2).sum(dim=1)).mean()


def sliced_score_matching_loss(
    score: Score,
    x: torch.Tensor,
    n_projections: int = 1,
    generator: Optional[torch.Generator] = None,
    projection: str = "gaussian",
    variance_reduction: bool = False,
    v: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Sliced score matching J_S = E_p E_v[ v^T grad_x(v^T s(x)) + 1/2 (v^T s(x))^2 ], x: (batch, d) -> scalar.

    Random directions v with E[v v^T] = I make the first term an unbiased estimate of tr grad_x s (Hutchinson)
    and the second of 1/2 |s|^2, so E_v J_S = J for any score: one backward pass instead of d.
    n_projections: directions per example; projection: "gaussian" (v ~ N(0, I)) or "rademacher" (+-1 entries);
    variance_reduction: use the exact 1/2 |s|^2 instead of 1/2 (v^T s)^2 (SSM-VR);
    v: optional fixed directions (n_projections, batch, *event) instead of drawing them.
    Reference: Song, Garg, Shi & Ermon (2019), "Sliced score matching".
    """
    x = _check_x(x)
    n_projections = check_int(n_projections, "n_projections", minimum=1)
    if v is None:
        shape = (n_projections,) + tuple(x.shape)
        if projection == "gaussian":
            v = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        elif projection == "rademacher":
            v = torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        else:
            raise ValueError(f"projection must be 'gaussian' or 'rademacher'; got {projection!r}.")
    else:
        v = check_tensor(v, "v", like=x)
        if v.dim() != x.dim() + 1 or v.shape[1:] != x.shape:
            raise ValueError(
                f"v must have shape (n_projections, *x.shape) = (n, {', '.join(map(str, x.shape))}); "
                f"got {tuple(v.shape)}."
            )
    n_proj = v.shape[0]
    # Every example is repeated once per direction, so one backward pass handles all of them.
    x_rep = x.detach().repeat(n_proj, *([1] * (x.dim() - 1))).requires_grad_(True)
    v = v.reshape(x_rep.shape)
    with torch.enable_grad():
        s = _checked_score(score, x_rep)
        vs = _sum_event(v * s)  # v^T s, (n_proj * batch,)
        (grad_vs,) = torch.autograd.grad(vs.sum(), x_rep, create_graph=True)
        trace_estimate = _sum_event(v * grad_vs)  # v^T grad_x(v^T s)
        norm_term = 0.5 * _sum_event(s**2) if variance_reduction else 0.5 * vs**2
        return (trace_estimate + norm_term).mean()


def dsm_target(x: torch.Tensor, x_tilde: torch.Tensor, sigma) -> torch.Tensor:
    """The denoising score-matching target grad_x~ log q_sigma(x~|x) = (x - x~) / sigma^2 (= -z/sigma).

    x, x_tilde: (batch, ...) clean and noisy points, x~ = x + sigma z; sigma: a float or a (batch,) tensor.
    Reference: Vincent (2011), "A connection between score matching and denoising autoencoders".
    """
    x = _check_x(x)
    x_tilde = check_tensor(x_tilde, "x_tilde", shape=tuple(x.shape), like=x)
    sigma = _sigma_per_example(_check_sigma(sigma), x).reshape((-1,) + (1,) * (x.dim() - 1))
    return (x - x_tilde) / sigma**2


def _check_sigma(sigma):
    if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
        if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
            raise ValueError("every noise level sigma must be a finite number > 0.")
        return sigma
    return check_positive(sigma, "sigma")


def denoising_score_matching_loss(
    score: Score,
    x: torch.Tensor,
    sigma: float,
    generator: Optional[torch.Generator] = None,
    z: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Denoising score matching at one noise level: E 1/2 |s(x~) - (x - x~)/sigma^2|^2, x~ = x + sigma z.

    Its minimiser is the score of the noisy data q_sigma = p * N(0, sigma^2 I) (Vincent 2011): the loss equals
    the Fisher divergence to q_sigma plus a constant. x: (batch, ...); z: optional fixed noise shaped like x
    (else drawn with ``generator``) -> scalar. Reference: Vincent (2011).
    """
    x = _check_x(x)
    sigma = check_positive(sigma, "sigma")
    if z is None:
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    else:
        z = check_tensor(z, "z", shape=tuple(x.shape), like=x)
    x_tilde = x + sigma * z
    return 0.5 * _sum_event((_checked_score(score, x_tilde) - dsm_target(x, x_tilde, sigma)) ** 2).mean()


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Noise levels sigma_1 > ... > sigma_L in geometric progression from sigma_max to sigma_min: (L,)."""
    sigma_max = check_positive(sigma_max, "sigma_max")
    sigma_min = check_positive(sigma_min, "sigma_min")
    n_levels = check_int(n_levels, "n_levels", minimum=1)
    if sigma_min > sigma_max or (n_levels > 1 and sigma_min == sigma_max):
        raise ValueError(f"need sigma_max > sigma_min; got sigma_max={sigma_max}, sigma_min={sigma_min}.")
    if n_levels == 1:
        return torch.tensor([sigma_max], device=device, dtype=dtype)
    t = torch.linspace(0.0, 1.0, n_levels, dtype=torch.float64)
    return (math.log(sigma_max) + t * (math.log(sigma_min) - math.log(sigma_max))).exp().to(device=device, dtype=dtype)


def _check_sigmas(sigmas, x: Optional[torch.Tensor] = None) -> torch.Tensor:
    sigmas = check_tensor(sigmas, "sigmas", ndim=1, like=x, finite=False)
    ok = torch.isfinite(sigmas).all() & (sigmas > 0).all() & (sigmas[1:] < sigmas[:-1]).all()
    if sigmas.numel() == 0 or not bool(ok):  # one device sync for all three checks
        raise ValueError(
            f"sigmas must be a non-empty, strictly decreasing (large to small) sequence of finite noise levels "
            f"> 0; got {sigmas.tolist()}. geometric_sigmas(sigma_max, sigma_min, L) makes such a sequence."
        )
    return sigmas


def noise_conditional_dsm_loss(
    score_model: NoiseScore, x: torch.Tensor, sigmas, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Noise-conditional DSM with lambda(sigma) = sigma^2: E_i E 1/2 sigma_i^2 |s(x~, sigma_i) + z/sigma_i|^2.

    Each example draws its own level i uniformly from ``sigmas`` (vectorised over levels), so the loss is the
    average over levels of sigma_i^2 l(sigma_i); the weight sigma^2 makes every level's term O(1), since
    |z/sigma|^2 ~ d/sigma^2. Written as 1/2 |sigma s + z|^2. score_model(x~, sigma (batch,)) -> (batch, ...);
    x: (batch, ...); sigmas: (L,) decreasing. Reference: Song & Ermon (2019), "Generative modeling by
    estimating gradients of the data distribution", section 4.2.
    """
    x = _check_x(x)
    sigmas = _check_sigmas(sigmas, x)
    i = torch.randint(0, sigmas.numel(), (x.shape[0],), generator=generator, device=x.device)
    sigma = sigmas[i]
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    sigma_b = sigma.reshape((-1,) + (1,) * (x.dim() - 1))
    s = _checked_score(score_model, x + sigma_b * z, sigma)
    return 0.5 * _sum_event((sigma_b * s + z) ** 2).mean()


def mixture_noisy_score(mixture: GaussianMixture) -> NoiseScore:
    """The exact noisy score s(x, sigma) = grad_x log (p * N(0, sigma^2 I))(x) of a Gaussian mixture p.

    p * N(0, sigma^2 I) is the mixture with covariances C_k + sigma^2 I (``mixture.convolve(sigma)``), so
        s(x, sigma) = sum_k r_k(x) (C_k + sigma^2 I)^{-1} (m_k - x),  r_k(x) = p(k | x) under the noisy mixture.
    The perfect model every score network here tries to be. Returns a noise-conditional callable
    (x: (batch, d), sigma: float or (batch,)) -> (batch, d); the inverses are cached per level, which makes it
    cheap inside a sampler's loop.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be an ebm_teach.data.GaussianMixture; got {type(mixture).__name__}.")
    cache: dict = {}

    def level(sigma: float, like: torch.Tensor):
        key = (sigma, like.device, like.dtype)
        if key not in cache:
            eye = torch.eye(mixture.dim, dtype=torch.float64, device=like.device)
            covs = mixture.covs.to(device=like.device, dtype=torch.float64) + sigma**2 * eye
            log_norm = mixture.weights.to(covs).log() - 0.5 * torch.logdet(covs)
            cache[key] = (torch.linalg.inv(covs).to(like.dtype), log_norm.to(like.dtype), mixture.means.to(like))
        return cache[key]

    def one_level(x: torch.Tensor, sigma: float) -> torch.Tensor:
        precision, log_norm, means = level(sigma, x)
        diff = means[None] - x[:, None, :]  # (batch, K, d)
        pdiff = torch.einsum("kij,bkj->bki", precision, diff)  # (C_k + sigma^2 I)^{-1} (m_k - x)
        resp = torch.softmax(log_norm - 0.5 * (diff * pdiff).sum(-1), dim=1)  # (batch, K)
        return torch.einsum("bk,bki->bi", resp, pdiff)

    def score(x: torch.Tensor, sigma) -> torch.Tensor:
        if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
            out = torch.empty_like(x)
            for value in sigma.unique().tolist():
                rows = sigma == value
                out[rows] = one_level(x[rows], value)
            return out
        return one_level(x, float(sigma))

    return score


# --------------------------------------------------------------------------------------------- training
def train_score_model(
    model: nn.Module,
    data: torch.Tensor,
    objective: Callable,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    generator: Optional[torch.Generator] = None,
    log_every: int = 50,
    ema: Optional[nn.Module] = None,
    ema_decay: float = 0.999,
    callback: Optional[Callable[[int, nn.Module], None]] = None,
) -> dict:
    """Minimise ``objective(model, x_batch, generator)`` with Adam on minibatches drawn from ``data``.

    data: (n, ...) on the model's device; the generator must be on that device too. With batch_size >= n
    every step uses the whole data set (full batch). ema: optional copy of the model (``copy.deepcopy``)
    whose weights follow an exponential moving average of the trained ones after every step
    (:func:`ema_update` with ``ema_decay``). callback(step, model) is called every ``log_every`` steps (to
    measure the model while it trains). Returns a history dict with "step" and "loss" (the mean loss over
    each block of ``log_every`` steps). Raises DivergenceError when the loss becomes NaN/inf (its
    ``history`` attribute holds the history up to then).
    Example objective for noise-conditional DSM:
    ``lambda m, x, g: noise_conditional_dsm_loss(m, x, sigmas, generator=g)``.
    """
    data = _check_x(data, "data")
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    log_every = check_int(log_every, "log_every", minimum=1)
    if ema is not None:
        _check_ema(ema, model, ema_decay)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (step, model) -> None or None; got {type(callback).__name__}.")
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = torch.zeros(n_steps, device=data.device, dtype=data.dtype)
    history = {"step": [], "loss": []}
    for step in range(n_steps):
        if batch_size >= data.shape[0]:
            batch = data
        else:
            batch = data[torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)]
        loss = objective(model, batch, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if ema is not None:
            ema_update(ema, model, ema_decay)
        losses[step] = loss.detach()
        if (step + 1) % log_every == 0 or step + 1 == n_steps:
            block = losses[len(history["step"]) * log_every : step + 1]
            mean = float(block.mean())  # one sync per block, not per step
            if not math.isfinite(mean):
                err = DivergenceError(
                    f"the score-matching loss became NaN/inf by step {step + 1}; lower lr (now {lr}), "
                    "raise the smallest noise level, or normalise the data."
                )
                err.history = history  # the losses up to the last finite block
                raise err
            history["step"].append(step + 1)
            history["loss"].append(mean)
            if callback is not None:
                callback(step + 1, model)
    return history


def _check_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    if not isinstance(ema, nn.Module) or ema is model:
        raise TypeError("ema must be a separate copy of the model (copy.deepcopy(model)), not the model itself.")
    shapes = [p.shape for p in model.parameters()]
    if [p.shape for p in ema.parameters()] != shapes:
        raise ValueError("ema must have the model's parameters (same shapes, same order): make it with copy.deepcopy(model).")
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1); got {decay}. Song & Ermon (2020) use 0.999.")


def ema_update(ema: nn.Module, model: nn.Module, decay: float = 0.999) -> None:
    """One step of an exponential moving average of the weights: theta_ema <- m theta_ema + (1 - m) theta.

    ema, model: modules with the same parameters (ema = copy.deepcopy(model) at the start); decay: m in [0, 1).
    The average over the last ~1/(1 - m) steps smooths the noise of the final iterates; Song & Ermon (2020,
    technique 5) sample with the EMA weights (m = 0.999). Updates ``ema`` in place, outside autograd.
    """
    _check_ema(ema, model, decay)
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - decay)


# --------------------------------------------------------------------------------------------- sampling
class AnnealedLangevinInfo(NamedTuple):
    """What annealed Langevin measured: the samples after each level (L, batch, ...), i.e. L copies of the
    batch (kept for plots), and the mean score norm |s(x, sigma_i)| at the last step of each level (L,)."""

    x_levels: torch.Tensor
    score_norm: torch.Tensor


def annealed_langevin(
    score_model: NoiseScore,
    x: torch.Tensor,
    sigmas,
    step_size: float,
    n_steps_each: int,
    generator: Optional[torch.Generator] = None,
):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) from the start x: (batch, ...).

    for i = 1..L:  alpha_i = epsilon sigma_i^2 / sigma_L^2,
                   n_steps_each times:  x <- x + (alpha_i/2) s(x, sigma_i) + sqrt(alpha_i) z,  z ~ N(0, I)
    The Langevin update is written here with a score (x + (eps/2) s + sqrt(eps) z, the convention of
    ``ebm_teach.samplers.langevin_step`` with s = -grad E), since a score model has no energy. With a single
    level, ``sigmas=[sigma]``, this is plain Langevin at step size epsilon with the score s(., sigma).
    score_model(x, sigma: float) -> (batch, ...); sigmas: (L,) decreasing; step_size: epsilon > 0, the step at
    the last level; n_steps_each: T >= 1. Returns the final samples (batch, ...) (detached) and an
    AnnealedLangevinInfo. Raises DivergenceError when the samples become NaN/inf.
    """
    x = _check_x(x)
    sigmas = _check_sigmas(sigmas).tolist()  # plain floats: one sync here, none in the loop
    step_size = check_positive(step_size, "step_size", "Song & Ermon use a step of order 1e-5 at sigma_L = 0.01.")
    n_steps_each = check_int(n_steps_each, "n_steps_each", minimum=1)
    x = x.detach()
    x_levels, score_norm = [], []
    with torch.no_grad():
        for sigma in sigmas:
            alpha = step_size * sigma**2 / sigmas[-1] ** 2
            for _ in range(n_steps_each):
                s = _checked_score(score_model, x, sigma)
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + 0.5 * alpha * s + math.sqrt(alpha) * z
            x_levels.append(x)
            score_norm.append(_sum_event(s**2).sqrt().mean())
    x_levels = torch.stack(x_levels)
    if not bool(torch.isfinite(x).all()):
        raise DivergenceError(
            f"annealed Langevin produced NaN/inf samples; lower step_size (now {step_size}) so that the step "
            "at the largest level, step_size * (sigma_1/sigma_L)^2, stays well below sigma_1^2."
        )
    return x, AnnealedLangevinInfo(x_levels, torch.stack(score_norm))


# --------------------------------------------------------------------------------------------- denoising
def tweedie_denoise(score_model: NoiseScore, x_tilde: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tweedie's formula: the posterior mean of the clean point, E[x | x~] = x~ + sigma^2 grad log q_sigma(x~).

    For x~ = x + sigma z, z ~ N(0, I), differentiating q_sigma(x~) = int p(x) N(x~; x, sigma^2 I) dx under the
    integral gives grad q_sigma(x~) = int p(x) N(x~; x, sigma^2 I) (x - x~)/sigma^2 dx, so
    grad log q_sigma(x~) = (E[x | x~] - x~) / sigma^2. With a learned score this is the best denoiser the
    score allows. score_model(x, sigma) -> (batch, d); x_tilde: (batch, d); sigma > 0. Returns (batch, d).
    Reference: Efron (2011), "Tweedie's formula and selection bias"; Vincent (2011).
    """
    x_tilde = _check_x(x_tilde, "x_tilde")
    sigma = check_positive(sigma, "sigma")
    return x_tilde + sigma**2 * _checked_score(score_model, x_tilde, sigma)


# --------------------------------------------------------------------------------------------- choosing settings
def sigma_max_rule(x: torch.Tensor, max_points: int = 4096) -> float:
    """Song & Ermon (2020), technique 1: sigma_1 = the largest Euclidean distance between two training points.

    At that noise level q_sigma_1 is one broad blob in which Langevin chains move freely between any two
    data points. x: (n, ...) data; uses the first ``max_points`` points (the distances are computed in
    blocks, so memory stays O(n)). Returns a float.
    """
    x = _check_x(x)
    max_points = check_int(max_points, "max_points", minimum=2)
    flat = x[:max_points].reshape(min(len(x), max_points), -1).to(torch.float64)
    best = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(flat), 512):
        best = torch.maximum(best, torch.cdist(flat[start : start + 512], flat).max())
    return float(best)


def _normal_cdf(t: float) -> float:
    return 0.5 * math.erfc(-t / math.sqrt(2.0))


def sigma_ratio_rule(dim: int, overlap: float = 0.5) -> float:
    """Song & Ermon (2020), technique 2: the ratio gamma = sigma_{i-1}/sigma_i of a geometric sequence of noise levels.

    In d dimensions a sample of N(0, sigma^2 I) has norm ~ N(sigma sqrt(d), sigma^2/2). gamma is chosen so that
    a sample of level i lies within 3 standard deviations of the typical norm of level i-1 with probability
    ``overlap`` (0.5 in the paper):
        Phi(sqrt(2d)(gamma - 1) + 3 gamma) - Phi(sqrt(2d)(gamma - 1) - 3 gamma) = overlap,
    so adjacent levels overlap and samples of one level are good starts for the next. Returns gamma > 1.
    For d <= 4 the left side never falls below 0.997: the rule does not constrain gamma in so few
    dimensions (ValueError); choose the number of levels by cost instead.
    """
    dim = check_int(dim, "dim", minimum=1)
    overlap = float(overlap)
    if not 0.0 < overlap < 1.0:
        raise ValueError(f"overlap must be in (0, 1); got {overlap}.")

    def coverage(gamma: float) -> float:
        centre = math.sqrt(2 * dim) * (gamma - 1)
        return _normal_cdf(centre + 3 * gamma) - _normal_cdf(centre - 3 * gamma)

    hi = 2.0
    while coverage(hi) > overlap:
        hi *= 2
        if hi > 1e6:
            raise ValueError(
                f"in d = {dim} dimensions every gamma > 1 keeps adjacent noise levels overlapping with probability "
                f"above {overlap}: the rule does not constrain gamma (it is meant for high-dimensional data)."
            )
    lo = 1.0
    for _ in range(200):  # coverage decreases in gamma on [1, hi]: bisection
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if coverage(mid) > overlap else (lo, mid)
    return 0.5 * (lo + hi)


def annealed_variance_ratio(step_size: float, n_steps_each: int, gamma: float, sigma_min: float) -> float:
    """What T steps of annealed Langevin at one level do to the variance, for data at a single point.

    If the data are one point, q_sigma = N(0, sigma^2 I) and the update x <- x + (alpha/2) s + sqrt(alpha) z
    with alpha = epsilon sigma_i^2/sigma_L^2 is the AR(1) x <- rho x + sqrt(alpha) z, rho = 1 - epsilon/(2 sigma_L^2),
    the same at every level. Started from the previous level's variance sigma_{i-1}^2 = gamma^2 sigma_i^2,
    the variance after T steps, relative to the target sigma_i^2, is
        rho^(2T) (gamma^2 - c) + c,   c = (epsilon/sigma_L^2) / (1 - rho^2),
    where c > 1 is unadjusted Langevin's stationary bias. Song & Ermon (2020, technique 4) pick epsilon to
    bring this close to 1 (they write the step as x + alpha s + sqrt(2 alpha) z, i.e. their epsilon is half
    ours). step_size: epsilon > 0; n_steps_each: T >= 1; gamma >= 1; sigma_min: sigma_L > 0.
    """
    step_size = check_positive(step_size, "step_size")
    n_steps_each = check_int(n_steps_each, "n_steps_each", minimum=1)
    gamma = check_positive(gamma, "gamma")
    sigma_min = check_positive(sigma_min, "sigma_min")
    rho = 1.0 - step_size / (2 * sigma_min**2)
    if not -1.0 < rho < 1.0:
        raise ValueError(
            f"step_size {step_size} is unstable at sigma_min = {sigma_min}: need step_size < 4 sigma_min^2 = "
            f"{4 * sigma_min**2:g}."
        )
    c = (step_size / sigma_min**2) / (1.0 - rho**2)
    return rho ** (2 * n_steps_each) * (gamma**2 - c) + c


def choose_step_size(n_steps_each: int, gamma: float, sigma_min: float) -> float:
    """Song & Ermon (2020), technique 4: the step epsilon that brings :func:`annealed_variance_ratio` closest to 1.

    Choose T (``n_steps_each``) as large as the budget allows, then epsilon: too small and T steps do not
    shrink the previous level's variance gamma^2 sigma_i^2 to sigma_i^2; too large and the discretisation
    bias c > 1 takes over. Searched on a fine logarithmic grid of epsilon in (0, 2 sigma_min^2). Returns epsilon.
    """
    n_steps_each = check_int(n_steps_each, "n_steps_each", minimum=1)
    gamma = check_positive(gamma, "gamma")
    sigma_min = check_positive(sigma_min, "sigma_min")
    grid = torch.logspace(-8, math.log10(1.999 * sigma_min**2), 4001, dtype=torch.float64).tolist()
    return min(grid, key=lambda eps: abs(annealed_variance_ratio(eps, n_steps_each, gamma, sigma_min) - 1.0))
