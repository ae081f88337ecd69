"""Joint energy models (JEM): any classifier f(x) -> logits is also an energy-based model of x.

With logits f(x) (batch, K), read exp(f(x)[y]) as an unnormalised joint density p(x, y) (Grathwohl et al.
2020, "Your classifier is secretly an energy based model"):

    p(x, y) = exp(f(x)[y]) / Z,          E(x, y) = -f(x)[y],
    p(x)    = sum_y p(x, y),             E(x)    = -logsumexp_y f(x)[y],
    p(y | x) = p(x, y) / p(x) = softmax(f(x))[y]   (Z cancels, and so does any shift of the logits).

Training maximises log p(x) + log p(y | x): cross-entropy for the second term; for the first, the usual
EBM gradient -grad E(x+) + E_p[grad E(x-)], with negatives x- from SGLD chains kept in a replay buffer
(:mod:`ebm_teach.samplers`). Conditional samples of p(x | y) run the same SGLD on E(x, y).
``fit_temperature`` rescales the logits after training so that the confidences match the accuracy
(temperature scaling, Guo et al. 2017); ``brier_score`` is a proper scoring rule to measure calibration with,
beside the negative log-likelihood, without bins.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .core import DivergenceError, check_int, check_positive, check_tensor, progress
from .samplers import ReplayBuffer, sgld, uniform_noise
from .training import divergence_guard

__all__ = [
    "energy_from_logits",
    "class_energy_from_logits",
    "jem_loss",
    "MLPClassifier",
    "JEM",
    "jem_buffer",
    "sample_negatives",
    "sample_class",
    "train_jem",
    "OOD_SCORES",
    "ood_score",
    "fit_temperature",
    "brier_score",
]

#: JEM's SGLD settings (Grathwohl et al. 2020, Algorithm 1 and training details): step 1, noise 0.01, 20 steps.
JEM_STEP_SIZE, JEM_NOISE_STD, JEM_N_STEPS = 1.0, 0.01, 20


# --------------------------------------------------------------------------------------------- energies from logits
def _check_logits(logits, name: str = "logits") -> torch.Tensor:
    logits = check_tensor(logits, name, ndim=2, finite=False)
    if logits.shape[1] < 1:
        raise ValueError(f"{name} must have at least one class column, shape (batch, K); got {tuple(logits.shape)}.")
    return logits


def _check_labels(y, logits: torch.Tensor, name: str = "y") -> torch.Tensor:
    y = check_tensor(y, name, ndim=1, floating=False)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels; got dtype {y.dtype}. Use y.long().")
    if len(y) != len(logits):
        raise ValueError(f"{name} has {len(y)} labels for {len(logits)} rows of logits; pass one label per row.")
    return y.to(device=logits.device, dtype=torch.long)


def energy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """E(x) = -logsumexp_y f(x)[y], the energy of p(x) = sum_y exp(f(x)[y]) / Z.

    logits: (batch, K) -> (batch,). Computed with log-sum-exp, so large logits do not overflow.
    Reference: Grathwohl et al. 2020.
    """
    return -torch.logsumexp(_check_logits(logits), dim=1)


def class_energy_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E(x, y) = -f(x)[y], the energy of the joint p(x, y) = exp(f(x)[y]) / Z.

    logits: (batch, K); y: (batch,) integer labels in [0, K) -> (batch,).
    """
    logits = _check_logits(logits)
    y = _check_labels(y, logits)
    return -logits.gather(1, y[:, None]).squeeze(1)


def jem_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    logits_neg: Optional[torch.Tensor] = None,
    p_x_weight: float = 1.0,
    alpha: float = 0.0,
) -> torch.Tensor:
    """The JEM loss of a batch: -[log p(y | x) + log p(x)] up to log Z, whose gradient is the JEM update.

        L = mean_i CE(f(x_i), y_i) + w * [mean_i E(x_i) - mean_j E(x-_j)] + alpha * [mean_i E(x_i)^2 + mean_j E(x-_j)^2]

    The bracket is the contrastive estimate of -log p(x): its gradient -grad E(x+) + grad E(x-) is the
    maximum-likelihood gradient with the expectation under p replaced by SGLD negatives x-. alpha > 0 adds
    Du & Mordatch's (2019) L2 penalty on energies, which stops energies drifting to +-infinity.
    logits: (batch, K) = f(x) on data; y: (batch,) labels; logits_neg: (batch_neg, K) = f(x-) on negatives
    (None: the plain classifier's cross-entropy); p_x_weight: w >= 0; alpha: alpha >= 0. Returns a scalar.
    """
    logits = _check_logits(logits)
    y = _check_labels(y, logits)
    loss = F.cross_entropy(logits, y)
    if logits_neg is None:
        return loss
    logits_neg = _check_logits(logits_neg, "logits_neg")
    if logits_neg.shape[1] != logits.shape[1]:
        raise ValueError(f"logits_neg has {logits_neg.shape[1]} classes but logits has {logits.shape[1]}.")
    p_x_weight, alpha = _check_nonneg(p_x_weight, "p_x_weight"), _check_nonneg(alpha, "alpha")
    e_pos, e_neg = -torch.logsumexp(logits, 1), -torch.logsumexp(logits_neg, 1)
    loss = loss + p_x_weight * (e_pos.mean() - e_neg.mean())
    if alpha > 0:
        loss = loss + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    return loss


def _check_nonneg(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number >= 0; got {value!r}.") from err
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}.")
    return value


# --------------------------------------------------------------------------------------------- models
class MLPClassifier(nn.Module):
    """f(x) = logits from a small fully connected network: x (batch, d) -> (batch, n_classes).

    Smooth SiLU activations, so that grad_x E(x), which SGLD follows, is continuous. Digits: 64 -> 128 ->
    128 -> 10; 2-D toy data: 2 -> 64 -> 64 -> K.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, n_layers: int = 2):
        super().__init__()
        self.in_dim = check_int(in_dim, "in_dim", minimum=1)
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)
        hidden = check_int(hidden, "hidden", minimum=1)
        n_layers = check_int(n_layers, "n_layers", minimum=1)
        sizes = [self.in_dim] + [hidden] * n_layers
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.SiLU()]
        layers.append(nn.Linear(hidden, self.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (batch, {self.in_dim}); got {tuple(x.shape)}.")
        return self.net(x)


class JEM(nn.Module):
    """A classifier f read as a joint energy model: logits, E(x), E(x, y), p(y | x) from one network.

    classifier: any module x (batch, ...) -> logits (batch, K). ``forward`` returns the logits, so a JEM
    is a drop-in classifier; ``energy`` and ``class_energy`` are the energies SGLD follows.
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module returning logits; got {type(classifier).__name__}.")
        self.f = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): (batch, ...) -> logits (batch, K)."""
        return self.f(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = -logsumexp_y f(x)[y]: (batch, ...) -> (batch,)."""
        return energy_from_logits(self.f(x))

    def class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y) = -f(x)[y]: x (batch, ...), y (batch,) -> (batch,)."""
        return class_energy_from_logits(self.f(x), y)

    def log_p_y_given_x(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y | x) = f(x)[y] - logsumexp f(x) = E(x) - E(x, y) for every y: (batch, K)."""
        return torch.log_softmax(self.f(x), dim=1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x) = softmax(f(x)): (batch, K), rows summing to 1."""
        return torch.softmax(self.f(x), dim=1)


# --------------------------------------------------------------------------------------------- sampling
def jem_buffer(
    capacity: int,
    event_shape: Sequence[int],
    low: float = -1.0,
    high: float = 1.0,
    reinit_fraction: float = 0.05,
    device=None,
    dtype: torch.dtype = torch.float32,
    generator: Optional[torch.Generator] = None,
) -> ReplayBuffer:
    """A replay buffer filled with U(low, high) noise, as JEM starts it (capacity 10 000 there).

    event_shape: the shape of one sample, e.g. (64,) for flattened digits; the buffer re-initialises each
    drawn row with fresh noise with probability ``reinit_fraction`` (5 %). ``generator`` must be on ``device``.
    """
    capacity = check_int(capacity, "capacity", minimum=1)
    buffer = ReplayBuffer(capacity, uniform_noise(tuple(event_shape), low, high, device=device, dtype=dtype), reinit_fraction)
    buffer.push(buffer.noise_fn(capacity, generator))
    return buffer


def sample_negatives(
    model: JEM,
    buffer: ReplayBuffer,
    batch_size: int,
    n_steps: int = JEM_N_STEPS,
    step_size: float = JEM_STEP_SIZE,
    noise_std: float = JEM_NOISE_STD,
    clamp: Optional[Tuple[float, float]] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Negatives x- ~ p(x): draw from the buffer, run k SGLD steps on E(x), push the result back.

    x <- x - step_size * grad_x E(x) + noise_std * z, k = n_steps times (JEM: 1, 0.01, 20). Returns the
    detached negatives (batch_size, *event_shape). Reference: Grathwohl et al. 2020, Algorithm 1.
    """
    x0, _ = buffer.sample(batch_size, generator)
    x = sgld(x0, model.energy, n_steps, step_size, noise_std, generator=generator, clamp=clamp)
    buffer.push(x)
    return x


def sample_class(
    model: JEM,
    x_init: torch.Tensor,
    y: torch.Tensor,
    n_steps: int = JEM_N_STEPS,
    step_size: float = JEM_STEP_SIZE,
    noise_std: float = JEM_NOISE_STD,
    extra_energy: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    clamp: Optional[Tuple[float, float]] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Conditional samples x ~ p(x | y) by SGLD on E(x, y) = -f(x)[y] (+ an optional extra energy).

    p(x | y) = p(x, y) / p(y) is proportional to exp(-E(x, y)) for fixed y, so the same sampler applies.
    ``extra_energy(x) -> (batch,)`` composes a constraint at sampling time: exp(-E(x, y) - E_c(x)) is the
    product p(x | y) * p_c(x) up to normalisation (Du & Mordatch 2019; Du, Li & Mordatch 2020).
    x_init: (batch, *event) starting points (buffer samples or noise); y: (batch,) target classes.
    Returns the detached samples, same shape as x_init.
    """
    x_init = check_tensor(x_init, "x_init")
    y = check_tensor(y, "y", shape=(x_init.shape[0],), floating=False).to(x_init.device)
    if extra_energy is not None and not callable(extra_energy):
        raise TypeError(f"extra_energy must be a callable x -> (batch,) energies or None; got {type(extra_energy).__name__}.")

    def energy(x):
        e = model.class_energy(x, y)
        return e if extra_energy is None else e + extra_energy(x)

    return sgld(x_init, energy, n_steps, step_size, noise_std, generator=generator, clamp=clamp)


# --------------------------------------------------------------------------------------------- training
def train_jem(
    model: JEM,
    x: torch.Tensor,
    y: torch.Tensor,
    n_iters: int,
    buffer: Optional[ReplayBuffer] = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    p_x_weight: float = 1.0,
    n_steps: int = JEM_N_STEPS,
    step_size: float = JEM_STEP_SIZE,
    noise_std: float = JEM_NOISE_STD,
    data_noise: float = 0.03,
    alpha: float = 0.0,
    clamp: Optional[Tuple[float, float]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    generator: Optional[torch.Generator] = None,
    max_abs: float = 1e4,
    desc: str = "JEM",
) -> dict:
    """Train f by the JEM objective log p(y | x) + w log p(x); w = p_x_weight = 0 gives a plain classifier.

    Each iteration: a minibatch (x, y) with Gaussian data noise of std ``data_noise`` (JEM: 0.03 on data in
    [-1, 1]); if w > 0, negatives from :func:`sample_negatives`; the loss :func:`jem_loss`; one Adam step
    (or ``optimizer``'s, so that training can resume); the divergence guard, which raises
    ``DivergenceError`` with advice when the loss or the energies become NaN/inf or explode.
    x: (n, *event) training data; y: (n,) labels; the buffer must hold samples shaped like x.
    max_abs: the guard's limit on |energy| and |loss|. Returns the history, a dict of CPU tensors (n_iters,):
    ``loss``, ``ce`` (cross-entropy), ``e_pos`` and ``e_neg`` (mean energies of data and negatives) and
    ``neg_abs_max`` (the largest |x-| of the negatives); the last three are NaN for a plain classifier. On
    divergence the DivergenceError carries the history up to and including the failing step as ``.history``.
    Reference: Grathwohl et al. 2020, Algorithm 1.
    """
    if not isinstance(model, JEM):
        raise TypeError(f"model must be an ebm_teach.jem.JEM (wrap your classifier: JEM(f)); got {type(model).__name__}.")
    param = next(model.parameters())
    x = check_tensor(x, "x", like=param)
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (n, *event_shape); got shape {tuple(x.shape)}.")
    y = check_tensor(y, "y", shape=(x.shape[0],), floating=False).to(device=param.device, dtype=torch.long)
    n_iters = check_int(n_iters, "n_iters", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=x.shape[0])
    lr = check_positive(lr, "lr")
    p_x_weight = _check_nonneg(p_x_weight, "p_x_weight")
    data_noise = _check_nonneg(data_noise, "data_noise")
    alpha = _check_nonneg(alpha, "alpha")
    if p_x_weight > 0:
        if not isinstance(buffer, ReplayBuffer):
            raise ValueError(
                "the log p(x) term (p_x_weight > 0) needs SGLD negatives: pass buffer=jem_buffer(...); "
                "for a plain classifier set p_x_weight=0."
            )
        if len(buffer) and tuple(buffer.samples().shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(f"the buffer holds samples of shape {tuple(buffer.samples().shape[1:])} but x has {tuple(x.shape[1:])}.")
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    nan = torch.full((), float("nan"), device=param.device, dtype=param.dtype)
    rows = []
    model.train()
    try:
        for it in progress(range(n_iters), desc=desc, total=n_iters):
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator, device=x.device)
            x_pos, y_pos = x[idx], y[idx]
            if data_noise > 0:
                x_pos = x_pos + data_noise * torch.randn(x_pos.shape, generator=generator, device=x.device, dtype=x.dtype)
            logits = model(x_pos)
            if p_x_weight > 0:
                x_neg = sample_negatives(model, buffer, batch_size, n_steps, step_size, noise_std, clamp, generator)
                logits_neg = model(x_neg)
                e_pos, e_neg = energy_from_logits(logits).mean(), energy_from_logits(logits_neg).mean()
                neg_abs_max = x_neg.abs().max()
                loss = jem_loss(logits, y_pos, logits_neg, p_x_weight, alpha)
            else:
                e_pos = e_neg = neg_abs_max = nan
                loss = jem_loss(logits, y_pos)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                ce = F.cross_entropy(logits, y_pos)
                rows.append(torch.stack([loss.detach(), ce, e_pos.detach(), e_neg.detach(), neg_abs_max]))
            watched = {"loss": rows[-1][0]} if p_x_weight == 0 else {"loss": rows[-1][0], "e_pos": rows[-1][2], "e_neg": rows[-1][3]}
            divergence_guard(it, max_abs=max_abs, **watched)
    except DivergenceError as err:
        err.history = _history(rows)  # what led up to the divergence, for plotting
        raise
    return _history(rows)


def _history(rows: list) -> dict:
    names = ("loss", "ce", "e_pos", "e_neg", "neg_abs_max")
    if not rows:
        return {k: torch.empty(0) for k in names}
    hist = torch.stack(rows).cpu()
    return {k: hist[:, i] for i, k in enumerate(names)}


# --------------------------------------------------------------------------------------------- OOD scores
OOD_SCORES = ("log_px", "max_prob", "grad_norm")


def ood_score(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kind: str = "log_px") -> torch.Tensor:
    """An out-of-distribution score, higher for inputs the model finds more typical: (batch, ...) -> (batch,).

    kind "log_px": -E(x) = logsumexp_y f(x)[y] = log p(x) + log Z (the constant does not change a ranking);
    "max_prob": max_y p(y | x), the classifier's confidence (Hendrycks & Gimpel 2017);
    "grad_norm": -||grad_x log p(x)||_2 = -||grad_x E(x)||_2, JEM's "approximate mass": near a mode of
    p the gradient vanishes (Grathwohl et al. 2020).
    model: any x -> logits (a JEM or a plain classifier: both define these scores).
    """
    if kind not in OOD_SCORES:
        raise ValueError(f"kind must be one of {', '.join(OOD_SCORES)}; got {kind!r}.")
    x = check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (n, *event_shape); got shape {tuple(x.shape)}.")
    if kind == "grad_norm":
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            e = energy_from_logits(model(x))
            (grad,) = torch.autograd.grad(e.sum(), x)
        return -grad.reshape(len(x), -1).norm(dim=1)
    with torch.no_grad():
        logits = model(x)
        if kind == "log_px":
            return torch.logsumexp(logits, dim=1)
        return torch.softmax(logits, dim=1).max(dim=1).values


# --------------------------------------------------------------------------------------------- calibration
def fit_temperature(logits: torch.Tensor, y: torch.Tensor, t_min: float = 0.01, t_max: float = 100.0) -> float:
    """Temperature scaling: the T > 0 that minimises the mean cross-entropy of softmax(logits / T) on (logits, y).

    T > 1 softens overconfident logits, T < 1 sharpens underconfident ones; the predicted classes do not
    change. The cross-entropy is convex in beta = 1/T (a log-sum-exp of functions linear in beta minus a
    linear term), so a golden-section search on log beta finds the minimum; computed in float64.
    Fit T on held-out data, not on the data the classifier was trained on. logits: (n, K); y: (n,) labels.
    Returns T as a float in [t_min, t_max]. Reference: Guo et al. 2017, "On calibration of modern neural networks".
    """
    logits = _check_logits(logits).detach().to(torch.float64)
    y = _check_labels(y, logits)
    t_min, t_max = check_positive(t_min, "t_min"), check_positive(t_max, "t_max")
    if not t_min < t_max:
        raise ValueError(f"need t_min < t_max; got {t_min} and {t_max}.")

    def nll(log_beta: float) -> float:
        return float(F.cross_entropy(logits * math.exp(log_beta), y))

    lo, hi = -math.log(t_max), -math.log(t_min)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(100):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return math.exp(-0.5 * (lo + hi))


def brier_score(probs: torch.Tensor, y: torch.Tensor) -> float:
    """The Brier score (1/n) sum_i sum_k (p_ik - 1[k = y_i])^2 of predicted class probabilities: lower is better.

    A proper scoring rule (its expectation is smallest when p is the true conditional distribution), like the
    negative log-likelihood, and unlike the binned ECE it needs no bins. 0 for confident right answers, 2 for
    confident wrong ones. probs: (n, K) rows summing to 1 (e.g. ``torch.softmax(logits, 1)``); y: (n,) labels
    in [0, K). Computed in float64; returns a float. Reference: Brier (1950), "Verification of forecasts
    expressed in terms of probability".
    """
    probs = _check_logits(probs, "probs").detach().to(torch.float64)
    y = _check_labels(y, probs)
    if bool((probs < 0).any()) or not torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]), atol=1e-4):
        raise ValueError("probs must hold probabilities, each row non-negative and summing to 1; pass "
                         "torch.softmax(logits, 1), not the logits.")
    if bool((y >= probs.shape[1]).any()) or bool((y < 0).any()):
        raise ValueError(f"y must hold labels in [0, {probs.shape[1]}); got values in [{int(y.min())}, {int(y.max())}].")
    onehot = F.one_hot(y, probs.shape[1]).to(torch.float64)
    return float(((probs - onehot) ** 2).sum(1).mean())
