"""Gradient-based MCMC for any differentiable energy: unadjusted Langevin (ULA), MALA, SGLD, parallel
tempering, a replay buffer.

An energy is any callable ``energy(x) -> E`` with x: (batch, *event_shape) and E: (batch,), e.g. an
``nn.Module``; the target is p(x) = exp(-E(x)) / Z. One convention is used throughout:

    x' = x - (eps/2) grad_x E(x) + sqrt(eps) z,    z ~ N(0, I),

the Euler-Maruyama step of dx = -1/2 grad E(x) dt + dW with time step eps. Many papers write the same
update as x' = x - eps' grad E + sqrt(2 eps') z; the two agree with eps' = eps / 2.

Gradient hygiene: every sampler takes grad_x E with ``torch.autograd.grad`` on a detached copy of x inside
``torch.enable_grad()``, so sampling never writes into a parameter's ``.grad`` and works under
``torch.no_grad()``; samples and energies come back detached. Randomness comes from an explicit
``generator`` on the tensors' device. No function here calls ``.item()`` inside its loop.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Tuple

import torch

from .core import check_int, check_positive, check_probability, check_tensor

__all__ = [
    "energy_and_grad",
    "langevin_step",
    "ula",
    "sgld",
    "MALAState",
    "MALAInfo",
    "mala_log_acceptance",
    "mala_init",
    "mala_kernel",
    "mala_step",
    "mala",
    "run_chain",
    "PTState",
    "PTInfo",
    "replica_swap_log_acceptance",
    "pt_init",
    "pt_kernel",
    "parallel_tempering",
    "ReplayBuffer",
    "uniform_noise",
]

Energy = Callable[[torch.Tensor], torch.Tensor]
Range = Optional[Tuple[float, float]]


# --------------------------------------------------------------------------------------------- validation
def _check_x(x) -> torch.Tensor:
    # Finiteness is not checked here: that would cost a GPU sync on every step. The multi-step samplers
    # check their starting point once; training loops use ebm_teach.training.divergence_guard.
    x = check_tensor(x, "x", finite=False)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (batch, ...); got shape {tuple(x.shape)}.")
    if x.dim() == 1:
        raise ValueError(
            f"x must have a batch axis, shape (batch, ...); got shape {tuple(x.shape)}. "
            "For a batch of scalars use x[:, None]; for one point use x[None, :]."
        )
    return x


def _check_energy(energy) -> Energy:
    if not callable(energy):
        raise TypeError(f"energy must be a callable x -> E(x) of shape (batch,); got {type(energy).__name__}.")
    return energy


def _check_generator(generator: Optional[torch.Generator], device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}.")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator lives on {generator.device} but the samples live on {device}; create it on the same "
            f"device, e.g. ebm_teach.make_generator(seed, device=x.device)."
        )


def _check_range(clamp: Range) -> Range:
    if clamp is None:
        return None
    try:
        lo, hi = (float(v) for v in clamp)
    except (TypeError, ValueError) as err:
        raise ValueError(f"clamp must be a (low, high) pair such as (0.0, 1.0) or None; got {clamp!r}.") from err
    if not lo < hi:
        raise ValueError(f"clamp must satisfy low < high; got ({lo}, {hi}).")
    return lo, hi


def _check_grad_clip(grad_clip) -> Optional[float]:
    if grad_clip is None:
        return None
    return check_positive(grad_clip, "grad_clip", hint="Use None for no clipping.")


def _check_start(x: torch.Tensor) -> torch.Tensor:
    # One sync per call of a multi-step sampler (not per step) to refuse NaN starting points.
    return check_tensor(x, "x (the chains' starting point)")


# --------------------------------------------------------------------------------------------- gradient
def energy_and_grad(energy: Energy, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """E(x) and grad_x E(x), both detached: x (batch, *event) -> (batch,), (batch, *event).

    The gradient of sum_i E(x_i) with respect to x is, row by row, grad_x E(x_i), because each E(x_i)
    depends on x_i only. Only x is differentiated, so no parameter's ``.grad`` is touched.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy(x)
        if not isinstance(e, torch.Tensor) or e.shape != x.shape[:1]:
            got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
            raise ValueError(
                f"energy(x) must return one energy per sample, shape ({x.shape[0]},); got {got}. "
                "Sum over the non-batch axes or squeeze a trailing axis of size 1 in the energy function."
            )
        (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad.detach()


def _clip(grad: torch.Tensor, grad_clip: Optional[float]) -> torch.Tensor:
    # Elementwise clipping to [-c, c], as in Du & Mordatch's code and most image-EBM code.
    return grad if grad_clip is None else grad.clamp(-grad_clip, grad_clip)


def _noise(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _project(x: torch.Tensor, clamp: Range) -> torch.Tensor:
    return x if clamp is None else x.clamp(clamp[0], clamp[1])


# --------------------------------------------------------------------------------------------- ULA
def langevin_step(
    x: torch.Tensor,
    energy: Energy,
    step_size: float,
    generator: Optional[torch.Generator] = None,
    grad_clip: Optional[float] = None,
    clamp: Range = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One unadjusted Langevin (ULA) step:  x' = x - (eps/2) grad_x E(x) + sqrt(eps) z,  z ~ N(0, I).

    This is the Euler-Maruyama step, with time step eps, of dx = -1/2 grad E dt + dW, whose stationary law
    is exp(-E)/Z. The other common convention x' = x - eps' grad E + sqrt(2 eps') z is the same update with
    eps' = eps / 2 (so step_size = 2 eps'). At finite eps the chain's stationary law is biased (for
    E = x^2 / (2 s^2) its variance is eps / (1 - (1 - eps / (2 s^2))^2) instead of s^2); MALA removes the bias.

    x: (batch, *event_shape); energy: callable x -> (batch,); step_size: eps > 0;
    generator: torch.Generator on x's device; grad_clip: clip grad E elementwise to [-c, c] (a practical
    stabiliser that changes the target); clamp: (low, high) to clip x' to the data range (also practical).
    Returns (x' detached, E(x) before the step, detached (batch,)).
    Reference: Roberts & Tweedie (1996); Welling & Teh (2011).
    """
    x = _check_x(x)
    energy = _check_energy(energy)
    eps = check_positive(step_size, "step_size", hint="A typical start is 1e-2; halve it if samples explode.")
    _check_generator(generator, x.device)
    grad_clip, clamp = _check_grad_clip(grad_clip), _check_range(clamp)
    e, grad = energy_and_grad(energy, x)
    x_new = x.detach() - 0.5 * eps * _clip(grad, grad_clip) + math.sqrt(eps) * _noise(x, generator)
    return _project(x_new, clamp), e


def ula(
    x: torch.Tensor,
    energy: Energy,
    n_steps: int,
    step_size: float,
    generator: Optional[torch.Generator] = None,
    grad_clip: Optional[float] = None,
    clamp: Range = None,
) -> torch.Tensor:
    """k = n_steps unadjusted Langevin steps x <- x - (eps/2) grad E(x) + sqrt(eps) z from x; returns x (detached).

    x: (batch, *event_shape) starting points (e.g. noise or replay-buffer samples); other arguments as in
    :func:`langevin_step`. Short-run chains (k = 20-100 from noise) are what deep-EBM training uses.
    """
    x = _check_start(_check_x(x))
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    energy = _check_energy(energy)
    eps = check_positive(step_size, "step_size")
    _check_generator(generator, x.device)
    grad_clip, clamp = _check_grad_clip(grad_clip), _check_range(clamp)
    x = x.detach()
    for _ in range(n_steps):
        _, grad = energy_and_grad(energy, x)
        x = _project(x - 0.5 * eps * _clip(grad, grad_clip) + math.sqrt(eps) * _noise(x, generator), clamp)
    return x


def sgld(
    x: torch.Tensor,
    energy: Energy,
    n_steps: int,
    step_size: float,
    noise_std: float,
    generator: Optional[torch.Generator] = None,
    clamp: Range = None,
    grad_clip: Optional[float] = None,
) -> torch.Tensor:
    """Practitioners' decoupled Langevin: k = n_steps steps of x <- x - a grad_x E(x) + sigma z; returns x (detached).

    a = step_size and sigma = noise_std are chosen independently (JEM: a = 1, sigma = 0.01, k = 20;
    Du & Mordatch use similar values). This targets exp(-E/T) only when sigma^2 = 2 a T (it is then ULA
    on E/T with eps = sigma^2); otherwise it is a heuristic: with a = 1, sigma = 0.01 the implied
    temperature T = sigma^2 / (2a) = 5e-5 is nearly zero, so the chain is noisy gradient descent that finds
    low-energy points rather than samples of exp(-E). Training with it still gives a contrastive signal
    (the negatives are points the current model rates too highly), but it then converges to a different
    fixed point than maximum likelihood: the learned energy is tuned to this sampler, and its exp(-E)/Z
    need not resemble the data (Nijkamp et al. 2019, 2020).

    x: (batch, *event_shape); energy: callable x -> (batch,); step_size, noise_std > 0; clamp: (low, high)
    data range; grad_clip: elementwise clip of grad E. Reference: Grathwohl et al. (2020, JEM);
    Du & Mordatch (2019); Nijkamp et al. (2019).
    """
    x = _check_start(_check_x(x))
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    energy = _check_energy(energy)
    a = check_positive(step_size, "step_size")
    sigma = check_positive(noise_std, "noise_std", hint="For noiseless gradient descent use a tiny value.")
    _check_generator(generator, x.device)
    grad_clip, clamp = _check_grad_clip(grad_clip), _check_range(clamp)
    x = x.detach()
    for _ in range(n_steps):
        _, grad = energy_and_grad(energy, x)
        x = _project(x - a * _clip(grad, grad_clip) + sigma * _noise(x, generator), clamp)
    return x


# --------------------------------------------------------------------------------------------- MALA
class MALAState(NamedTuple):
    """A batch of MALA chains: positions x (batch, *event), their energies (batch,) and gradients (like x)."""

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class MALAInfo(NamedTuple):
    """What one MALA step measured: acceptance probability min(1, alpha) (batch,) and the accept flags (batch,)."""

    acceptance_prob: torch.Tensor
    accepted: torch.Tensor


def _sum_event(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def mala_log_acceptance(
    x: torch.Tensor,
    x_prop: torch.Tensor,
    e_x: torch.Tensor,
    e_prop: torch.Tensor,
    grad_x: torch.Tensor,
    grad_prop: torch.Tensor,
    step_size: float,
) -> torch.Tensor:
    """log alpha = [-E(x') + log q(x | x')] - [-E(x) + log q(x' | x)] for the Langevin proposal (batch,).

    q(x' | x) = N(x'; x - (eps/2) grad E(x), eps I), so log q(x' | x) = -|x' - x + (eps/2) grad E(x)|^2 / (2 eps)
    + const; the constants cancel. Accept with probability min(1, exp(log alpha)).
    x, x_prop, grad_x, grad_prop: (batch, *event); e_x, e_prop: (batch,); step_size: eps, a number or a
    (batch,) tensor (one step size per chain, as parallel tempering uses).
    Reference: Roberts & Tweedie (1996); Besag (1994).
    """
    eps = step_size
    per_chain = isinstance(eps, torch.Tensor) and eps.dim() == 1
    eps_x = eps.reshape((-1,) + (1,) * (x.dim() - 1)) if per_chain else eps
    log_q_fwd = -_sum_event((x_prop - x + 0.5 * eps_x * grad_x) ** 2) / (2 * eps)
    log_q_bwd = -_sum_event((x - x_prop + 0.5 * eps_x * grad_prop) ** 2) / (2 * eps)
    return (-e_prop + log_q_bwd) - (-e_x + log_q_fwd)


def mala_init(x: torch.Tensor, energy: Energy) -> MALAState:
    """The MALA state at x: (batch, *event), with E(x) and grad E(x) cached so that each step needs one gradient."""
    x = _check_start(_check_x(x))
    e, grad = energy_and_grad(_check_energy(energy), x)
    return MALAState(x.detach(), e, grad)


def mala_kernel(
    state: MALAState, energy: Energy, step_size: float, generator: Optional[torch.Generator] = None
) -> Tuple[MALAState, MALAInfo]:
    """One Metropolis-adjusted Langevin step on a batch of independent chains: (state, info).

    Propose x' = x - (eps/2) grad E(x) + sqrt(eps) z (the ULA step), accept each chain's proposal with
    probability min(1, alpha) (see :func:`mala_log_acceptance`), else stay. The accept/reject step makes
    exp(-E)/Z exactly stationary at every eps > 0; eps only changes how fast the chain mixes
    (in high dimension the best step gives acceptance ~ 0.574, with eps shrinking like d^(-1/3);
    Roberts & Rosenthal 1998). No validation here: this is
    the inner loop; :func:`mala_init` validated the chains' start.
    """
    eps = step_size
    x, e, grad = state
    x_prop = x - 0.5 * eps * grad + math.sqrt(eps) * _noise(x, generator)
    e_prop, grad_prop = energy_and_grad(energy, x_prop)
    log_alpha = mala_log_acceptance(x, x_prop, e, e_prop, grad, grad_prop, eps)
    u = torch.rand(log_alpha.shape, generator=generator, device=x.device, dtype=x.dtype)
    # A NaN log alpha (a proposal that overflowed) compares False: rejected, the chain stays finite.
    accepted = torch.log(u) < log_alpha
    keep = accepted.reshape((-1,) + (1,) * (x.dim() - 1))
    new = MALAState(torch.where(keep, x_prop, x), torch.where(accepted, e_prop, e), torch.where(keep, grad_prop, grad))
    return new, MALAInfo(log_alpha.clamp(max=0).exp().nan_to_num(0.0), accepted)


def mala_step(
    x: torch.Tensor, energy: Energy, step_size: float, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, MALAInfo]:
    """One MALA step from x: (batch, *event) -> (x' detached, MALAInfo(acceptance_prob, accepted)).

    A thin entry point over :func:`mala_init` + :func:`mala_kernel` (it recomputes E and grad E at x, so a
    long chain is cheaper with the kernel, or with :func:`mala`). step_size: eps > 0 as in ULA.
    """
    eps = check_positive(step_size, "step_size")
    x = _check_x(x)
    _check_generator(generator, x.device)
    state, info = mala_kernel(mala_init(x, energy), energy, eps, generator)
    return state.x, info


def mala(
    x: torch.Tensor,
    energy: Energy,
    n_steps: int,
    step_size: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """k = n_steps MALA steps from x: (batch, *event); returns (x detached, mean acceptance rate as a 0-d tensor).

    The acceptance rate is averaged over chains and steps and stays on the device (call float() on it).
    """
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    eps = check_positive(step_size, "step_size")
    x = _check_x(x)
    _check_generator(generator, x.device)
    state = mala_init(x, energy)
    accept = torch.zeros((), device=x.device, dtype=x.dtype)
    for _ in range(n_steps):
        state, info = mala_kernel(state, energy, eps, generator)
        accept = accept + info.accepted.to(x.dtype).mean()
    return state.x, accept / n_steps


# --------------------------------------------------------------------------------------------- trajectories
def run_chain(step: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n_steps: int, thin: int = 1) -> torch.Tensor:
    """Iterate x <- step(x) n_steps times and stack every thin-th state: (n_steps // thin, batch, *event).

    step: a function of x alone, e.g. ``lambda x: langevin_step(x, E, 0.1, g)[0]``. The starting point is
    not included. Use this for trace plots and autocorrelation estimates.
    """
    x = _check_x(x)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    thin = check_int(thin, "thin", minimum=1, maximum=n_steps)
    kept = []
    for t in range(1, n_steps + 1):
        x = step(x)
        if t % thin == 0:
            kept.append(x.detach())
    return torch.stack(kept)


# --------------------------------------------------------------------------------------------- parallel tempering
class PTState(NamedTuple):
    """Replicas of a parallel-tempering system: positions x (n_temps, batch, *event), their energies E(x)
    (n_temps, batch) and gradients grad E(x) (like x), all of the untempered energy E. Row k holds the
    replicas at inverse temperature betas[k]; the columns are independent systems."""

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class PTInfo(NamedTuple):
    """What one parallel-tempering step measured (never fed back into the chain).

    acceptance_prob: (n_temps, batch) MALA acceptance probability of each replica's local move;
    swap_prob: (n_temps - 1, batch) acceptance probability of exchanging replicas k and k+1 (0 where that
    pair was not proposed this step); swap_accepted: (n_temps - 1, batch) bool; swap_attempted: (n_temps - 1,)
    bool, the pairs proposed this step.
    """

    acceptance_prob: torch.Tensor
    swap_prob: torch.Tensor
    swap_accepted: torch.Tensor
    swap_attempted: torch.Tensor


def replica_swap_log_acceptance(e_k: torch.Tensor, e_next: torch.Tensor, beta_k, beta_next) -> torch.Tensor:
    """log alpha of exchanging the replicas at inverse temperatures beta_k and beta_next.

    log alpha = (beta_k - beta_next)(E_k - E_next). The joint target is prod_k exp(-beta_k E(x_k)) / Z_k;
    exchanging x_k and x_next multiplies it by
    exp(-beta_k E_next - beta_next E_k + beta_k E_k + beta_next E_next) = exp((beta_k - beta_next)(E_k - E_next)),
    and the proposal (a swap) is its own reverse, so Metropolis accepts with min(1, that ratio): the swap is
    always accepted when the colder replica (larger beta) would receive the lower energy.
    e_k, e_next: energies E(x_k), E(x_next) of the same shape; beta_k, beta_next: numbers or broadcastable
    tensors. Reference: Hukushima & Nemoto (1996); Geyer (1991); Earl & Deem (2005).
    """
    return (beta_k - beta_next) * (e_k - e_next)


def _check_betas(betas, like: torch.Tensor) -> torch.Tensor:
    betas = torch.as_tensor(betas, dtype=like.dtype, device=like.device)
    if betas.dim() != 1 or len(betas) < 1:
        raise ValueError(f"betas must be a 1-D sequence of inverse temperatures; got shape {tuple(betas.shape)}.")
    if not bool(torch.isfinite(betas).all()) or not bool((betas > 0).all()):
        raise ValueError(f"betas must be finite and > 0; got {betas.tolist()}.")
    if len(betas) > 1 and not bool((betas[1:] < betas[:-1]).all()):
        raise ValueError(
            "betas must decrease from the target (betas[0], usually 1) to the hottest replica; "
            f"got {betas.tolist()}. A geometric ladder such as torch.logspace(0, -1.5, 6) is a common start."
        )
    return betas


def _check_step_sizes(step_sizes, betas: torch.Tensor) -> torch.Tensor:
    eps = torch.as_tensor(step_sizes, dtype=betas.dtype, device=betas.device)
    if eps.dim() == 0:
        eps = eps.expand(len(betas))
    if eps.shape != betas.shape or not bool(torch.isfinite(eps).all()) or not bool((eps > 0).all()):
        raise ValueError(
            f"step_sizes must be one number > 0 or one per temperature ({len(betas)}); got {eps.tolist()}. "
            "Hotter replicas take larger steps, e.g. step_sizes = eps / betas."
        )
    return eps


def pt_init(x: torch.Tensor, energy: Energy, n_temps: int) -> PTState:
    """The parallel-tempering state with the replicas of every temperature started at x: (batch, *event).

    E and grad E are computed once here and cached in the state (n_temps, batch, ...).
    """
    n_temps = check_int(n_temps, "n_temps", minimum=1)
    x = _check_start(_check_x(x))
    energy = _check_energy(energy)
    xs = x.detach().unsqueeze(0).expand((n_temps,) + tuple(x.shape)).clone()
    e, grad = energy_and_grad(energy, xs.reshape((-1,) + tuple(x.shape[1:])))
    return PTState(xs, e.reshape(n_temps, x.shape[0]), grad.reshape(xs.shape))


def pt_kernel(
    state: PTState,
    energy: Energy,
    betas: torch.Tensor,
    step_sizes: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    parity: int = 0,
) -> Tuple[PTState, PTInfo]:
    """One parallel-tempering step: a MALA move in every replica, then replica exchanges between neighbours.

    Replica k targets exp(-beta_k E) (MALA on the tempered energy beta_k E with step size eps_k, exact at any
    eps_k); then the pairs (k, k+1) with k of the given parity (0: pairs (0,1), (2,3), ...; 1: (1,2), ...)
    exchange their positions with probability min(1, exp((beta_k - beta_{k+1})(E_k - E_{k+1}))). Alternating
    the parity from step to step (the deterministic even-odd scheme, a non-reversible parallel tempering:
    Okabe et al. 2001; Syed et al. 2022) moves replicas along the ladder fastest.
    Each move leaves prod_k exp(-beta_k E(x_k)) invariant, so row 0 samples exp(-beta_0 E) exactly, while the
    hot rows cross energy barriers and hand their crossings down. betas: (n_temps,) decreasing;
    step_sizes: (n_temps,). No validation here (the inner loop): :func:`parallel_tempering` validates.
    """
    x, e, grad = state
    n_temps, batch = e.shape
    event = (1,) * (x.dim() - 2)
    b = betas.reshape((n_temps, 1) + event)
    eps = step_sizes.reshape((n_temps, 1) + event)
    # local moves: MALA on beta_k E at every temperature, all replicas at once
    x_prop = x - 0.5 * eps * b * grad + eps.sqrt() * _noise(x, generator)
    e_prop, grad_prop = energy_and_grad(energy, x_prop.reshape((-1,) + tuple(x.shape[2:])))
    e_prop, grad_prop = e_prop.reshape(e.shape), grad_prop.reshape(x.shape)
    log_alpha = mala_log_acceptance(
        x.reshape((-1,) + tuple(x.shape[2:])), x_prop.reshape((-1,) + tuple(x.shape[2:])),
        (betas[:, None] * e).reshape(-1), (betas[:, None] * e_prop).reshape(-1),
        (b * grad).reshape((-1,) + tuple(x.shape[2:])), (b * grad_prop).reshape((-1,) + tuple(x.shape[2:])),
        step_sizes[:, None].expand(n_temps, batch).reshape(-1),
    ).reshape(e.shape)
    u = torch.rand(e.shape, generator=generator, device=x.device, dtype=x.dtype)
    accepted = torch.log(u) < log_alpha
    keep = accepted.reshape(e.shape + event)
    x, e, grad = torch.where(keep, x_prop, x), torch.where(accepted, e_prop, e), torch.where(keep, grad_prop, grad)
    # replica exchange between neighbours (k, k+1), k = parity, parity + 2, ...
    attempted = torch.zeros(max(n_temps - 1, 0), dtype=torch.bool, device=x.device)
    swap_prob = torch.zeros((max(n_temps - 1, 0), batch), dtype=x.dtype, device=x.device)
    swap_acc = torch.zeros((max(n_temps - 1, 0), batch), dtype=torch.bool, device=x.device)
    pairs = list(range(parity % 2, n_temps - 1, 2))
    if pairs:
        lo = torch.tensor(pairs, device=x.device)
        hi = lo + 1
        log_swap = replica_swap_log_acceptance(e[lo], e[hi], betas[lo, None], betas[hi, None])
        u = torch.rand(log_swap.shape, generator=generator, device=x.device, dtype=x.dtype)
        acc = torch.log(u) < log_swap
        attempted[lo] = True
        swap_prob[lo] = log_swap.clamp(max=0).exp()
        swap_acc[lo] = acc
        # the permutation that exchanges rows lo and hi where accepted, per column
        perm = torch.arange(n_temps, device=x.device)[:, None].expand(n_temps, batch).clone()
        perm[lo] = torch.where(acc, hi[:, None], lo[:, None])
        perm[hi] = torch.where(acc, lo[:, None], hi[:, None])
        cols = torch.arange(batch, device=x.device)[None, :]
        x, e, grad = x[perm, cols], e[perm, cols], grad[perm, cols]
    info = PTInfo(log_alpha.clamp(max=0).exp().nan_to_num(0.0), swap_prob, swap_acc, attempted)
    return PTState(x, e, grad), info


def parallel_tempering(
    x: torch.Tensor,
    energy: Energy,
    betas,
    n_steps: int,
    step_sizes,
    generator: Optional[torch.Generator] = None,
    thin: int = 1,
) -> Tuple[torch.Tensor, dict]:
    """Parallel tempering (replica exchange) with MALA moves; returns the target replicas' trajectory and rates.

    n_temps = len(betas) replicas of each of the batch chains run at inverse temperatures betas (decreasing
    from the target's, betas[0], usually 1); every step makes one :func:`pt_kernel` move with the parity of
    the swaps alternating. The chain at betas[0] samples exp(-betas[0] E)/Z exactly (every move keeps the joint
    target invariant) and, unlike a single chain, crosses barriers that the hot replicas cross.
    x: (batch, *event) start for every temperature; step_sizes: a number or one per temperature (hot replicas
    need larger steps: eps / betas is a fair start). Returns (trajectory (n_steps // thin, batch, *event) of
    the betas[0] replicas, {"acceptance": (n_temps,) mean MALA acceptance per temperature, "swap": (n_temps-1,)
    mean swap acceptance probability of each neighbouring pair}), rates as tensors on x's device.
    Reference: Hukushima & Nemoto (1996); Geyer (1991); Earl & Deem (2005); Syed et al. (2022) for the
    even-odd swaps; Desjardins et al. (2010) for EBMs.
    """
    x = _check_x(x)
    _check_generator(generator, x.device)
    betas = _check_betas(betas, x)
    step_sizes = _check_step_sizes(step_sizes, betas)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    thin = check_int(thin, "thin", minimum=1, maximum=n_steps)
    state = pt_init(x, energy, len(betas))
    acc = torch.zeros(len(betas), device=x.device, dtype=x.dtype)
    swap = torch.zeros(len(betas) - 1, device=x.device, dtype=x.dtype)
    tries = torch.zeros(len(betas) - 1, device=x.device, dtype=x.dtype)
    kept = []
    for t in range(1, n_steps + 1):
        state, info = pt_kernel(state, energy, betas, step_sizes, generator, parity=t % 2)
        acc = acc + info.acceptance_prob.mean(1)
        swap = swap + info.swap_prob.mean(1)
        tries = tries + info.swap_attempted.to(x.dtype)
        if t % thin == 0:
            kept.append(state.x[0])
    return torch.stack(kept), {"acceptance": acc / n_steps, "swap": swap / tries.clamp(min=1)}


# --------------------------------------------------------------------------------------------- replay buffer
def uniform_noise(shape: Tuple[int, ...], low: float = -1.0, high: float = 1.0, device=None, dtype=torch.float32):
    """A ``noise_fn(n, generator)`` for :class:`ReplayBuffer`: n draws of U(low, high)^shape on ``device``.

    Draws on the generator's device when one is passed (so it must match ``device``).
    """
    lo, hi = _check_range((low, high))
    shape = tuple(check_int(s, "shape entry", minimum=1) for s in shape)

    def noise_fn(n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        dev = generator.device if generator is not None else device
        return lo + (hi - lo) * torch.rand((n,) + shape, generator=generator, device=dev, dtype=dtype)

    return noise_fn


class ReplayBuffer:
    """A fixed-capacity store of past negative samples (Du & Mordatch 2019).

    ``sample(n)`` returns a batch in which each row is, independently, fresh noise from ``noise_fn`` with
    probability ``reinit_fraction`` (default 5 %) and otherwise a uniformly chosen stored sample; an empty
    buffer gives all-fresh rows. After running Langevin from that batch, ``push`` the results back: the
    buffer is a ring that overwrites its oldest entries once full. Chains thus persist across training
    steps (like PCD) while the fresh rows keep exploring.

    capacity: number of stored samples; noise_fn: ``noise_fn(n, generator) -> (n, *event)`` (see
    :func:`uniform_noise`); reinit_fraction in [0, 1]. The storage is created on the device (and with the
    dtype) of the first batch pushed or of the first noise drawn; generators must live on that device.
    """

    def __init__(self, capacity: int, noise_fn: Callable, reinit_fraction: float = 0.05):
        self.capacity = check_int(capacity, "capacity", minimum=1)
        if not callable(noise_fn):
            raise TypeError(f"noise_fn must be a callable (n, generator) -> tensor; got {type(noise_fn).__name__}.")
        self.noise_fn = noise_fn
        self.reinit_fraction = check_probability(reinit_fraction, "reinit_fraction")
        self.storage: Optional[torch.Tensor] = None  # (capacity, *event) once the first batch arrives
        self.n_stored = 0  # host-side counters: no GPU sync to know the size
        self._next = 0

    def __len__(self) -> int:
        return self.n_stored

    def _allocate(self, like: torch.Tensor) -> None:
        if self.storage is None:
            self.storage = torch.empty((self.capacity,) + tuple(like.shape[1:]), device=like.device, dtype=like.dtype)

    def _noise(self, n: int, generator) -> torch.Tensor:
        x = self.noise_fn(n, generator)
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != n:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"noise_fn({n}, generator) must return a tensor of shape ({n}, ...); got {got}.")
        if self.storage is not None and (x.shape[1:] != self.storage.shape[1:] or x.device != self.storage.device):
            raise ValueError(
                f"noise_fn returned samples of shape {tuple(x.shape[1:])} on {x.device}, but the buffer holds "
                f"{tuple(self.storage.shape[1:])} on {self.storage.device}; make them agree."
            )
        return x

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch (batch_size, *event) and its fresh_mask (batch_size,) bool: True where the row is new noise.

        Every row is fresh with probability reinit_fraction, else a uniform draw (with replacement) from
        the stored samples. Noise is drawn for the whole batch and selected with ``torch.where``, so the
        number of fresh rows never has to be read back from the GPU.
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if self.storage is not None:
            _check_generator(generator, self.storage.device)
        noise = self._noise(batch_size, generator)
        self._allocate(noise)
        _check_generator(generator, noise.device)
        if self.n_stored == 0:
            return noise, torch.ones(batch_size, dtype=torch.bool, device=noise.device)
        u = torch.rand(batch_size, generator=generator, device=noise.device)
        fresh = u < self.reinit_fraction
        idx = torch.randint(0, self.n_stored, (batch_size,), generator=generator, device=noise.device)
        stored = self.storage[idx]
        x = torch.where(fresh.reshape((-1,) + (1,) * (noise.dim() - 1)), noise.to(stored.dtype), stored)
        return x, fresh

    def push(self, x: torch.Tensor) -> None:
        """Store a batch x: (n, *event) (detached), overwriting the oldest entries once the buffer is full."""
        x = check_tensor(x, "x", finite=False).detach()
        if x.dim() < 1 or x.shape[0] == 0:
            raise ValueError(f"push a non-empty batch of shape (n, ...); got shape {tuple(x.shape)}.")
        self._allocate(x)
        if x.shape[1:] != self.storage.shape[1:]:
            raise ValueError(
                f"x has samples of shape {tuple(x.shape[1:])} but the buffer holds {tuple(self.storage.shape[1:])}."
            )
        x = x[-self.capacity :].to(device=self.storage.device, dtype=self.storage.dtype)
        n = x.shape[0]
        idx = (self._next + torch.arange(n, device=self.storage.device)) % self.capacity
        self.storage[idx] = x
        self._next = (self._next + n) % self.capacity
        self.n_stored = min(self.capacity, self.n_stored + n)

    def samples(self) -> torch.Tensor:
        """The stored samples (n_stored, *event) in storage order (a view; empty before the first push).

        Once the ring has wrapped around, storage order is not the order of pushing: use :meth:`newest`.
        """
        if self.storage is None:
            raise ValueError("the buffer is empty and has no shape yet; push a batch or sample first.")
        return self.storage[: self.n_stored]

    def newest(self, n: int) -> torch.Tensor:
        """The n most recently pushed samples (n, *event), oldest first (the last row is the last pushed).

        The ring writes at position ``_next`` and wraps around, so these are rows _next - n .. _next - 1
        modulo the capacity, not the last n rows of :meth:`samples`. n: 1 <= n <= len(self).
        """
        if self.storage is None or self.n_stored == 0:
            raise ValueError("the buffer is empty: push a batch before asking for the newest samples.")
        n = check_int(n, "n", minimum=1, maximum=self.n_stored)
        idx = (self._next - n + torch.arange(n, device=self.storage.device)) % self.capacity
        return self.storage[idx]
