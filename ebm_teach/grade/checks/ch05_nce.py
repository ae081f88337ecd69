"""Hidden checks for chapter 5's exercises (solutions/05_nce.py).

5.1 the NCE logit against log(p_model / (nu p_n)) computed from exponentials in float64, its gradient, and
    the rejection of nu <= 0.
5.2 the NCE loss against Gutmann & Hyvarinen's -J / (1 + nu) written with explicit sigmoids, against an
    overflow-free softplus from the math module for extreme logits, its gradient in c against the
    hand-derived form, and the rejection of a batch without nu noise points per data point.
5.3 the decision boundary against bisection on the logit built from torch's Normal log-density (never the
    closed form), and the rejection of cases without a boundary.
5.4 the asymptotic variance of c_hat when NCE estimates only c (the energy known), against Gutmann &
    Hyvarinen's covariance with the score g = -1 evaluated by quadrature
    (ebm_teach.nce.nce_asymptotic_covariance) on the worked example and random 1-D Gaussian pairs; zero for
    noise equal to the data; bad input rejected.

Random inputs come from ebm_teach.grade.spec.check_seed, so a secret grading seed changes them; the expected
answers are computed from the inputs.
"""
from __future__ import annotations

import math

import torch

from ebm_teach.grade.asserts import (
    as_float64,
    assert_close,
    assert_raises,
    assert_shape,
)
from ebm_teach.grade.spec import Check, Exercise, check_seed
from ebm_teach.nce import nce_asymptotic_covariance

DTYPE = torch.float64


# ----------------------------------------------------------------------------- 5.1 the logit
def _logit_by_ratio(energy, c, log_noise, nu):
    """log[exp(-E - c) / (nu * exp(log p_n))], evaluated literally (fine for the moderate values used here)."""
    return torch.log(torch.exp(-energy - c) / (nu * torch.exp(log_noise)))


def _gen(k: int) -> torch.Generator:
    """A generator for the check's k-th random input (changed by a secret grading seed)."""
    return torch.Generator().manual_seed(check_seed(k))


def _logit_cases():
    """Three random batches (energies, c, log p_n, nu) with moderate values, nu in (0.2, 6)."""
    g = _gen(0)
    cases = []
    for n in (4, 2, 3):
        energy = 2 * torch.randn(n, generator=g, dtype=DTYPE)
        c = float(torch.randn((), generator=g, dtype=DTYPE))
        log_noise = -0.5 - 4 * torch.rand(n, generator=g, dtype=DTYPE)
        nu = 0.2 + 5.8 * float(torch.rand((), generator=g, dtype=DTYPE))
        cases.append((energy, c, log_noise, nu))
    return cases


def check_logit_values(nce_logit):
    for energy, c, log_noise, nu in _logit_cases():
        out = as_float64(nce_logit(energy.clone(), c, log_noise.clone(), nu), "nce_logit(...)")
        where = f"nce_logit for E = {energy.tolist()}, c = {c}, log p_n = {log_noise.tolist()}, nu = {nu}"
        assert_shape(out, tuple(energy.shape), where)
        assert_close(out, _logit_by_ratio(energy, c, log_noise, nu), where, rtol=1e-9, atol=1e-9)


def check_logit_gradient(nce_logit):
    energy = torch.tensor([0.5, -1.0, 2.0], dtype=DTYPE, requires_grad=True)
    c = torch.tensor(0.3, dtype=DTYPE, requires_grad=True)
    log_noise = torch.tensor([-1.0, -2.0, -0.5], dtype=DTYPE)
    out = nce_logit(energy, c, log_noise, 2.0)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise AssertionError(
            "nce_logit should return a tensor that autograd can differentiate in the energies and in c "
            "(build it from tensor operations; do not convert to floats or NumPy)."
        )
    d_energy, d_c = torch.autograd.grad(out.sum(), (energy, c), allow_unused=True)
    if d_energy is None or d_c is None:
        missing = "the energies" if d_energy is None else "c"
        raise AssertionError(f"nce_logit's output does not depend on {missing}: Delta = -E - c - log(nu p_n).")
    assert_close(d_energy, [-1.0, -1.0, -1.0], "d(sum of Delta)/dE (Delta falls by 1 when E rises by 1)")
    assert_close(d_c, -3.0, "d(sum of Delta)/dc for a batch of 3 (each Delta falls by 1 when c rises by 1)")


def check_logit_rejects_bad_nu(nce_logit):
    for nu in (0.0, -1.0):
        assert_raises(ValueError, nce_logit, torch.zeros(2, dtype=DTYPE), 0.0, torch.zeros(2, dtype=DTYPE), nu,
                      what=f"nce_logit(..., nu={nu}) (log(nu) is undefined for nu <= 0)")


# ----------------------------------------------------------------------------- 5.2 the loss
def _sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-t))


def _minus_j_over_1_plus_nu(e_data, e_noise, ln_data, ln_noise, c, nu):
    """-J / (1 + nu) with J = mean_data log sigma(Delta) + nu mean_noise log(1 - sigma(Delta)), literally."""
    d_data = -e_data - c - math.log(nu) - ln_data
    d_noise = -e_noise - c - math.log(nu) - ln_noise
    j = torch.log(_sigmoid(d_data)).mean() + nu * torch.log(1 - _sigmoid(d_noise)).mean()
    return -j / (1 + nu)


def _batch(seed, t_d, nu):
    gen = _gen(10 + seed)
    t_n = round(nu * t_d)
    return (torch.randn(t_d, generator=gen, dtype=DTYPE), torch.randn(t_n, generator=gen, dtype=DTYPE) + 1.0,
            -1.0 - torch.rand(t_d, generator=gen, dtype=DTYPE), -1.0 - 2 * torch.rand(t_n, generator=gen, dtype=DTYPE))


def _call_loss(nce_loss, *args, what):
    out = as_float64(nce_loss(*args), what)
    assert_shape(out, (), f"{what} (one number: the mean over the batch)")
    return out


def check_loss_values(nce_loss):
    for seed, t_d, nu, c in [(0, 6, 1, 0.2), (1, 5, 3, -0.5), (2, 8, 0.5, 1.0)]:
        e_d, e_n, l_d, l_n = _batch(seed, t_d, nu)
        what = f"nce_loss for T_d = {t_d}, nu = {nu}, c = {c}"
        out = _call_loss(nce_loss, e_d, e_n, l_d, l_n, c, nu, what=what)
        expected = _minus_j_over_1_plus_nu(e_d, e_n, l_d, l_n, c, nu)
        if abs(float(out) - float(expected * (1 + nu))) < 1e-9:
            raise AssertionError(
                f"{what} equals -J = -(mean over data + nu * mean over noise), which is (1 + nu) times the asked-for "
                "loss; average the cross-entropy over all T_d + T_n points instead."
            )
        assert_close(out, expected, what + " (compared with -J / (1 + nu))", rtol=1e-9, atol=1e-12)


def _softplus_exact(t: float) -> float:
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def check_loss_is_stable(nce_loss):
    # Logits of +-600: log(sigma) would underflow to log(0) = -inf if computed naively.
    e_d = torch.tensor([-600.0, 600.0, 0.0], dtype=DTYPE)
    e_n = torch.tensor([600.0, -600.0, 1.0], dtype=DTYPE)
    zeros = torch.zeros(3, dtype=DTYPE)
    out = _call_loss(nce_loss, e_d, e_n, zeros, zeros, 0.0, 1.0, what="nce_loss with logits of +-600")
    d_data, d_noise = (-e_d).tolist(), (-e_n).tolist()
    expected = (sum(_softplus_exact(-t) for t in d_data) + sum(_softplus_exact(t) for t in d_noise)) / 6
    assert_close(out, expected, "nce_loss with logits of +-600 (use softplus, not log(sigmoid))", rtol=1e-9, atol=1e-9)


def check_loss_gradient_in_c(nce_loss):
    e_d, e_n, l_d, l_n = _batch(3, 4, 2)
    c = torch.tensor(0.3, dtype=DTYPE, requires_grad=True)
    out = nce_loss(e_d, e_n, l_d, l_n, c, 2)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise AssertionError("nce_loss should return a tensor that autograd can differentiate in c.")
    (grad,) = torch.autograd.grad(out, c)
    # dL/dc = [sum_data (1 - sigma(Delta)) - sum_noise sigma(Delta)] / (T_d + T_n), since dDelta/dc = -1.
    d_data = -e_d - 0.3 - math.log(2) - l_d
    d_noise = -e_n - 0.3 - math.log(2) - l_n
    expected = ((1 - _sigmoid(d_data)).sum() - _sigmoid(d_noise).sum()) / 12
    assert_close(grad, expected, "d nce_loss / dc (T_d = 4, nu = 2)", rtol=1e-8, atol=1e-12)


def check_loss_rejects_wrong_noise_count(nce_loss):
    e_d, e_n, l_d, l_n = _batch(4, 4, 2)
    assert_raises(ValueError, nce_loss, e_d, e_n[:5], l_d, l_n[:5], 0.0, 2,
                  what="nce_loss with 4 data points but 5 noise points at nu = 2 (8 expected)")


# ----------------------------------------------------------------------------- 5.3 the decision boundary
def _boundary_by_bisection(sigma2, sigma_n2, nu, c):
    """The positive root of Delta(x) = -x^2/(2 sigma2) - c - log nu - log N(x; 0, sigma_n2), by bisection."""
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=DTYPE), torch.tensor(math.sqrt(sigma_n2), dtype=DTYPE))

    def delta(x):
        x = torch.tensor(x, dtype=DTYPE)
        return float(-x**2 / (2 * sigma2) - c - math.log(nu) - normal.log_prob(x))

    lo, hi = 0.0, 50.0
    assert delta(lo) * delta(hi) < 0, "the check's bracket holds no root"
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (delta(mid) > 0) == (delta(lo) > 0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def check_boundary_worked_example(decision_boundary):
    expected = _boundary_by_bisection(1.0, 4.0, 1.0, 0.0)
    assert abs(expected - 2.0734) < 1e-4
    assert_close(decision_boundary(1.0, 4.0), expected,
                 "decision_boundary(1, 4), the worked example (E = x^2/2, noise N(0, 4), nu = 1, c = 0)", rtol=1e-7)


def _boundary_cases():
    """c = log Z of the standard normal against N(0, 4), then random cases that have a boundary: noise
    broader than the model with Delta(0) > 0, or narrower with Delta(0) < 0 (then Delta changes sign)."""
    cases = [(1.0, 4.0, 1.0, 0.5 * math.log(2 * math.pi))]  # where N(0,1) = N(0,4): |x| = 1.360
    g = _gen(20)
    while len(cases) < 5:
        sigma2 = 0.3 + 3 * float(torch.rand((), generator=g, dtype=DTYPE))
        sigma_n2 = 0.3 + 8 * float(torch.rand((), generator=g, dtype=DTYPE))
        nu = 0.2 + 4 * float(torch.rand((), generator=g, dtype=DTYPE))
        c = 2 * float(torch.randn((), generator=g, dtype=DTYPE))
        delta_0 = -c - math.log(nu) + 0.5 * math.log(2 * math.pi * sigma_n2)
        if abs(sigma_n2 - sigma2) > 0.2 and abs(delta_0) > 0.05 and (delta_0 > 0) == (sigma_n2 > sigma2):
            cases.append((sigma2, sigma_n2, nu, c))
    return cases


def check_boundary_other_cases(decision_boundary):
    for sigma2, sigma_n2, nu, c in _boundary_cases():
        assert_close(decision_boundary(sigma2, sigma_n2, nu, c), _boundary_by_bisection(sigma2, sigma_n2, nu, c),
                     f"decision_boundary(sigma2={sigma2}, sigma_n2={sigma_n2}, nu={nu}, c={c:.4g})", rtol=1e-7)


def check_boundary_rejects_no_boundary(decision_boundary):
    assert_raises(ValueError, decision_boundary, 1.0, 1.0, 1.0, 0.0,
                  what="decision_boundary(1, 1) (sigma_n = sigma: Delta is the same for every x)")
    assert_raises(ValueError, decision_boundary, 1.0, 4.0, 1.0, 5.0,
                  what="decision_boundary(1, 4, nu=1, c=5) (Delta < 0 for every x: the noise always wins)")


# ----------------------------------------------------------------------------- 5.4 NCE for log Z alone
def _log_z_variance_by_theorem(mean_d, var_d, mean_n, var_n, nu):
    """Gutmann & Hyvarinen's Theorem 3 for the one-parameter model log p = -E_true - c (score g = -1), by
    quadrature (ebm_teach.nce.nce_asymptotic_covariance): the 1 x 1 covariance of sqrt(T_d)(c_hat - log Z)."""
    def log_normal(x, mean, var):
        return -0.5 * (x[:, 0] - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)

    sd_d, sd_n = math.sqrt(var_d), math.sqrt(var_n)
    bounds = [(min(mean_d - 14 * sd_d, mean_n - 14 * sd_n), max(mean_d + 14 * sd_d, mean_n + 14 * sd_n))]
    sigma = nce_asymptotic_covariance(lambda x: -torch.ones(len(x), 1, dtype=x.dtype),
                                      lambda x: log_normal(x, mean_d, var_d), lambda x: log_normal(x, mean_n, var_n),
                                      nu, bounds, 30000)
    return float(sigma[0, 0])


def _log_z_cases():
    """The worked example's noise, then four random 1-D Gaussian pairs and noise ratios."""
    cases = [(0.0, 1.0, 0.0, 4.0, 1.0)]
    g = _gen(40)
    for _ in range(4):
        mean_d = float(torch.randn((), generator=g, dtype=DTYPE))
        var_d = 0.3 + 2.7 * float(torch.rand((), generator=g, dtype=DTYPE))
        mean_n = mean_d + float(torch.randn((), generator=g, dtype=DTYPE))
        var_n = var_d * (0.6 + 5 * float(torch.rand((), generator=g, dtype=DTYPE)))
        nu = 0.3 + 15 * float(torch.rand((), generator=g, dtype=DTYPE))
        cases.append((mean_d, var_d, mean_n, var_n, nu))
    return cases


def _call_variance(nce_log_z_variance, case):
    what = "nce_log_z_variance({:.4g}, {:.4g}, {:.4g}, {:.4g}, {:.4g})".format(*case)
    out = nce_log_z_variance(*case)
    if isinstance(out, torch.Tensor):
        out = float(out)
    if not isinstance(out, (int, float)) or not math.isfinite(out):
        raise AssertionError(f"{what} should return a finite number; got {out!r}. If you got nan, compute P_nu "
                             "from log-densities: both densities underflow to 0 in the far tails.")
    return float(out), what


def check_log_z_variance_by_theorem(nce_log_z_variance):
    for case in _log_z_cases():
        value, what = _call_variance(nce_log_z_variance, case)
        expected = _log_z_variance_by_theorem(*case)
        if abs(value - expected) > 1e-3 * abs(expected) + 1e-4:
            raise AssertionError(
                f"{what} gave {value:.6g}; Theorem 3 with g = -1, evaluated by quadrature, gives {expected:.6g}. "
                "With c the only parameter, I_nu and m are both written with a = int P_nu p_d."
            )


def check_log_z_variance_noise_equal_to_data(nce_log_z_variance):
    g = _gen(41)
    mean = float(torch.randn((), generator=g, dtype=DTYPE))
    var = 0.3 + 3 * float(torch.rand((), generator=g, dtype=DTYPE))
    for nu in (0.5, 4.0):
        value, what = _call_variance(nce_log_z_variance, (mean, var, mean, var, nu))
        if abs(value) > 1e-5:
            raise AssertionError(f"{what} (noise equal to the data) gave {value:.6g}; expected 0: then "
                                 "P_nu = nu / (1 + nu) everywhere.")


def check_log_z_variance_rejects_bad_input(nce_log_z_variance):
    for args in ((0.0, 0.0, 0.0, 1.0, 1.0), (0.0, 1.0, 0.0, -1.0, 1.0), (0.0, 1.0, 0.0, 1.0, 0.0)):
        assert_raises(ValueError, nce_log_z_variance, *args,
                      what=f"nce_log_z_variance{args} (a variance or nu that is not positive)")


EXERCISES = [
    Exercise(
        id="5.1",
        name="nce_logit",
        checks=[
            Check("matches log(p_model / (nu p_n)) on three random batches", check_logit_values, 1),
            Check("is differentiable in the energies and in c", check_logit_gradient, 1),
            Check("raises ValueError for nu <= 0", check_logit_rejects_bad_nu, 1),
        ],
    ),
    Exercise(
        id="5.2",
        name="nce_loss",
        checks=[
            Check("equals -J / (1 + nu) for nu = 1, 3 and 0.5 on random batches", check_loss_values, 2),
            Check("stays finite and exact for logits of +-600", check_loss_is_stable, 1),
            Check("its gradient in c matches the hand-derived form", check_loss_gradient_in_c, 0.5),
            Check("raises ValueError without nu noise points per data point", check_loss_rejects_wrong_noise_count, 0.5),
        ],
    ),
    Exercise(
        id="5.3",
        name="decision_boundary",
        checks=[
            Check("the worked example: |x| = 2.073", check_boundary_worked_example, 1),
            Check("matches bisection on the logit in five more cases, four of them random",
                  check_boundary_other_cases, 1),
            Check("raises ValueError when there is no boundary", check_boundary_rejects_no_boundary, 1),
        ],
    ),
    Exercise(
        id="5.4",
        name="nce_log_z_variance",
        checks=[
            Check("matches Theorem 3 (c alone) by quadrature on the worked example and 4 random Gaussian pairs",
                  check_log_z_variance_by_theorem, 1),
            Check("gives 0 for noise equal to the data", check_log_z_variance_noise_equal_to_data, 0.5),
            Check("raises ValueError for a variance or nu that is not positive",
                  check_log_z_variance_rejects_bad_input, 0.5),
        ],
    ),
]
