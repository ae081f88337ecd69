"""Hidden checks for chapter 1's exercises (solutions/01_gaussian_ebm.py).

1.1 log Z of E(x) = a x² − b x against trapezoidal quadrature in float64 (never the closed form itself).
1.2 the Monte Carlo log-likelihood gradient for μ against its exact value Λ(x̄ − μ), and its spread against
    the exact covariance Λ/n of the estimator.
1.3 one CD-1 step of E = θx² against the chapter's hand-computed example and against autograd.
"""
from __future__ import annotations

import math

import torch

from ebm_teach.grade.asserts import as_float64, assert_close, assert_raises, assert_shape
from ebm_teach.grade.spec import Check, Exercise

DTYPE = torch.float64


# ----------------------------------------------------------------------------- 1.1 log Z by completing the square
def _log_z_quadrature(a: float, b: float) -> float:
    """log ∫ exp(−(a x² − b x)) dx by the trapezoidal rule on ±15 standard deviations around the mode."""
    mode, sd = b / (2 * a), 1 / math.sqrt(2 * a)
    x = torch.linspace(mode - 15 * sd, mode + 15 * sd, 20001, dtype=DTYPE)
    neg_e = -(a * x**2 - b * x)
    shift = neg_e.max()
    return float(shift + torch.log(torch.trapezoid(torch.exp(neg_e - shift), x)))


QUADRATIC_CASES = [(0.5, 1.0), (2.0, -3.0), (0.1, 0.4), (4.0, 8.0), (0.25, -0.5)]


def check_standard_normal(log_partition_quadratic):
    value = log_partition_quadratic(0.5, 0.0)
    assert_close(
        value, 0.5 * math.log(2 * math.pi),
        "log_partition_quadratic(0.5, 0.0), the standard normal's log Z = ½ log(2π),", rtol=1e-5, atol=1e-5,
    )


def check_against_quadrature(log_partition_quadratic):
    for a, b in QUADRATIC_CASES:
        assert_close(
            log_partition_quadratic(a, b), _log_z_quadrature(a, b),
            f"log_partition_quadratic({a}, {b}) (compared with numerical quadrature)", rtol=1e-5, atol=1e-5,
        )


def check_elementwise(log_partition_quadratic):
    a = torch.tensor([a for a, _ in QUADRATIC_CASES], dtype=DTYPE)
    b = torch.tensor([b for _, b in QUADRATIC_CASES], dtype=DTYPE)
    expected = torch.tensor([_log_z_quadrature(ai, bi) for ai, bi in QUADRATIC_CASES], dtype=DTYPE)
    assert_close(
        log_partition_quadratic(a, b), expected,
        "log_partition_quadratic(a, b) for tensors a, b of shape (5,) (one log Z per entry)", rtol=1e-5, atol=1e-5,
    )


def check_rejects_nonpositive_a(log_partition_quadratic):
    cases = [(0.0, 1.0), (-1.0, 1.0), (torch.tensor([1.0, -0.5], dtype=DTYPE), torch.ones(2, dtype=DTYPE))]
    for a, b in cases:
        shown = a.tolist() if isinstance(a, torch.Tensor) else a
        assert_raises(
            ValueError, log_partition_quadratic, a, b,
            what=f"log_partition_quadratic(a={shown}, b) (Z is infinite unless every a > 0)",
        )


# ----------------------------------------------------------------------------- 1.2 the Monte Carlo negative phase
PRECISION = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=DTYPE)
MU = torch.tensor([0.5, -1.0], dtype=DTYPE)
X_DATA = torch.tensor([[1.0, 0.0], [2.0, -0.5], [0.0, 1.0], [1.5, 0.5]], dtype=DTYPE)


def _call_grad(loglik_grad_mu, x_data, mu, precision, n_samples, seed):
    gen = torch.Generator().manual_seed(seed)
    out = as_float64(loglik_grad_mu(x_data, mu, precision, n_samples, gen), "loglik_grad_mu(...)")
    assert_shape(out, (mu.shape[0],), f"loglik_grad_mu for d = {mu.shape[0]}")
    return out


def check_grad_shape(loglik_grad_mu):
    precision = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]], dtype=DTYPE)
    mu = torch.tensor([0.0, 1.0, -1.0], dtype=DTYPE)
    x_data = torch.tensor([[0.5, 0.5, 0.5], [1.0, 2.0, 0.0]], dtype=DTYPE)
    out = _call_grad(loglik_grad_mu, x_data, mu, precision, 100, seed=0)
    assert bool(torch.isfinite(out).all()), f"loglik_grad_mu returned NaN/inf: {out.tolist()}."


def check_grad_mean(loglik_grad_mu):
    # The estimator's error is N(0, Λ/n) exactly (see check_grad_spread), so 5 standard errors per coordinate
    # is exceeded with probability < 1e-6: a failure means a wrong formula, not bad luck.
    n = 200_000
    out = _call_grad(loglik_grad_mu, X_DATA, MU, PRECISION, n, seed=1)
    exact = PRECISION @ (X_DATA.mean(0) - MU)
    tol = 5 * torch.sqrt(torch.diagonal(PRECISION) / n)
    if bool(((out - exact).abs() > tol).any()):
        raise AssertionError(
            f"with n_samples={n} the estimate {[round(v, 4) for v in out.tolist()]} should be within "
            f"{[round(v, 4) for v in tol.tolist()]} (5 standard errors) of the exact gradient "
            f"Λ(x̄ − μ) = {[round(v, 4) for v in exact.tolist()]}. Check the sign of each phase "
            "(−∇μE at the data, +∇μE at the samples) and that you average over both."
        )


def check_grad_spread(loglik_grad_mu):
    # With x' = μ + L⁻ᵀz the negative phase −(1/n) Σ Λ(x'ⱼ − μ) has covariance Λ Λ⁻¹ Λ / n = Λ/n. Whitened by
    # (Λ/n)^(-1/2), 1000 repetitions must have a covariance within 0.25 of the identity (> 5 standard errors).
    n, reps = 50, 1000
    est = torch.stack([_call_grad(loglik_grad_mu, X_DATA, MU, PRECISION, n, seed=100 + r) for r in range(reps)])
    evals, evecs = torch.linalg.eigh(PRECISION / n)
    whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    white = (est - est.mean(0)) @ whiten
    cov = white.T @ white / (reps - 1)
    if bool(((cov - torch.eye(2, dtype=DTYPE)).abs() > 0.25).any()):
        emp = torch.cov(est.T)
        raise AssertionError(
            f"over {reps} repetitions with n_samples={n} the estimate's covariance is "
            f"{[[round(v, 4) for v in row] for row in emp.tolist()]}; exact samples x' ~ N(μ, Λ⁻¹) give "
            f"Λ/n = {[[round(v, 4) for v in row] for row in (PRECISION / n).tolist()]}. Draw the samples "
            "with covariance Λ⁻¹ (not Λ), e.g. x' = μ + z L⁻ᵀ row-wise with Λ = L Lᵀ, and estimate the "
            "negative phase from them rather than using its exact value."
        )


def check_grad_uses_generator(loglik_grad_mu):
    first = _call_grad(loglik_grad_mu, X_DATA, MU, PRECISION, 20, seed=7)
    again = _call_grad(loglik_grad_mu, X_DATA, MU, PRECISION, 20, seed=7)
    other = _call_grad(loglik_grad_mu, X_DATA, MU, PRECISION, 20, seed=8)
    assert torch.equal(first, again), (
        "two calls with generators seeded alike gave different answers: draw every random number from the "
        "generator argument, e.g. torch.randn(n, d, generator=generator, dtype=mu.dtype)."
    )
    assert not torch.equal(first, other), (
        "generators with different seeds gave the same answer: the estimate should use random samples."
    )


# ----------------------------------------------------------------------------- 1.3 one CD-1 step
def _call_cd1(cd1_step, theta, x_data, step_size, noise):
    out = cd1_step(theta, x_data, step_size, noise)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"cd1_step should return a pair (x1, grad); got {type(out).__name__}.")
    x1 = as_float64(out[0], "x1 from cd1_step")
    grad = as_float64(out[1], "grad from cd1_step")
    assert_shape(x1, tuple(x_data.shape), "x1 (one new point per data point)")
    assert_shape(grad, (), "grad (a single number: the batch mean)")
    return x1, grad


def _cd1_autograd(theta: float, x0: torch.Tensor, step_size: float, noise: torch.Tensor):
    """The same step, with both derivatives taken by autograd instead of by hand."""
    th = torch.tensor(theta, dtype=DTYPE, requires_grad=True)
    x = x0.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad((th.detach() * x**2).sum(), x)
    x1 = (x0 - 0.5 * step_size * grad_x + math.sqrt(step_size) * noise).detach()
    (grad_theta,) = torch.autograd.grad((th * x0**2).mean() - (th * x1**2).mean(), th)
    return x1, grad_theta


def check_cd1_worked_example(cd1_step):
    x1, grad = _call_cd1(cd1_step, 1.0, torch.tensor([1.0], dtype=DTYPE), 0.1, torch.tensor([0.0], dtype=DTYPE))
    assert_close(x1, [0.9], "x1 in the worked example (θ = 1, x = 1, ε = 0.1, η = 0)", rtol=1e-6, atol=1e-6)
    assert_close(grad, 0.19, "grad in the worked example (1² − 0.9²)", rtol=1e-6, atol=1e-6)


def check_cd1_against_autograd(cd1_step):
    gen = torch.Generator().manual_seed(3)
    for theta, step_size in [(0.7, 0.05), (2.5, 0.3)]:
        x0 = torch.randn(8, generator=gen, dtype=DTYPE) * 1.5
        noise = torch.randn(8, generator=gen, dtype=DTYPE)
        x1, grad = _call_cd1(cd1_step, theta, x0, step_size, noise)
        x1_ref, grad_ref = _cd1_autograd(theta, x0, step_size, noise)
        where = f"(θ = {theta}, ε = {step_size}, a batch of 8 with noise)"
        assert_close(x1, x1_ref, f"x1 {where}", rtol=1e-5, atol=1e-6)
        if abs(float(grad) - float(8 * grad_ref)) < 1e-5 * abs(float(8 * grad_ref)) + 1e-6:
            raise AssertionError(f"grad {where} is the batch sum; the docstring asks for the batch mean.")
        assert_close(grad, grad_ref, f"grad {where}", rtol=1e-5, atol=1e-6)


EXERCISES = [
    Exercise(
        id="1.1",
        name="log_partition_quadratic",
        checks=[
            Check("the standard normal's log Z, ½ log(2π)", check_standard_normal, 1),
            Check("log Z matches quadrature for five (a, b)", check_against_quadrature, 2),
            Check("works entry by entry on tensors a, b", check_elementwise, 1),
            Check("raises ValueError when some a ≤ 0", check_rejects_nonpositive_a, 1),
        ],
    ),
    Exercise(
        id="1.2",
        name="loglik_grad_mu",
        checks=[
            Check("returns a finite (d,) vector", check_grad_shape, 1),
            Check("is within 5 standard errors of the exact Λ(x̄ − μ)", check_grad_mean, 2),
            Check("its Monte Carlo spread is Λ/n (samples from N(μ, Λ⁻¹))", check_grad_spread, 1),
            Check("draws its randomness from the generator argument", check_grad_uses_generator, 1),
        ],
    ),
    Exercise(
        id="1.3",
        name="cd1_step",
        checks=[
            Check("the chapter's worked example: x1 = 0.9, grad = 0.19", check_cd1_worked_example, 1),
            Check("matches autograd on batches with noise", check_cd1_against_autograd, 2),
        ],
    ),
]
