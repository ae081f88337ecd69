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
# # Exercises for Chapter 6: score matching
#
# Three functions to write, each one a piece of Chapter 6, and one prediction to make before an experiment.
# Replace every `raise NotImplementedError()` with your code, then run the **self-check** cell below the
# exercise: it tries your function on one case whose answer you can verify by hand (or, for the prediction,
# runs the experiment). The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 06_score_matching.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 06_score_matching
import math

import torch

# %% [markdown]
# ## Exercise 6.1: the denoising score-matching target and loss (4 points)
#
# Perturb each data point with Gaussian noise, $\tilde{\mathbf{x}} = \mathbf{x} + \sigma\mathbf{z}$. The score of the
# perturbation kernel $q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x}) = \mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)$ is the
# DSM target
#
# $$\nabla_{\tilde{\mathbf{x}}} \log q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x}) = \frac{\mathbf{x} - \tilde{\mathbf{x}}}{\sigma^2},$$
#
# and the DSM loss regresses the model's score at the noisy point on it:
#
# $$\ell(\sigma) = \frac1B \sum_{b=1}^{B} \tfrac12 \left\| \mathbf{s}(\tilde{\mathbf{x}}_b) - \frac{\mathbf{x}_b - \tilde{\mathbf{x}}_b}{\sigma^2} \right\|^2 .$$
#
# The squared norm sums over the $d$ coordinates; the batch is averaged. The noise $\mathbf{z}$ is given.

# %%
def dsm_loss(score, x, sigma, z):
    """Denoising score-matching loss at one noise level, with the noise z given.

    x~ = x + sigma z,  target = (x - x~) / sigma^2,  loss = mean over the batch of 1/2 |score(x~) - target|^2.

    score: a callable mapping (B, d) points to (B, d) scores; x: (B, d) clean data; sigma: a float > 0;
    z: (B, d) standard normal noise. Returns a 0-dim tensor (keep it differentiable: no .item()).
    """
    if x.shape != z.shape:
        raise ValueError(f"z must have the shape of x {tuple(x.shape)}; got {tuple(z.shape)}.")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0; got {sigma}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check by hand: x = 0, z = (1, 0), sigma = 1 give x~ = (1, 0) and the target (x - x~)/sigma^2 = (-1, 0);
# the score s(y) = -y gives s(x~) = (-1, 0) too, so the loss is 0.
x = torch.zeros(1, 2, dtype=torch.float64)
z = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
value = float(dsm_loss(lambda y: -y, x, 1.0, z))
print(f"loss = {value:.6f}, expected 0")
assert abs(value) < 1e-12, "not yet right: check the target (x - x~)/sigma^2"
# and with sigma = 0.5 the target is -z/sigma = (-2, 0) while s(x~) = (-0.5, 0): loss = 1/2 * 1.5^2 = 1.125
value = float(dsm_loss(lambda y: -y, x, 0.5, z))
print(f"loss = {value:.6f}, expected 1.125")
assert abs(value - 1.125) < 1e-12, "not yet right: the target divides by sigma squared"


# %% [markdown]
# ## Exercise 6.2: the sliced score-matching estimator (4 points)
#
# Hyvärinen's objective $\mathbb{E}[\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s}(\mathbf{x}) + \tfrac12\|\mathbf{s}(\mathbf{x})\|^2]$ needs
# the trace of a $d\times d$ Jacobian. Sliced score matching replaces it with random directions $\mathbf{v}$:
#
# $$\hat J_S = \frac{1}{PB}\sum_{p=1}^{P}\sum_{b=1}^{B}\left[\mathbf{v}_{pb}^\top \nabla_{\mathbf{x}}\big(\mathbf{v}_{pb}^\top \mathbf{s}(\mathbf{x}_b)\big)
#   + \tfrac12 \big(\mathbf{v}_{pb}^\top \mathbf{s}(\mathbf{x}_b)\big)^2\right].$$
#
# The directions are given as a tensor `v` of shape $(P, B, d)$. Compute $\mathbf{v}^\top\nabla_{\mathbf{x}}(\mathbf{v}^\top\mathbf{s})$
# with **one** call of `torch.autograd.grad` on the sum of all the products $\mathbf{v}^\top\mathbf{s}$ (repeat `x` $P$ times,
# e.g. with `x.repeat(P, 1)`, so every direction has its own copy of the point). Pass `create_graph=True`, so
# that the estimator can itself be differentiated to train the model.

# %%
def sliced_sm_loss(score, x, v):
    """Sliced score-matching estimate with given directions v, differentiable in the model's parameters.

    mean over p, b of  v_pb^T grad_x (v_pb^T s(x_b)) + 1/2 (v_pb^T s(x_b))^2.

    score: a callable mapping (N, d) points to (N, d) scores; x: (B, d) data; v: (P, B, d) directions.
    Returns a 0-dim tensor that keeps autograd's graph (use create_graph=True).
    """
    if v.dim() != 3 or v.shape[1:] != x.shape:
        raise ValueError(f"v must have shape (P, {x.shape[0]}, {x.shape[1]}); got {tuple(v.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: for the linear score s(x) = -x the Jacobian is -I, so with v = (1, 0) at x = (2, 3) the
# estimate is v^T(-I)v + 1/2 (v^T s)^2 = -1 + 1/2 * 4 = 1.
estimate = sliced_sm_loss(lambda y: -y, torch.tensor([[2.0, 3.0]]), torch.tensor([[[1.0, 0.0]]]))
value = float(estimate.detach())  # detach: the estimate keeps autograd's graph
print(f"estimate = {value:.6f}, expected 1")
assert abs(value - 1.0) < 1e-6, "not yet right: v^T grad(v^T s) is -1 here, and 1/2 (v^T s)^2 is 2"


# %% [markdown]
# ## Exercise 6.3: one sweep of annealed Langevin dynamics (4 points)
#
# Given a noise-conditional score $\mathbf{s}(\mathbf{x}, \sigma)$ and noise levels $\sigma_1 > \dots > \sigma_L$, annealed
# Langevin dynamics (Song & Ermon 2019, Algorithm 1) runs $T$ Langevin steps at each level in turn, with a
# step size proportional to $\sigma_i^2$:
#
# $$\text{for } i = 1, \dots, L:\quad \alpha_i = \epsilon\,\frac{\sigma_i^2}{\sigma_L^2},\qquad
#   T \text{ times: } \mathbf{x} \leftarrow \mathbf{x} + \frac{\alpha_i}{2}\,\mathbf{s}(\mathbf{x}, \sigma_i) + \sqrt{\alpha_i}\,\mathbf{z},
#   \quad \mathbf{z}\sim\mathcal N(0, I).$$
#
# Draw each step's noise with `torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)`,
# and call the score as `score(x, sigma)` with `sigma` a Python float.

# %%
def annealed_langevin_sweep(score, x, sigmas, step_size, n_steps_each, generator):
    """Annealed Langevin dynamics over the levels ``sigmas`` (largest first); returns the final samples.

    score: callable (x (N, d), sigma float) -> (N, d); x: (N, d) starting points; sigmas: list of floats,
    decreasing; step_size: epsilon > 0 (the step at the last level); n_steps_each: T >= 1 steps per level;
    generator: a torch.Generator for the noise. Returns an (N, d) tensor.
    """
    if step_size <= 0 or n_steps_each < 1:
        raise ValueError(f"need step_size > 0 and n_steps_each >= 1; got {step_size}, {n_steps_each}.")
    sigmas = [float(s) for s in sigmas]
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with a zero score the sweep only adds noise, alpha_i per step, so the variance grows by
# T * sum_i alpha_i = 10 * (4 + 1) * 0.01 = 0.5 for sigmas (2, 1) and epsilon = 0.01.
out = annealed_langevin_sweep(lambda y, sigma: torch.zeros_like(y), torch.zeros(100_000, 1), [2.0, 1.0], 0.01, 10,
                              torch.Generator().manual_seed(0))
print(f"variance = {float(out.var()):.3f}, expected 0.500")
assert abs(float(out.var()) - 0.5) < 0.02, "not yet right: alpha_i = step_size * sigma_i^2 / sigma_L^2"


# %% [markdown]
# ## Exercise 6.4: predict where plain Langevin leaves the chains (3 points)
#
# Section 4 of the chapter ran plain Langevin dynamics with the *exact* score of
# $p = 0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$ (blurred by $\sigma = 0.5$; 1000 steps of
# $\epsilon = 0.05$) from 2000 chains started uniformly on the square $[-8, 8]^2$, and about half of them, not
# 80 %, ended near $(5, 5)$.
#
# **Before running anything**, predict the fraction of chains that end near $(5, 5)$ (on the side
# $x_1 + x_2 > 0$) when they start uniformly on another square $[a, b]^2$. Write your prediction as a formula
# in $a$ and $b$ (no simulation inside the function). Take the boundary between the two basins to be the
# diagonal $x_1 + x_2 = 0$: the chapter shows that it sits slightly off it, at $x_1 + x_2 \approx -0.17$, a
# correction that the checks neither need nor accept. Then run the self-check: it runs the experiment on
# three squares and prints your prediction beside what happened.
#
# *Hint:* where does a chain go from its starting point, and what fraction of the square is on each side?
# The sum of two independent uniform variables on $[a, b]$ has a triangular density on $[2a, 2b]$.

# %%
def predicted_fraction(a, b):
    """Predicted fraction of plain-Langevin chains, started uniformly on [a, b]^2, that end near (5, 5).

    a < b are floats. Returns a float in [0, 1], from a formula in a and b.
    """
    if not a < b:
        raise ValueError(f"need a < b; got a = {a}, b = {b}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: the experiment of section 4 on three squares (about a second).
from ebm_teach import make_generator
from ebm_teach.data import GaussianMixture
from ebm_teach.score import annealed_langevin, mixture_noisy_score

mixture = GaussianMixture.isotropic(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]), 1.0, [0.8, 0.2])
for a, b in [(-8.0, 8.0), (-6.0, 2.0), (-2.0, 9.0)]:
    start = a + (b - a) * torch.rand(2000, 2, generator=make_generator(0))
    x, _ = annealed_langevin(mixture_noisy_score(mixture), start, [0.5], 0.05, 1000, generator=make_generator(1))
    measured = float((x.sum(1) > 0).float().mean())
    prediction = float(predicted_fraction(a, b))
    print(f"square [{a:g}, {b:g}]^2: predicted {prediction:.3f}, measured {measured:.3f}")
    assert abs(prediction - measured) < 0.04, "not yet right: where does each chain end?"
