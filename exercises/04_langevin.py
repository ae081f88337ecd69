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
# Four exercises: three functions that are pieces of Chapter 4 (a Langevin step, MALA's acceptance
# probability, split-$\hat R$), and one derivation that connects its first two sections, checked
# numerically. Replace every `raise NotImplementedError()` with
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
# ## Exercise 4.3: split-$\hat R$ (3 points)
#
# Section 2 of the chapter compares chains by the variance between them and the variance within them.
# Write the classic split-$\hat R$ for $m$ chains of $n$ draws each (a tensor of shape $(m, n)$):
#
# 1. Split every chain into its first and second half, each of $n' = \lfloor n/2 \rfloor$ draws (for odd
#    $n$ the middle draw is dropped): $2m$ half-chains. Splitting lets $\hat R$ catch a chain that drifts.
# 2. $W$ is the mean, over the $2m$ halves, of their sample variances (each divided by $n' - 1$).
# 3. $B = n' \times$ the sample variance (divided by $2m - 1$) of the $2m$ halves' means.
# 4. $\hat R = \sqrt{\big(\tfrac{n'-1}{n'}W + \tfrac{1}{n'}B\big) / W}$.
#
# Chains that agree give $\hat R$ close to 1 (slightly below 1 is possible for short chains); chains stuck
# in different places give $\hat R \gg 1$. The chapter's rank-normalised $\hat R$ is this same formula
# applied to rank-normalised draws.

# %%
def split_rhat(chains):
    """Split-R̂ of m chains of n draws: chains (m, n) float tensor with n >= 4. Returns a float.

    Halves of n' = n // 2 draws (the middle draw of odd chains dropped); W = mean within-half variance,
    B = n' × variance of the half means; R̂ = sqrt(((n' − 1)/n' W + B/n') / W).
    """
    if chains.dim() != 2 or chains.shape[1] < 4:
        raise ValueError(f"chains must have shape (m, n) with n >= 4; got {tuple(chains.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: in chains +1, -1, +1, -1 and -1, +1, -1, +1 every half has mean 0 (B = 0) and variance 2
# (W = 2), so R̂ = sqrt((n' - 1)/n') = sqrt(1/2): below 1, as short chains that agree can be.
chains = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]], dtype=torch.float64)
print(f"R-hat = {split_rhat(chains):.6f} (expected {math.sqrt(0.5):.6f})")
assert abs(split_rhat(chains) - math.sqrt(0.5)) < 1e-9, "not yet right: check W, B and the halves"


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
# Then write the result as a function. Predict before you code: at which step sizes is a ULA chain worth
# *more* than $n$ independent draws, and independent draws of what? (Your formula answers the first
# question, and the hidden checks test that case too; the second needs section 1.) The chain diverges for
# $\epsilon \ge 4s^2$: raise a `ValueError` there, as the skeleton does. The hidden checks compare your
# formula with simulated chains: the variance of a chain's mean must be the chain's stationary variance
# divided by your ESS.
#
# A caution for the answer to the prediction. The ESS measures how precisely the chain's average estimates
# the mean of the chain's *own* stationary law, $\mathcal N(0, v_\epsilon)$ with $v_\epsilon =
# s^2/(1-\epsilon/4s^2)$ (section 1), not of the target $\mathcal N(0, s^2)$. Where the ESS exceeds $n$,
# $v_\epsilon$ is more than $2s^2$: the draws are worth more than independent ones, of a law more than
# twice as wide as the target. A large ESS is no reason to choose a large step; the bias is the other half of the trade.

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
# Self-check: at eps = 2 s^2 a ULA step forgets its start completely (rho = 0): n steps are n independent
# draws, of N(0, v_eps) with v_eps = 2 s^2, twice the target's variance.
print(f"ESS of 1000 steps at eps = 2, s2 = 1: {ula_chain_ess(1000, 2.0, 1.0):.1f} (expected 1000)")
assert abs(ula_chain_ess(1000, 2.0, 1.0) - 1000) < 1e-9, "not yet right: at eps = 2 s2 the steps are independent"
