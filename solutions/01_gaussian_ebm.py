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
# Three functions to write, each one a result of Chapter 1. Replace every `raise NotImplementedError()`
# with your code, then run the **self-check** cell below the exercise: it tries your function on one case
# whose answer you can verify by hand. The grader runs further, hidden checks on other inputs:
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
# Estimate the expectation with $n$ exact samples $\mathbf{x}'_j \sim \mathcal N(\boldsymbol\mu, \Lambda^{-1})$:
# with the Cholesky factor $\Lambda = L L^\top$, $\mathbf{x}' = \boldsymbol\mu + L^{-\top}\mathbf{z}$ and
# $\mathbf{z} \sim \mathcal N(0, I)$ (`torch.linalg.cholesky`, `torch.linalg.solve_triangular`). Draw every
# random number from `generator`. The exact answer is $\Lambda(\bar{\mathbf{x}} - \boldsymbol\mu)$, since
# the negative phase has expectation zero; your estimate should scatter around it with covariance
# $\Lambda / n$.

# %%
def loglik_grad_mu(x_data, mu, precision, n_samples, generator):
    """Monte Carlo estimate of the batch-averaged gradient of log p(x) for μ, with a sampled negative phase.

    (1/B) Σᵢ Λ(xᵢ − μ)  −  (1/n) Σⱼ Λ(x'ⱼ − μ),   x'ⱼ ~ N(μ, Λ⁻¹) drawn with ``generator``.

    x_data: (B, d) data batch; mu: (d,); precision: (d, d) symmetric positive definite Λ;
    n_samples: n ≥ 1 model samples; generator: a torch.Generator. Returns a (d,) tensor in mu's dtype.
    """
    if x_data.dim() != 2 or mu.dim() != 1 or x_data.shape[1] != mu.shape[0]:
        raise ValueError(f"x_data must be (B, d) and mu (d,); got {tuple(x_data.shape)} and {tuple(mu.shape)}.")
    if precision.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"precision must be (d, d) = {(mu.shape[0],) * 2}; got {tuple(precision.shape)}.")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
    ### BEGIN SOLUTION
    d = mu.shape[0]
    positive = ((x_data - mu) @ precision).mean(0)  # −∇μE averaged over the data (Λ is symmetric)
    L = torch.linalg.cholesky(precision)
    z = torch.randn(n_samples, d, generator=generator, dtype=mu.dtype, device=mu.device)
    x_neg = mu + torch.linalg.solve_triangular(L.T, z.T, upper=True).T  # rows L⁻ᵀz ~ N(0, Λ⁻¹)
    negative = -((x_neg - mu) @ precision).mean(0)  # ∇μE averaged over the model samples
    return positive + negative
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: with many samples the estimate is close to the exact gradient Λ(x̄ − μ).
mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
precision = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
x_data = torch.tensor([[1.0, 0.0], [2.0, -0.5]], dtype=torch.float64)
estimate = loglik_grad_mu(x_data, mu, precision, 100_000, torch.Generator().manual_seed(0))
exact = precision @ (x_data.mean(0) - mu)
print("estimate:", [round(v, 3) for v in estimate.tolist()], " exact:", [round(v, 3) for v in exact.tolist()])
assert (estimate - exact).abs().max() < 0.03, "not yet right: more than 5 standard errors away"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.2", loglik_grad_mu)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 1.3: one step of contrastive divergence (3 points)
#
# For $E_\theta(x) = \theta x^2$, start at the data $x^{(0)}$ and take one Langevin step
#
# $$x^{(1)} = x^{(0)} - \frac{\epsilon}{2}\,\nabla_x E_\theta(x^{(0)}) + \sqrt{\epsilon}\,\eta .$$
#
# The CD-1 gradient is $\nabla_\theta E_\theta(x^{(0)}) - \nabla_\theta E_\theta(x^{(1)})$, with $x^{(1)}$ held
# fixed, averaged over the batch. Work out both derivatives by hand (no autograd needed). The chapter's worked
# example, $x^{(0)} = 1$, $\epsilon = 0.1$, $\theta = 1$, $\eta = 0$, gives $x^{(1)} = 0.9$ and gradient $0.19$.

# %%
def cd1_step(theta, x_data, step_size, noise):
    """One CD-1 step for E(x) = θ x² with a Langevin move; returns the new points and the CD-1 gradient for θ.

    x¹ = x⁰ − (ε/2)·∂E/∂x(x⁰) + √ε·η,   grad = mean over the batch of ∂E/∂θ(x⁰) − ∂E/∂θ(x¹).

    theta: θ (number); x_data: (B,) tensor x⁰; step_size: ε > 0; noise: (B,) tensor η of standard normals.
    Returns (x1, grad): x1 a (B,) tensor, grad a 0-dim tensor.
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0; got {step_size}.")
    if noise.shape != x_data.shape:
        raise ValueError(f"noise must have the shape of x_data {tuple(x_data.shape)}; got {tuple(noise.shape)}.")
    ### BEGIN SOLUTION
    x1 = x_data - 0.5 * step_size * 2 * theta * x_data + math.sqrt(step_size) * noise
    grad = (x_data**2 - x1**2).mean()
    return x1, grad
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: the chapter's worked example.
x1, grad = cd1_step(1.0, torch.tensor([1.0]), 0.1, torch.tensor([0.0]))
print(f"x1 = {float(x1[0]):.4f} (expected 0.9), grad = {float(grad):.4f} (expected 0.19)")
assert abs(float(x1[0]) - 0.9) < 1e-6 and abs(float(grad) - 0.19) < 1e-6, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("01_gaussian_ebm", "1.3", cd1_step)
### END HIDDEN TESTS
