"""Hidden checks for chapter 1's exercises (solutions/01_gaussian_ebm.py).

1.1 log Z of E(x) = a x² − b x against trapezoidal quadrature in float64 (never the closed form itself).
1.2 the Monte Carlo log-likelihood gradient for μ from given standard normal draws z, against the same
    estimate written another way, Λ(x̄ − μ) − L z̄ (since Λ L⁻ᵀ = L), and against Λ(x̄ − μ) as n grows.
1.3 one CD-1 step of E = a x² − b x against autograd of the energy, on random batches.
1.4 the expected CD-k gradient of E = θx² against the chain written out: the coefficients of x⁰ and of each step's
    noise propagated step by step (never the closed form).
Random inputs come from check_seed(k), so a secret grading seed changes them.
"""
from __future__ import annotations

import math

import torch

from ebm_teach.grade.asserts import as_float64, assert_close, assert_raises, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


# ----------------------------------------------------------------------------- 1.1 log Z by completing the square
def _log_z_quadrature(a: float, b: float) -> float:
    """log ∫ exp(−(a x² − b x)) dx by the trapezoidal rule on ±15 standard deviations around the mode."""
    mode, sd = b / (2 * a), 1 / math.sqrt(2 * a)
    x = torch.linspace(mode - 15 * sd, mode + 15 * sd, 20001, dtype=DTYPE)
    neg_e = -(a * x**2 - b * x)
    shift = neg_e.max()
    return float(shift + torch.log(torch.trapezoid(torch.exp(neg_e - shift), x)))


def _quadratic_cases():
    """Five (a, b) pairs: a in [0.1, 4] on a log scale, b in [-8, 8] (from check_seed(0))."""
    g = torch.Generator().manual_seed(check_seed(0))
    a = torch.exp(torch.empty(5, dtype=DTYPE).uniform_(math.log(0.1), math.log(4.0), generator=g))
    b = torch.empty(5, dtype=DTYPE).uniform_(-8.0, 8.0, generator=g)
    return [(round(float(x), 4), round(float(y), 4)) for x, y in zip(a, b)]


def check_standard_normal(log_partition_quadratic):
    value = log_partition_quadratic(0.5, 0.0)
    assert_close(
        value, 0.5 * math.log(2 * math.pi),
        "log_partition_quadratic(0.5, 0.0), the standard normal's log Z = ½ log(2π),", rtol=1e-5, atol=1e-5,
    )


def check_against_quadrature(log_partition_quadratic):
    for a, b in _quadratic_cases():
        assert_close(
            log_partition_quadratic(a, b), _log_z_quadrature(a, b),
            f"log_partition_quadratic({a}, {b}) (compared with numerical quadrature)", rtol=1e-5, atol=1e-5,
        )


def check_elementwise(log_partition_quadratic):
    cases = _quadratic_cases()
    a = torch.tensor([a for a, _ in cases], dtype=DTYPE)
    b = torch.tensor([b for _, b in cases], dtype=DTYPE)
    expected = torch.tensor([_log_z_quadrature(ai, bi) for ai, bi in cases], dtype=DTYPE)
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
def _random_problem(d: int, n_data: int, n: int, seed: int):
    """A random SPD precision Λ = A Aᵀ + d I / 2, mean, data batch and standard normal draws z: (n, d)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=DTYPE)
    precision = A @ A.T + 0.5 * d * torch.eye(d, dtype=DTYPE)
    mu = torch.randn(d, generator=g, dtype=DTYPE)
    x_data = mu + 1.5 * torch.randn(n_data, d, generator=g, dtype=DTYPE)
    z = torch.randn(n, d, generator=g, dtype=DTYPE)
    return x_data, mu, precision, z


def _call_grad(loglik_grad_mu, x_data, mu, precision, z):
    out = as_float64(loglik_grad_mu(x_data.clone(), mu.clone(), precision.clone(), z.clone()), "loglik_grad_mu(...)")
    assert_shape(out, (mu.shape[0],), f"loglik_grad_mu for d = {mu.shape[0]}")
    return out


def _expected_grad(x_data, mu, precision, z):
    """Λ(x̄ − μ) − (1/n) Σⱼ Λ L⁻ᵀ zⱼ = Λ(x̄ − μ) − L z̄, since Λ L⁻ᵀ = L Lᵀ L⁻ᵀ = L."""
    L = torch.linalg.cholesky(precision)
    return precision @ (x_data.mean(0) - mu) - L @ z.mean(0)


def check_grad_shape(loglik_grad_mu):
    x_data, mu, precision, z = _random_problem(3, 2, 5, check_seed(1))
    out = _call_grad(loglik_grad_mu, x_data, mu, precision, z)
    assert bool(torch.isfinite(out).all()), f"loglik_grad_mu returned NaN/inf: {out.tolist()}."


def check_grad_exact(loglik_grad_mu):
    for d, n_data, n, k in [(2, 4, 7, 2), (3, 5, 1, 3), (4, 3, 20, 4)]:
        x_data, mu, precision, z = _random_problem(d, n_data, n, check_seed(k))
        out = _call_grad(loglik_grad_mu, x_data, mu, precision, z)
        expected = _expected_grad(x_data, mu, precision, z)
        if torch.allclose(out, precision @ (x_data.mean(0) - mu), atol=1e-9) and n < 50:
            raise AssertionError(
                f"for d = {d} and n = {n} model samples your answer is exactly Λ(x̄ − μ), the expectation: the "
                "negative phase should be estimated from the samples x' = μ + L⁻ᵀz, not replaced by its mean 0."
            )
        flipped = precision @ (x_data.mean(0) - mu) + torch.linalg.cholesky(precision) @ z.mean(0)
        if torch.allclose(out, flipped, atol=1e-9):
            raise AssertionError(
                f"for d = {d}, n = {n} your negative phase has the wrong sign: it is +∇μE averaged over the model "
                "samples, i.e. −(1/n) Σⱼ Λ(x'ⱼ − μ)."
            )
        assert_close(out, expected, f"loglik_grad_mu for d = {d}, B = {n_data} data points, n = {n} samples "
                     "(x'ⱼ = μ + L⁻ᵀzⱼ with Λ = L Lᵀ)", rtol=1e-8, atol=1e-9)


def check_grad_converges(loglik_grad_mu):
    # With n = 40,000 draws the estimate's error is N(0, Λ/n): within 5 standard errors of Λ(x̄ − μ).
    x_data, mu, precision, z = _random_problem(2, 6, 40_000, check_seed(5))
    out = _call_grad(loglik_grad_mu, x_data, mu, precision, z)
    exact = precision @ (x_data.mean(0) - mu)
    tol = 5 * torch.sqrt(torch.diagonal(precision) / len(z))
    if bool(((out - exact).abs() > tol).any()):
        raise AssertionError(
            f"with {len(z)} samples the estimate {[round(v, 4) for v in out.tolist()]} should be within "
            f"{[round(v, 4) for v in tol.tolist()]} (5 standard errors) of Λ(x̄ − μ) = "
            f"{[round(v, 4) for v in exact.tolist()]}: the samples should have covariance Λ⁻¹."
        )


# ----------------------------------------------------------------------------- 1.3 one CD-1 step
def _call_cd1(cd1_step, a, b, x_data, step_size, noise):
    out = cd1_step(a, b, x_data.clone(), step_size, noise.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError(f"cd1_step should return a triple (x1, grad_a, grad_b); got {type(out).__name__}.")
    x1 = as_float64(out[0], "x1 from cd1_step")
    grads = [as_float64(t, f"{name} from cd1_step") for t, name in zip(out[1:], ("grad_a", "grad_b"))]
    assert_shape(x1, tuple(x_data.shape), "x1 (one new point per data point)")
    for g, name in zip(grads, ("grad_a", "grad_b")):
        assert_shape(g.reshape(()) if g.numel() == 1 else g, (), f"{name} (a single number: the batch mean)")
    return x1, grads[0].reshape(()), grads[1].reshape(())


def _cd1_autograd(a: float, b: float, x0: torch.Tensor, step_size: float, noise: torch.Tensor):
    """The same step, with every derivative taken by autograd of E(x) = a x² − b x."""
    params = torch.tensor([a, b], dtype=DTYPE, requires_grad=True)

    def energy(x, p):
        return p[0] * x**2 - p[1] * x

    x = x0.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad(energy(x, params.detach()).sum(), x)
    x1 = (x0 - 0.5 * step_size * grad_x + math.sqrt(step_size) * noise).detach()
    (grads,) = torch.autograd.grad(energy(x0, params).mean() - energy(x1, params).mean(), params)
    return x1, grads[0], grads[1]


def check_cd1_against_autograd(cd1_step):
    g = torch.Generator().manual_seed(check_seed(6))
    for step_size in (0.05, 0.3):
        a = float(torch.empty(()).uniform_(0.2, 2.0, generator=g))
        b = float(torch.empty(()).uniform_(-2.0, 2.0, generator=g))
        x0 = torch.randn(8, generator=g, dtype=DTYPE) * 1.5 + 0.5
        noise = torch.randn(8, generator=g, dtype=DTYPE)
        x1, grad_a, grad_b = _call_cd1(cd1_step, a, b, x0, step_size, noise)
        x1_ref, a_ref, b_ref = _cd1_autograd(a, b, x0, step_size, noise)
        where = f"(a = {a:.3f}, b = {b:.3f}, ε = {step_size}, a batch of 8 with noise)"
        assert_close(x1, x1_ref, f"x1 {where}", rtol=1e-6, atol=1e-7)
        if abs(float(grad_a) - float(8 * a_ref)) < 1e-5 * abs(float(8 * a_ref)) + 1e-7:
            raise AssertionError(f"grad_a {where} is the batch sum; the docstring asks for the batch mean.")
        if abs(float(grad_a) + float(a_ref)) < 1e-6 + 1e-6 * abs(float(a_ref)):
            raise AssertionError(f"grad_a {where} has the wrong sign: it is ∂E/∂a at x⁰ minus ∂E/∂a at x¹.")
        assert_close(grad_a, a_ref, f"grad_a {where}", rtol=1e-6, atol=1e-7)
        assert_close(grad_b, b_ref, f"grad_b {where} (∂E/∂b = −x)", rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- 1.4 CD-k's expected gradient
def _cdk_by_propagation(theta: float, s: float, eps: float, k: int) -> float:
    """E[(x⁰)² − (xᵏ)²] written out: xᵏ = c₀ x⁰ + Σ_t c_t η_t, with the coefficients c propagated step by step
    (x ↦ (1 − εθ) x + √ε η_t), so E[(xᵏ)²] = c₀² s + Σ_t c_t² (never the closed form)."""
    c = torch.zeros(k + 1, dtype=DTYPE)
    c[0] = 1.0
    for t in range(1, k + 1):
        c = (1 - eps * theta) * c  # every earlier term is shrunk by the step ...
        c[t] = math.sqrt(eps)  # ... and step t adds its own noise
    return float(s - (c[0] ** 2 * s + (c[1:] ** 2).sum()))


def _call_cdk(fn, theta, s, eps, k):
    out = as_float64(fn(theta, s, eps, k), f"cdk_expected_gradient({theta:.4g}, {s:.4g}, {eps:.4g}, {k})")
    assert_shape(out.reshape(()) if out.numel() == 1 else out, (), "cdk_expected_gradient (a single number)")
    return float(out.reshape(()))


def _cdk_cases():
    """(θ, s, ε, k): θ in (0.05, 3), s the second moment of 12 random points, ε in {0.05, 0.3, 0.9}, k = 1, 2, 7."""
    g = torch.Generator().manual_seed(check_seed(7))
    cases = []
    for eps, k in [(0.05, 1), (0.3, 2), (0.3, 7), (0.9, 7), (0.05, 2)]:
        theta = float(torch.empty((), dtype=DTYPE).uniform_(0.05, 3.0, generator=g))
        x = 0.3 + 1.2 * torch.randn(12, generator=g, dtype=DTYPE)
        cases.append((round(theta, 4), float((x**2).mean()), eps, k))
    return cases


def check_cdk_one_step(cdk_expected_gradient):
    for theta, s, eps, k in _cdk_cases():
        got, expected = _call_cdk(cdk_expected_gradient, theta, s, eps, 1), _cdk_by_propagation(theta, s, eps, 1)
        if abs(got + expected) < 1e-9 * (1 + abs(expected)) and abs(expected) > 1e-6:
            raise AssertionError(f"for k = 1 (θ = {theta}, s = {s:.4f}, ε = {eps}) your answer has the wrong sign: "
                                 "the loss gradient is E[(x⁰)²] minus E[(x¹)²].")
        assert_close(got, expected, f"cdk_expected_gradient(θ = {theta}, s = {s:.4f}, ε = {eps}, k = 1) "
                     "(the chapter's one-step case)", rtol=1e-9, atol=1e-10)


def check_cdk_against_propagation(cdk_expected_gradient):
    for theta, s, eps, k in _cdk_cases():
        got, expected = _call_cdk(cdk_expected_gradient, theta, s, eps, k), _cdk_by_propagation(theta, s, eps, k)
        no_noise = s - (1 - eps * theta) ** (2 * k) * s
        if abs(got - no_noise) < 1e-9 * (1 + abs(no_noise)):
            raise AssertionError(f"for k = {k} your answer leaves out the noise the k steps inject: each step adds "
                                 "√ε η_t, and the earlier ones are shrunk by the later steps.")
        assert_close(got, expected, f"cdk_expected_gradient(θ = {theta}, s = {s:.4f}, ε = {eps}, k = {k}) "
                     "(checked against the chain's coefficients propagated step by step)", rtol=1e-9, atol=1e-10)


def check_cdk_rejects_bad_input(cdk_expected_gradient):
    for args, why in [((0.5, 1.0, 0.0, 3), "ε = 0"), ((0.5, 1.0, -0.1, 3), "ε < 0"), ((0.5, 1.0, 0.1, 0), "k = 0")]:
        assert_raises(ValueError, cdk_expected_gradient, *args, what=f"cdk_expected_gradient{args} ({why})")


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
            Check("equals Λ(x̄ − μ) − L z̄ for given draws z (d = 2, 3, 4)", check_grad_exact, 3),
            Check("tends to the exact Λ(x̄ − μ) with 40,000 samples", check_grad_converges, 1),
        ],
    ),
    Exercise(
        id="1.3",
        name="cd1_step",
        checks=[
            Check("x1, grad_a and grad_b match autograd on batches with noise", check_cd1_against_autograd, 3),
        ],
    ),
    Exercise(
        id="1.4",
        name="cdk_expected_gradient",
        checks=[
            Check("k = 1: the chapter's expected CD-1 gradient, for random θ, s, ε", check_cdk_one_step, 0.5),
            Check("any k: matches the chain's coefficients propagated step by step", check_cdk_against_propagation, 2),
            Check("raises ValueError for ε ≤ 0 or k < 1", check_cdk_rejects_bad_input, 0.5),
        ],
    ),
]
