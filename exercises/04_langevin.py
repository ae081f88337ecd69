# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises for Chapter 4: Langevin dynamics and MCMC diagnostics
#
# Four exercises: three functions that are pieces of Chapter 4, and one derivation that connects its first
# two sections, checked numerically. Replace every `raise NotImplementedError()` with
# your code, then run the **self-check** cell below the exercise: it tries your function on a case whose
# answer you can verify. The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 04_langevin.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 04_langevin
import math

import torch

# %% [markdown]
# ## Exercise 4.1: one Langevin step (3 points)
#
# Write the book's Langevin update
#
# $$\mathbf{x}' = \mathbf{x} - \frac{\epsilon}{2}\nabla_{\mathbf{x}}E(\mathbf{x}) + \sqrt{\epsilon}\,\mathbf{z}$$
#
# for a batch of points, with the noise $\mathbf{z}$ given. Take the gradient with autograd, but with respect
# to $\mathbf{x}$ only: `torch.autograd.grad(E.sum(), x)` on a detached copy of `x` that requires grad.
# (Summing the per-sample energies is fine: $E(\mathbf{x}_i)$ depends on row $i$ only.) Calling
# `.backward()` instead would write into the parameters' `.grad` of a network energy, which a sampler must
# never do. Wrap the computation in `torch.enable_grad()` so that it also works when the caller has
# switched autograd off, and return a detached tensor.

# %%
def langevin_update(x, energy, step_size, z):
    """One Langevin step x' = x − (ε/2) ∇ₓE(x) + √ε z for a batch, with the noise z given.

    x: (batch, d) tensor; energy: callable mapping (batch, d) to (batch,) energies (a function or an
    nn.Module); step_size: ε > 0; z: (batch, d) standard normal noise.
    Returns x' as a detached (batch, d) tensor; no parameter's .grad may be written.
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0; got {step_size}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: for E(x) = |x|²/2 the gradient is x, so with z = 0 one step multiplies x by (1 − ε/2).
x = torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=torch.float64)
new = langevin_update(x, lambda y: 0.5 * (y**2).sum(1), 0.2, torch.zeros_like(x))
print("x' =", new.tolist(), " expected:", (0.9 * x).tolist())
assert torch.allclose(new, 0.9 * x), "not yet right: x' should be (1 − ε/2) x here"


# %% [markdown]
# ## Exercise 4.2: the MALA acceptance probability (3 points)
#
# MALA proposes the Langevin step, $q(\mathbf{x}'\mid\mathbf{x}) = \mathcal N\big(\mathbf{x}';\
# \mathbf{x} - \tfrac{\epsilon}{2}\nabla E(\mathbf{x}),\ \epsilon I\big)$, and accepts it with probability
#
# $$\alpha(\mathbf{x}\to\mathbf{x}') = \min\left(1,\ \exp\Big[-E(\mathbf{x}') + E(\mathbf{x})
#   + \log q(\mathbf{x}\mid\mathbf{x}') - \log q(\mathbf{x}'\mid\mathbf{x})\Big]\right).$$
#
# Up to a constant that cancels, $\log q(\mathbf{x}'\mid\mathbf{x}) = -\lVert \mathbf{x}' - \mathbf{x} +
# \tfrac\epsilon2\nabla E(\mathbf{x})\rVert^2 / (2\epsilon)$. The proposal is *not* symmetric, so both $q$
# terms matter. Compute everything in log space and exponentiate at the end, so that large energy
# differences do not overflow.

# %%
def mala_acceptance_prob(x, x_prop, energy, step_size):
    """MALA's acceptance probability α(x → x') = min(1, exp[−E(x') + E(x) + log q(x|x') − log q(x'|x)]).

    x, x_prop: (batch, d) current points and proposals; energy: callable (batch, d) -> (batch,);
    step_size: ε > 0 of the Langevin proposal q(x'|x) = N(x − (ε/2)∇E(x), ε I).
    Returns a (batch,) tensor of probabilities in [0, 1], one per pair (x_i, x_prop_i).
    """
    if x.shape != x_prop.shape:
        raise ValueError(f"x and x_prop must have the same shape; got {tuple(x.shape)} and {tuple(x_prop.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with a flat energy (∇E = 0) the proposal is a symmetric random walk, so α = 1 for every pair.
x = torch.randn(5, 2, dtype=torch.float64)
x_prop = x + torch.randn(5, 2, dtype=torch.float64)
flat = lambda y: torch.zeros(len(y), dtype=y.dtype) + 0.0 * y.sum(1)
alpha = mala_acceptance_prob(x, x_prop, flat, 0.5)
print("alpha for a flat energy:", [round(a, 4) for a in alpha.tolist()])
assert torch.allclose(alpha, torch.ones(5, dtype=torch.float64)), "not yet right: expected all ones"


# %% [markdown]
# ## Exercise 4.3: the autocorrelation function of a chain (2 points)
#
# For a chain $x_1, \dots, x_n$ with mean $\bar x$, the autocovariance at lag $t$ is
# $\hat\gamma(t) = \frac1n \sum_{s=1}^{n-t} (x_s - \bar x)(x_{s+t} - \bar x)$ (divide by $n$ at every lag:
# this biased estimator is the standard choice because it keeps the sequence positive semi-definite), and
# the autocorrelation is $\hat\rho(t) = \hat\gamma(t) / \hat\gamma(0)$. A loop over the lags is fine; for
# long chains, the FFT computes all lags at once: zero-pad the centred chain to length $\ge 2n$, and
# $\hat\gamma$ is the inverse FFT of $|\mathrm{FFT}|^2$ divided by $n$ (`torch.fft.rfft` / `irfft`).

# %%
def autocorrelation(x):
    """The normalised autocorrelation ρ̂(t) = γ̂(t)/γ̂(0), t = 0..n−1, of a 1-D chain.

    γ̂(t) = (1/n) Σ_{s=1}^{n−t} (x_s − x̄)(x_{s+t} − x̄). x: (n,) float tensor. Returns an (n,) tensor with
    ρ̂(0) = 1.
    """
    if x.dim() != 1 or len(x) < 2:
        raise ValueError(f"x must be a 1-D chain of at least 2 steps; got shape {tuple(x.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: an alternating chain +1, −1, +1, ... has ρ̂(1) = −(n−1)/n and ρ̂(2) = (n−2)/n.
chain = torch.tensor([1.0, -1.0] * 5, dtype=torch.float64)
rho = autocorrelation(chain)
print("rho(0..3) =", [round(r, 3) for r in rho[:4].tolist()], " expected: [1.0, -0.9, 0.8, -0.7]")
assert torch.allclose(rho[:4], torch.tensor([1.0, -0.9, 0.8, -0.7], dtype=torch.float64)), "not yet right"


# %% [markdown]
# ## Exercise 4.4: what is a ULA chain worth? A derivation (3 points)
#
# On the Gaussian energy $E(x) = x^2/(2s^2)$ one ULA step is $x' = (1 - \tfrac{\epsilon}{2s^2})\,x +
# \sqrt\epsilon\,z$ (section 1). That is an AR(1) chain. Derive, on paper:
#
# 1. its autocorrelation $\rho(t)$ at stationarity (start from $\operatorname{Cov}(x_{t+1}, x_0)$ written
#    in terms of $\operatorname{Cov}(x_t, x_0)$);
# 2. its integrated autocorrelation time $\tau = 1 + 2\sum_{t \ge 1}\rho(t)$ as a function of $\epsilon$
#    and $s^2$ (a geometric series);
# 3. the effective sample size $n/\tau$ of $n$ consecutive stationary steps.
#
# Then write the result as a function. Predict before you code: at which step size is a ULA chain worth
# *more* than $n$ independent draws? (Your formula says; the check tests that case too.) The chain diverges
# for $\epsilon \ge 4s^2$: raise a `ValueError` there, as the skeleton does. The hidden checks compare your
# formula with simulated chains: the variance of a chain's mean must be the stationary variance divided by
# your ESS.

# %%
def ula_chain_ess(n, step_size, s2):
    """The effective sample size n / tau of n stationary ULA steps on E(x) = x^2 / (2 s2).

    n: number of steps (int > 0); step_size: eps > 0; s2: the target's variance s^2 > 0.
    Returns a float: n / tau, with tau the integrated autocorrelation time of the ULA chain.
    """
    if not 0 < step_size < 4 * s2:
        raise ValueError(f"ULA on this Gaussian is stable only for 0 < eps < 4 s2 = {4 * s2}; got {step_size}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: at eps = 2 s^2 a ULA step forgets its start completely (rho = 0): n steps are n draws.
print(f"ESS of 1000 steps at eps = 2, s2 = 1: {ula_chain_ess(1000, 2.0, 1.0):.1f} (expected 1000)")
assert abs(ula_chain_ess(1000, 2.0, 1.0) - 1000) < 1e-9, "not yet right: at eps = 2 s2 the steps are independent"
