"""Maximum-likelihood training of a deep EBM with Langevin negatives: the loss, one step, the loop, the guard.

The gradient of the negative log-likelihood is E_data[grad_theta E(x+)] - E_model[grad_theta E(x-)]
(chapter 1), so the surrogate loss

    L(theta) = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)

with negatives x- from short-run Langevin chains (detached: no gradient flows through the sampler) has
that gradient, plus Du & Mordatch's (2019) weak L2 regularisation of the energies, which keeps the
energies from drifting off to +-infinity.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from .core import DivergenceError, check_int, check_positive, check_tensor, progress
from .samplers import ReplayBuffer

__all__ = ["ml_loss", "ml_step", "divergence_guard", "train_ebm"]


# --------------------------------------------------------------------------------------------- the guard
def divergence_guard(step: int, max_abs: float = 1e4, check_every: int = 1, **tensors: torch.Tensor) -> None:
    """Raise DivergenceError when any tensor holds NaN/inf or exceeds max_abs in absolute value.

    Call it in a training loop as ``divergence_guard(it, e_pos=e_pos, e_neg=e_neg, loss=loss)``. The
    message names the tensor, the step, and the likely cause with a fix.

    GPU cost: all tensors are reduced on the device to a single flag and read back with one ``bool()``, so
    a check costs one synchronisation, not one per tensor. A training step already runs k Langevin steps
    (2k kernel launches and more), so one sync per step is a small price on a GPU and free on a CPU;
    ``check_every = n`` checks only every n-th step (a diverged run is still stopped within n steps, and
    NaNs do not undo themselves). Only when the flag is raised are the tensors inspected one by one to
    write the message.

    step: the iteration number (int); max_abs: the limit on |value| (energies of a healthy model stay
    O(1)-O(100)); tensors: named tensors of any shape (energies, loss, samples).
    """
    step = check_int(step, "step", minimum=0)
    max_abs = check_positive(max_abs, "max_abs")
    check_every = check_int(check_every, "check_every", minimum=1)
    if not tensors:
        raise ValueError("pass the tensors to watch by name, e.g. divergence_guard(it, e_pos=e_pos, e_neg=e_neg).")
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor; got {type(t).__name__}.")
    if step % check_every != 0:
        return
    flags = [(~torch.isfinite(t.detach()) | (t.detach().abs() > max_abs)).any() for t in tensors.values()]
    if not bool(torch.stack([f.to(flags[0].device) for f in flags]).any()):
        return
    for name, t in tensors.items():
        t = t.detach()
        if not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise DivergenceError(
                f"step {step}: {name} has {n_bad} NaN/inf value(s). Likely cause: the Langevin step size or "
                "the learning rate is too large for the energy's curvature, so samples or energies overflowed. "
                "Fix: lower step_size (or clip its gradient with grad_clip and clamp samples to the data range), "
                "lower the learning rate, and keep the L2 energy regularisation alpha > 0 (e.g. 0.1); spectral "
                "normalisation of the energy network also helps."
            )
        if bool((t.abs() > max_abs).any()):
            worst = float(t.abs().max())
            raise DivergenceError(
                f"step {step}: |{name}| reached {worst:.3g} > max_abs = {max_abs:.3g}: the energies are running "
                "away. Likely cause: without (enough) L2 regularisation nothing ties the energies to a scale, "
                "so the model can drive E(samples) up faster than E(data), without bound (both may drift), "
                "or the learning rate is too high. Fix: set "
                "alpha > 0 (e.g. 0.1) in the loss, lower the learning rate, or use spectral normalisation; "
                "raise max_abs only if such energies are expected."
            )


# --------------------------------------------------------------------------------------------- loss and step
def ml_loss(e_pos: torch.Tensor, e_neg: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """The maximum-likelihood surrogate with L2 energy regularisation (a 0-d tensor).

    L = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2).  e_pos: (n+,), e_neg: (n-,).
    Its gradient is the contrastive log-likelihood gradient plus alpha's pull of the energies towards 0.
    At a stationary point the gap mean E(x+) - mean E(x-) equals -2 alpha (mean E(x+)^2 + mean E(x-)^2)
    (see :func:`ebm_teach.diagnostics.regularized_gap`). Reference: Du & Mordatch (2019).
    """
    return e_pos.mean() - e_neg.mean() + alpha * ((e_pos**2).mean() + (e_neg**2).mean())


def ml_step(
    energy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x_pos: torch.Tensor,
    x_neg: torch.Tensor,
    alpha: float = 0.1,
) -> Dict[str, torch.Tensor]:
    """One optimiser step on :func:`ml_loss`; returns detached 0-d tensors loss, e_pos, e_neg (means).

    x_pos: (batch, *event) data; x_neg: (batch', *event) negatives, detached here so that no gradient flows
    back through the sampler. Nothing is read back to the host (no sync).
    """
    e_pos, e_neg = energy(x_pos), energy(x_neg.detach())
    loss = ml_loss(e_pos, e_neg, alpha)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"e_pos": e_pos.detach().mean(), "e_neg": e_neg.detach().mean(), "loss": loss.detach()}


# --------------------------------------------------------------------------------------------- the loop
def train_ebm(
    energy: torch.nn.Module,
    data: torch.Tensor,
    n_iters: int,
    sampler: Callable,
    noise_fn: Callable,
    batch_size: int = 128,
    lr: float = 1e-3,
    alpha: float = 0.1,
    buffer: Optional[ReplayBuffer] = None,
    generator: Optional[torch.Generator] = None,
    max_abs: float = 1e4,
    check_every: int = 1,
    callback: Optional[Callable] = None,
    callback_every: int = 0,
) -> Dict[str, torch.Tensor]:
    """Train ``energy`` on ``data`` by maximum likelihood with Langevin negatives; returns the history.

    Each iteration: a data batch x+; starting points from ``buffer.sample`` (or fresh ``noise_fn``
    noise when buffer is None, i.e. short-run chains from noise); negatives x- = sampler(x0, energy,
    generator); push x- back into the buffer; one Adam step on :func:`ml_loss`; the divergence guard.
    Adam runs with betas = (0.0, 0.999), i.e. without momentum (beta_1 = 0), as Du & Mordatch's (2019) code
    does (a common choice for EBMs and GANs, whose gradient changes as the samples move); torch's default
    (0.9, 0.999) gives different runs.

    energy: module x -> (batch,); data: (n, *event) on the model's device; sampler: callable
    (x0, energy, generator) -> x-, e.g. ``functools.partial(ula, n_steps=30, step_size=0.01)``;
    noise_fn: (n, generator) -> (n, *event); callback(it, energy, x_neg) is called every callback_every
    iterations (and after the last), e.g. to record energy landscapes.
    Returns a dict of tensors (n_iters,) on the CPU: loss, e_pos, e_neg and gap = e_pos - e_neg.
    Raises DivergenceError (see :func:`divergence_guard`) when training blows up; the error's ``history``
    attribute holds the same dict up to that iteration.
    """
    data = check_tensor(data, "data")
    n_iters = check_int(n_iters, "n_iters", minimum=1)
    for name, fn in (("sampler", sampler), ("noise_fn", noise_fn)):
        if not callable(fn):
            raise TypeError(
                f"{name} must be a callable; got {type(fn).__name__}. E.g. sampler = functools.partial(ula, "
                "n_steps=20, step_size=0.1) and noise_fn = uniform_noise((d,), -1, 1)."
            )
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=len(data))
    lr = check_positive(lr, "lr")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0 (0 switches the L2 energy regularisation off); got {alpha}.")
    callback_every = check_int(callback_every, "callback_every", minimum=0)
    if generator is not None and generator.device.type != data.device.type:
        raise ValueError(f"generator is on {generator.device} but data is on {data.device}; put them on one device.")
    optimizer = torch.optim.Adam(energy.parameters(), lr=lr, betas=(0.0, 0.999))
    history = {k: [] for k in ("e_pos", "e_neg", "loss")}
    for it in progress(range(n_iters), desc="training EBM", total=n_iters):
        idx = torch.randint(0, len(data), (batch_size,), generator=generator, device=data.device)
        x_pos = data[idx]
        x0 = buffer.sample(batch_size, generator)[0] if buffer is not None else noise_fn(batch_size, generator)
        x_neg = sampler(x0, energy, generator=generator)
        if buffer is not None:
            buffer.push(x_neg)
        stats = ml_step(energy, optimizer, x_pos, x_neg, alpha)
        for k, v in stats.items():
            history[k].append(v)
        try:
            divergence_guard(it, max_abs=max_abs, check_every=check_every, **stats)
        except DivergenceError as err:
            err.history = _stack(history)  # the run up to the blow-up, for a post-mortem plot
            raise
        if callback is not None and callback_every and (it % callback_every == 0 or it == n_iters - 1):
            callback(it, energy, x_neg)
    return _stack(history)


def _stack(history: Dict[str, list]) -> Dict[str, torch.Tensor]:
    out = {k: torch.stack(v).cpu() for k, v in history.items()}
    out["gap"] = out["e_pos"] - out["e_neg"]
    return out
