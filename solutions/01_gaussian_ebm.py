# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises for Chapter 1: the Gaussian EBM
#
# Four functions to write: three results of Chapter 1 to implement, and one derivation whose answer the
# grader checks numerically (Exercise 1.4). Replace every `raise NotImplementedError()` with your code, then
# run the **self-check** cell below the exercise: it tries your function on one case whose answer you can
# verify by hand. The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 01_gaussian_ebm.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 01_gaussian_ebm
import math

import torch

# %% [markdown]
# ## Exercise 1.1: log Z of a quadratic energy (5 points)
#
# For $E(x) = a x^2 - b x$ with $a > 0$, complete the square,
# $-a x^2 + b x = -a\left(x - \tfrac{b}{2a}\right)^2 + \tfrac{b^2}{4a}$, and use
# $\int e^{-a u^2}\,du = \sqrt{\pi/a}$ to find $\log Z = \log \int e^{-E(x)}\,dx$.
# When $a \le 0$ the integral diverges: raise a `ValueError` that says so.

# %%
def log_partition_quadratic(a, b):
    """log Z of the energy E(x) = a x² − b x, i.e. log ∫ exp(−a x² + b x) dx, in closed form.

    a: number or tensor, every entry > 0; b: number or tensor of the same shape.
    Returns a float64 tensor of that shape (a 0-dim tensor for numbers), computed entry by entry.
    Raises ValueError when some a ≤ 0 (then exp(−E) is not integrable and Z is infinite).
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    ### BEGIN SOLUTION
    if bool((a <= 0).any()):
        raise ValueError(f"a must be > 0 for Z to be finite; got a = {a.tolist()}.")
    return 0.5 * torch.log(math.pi / a) + b**2 / (4 * a)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: E(x) = x²/2 is the standard normal's energy, so Z = √(2π).
value = float(log_partition_quadratic(0.5, 0.0))
print(f"log Z = {value:.6f}, expected ½ log(2π) = {0.5 * math.log(2 * math.pi):.6f}")
assert abs(value - 0.5 * math.log(2 * math.pi)) < 1e-6, "not yet right: compare with the completed square"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.1", log_partition_quadratic)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 1.2: the log-likelihood gradient with a Monte Carlo negative phase (5 points)
#
# The Gaussian EBM $E(\mathbf{x}) = \tfrac12 (\mathbf{x}-\boldsymbol\mu)^\top \Lambda (\mathbf{x}-\boldsymbol\mu)$
# has $\nabla_{\boldsymbol\mu} E(\mathbf{x}) = -\Lambda(\mathbf{x} - \boldsymbol\mu)$. Averaged over a data
# batch $\mathbf{x}_1, \dots, \mathbf{x}_B$, the log-likelihood gradient is a positive and a negative phase,
#
# $$\frac1B\sum_{i=1}^B \nabla_{\boldsymbol\mu} \log p(\mathbf{x}_i)
#   = -\frac1B\sum_{i=1}^B \nabla_{\boldsymbol\mu} E(\mathbf{x}_i)
#   + \mathbb{E}_{\mathbf{x}'\sim p}\left[\nabla_{\boldsymbol\mu} E(\mathbf{x}')\right].$$
#
# Estimate the expectation with $n$ exact samples $\mathbf{x}'_j \sim \mathcal N(\boldsymbol\mu, \Lambda^{-1})$,
# made from the standard normal draws you are given, $\mathbf{z}_j$ (the rows of `z`): with the Cholesky
# factor $\Lambda = L L^\top$ (`torch.linalg.cholesky`), $\mathbf{x}'_j = \boldsymbol\mu + L^{-\top}\mathbf{z}_j$
# (`torch.linalg.solve_triangular`). The exact answer is $\Lambda(\bar{\mathbf{x}} - \boldsymbol\mu)$, since
# the negative phase has expectation zero; your estimate scatters around it with covariance $\Lambda / n$.
# Mind the signs: the positive phase is $-\nabla E$ at the data, the negative phase $+\nabla E$ at the samples.

# %%
def loglik_grad_mu(x_data, mu, precision, z):
    """Monte Carlo estimate of the batch-averaged gradient of log p(x) for μ, with a sampled negative phase.

    (1/B) Σᵢ Λ(xᵢ − μ)  −  (1/n) Σⱼ Λ(x'ⱼ − μ),   x'ⱼ = μ + L⁻ᵀ zⱼ with Λ = L Lᵀ, so x'ⱼ ~ N(μ, Λ⁻¹).

    x_data: (B, d) data batch; mu: (d,); precision: (d, d) symmetric positive definite Λ;
    z: (n, d) standard normal draws, one row per model sample. Returns a (d,) tensor in mu's dtype.
    """
    if x_data.dim() != 2 or mu.dim() != 1 or x_data.shape[1] != mu.shape[0]:
        raise ValueError(f"x_data must be (B, d) and mu (d,); got {tuple(x_data.shape)} and {tuple(mu.shape)}.")
    if precision.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"precision must be (d, d) = {(mu.shape[0],) * 2}; got {tuple(precision.shape)}.")
    if z.dim() != 2 or z.shape[1] != mu.shape[0] or len(z) < 1:
        raise ValueError(f"z must be (n, d) with n >= 1 and d = {mu.shape[0]}; got {tuple(z.shape)}.")
    ### BEGIN SOLUTION
    positive = ((x_data - mu) @ precision).mean(0)  # −∇μE averaged over the data (Λ is symmetric)
    L = torch.linalg.cholesky(precision)
    x_neg = mu + torch.linalg.solve_triangular(L.T, z.T, upper=True).T  # (n, d): rows μ + L⁻ᵀzⱼ
    negative = -((x_neg - mu) @ precision).mean(0)  # ∇μE averaged over the model samples
    return positive + negative
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check 1: with z = 0 every model sample sits at μ, so the negative phase is 0 and the answer is Λ(x̄ − μ).
mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
precision = torch.tensor([[2.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
x_data = torch.tensor([[1.0, 0.0], [2.0, -0.5]], dtype=torch.float64)
at_zero = loglik_grad_mu(x_data, mu, precision, torch.zeros(3, 2, dtype=torch.float64))
print("z = 0:", at_zero.tolist(), "(expected [2.0, 3.0])")
assert torch.allclose(at_zero, torch.tensor([2.0, 3.0], dtype=torch.float64)), "not yet right: the positive phase"
# Self-check 2: one sample z = (1, 0). With Λ diagonal, L = diag(√2, 2), so x' = μ + (1/√2, 0) and the negative
# phase is −Λ(x' − μ) = (−√2, 0).
one = loglik_grad_mu(x_data, mu, precision, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
print("z = (1, 0):", [round(v, 4) for v in one.tolist()], f"(expected [{2 - math.sqrt(2):.4f}, 3.0])")
assert torch.allclose(one, torch.tensor([2 - math.sqrt(2), 3.0], dtype=torch.float64)), (
    "not yet right: the negative phase (mind its sign, and x' = μ + L⁻ᵀz)")

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.2", loglik_grad_mu)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 1.3: one step of contrastive divergence for a two-parameter energy (3 points)
#
# The chapter's worked example had one parameter. Take $E_{a,b}(x) = a x^2 - b x$ (a Gaussian with precision
# $2a$ and mean $b/(2a)$), start at the data $x^{(0)}$ and take one Langevin step
#
# $$x^{(1)} = x^{(0)} - \frac{\epsilon}{2}\,\frac{\partial E}{\partial x}(x^{(0)}) + \sqrt{\epsilon}\,\eta .$$
#
# The CD-1 gradient of the loss for each parameter is $\partial E/\partial\theta$ at $x^{(0)}$ minus
# $\partial E/\partial\theta$ at $x^{(1)}$, with $x^{(1)}$ held fixed, averaged over the batch. Work out the
# derivatives by hand (no autograd needed): $\partial E/\partial x$, $\partial E/\partial a$ and
# $\partial E/\partial b$.

# %%
def cd1_step(a, b, x_data, step_size, noise):
    """One CD-1 step for E(x) = a x² − b x with a Langevin move; returns (x1, grad_a, grad_b).

    x¹ = x⁰ − (ε/2)·∂E/∂x(x⁰) + √ε·η,  grad_θ = mean over the batch of ∂E/∂θ(x⁰) − ∂E/∂θ(x¹), θ = a, b.

    a, b: numbers; x_data: (B,) tensor x⁰; step_size: ε > 0; noise: (B,) tensor η of standard normals.
    Returns x1, a (B,) tensor, and grad_a, grad_b, 0-dim tensors.
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0; got {step_size}.")
    if noise.shape != x_data.shape:
        raise ValueError(f"noise must have the shape of x_data {tuple(x_data.shape)}; got {tuple(noise.shape)}.")
    ### BEGIN SOLUTION
    x1 = x_data - 0.5 * step_size * (2 * a * x_data - b) + math.sqrt(step_size) * noise
    grad = (x_data**2 - x1**2).mean()
    return x1, grad, -(x_data - x1).mean()
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: a = 1, b = 2 (mean 1), x⁰ = 3, ε = 0.1, η = 0: ∂E/∂x = 2·3 − 2 = 4, so x¹ = 3 − 0.2 = 2.8;
# grad_a = 3² − 2.8² = 1.16 and grad_b = −3 + 2.8 = −0.2.
x1, grad_a, grad_b = cd1_step(1.0, 2.0, torch.tensor([3.0]), 0.1, torch.tensor([0.0]))
print(f"x1 = {float(x1[0]):.4f} (expected 2.8), grad_a = {float(grad_a):.4f} (expected 1.16), "
      f"grad_b = {float(grad_b):.4f} (expected -0.2)")
assert abs(float(x1[0]) - 2.8) < 1e-6 and abs(float(grad_a) - 1.16) < 1e-5, "not yet right: x1 or grad_a"
assert abs(float(grad_b) + 0.2) < 1e-6, "not yet right: grad_b (∂E/∂b = −x)"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.3", cd1_step)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 1.4: does a longer chain help? CD-$k$ for the Gaussian, a derivation (3 points)
#
# Back to $E_\theta(x) = \theta x^2$, now with data whose second moment is $s = \mathbb{E}_{\text{data}}[x^2]$,
# so that maximum likelihood gives $\theta_{\text{ML}} = 1/(2s)$. CD-$k$ runs $k$ Langevin steps of size
# $\epsilon$ from each data point (as in the chapter, with fresh noise $\eta_t \sim \mathcal N(0, 1)$ at every
# step) and uses where it lands, $x^{(k)}$, as the negative sample. Its *expected* gradient of the loss is
#
# $$g_k(\theta) = \mathbb{E}\big[(x^{(0)})^2 - (x^{(k)})^2\big],$$
#
# averaged over the data and the noise. The chapter found $g_1$ and the point $\theta_{\text{CD}}$ where it
# vanishes. **Predict first:** does CD-10 stop nearer $\theta_{\text{ML}}$ than CD-1?
#
# 1. Write one step as $x^{(t)} = r\,x^{(t-1)} + \sqrt\epsilon\,\eta_t$ and express $x^{(k)}$ through
#    $x^{(0)}$ and $\eta_1, \dots, \eta_k$.
# 2. The $\eta_t$ are independent of each other and of $x^{(0)}$: find $\mathbb{E}[(x^{(k)})^2]$, then $g_k$.
# 3. Implement $g_k$. Your formula should hold for every $\theta$ (also where the chain is unstable,
#    $\epsilon\theta > 2$) and every $k \ge 1$; raise a `ValueError` for $k < 1$ or $\epsilon \le 0$.
#
# The self-check compares your formula with simulated chains, then finds the zero of $g_k$ for
# $k = 1, 3, 10$ by bisection. Was your prediction right? Your formula says why.

# %%
def cdk_expected_gradient(theta, second_moment, step_size, n_steps):
    """The expected CD-k gradient of the loss for E(x) = θ x², E[(x⁽⁰⁾)² − (x⁽ᵏ⁾)²] (a float).

    theta: θ (a number); second_moment: s = mean of x² over the data, > 0; step_size: the Langevin step ε > 0;
    n_steps: k ≥ 1, the number of Langevin steps x ↦ x − (ε/2)·2θx + √ε·η from each data point.
    Raises ValueError when ε ≤ 0 or k < 1.
    """
    if second_moment <= 0:
        raise ValueError(f"the second moment s must be > 0; got {second_moment}.")
    ### BEGIN SOLUTION
    if step_size <= 0 or n_steps < 1 or int(n_steps) != n_steps:
        raise ValueError(f"need ε > 0 and an integer k ≥ 1; got ε = {step_size}, k = {n_steps}.")
    r = 1.0 - step_size * theta  # one step: x ↦ r x + √ε η
    noise = step_size * sum(r ** (2 * j) for j in range(int(n_steps)))  # variance the k steps inject
    return second_moment - (r ** (2 * int(n_steps)) * second_moment + noise)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check 1: simulate 400,000 chains of k = 5 Langevin steps from data with s = 1.75 at θ = 0.8, ε = 0.2;
# their average of (x⁽⁰⁾)² − (x⁽⁵⁾)² must match your formula within 5 standard errors.
g = torch.Generator().manual_seed(0)
data = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64).repeat(400_000 // 3 + 1)[:400_000]
s, theta, eps = float((data**2).mean()), 0.8, 0.2
x = data.clone()
for _ in range(5):
    x = x - eps * theta * x + math.sqrt(eps) * torch.randn(len(x), generator=g, dtype=torch.float64)
simulated = data**2 - x**2
mean, se = float(simulated.mean()), float(simulated.std() / math.sqrt(len(x)))
yours = float(cdk_expected_gradient(theta, s, eps, 5))
print(f"simulated g_5 = {mean:.4f} ± {se:.4f} (1 s.e.); your formula: {yours:.4f}")
assert abs(yours - mean) < 5 * se, "not yet right: compare E[(x⁽ᵏ⁾)²] with the simulation"


# Self-check 2: where does CD-k stop? Bisection on g_k over (0, 1/ε) for s = 1, ε = 0.1 (θ_ML = 0.5).
def zero_of(k, s=1.0, eps=0.1):
    lo, hi = 1e-9, 1 / eps  # g_k < 0 near θ = 0 (the noise alone widens the chain), > 0 at θ = 1/ε
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdk_expected_gradient(mid, s, eps, k) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


for k in (1, 3, 10):
    print(f"CD-{k} stops at theta = {zero_of(k):.6f}")
assert abs(zero_of(1) - 0.5132) < 1e-4, "not yet right: CD-1 should stop at the chapter's 0.513"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.4", cdk_expected_gradient)
### END HIDDEN TESTS
