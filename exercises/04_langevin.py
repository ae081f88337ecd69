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
# Four functions to write, each one a piece of Chapter 4. Replace every `raise NotImplementedError()` with
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
# ## Exercise 4.3: sampling from a replay buffer (4 points)
#
# A replay buffer stores past negative samples. To start a batch of chains, each row is, independently,
# fresh noise with probability `reinit_fraction` (5 % in Du & Mordatch) and otherwise a uniformly chosen
# row of the buffer (with replacement). An empty buffer gives all-fresh rows. Return the batch and a bool
# mask saying which rows are fresh. Draw every random number from `generator` (`torch.rand`,
# `torch.randint` and `noise_fn` all take it).

# %%
def sample_from_buffer(buffer, batch_size, noise_fn, reinit_fraction, generator):
    """A batch of chain starts: each row fresh noise with probability reinit_fraction, else a random buffer row.

    buffer: (n_stored, d) tensor (n_stored may be 0); batch_size: number of rows to return;
    noise_fn: callable noise_fn(n, generator) -> (n, d) tensor of fresh noise; reinit_fraction in [0, 1];
    generator: torch.Generator for all randomness.
    Returns (x, fresh_mask): x a (batch_size, d) tensor, fresh_mask a (batch_size,) bool tensor, True where
    the row came from noise_fn.
    """
    if not 0.0 <= reinit_fraction <= 1.0:
        raise ValueError(f"reinit_fraction must lie in [0, 1]; got {reinit_fraction}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with reinit_fraction = 0.5 about half the rows are fresh (noise is negative, buffer rows are not).
buffer = torch.arange(20, dtype=torch.float64).reshape(10, 2)
noise_fn = lambda n, g: -1.0 - torch.rand(n, 2, generator=g, dtype=torch.float64)
x, fresh = sample_from_buffer(buffer, 1000, noise_fn, 0.5, torch.Generator().manual_seed(0))
print(f"fraction fresh: {float(fresh.double().mean()):.3f} (expected about 0.5 ± 0.06)")
assert x.shape == (1000, 2) and bool((x[fresh] < 0).all()) and bool((x[~fresh] >= 0).all()), "not yet right"
assert abs(float(fresh.double().mean()) - 0.5) < 0.06, "not yet right: the fraction is off"


# %% [markdown]
# ## Exercise 4.4: the autocorrelation function of a chain (2 points)
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
