"""Hidden checks for chapter 4's exercises (solutions/04_langevin.py).

4.1 one Langevin step against energies whose gradients are known in closed form, the other common convention,
    and gradient hygiene (no parameter .grad written, result detached).
4.2 the MALA acceptance probability against log-densities from torch.distributions, and detailed balance
    p(x) q(x'|x) alpha(x->x') = p(x') q(x|x') alpha(x'->x) on a non-Gaussian energy.
4.3 split-R-hat against an independent NumPy computation (even and odd chain lengths), against chains built to
    have given half-chain means and variances (a closed form), and on drifting chains that only the split
    catches.
4.4 the effective sample size of a stationary ULA chain on a Gaussian, against the autocorrelation series
    summed numerically and against the variance of chain means over simulated chains (both signs of rho).

Random inputs come from ebm_teach.grade.spec.check_seed, so a secret grading seed changes them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


def _gen(k: int) -> torch.Generator:
    """A generator for the check's k-th random input (changed by a secret grading seed)."""
    return torch.Generator().manual_seed(check_seed(k))


# ----------------------------------------------------------------------------- 4.1 one Langevin step
PREC = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=DTYPE)
MU = torch.tensor([0.5, -1.0], dtype=DTYPE)


def _quadratic(x):
    d = x - MU
    return 0.5 * ((d @ PREC) * d).sum(1)


def _quartic(x):
    return (x**4).sum(1) / 4 + x[:, 0] * x[:, 1]


def _call_step(langevin_update, x, energy, eps, z, what):
    out = langevin_update(x.clone(), energy, eps, z)
    value = as_float64(out, what)
    assert_shape(value, tuple(x.shape), what)
    return out, value


def check_step_quadratic(langevin_update):
    x = torch.randn(6, 2, generator=_gen(0), dtype=DTYPE)
    z = torch.randn(6, 2, generator=_gen(1), dtype=DTYPE)
    for eps in (0.1, 0.7):
        # grad E = Lambda (x - mu), so x' = x - (eps/2) Lambda (x - mu) + sqrt(eps) z
        expected = x - 0.5 * eps * (x - MU) @ PREC + math.sqrt(eps) * z
        _, got = _call_step(langevin_update, x, _quadratic, eps, z, f"langevin_update on a Gaussian energy (eps = {eps})")
        if torch.allclose(got, x - eps * (x - MU) @ PREC + math.sqrt(eps) * z, atol=1e-8):
            raise AssertionError("the drift is eps * grad E; the book's convention uses (eps/2) * grad E.")
        if torch.allclose(got, x - 0.5 * eps * (x - MU) @ PREC + eps * z, atol=1e-8):
            raise AssertionError("the noise is scaled by eps; it should be scaled by sqrt(eps).")
        if torch.allclose(got, x + 0.5 * eps * (x - MU) @ PREC + math.sqrt(eps) * z, atol=1e-8):
            raise AssertionError("the step goes uphill: subtract (eps/2) grad E, do not add it.")
        assert_close(got, expected, f"langevin_update on a Gaussian energy (eps = {eps})", rtol=1e-6, atol=1e-8)


def check_step_nonlinear(langevin_update):
    x = torch.randn(5, 2, generator=_gen(2), dtype=DTYPE) * 1.5
    z = torch.randn(5, 2, generator=_gen(3), dtype=DTYPE)
    grad = x**3 + torch.stack([x[:, 1], x[:, 0]], 1)  # d/dx of sum x^4/4 + x1 x2
    eps = 0.2
    _, got = _call_step(langevin_update, x, _quartic, eps, z, "langevin_update on E = sum x^4/4 + x1 x2")
    assert_close(got, x - 0.5 * eps * grad + math.sqrt(eps) * z, "langevin_update on E = sum x^4/4 + x1 x2",
                 rtol=1e-6, atol=1e-8)
    # the other common convention x' = x - eps' grad E + sqrt(2 eps') z with eps' = eps / 2 is the same step
    assert_close(got, x - (eps / 2) * grad + math.sqrt(2 * (eps / 2)) * z,
                 "langevin_update compared with the convention eps' = eps/2", rtol=1e-6, atol=1e-8)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0], dtype=DTYPE))

    def forward(self, x):
        return 0.5 * ((x * self.w) ** 2).sum(1)


def check_step_hygiene(langevin_update):
    net = _Net()
    x = torch.randn(4, 2, generator=_gen(4), dtype=DTYPE)
    z = torch.zeros(4, 2, dtype=DTYPE)
    out, got = _call_step(langevin_update, x, net, 0.1, z, "langevin_update on a network energy")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        raise AssertionError("return a detached tensor (x_new.detach()): samples must not carry a graph.")
    if net.w.grad is not None:
        raise AssertionError(
            "the step wrote into the network's parameter .grad: take the gradient with respect to x only, "
            "with torch.autograd.grad(E.sum(), x), instead of calling .backward()."
        )
    assert_close(got, x - 0.05 * x * net.w.detach() ** 2, "langevin_update on a network energy (z = 0)", rtol=1e-6, atol=1e-8)
    with torch.no_grad():  # must work where the caller switched autograd off
        out = langevin_update(x.clone(), net, 0.1, z)
    assert_close(as_float64(out, "langevin_update under torch.no_grad()"), x - 0.05 * x * net.w.detach() ** 2,
                 "langevin_update called under torch.no_grad() (use torch.enable_grad() inside)", rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- 4.2 the MALA acceptance probability
def _energy_bumpy(x):
    return 0.5 * (x**2).sum(1) + torch.sin(2 * x[:, 0]) + 0.3 * x[:, 0] * x[:, 1] ** 2


def _grad(energy, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(energy(x).sum(), x)
    return g


def _log_q(to, frm, energy, eps):
    mean = frm - 0.5 * eps * _grad(energy, frm)
    return torch.distributions.Normal(mean, math.sqrt(eps)).log_prob(to).sum(1)


def _call_alpha(mala_acceptance_prob, x, x_prop, energy, eps, what):
    got = as_float64(mala_acceptance_prob(x.clone(), x_prop.clone(), energy, eps), what)
    assert_shape(got, (x.shape[0],), what)
    if bool(((got < 0) | (got > 1 + 1e-12)).any()):
        raise AssertionError(f"{what} must lie in [0, 1] (it is min(1, ratio)); got {got.tolist()[:6]}.")
    return got


def check_alpha_against_densities(mala_acceptance_prob):
    for energy, name in ((_quadratic, "a Gaussian energy"), (_energy_bumpy, "a non-Gaussian energy")):
        x = torch.randn(12, 2, generator=_gen(5), dtype=DTYPE)
        for eps in (0.3, 1.2):
            x_prop = x - 0.5 * eps * _grad(energy, x) + math.sqrt(eps) * torch.randn(12, 2, generator=_gen(6), dtype=DTYPE)
            log_ratio = (-energy(x_prop) + _log_q(x, x_prop, energy, eps)) - (-energy(x) + _log_q(x_prop, x, energy, eps))
            expected = log_ratio.clamp(max=0).exp().detach()
            what = f"mala_acceptance_prob on {name} (eps = {eps})"
            got = _call_alpha(mala_acceptance_prob, x, x_prop, energy, eps, what)
            symmetric = (-energy(x_prop) + energy(x)).clamp(max=0).exp().detach()
            if torch.allclose(got, symmetric, atol=1e-8) and not torch.allclose(expected, symmetric, atol=1e-6):
                raise AssertionError(
                    f"{what} is the random-walk Metropolis ratio exp(E(x) - E(x')): the Langevin proposal is not "
                    "symmetric, so include log q(x | x') - log q(x' | x)."
                )
            assert_close(got, expected, what, rtol=1e-6, atol=1e-9)


def check_alpha_detailed_balance(mala_acceptance_prob):
    # p(x) q(x'|x) alpha(x -> x') must equal p(x') q(x|x') alpha(x' -> x) for every pair: detailed balance.
    x = torch.randn(20, 2, generator=_gen(7), dtype=DTYPE)
    x_prop = x + 0.8 * torch.randn(20, 2, generator=_gen(8), dtype=DTYPE)
    eps = 0.5
    fwd = _call_alpha(mala_acceptance_prob, x, x_prop, _energy_bumpy, eps, "mala_acceptance_prob(x, x')")
    bwd = _call_alpha(mala_acceptance_prob, x_prop, x, _energy_bumpy, eps, "mala_acceptance_prob(x', x)")
    lhs = (-_energy_bumpy(x) + _log_q(x_prop, x, _energy_bumpy, eps)).detach() + torch.log(fwd)
    rhs = (-_energy_bumpy(x_prop) + _log_q(x, x_prop, _energy_bumpy, eps)).detach() + torch.log(bwd)
    assert_close(lhs, rhs, "log[p(x) q(x'|x) alpha(x->x')] against log[p(x') q(x|x') alpha(x'->x)]",
                 rtol=1e-6, atol=1e-8)
    if not bool(((fwd > 1 - 1e-12) | (bwd > 1 - 1e-12)).all()):
        raise AssertionError("for every pair, one of the two directions must be accepted with probability 1.")


# ----------------------------------------------------------------------------- 4.3 split-R-hat
def _rhat_numpy(x: np.ndarray) -> float:
    """Split-R-hat written independently: halves of n // 2 draws, W, B, sqrt(var_plus / W)."""
    half = x.shape[1] // 2
    halves = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])
    W = halves.var(axis=1, ddof=1).mean()
    B = half * halves.mean(axis=1).var(ddof=1)
    return math.sqrt(((half - 1) / half * W + B / half) / W)


def _call_rhat(split_rhat, chains, what):
    out = split_rhat(chains.clone())
    value = as_float64(out, what)
    if value.numel() != 1:
        raise AssertionError(f"{what} should return one number; got a tensor of shape {tuple(value.shape)}.")
    value = float(value.reshape(()))
    if not math.isfinite(value):
        raise AssertionError(
            f"{what} gave {value}: R-hat is the square root of var_plus / W, and var_plus = (n'-1)/n' W + B/n' "
            "is a sum of two non-negative terms, so it is never NaN for chains that vary."
        )
    return value


def check_rhat_against_numpy(split_rhat):
    g = _gen(20)
    for m, n in ((4, 200), (3, 51), (2, 9)):  # an odd length drops the middle draw
        chains = torch.randn(m, n, generator=g, dtype=DTYPE) + torch.randn(m, 1, generator=g, dtype=DTYPE)
        what = f"split_rhat of {m} chains of {n} draws"
        got, expected = _call_rhat(split_rhat, chains, what), _rhat_numpy(chains.numpy())
        if abs(got - expected) > 1e-9 * expected:
            half = n // 2
            hint = ""
            if n % 2 and abs(got - _rhat_numpy(chains[:, : 2 * half].numpy())) < 1e-9 * expected:
                hint = (" For odd n drop the middle draw: the halves are chains[:, :n//2] and "
                        "chains[:, -(n//2):].")
            raise AssertionError(f"{what} gave {got:.10g}; expected {expected:.10g}.{hint}")


def check_rhat_closed_form(split_rhat):
    # Build 2m halves of n' draws with exactly the means mu_j and within-half sample variance s2: a pattern
    # with mean 0 and unit sample variance, scaled and shifted. Then W = s2, B = n' var(mu), and R-hat is
    # sqrt(((n'-1)/n' s2 + var(mu)) / s2) in closed form.
    g = _gen(21)
    m, half = 3, 40
    s2 = 0.5 + float(torch.rand((), generator=g, dtype=DTYPE))
    mu = 2 * torch.randn(2 * m, generator=g, dtype=DTYPE)
    pattern = torch.randn(half, generator=g, dtype=DTYPE)
    pattern = (pattern - pattern.mean()) / pattern.std()
    halves = mu[:, None] + math.sqrt(s2) * pattern[None, :]
    chains = torch.cat([halves[:m], halves[m:]], dim=1)  # chain j = halves j and m + j
    expected = math.sqrt(((half - 1) / half * s2 + float(mu.var())) / s2)
    got = _call_rhat(split_rhat, chains, "split_rhat of chains with known half means and variances")
    if abs(got - expected) > 1e-9 * expected:
        raise AssertionError(
            f"split_rhat gave {got:.10g} on chains whose halves have means {[round(v, 3) for v in mu.tolist()]} "
            f"and variance {s2:.4f} each; the formula gives {expected:.10g}. Check: B = n' x (sample variance of "
            "the half means), W = mean within-half sample variance, both with the n - 1 divisor."
        )


def check_rhat_catches_drift(split_rhat):
    # Four chains that drift the same way: whole chains agree with one another (an unsplit R-hat is ~1), but
    # each chain's first half differs from its second, which only the split sees.
    g = _gen(22)
    n = 400
    trend = torch.linspace(0.0, 6.0, n, dtype=DTYPE)
    chains = trend[None, :] + torch.randn(4, n, generator=g, dtype=DTYPE)
    got = _call_rhat(split_rhat, chains, "split_rhat of four drifting chains")
    expected = _rhat_numpy(chains.numpy())
    if got < 1.5:
        raise AssertionError(
            f"split_rhat of four chains that all drift from 0 to 6 gave {got:.4f}; it should be about "
            f"{expected:.2f}. Without splitting, chains that drift together look alike: split each chain into "
            "its two halves first."
        )


# ----------------------------------------------------------------------------- 4.4 what a ULA chain is worth
def _ess_by_series(n, eps, s2):
    """n / tau with tau = 1 + 2 sum_t rho(t), the autocorrelations got by iterating the step's covariance.

    Cov(x_{t+1}, x_0) = a Cov(x_t, x_0) with a = 1 - eps / (2 s2): summed numerically until negligible.
    """
    a = 1 - eps / (2 * s2)
    total, rho = 1.0, 1.0
    for _ in range(100_000):
        rho *= a
        total += 2 * rho
        if abs(rho) < 1e-17:
            break
    return n / total


def _call_ess(ula_chain_ess, n, eps, s2):
    what = f"ula_chain_ess(n={n}, step_size={eps:.4g}, s2={s2:.4g})"
    out = ula_chain_ess(n, eps, s2)
    if isinstance(out, torch.Tensor):
        out = float(out)
    if not isinstance(out, (int, float)) or not math.isfinite(out):
        raise AssertionError(f"{what} should return one finite number; got {out!r}.")
    return float(out), what


def check_ess_series(ula_chain_ess):
    g = _gen(30)
    for _ in range(6):
        s2 = 0.3 + 2.7 * float(torch.rand((), generator=g, dtype=DTYPE))
        eps = 4 * s2 * (0.05 + 0.9 * float(torch.rand((), generator=g, dtype=DTYPE)))
        n = int(torch.randint(100, 10_000, (), generator=g))
        got, what = _call_ess(ula_chain_ess, n, eps, s2)
        expected = _ess_by_series(n, eps, s2)
        if abs(got - expected) > 1e-6 * expected:
            rho = 1 - eps / (2 * s2)
            hint = ""
            if abs(got - n * eps / (2 * s2) / (2 - eps / (2 * s2))) < 1e-6 * expected:
                hint = " Check the drift: the step multiplies x by 1 - eps / (2 s2), not 1 - eps / s2."
            elif abs(got - n * (1 - rho)) < 1e-6 * expected:
                hint = " tau = 1 + 2 sum_{t>=1} rho(t): the factor 2 counts negative and positive lags."
            raise AssertionError(f"{what} gave {got:.6g}; the autocorrelation series gives {expected:.6g}.{hint}")


def check_ess_simulated(ula_chain_ess):
    # 4000 stationary chains of n = 2000 steps: the variance of their means is v / ESS (v the stationary
    # variance), up to O(tau / n) (< 2 % here). The sample variance of 4000 means has a relative standard
    # error of sqrt(2 / 3999) = 2.2 %, so 12 % is more than 5 standard errors.
    g = _gen(31)
    n, m = 2000, 4000
    s2 = 0.5 + float(torch.rand((), generator=g, dtype=DTYPE))
    for frac in (0.15 + 0.2 * float(torch.rand((), generator=g, dtype=DTYPE)), 0.75):  # rho > 0, rho = -0.5
        eps = 4 * s2 * frac
        a = 1 - eps / (2 * s2)
        v = eps / (1 - a * a)  # the stationary variance of the chain
        x = torch.randn(m, generator=g, dtype=DTYPE) * math.sqrt(v)
        total = torch.zeros(m, dtype=DTYPE)
        for _ in range(n):
            x = a * x + math.sqrt(eps) * torch.randn(m, generator=g, dtype=DTYPE)
            total += x
        measured = v / float((total / n).var())
        got, what = _call_ess(ula_chain_ess, n, eps, s2)
        if abs(got / measured - 1) > 0.12:
            raise AssertionError(
                f"{what} gave {got:.1f}, but 4000 simulated chains of {n} steps behave like {measured:.1f} "
                "independent draws (the variance of their means is the stationary variance divided by that). "
                + ("At this step size a is negative: successive steps are anticorrelated, and the chain is "
                   "worth more than n draws." if a < 0 else "")
            )


EXERCISES = [
    Exercise(
        id="4.1",
        name="langevin_update",
        checks=[
            Check("matches x - (eps/2) Lambda (x - mu) + sqrt(eps) z on a Gaussian energy", check_step_quadratic, 1),
            Check("matches the closed-form gradient of a non-Gaussian energy (both conventions)", check_step_nonlinear, 1),
            Check("leaves the network's parameter gradients alone and returns a detached tensor", check_step_hygiene, 1),
        ],
    ),
    Exercise(
        id="4.2",
        name="mala_acceptance_prob",
        checks=[
            Check("matches the ratio of densities and proposal densities from torch.distributions",
                  check_alpha_against_densities, 2),
            Check("satisfies detailed balance for every pair of points", check_alpha_detailed_balance, 1),
        ],
    ),
    Exercise(
        id="4.3",
        name="split_rhat",
        checks=[
            Check("matches an independent computation, for even and odd chain lengths", check_rhat_against_numpy, 1),
            Check("matches the closed form for halves with given means and variances", check_rhat_closed_form, 1),
            Check("catches chains that drift together (the split)", check_rhat_catches_drift, 1),
        ],
    ),
    Exercise(
        id="4.4",
        name="ula_chain_ess",
        checks=[
            Check("matches n / tau with tau summed from the step's autocorrelations", check_ess_series, 1.5),
            Check("predicts the variance of the mean of simulated chains, also when rho < 0",
                  check_ess_simulated, 1.5),
        ],
    ),
]
