# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 6: Score matching
#
# Every method so far had to fight the partition function $Z(\theta)$: contrastive divergence estimates
# its gradient with MCMC samples (chapter 4), noise-contrastive estimation learns it as one more parameter
# (chapter 5). Score matching side-steps it. Instead of the density it fits the **score**, the gradient of the
# log-density with respect to the *input*,
#
# $$\mathbf{s}_\theta(\mathbf{x}) = \nabla_{\mathbf{x}} \log p_\theta(\mathbf{x})
#   = -\nabla_{\mathbf{x}} E_\theta(\mathbf{x}) - \underbrace{\nabla_{\mathbf{x}} \log Z(\theta)}_{=\,0},$$
#
# and $Z(\theta)$, a constant in $\mathbf{x}$, is gone. The price is that we must learn a vector field
# from samples without knowing the true one. This chapter shows three ways to do that and how to turn a
# learned score back into samples.
#
# **Learning objectives.** After this chapter you can
# 1. derive Hyvärinen's score-matching objective by integration by parts and check that it differs from the
#    Fisher divergence by a constant;
# 2. fit a Gaussian EBM by exact score matching, explain why the Jacobian trace makes it expensive in high
#    dimension, and replace it by sliced score matching;
# 3. train a score network by denoising score matching (DSM) and read its vector field;
# 4. explain why plain Langevin dynamics with a learned score gets the weights of separated modes wrong, and
#    fix it with a noise-conditional model and annealed Langevin dynamics;
# 5. train an *energy* by DSM and say what the energy buys you over a bare score network;
# 6. connect DSM to the noise-prediction network of diffusion models and to the score SDE.

# %%
import functools
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.data import GaussianMixture, ring_of_gaussians, toy_data
from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.evaluate import grid, log_partition_grid
from ebm_teach.plotting import (
    plot_annealing_snapshots,
    plot_cost_vs_dimension,
    plot_energy_2d,
    plot_objective_curves,
    plot_scalar_field,
    plot_score_field,
)
from ebm_teach.score import (
    EnergyScore,
    NoiseConditionalScoreNet,
    annealed_langevin,
    denoising_score_matching_loss,
    dsm_target,
    exact_score_matching_loss,
    fisher_divergence,
    geometric_sigmas,
    mixture_noisy_score,
    noise_conditional_dsm_loss,
    sliced_score_matching_loss,
    train_score_model,
)

SCALE = 1  # integer; raise it on a GPU for more training steps, samples and Langevin steps
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # small 2-D networks: extra CPU threads only add synchronisation overhead
f64 = dict(device=device, dtype=torch.float64)  # exact computations in double precision
f32 = dict(device=device, dtype=torch.float32)  # networks in single precision
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. The score does not see $Z$, and Hyvärinen's trick
#
# Adding a constant to an energy multiplies $e^{-E}$ and $Z$ by the same factor (chapter 1), so the density
# and its score do not change. For a network energy the package turns $E$ into a score with one call to
# autograd, `EnergyScore`:

# %%
print(inspect.getsource(EnergyScore.forward))
energy = MLPEnergy(dim=2, hidden=32).to(device)
x = torch.randn(5, 2, generator=make_generator(1, device), device=device)
shifted = EnergyScore(lambda y: energy(y) + 123.0)  # E + c: Z changes by e^{-c}, the score does not
with torch.no_grad():  # no graph needed: we only look at the values
    diff = float((EnergyScore(energy)(x) - shifted(x)).abs().max())
print(claim(diff == 0.0, f"score(E + 123) equals score(E) exactly: max |difference| = {diff:g}"))

# %% [markdown]
# The natural objective is the **Fisher divergence** between the model's score and the data's,
#
# $$F(\theta) = \tfrac12\, \mathbb{E}_{p}\left\|\mathbf{s}_\theta(\mathbf{x}) - \nabla_{\mathbf{x}}\log p(\mathbf{x})\right\|^2 .$$
#
# It needs the data score $\nabla_{\mathbf{x}} \log p$, which we never have. Expand the square: the term
# $\tfrac12\mathbb{E}_p\|\nabla\log p\|^2$ does not depend on $\theta$, and the cross term can be integrated
# by parts. In one dimension, with $p\,\partial_x \log p = p'$ and $p\,s_\theta \to 0$ at $\pm\infty$,
#
# $$-\mathbb{E}_p\left[s_\theta\, \partial_x \log p\right] = -\int s_\theta(x)\, p'(x)\, dx
#   = \int s_\theta'(x)\, p(x)\, dx = \mathbb{E}_p\left[s_\theta'(x)\right].$$
#
# In $d$ dimensions the same step for each coordinate gives **Hyvärinen's objective**
# (Hyvärinen, 2005)
#
# $$J(\theta) = \mathbb{E}_p\left[\operatorname{tr} \nabla_{\mathbf{x}} \mathbf{s}_\theta(\mathbf{x})
#   + \tfrac12 \|\mathbf{s}_\theta(\mathbf{x})\|^2\right]
#   = F(\theta) - \tfrac12\, \mathbb{E}_p\|\nabla_{\mathbf{x}} \log p(\mathbf{x})\|^2 ,$$
#
# which only needs samples from $p$. The constant is minus half the data's Fisher information; for
# $p = \mathcal N(m, s^2)$ it is $-1/(2s^2)$. Here is the package's version; the trace takes one backward pass
# per coordinate:

# %%
print(inspect.getsource(exact_score_matching_loss))

# %% [markdown]
# **Check it on a 1-D Gaussian.** The data are $\mathcal N(m, s^2)$ with $m = 0.5$, $s = 1.5$; the model is a
# Gaussian EBM with mean $\mu$ and variance $v$, so $s_\theta(x) = -(x-\mu)/v$. Both objectives are averages of
# quadratics in $x$, so on a sample whose mean and variance are *exactly* $m$ and $s^2$ (standardise it) the
# sample averages equal the expectations: the check below is exact, not Monte Carlo. The closed forms are
# $J = -1/v + ((m-\mu)^2 + s^2)/(2v^2)$ and $F = J + 1/(2s^2)$.

# %%
m, s = 0.5, 1.5
z = torch.randn(2000, 1, generator=make_generator(2, device), **f64)
x1d = m + s * (z - z.mean()) / z.std(unbiased=False)  # sample mean m, sample variance s^2 exactly
data_model = GaussianEBM(torch.tensor([m], **f64), torch.tensor([[1 / s**2]], **f64))


def objectives(mu, var):
    model = GaussianEBM(torch.tensor([mu], **f64), torch.tensor([[1 / var]], **f64))
    j = exact_score_matching_loss(model.score, x1d)
    f = fisher_divergence(model.score, data_model.score, x1d)
    return model, j, f


mus = torch.linspace(-2, 3, 41)
curves = {"Fisher divergence F": [], "Hyvärinen J": [], "J + 1/(2s²)": []}
for mu in mus.tolist():
    _, j, f = objectives(mu, 1.0)
    curves["Fisher divergence F"].append(float(f.detach()))
    curves["Hyvärinen J"].append(float(j.detach()))
    curves["J + 1/(2s²)"].append(float(j.detach()) + 1 / (2 * s**2))
gap = [f - j for f, j in zip(curves["Fisher divergence F"], curves["Hyvärinen J"])]
print(f"F - J over {len(mus)} values of mu: min {exact(min(gap), '.6f')}, max {exact(max(gap), '.6f')}; "
      f"1/(2 s^2) = {exact(1 / (2 * s**2), '.6f')}")

model, j, f = objectives(-1.0, 0.5)
grad_j = torch.autograd.grad(j, [model.mu, model.log_diag])
grad_f = torch.autograd.grad(f, [model.mu, model.log_diag])
print("at mu = -1, v = 0.5:  dJ/d(mu, log L) =", [exact(float(g), ".4f") for g in grad_j],
      "  dF/d(mu, log L) =", [exact(float(g), ".4f") for g in grad_f])
print(f"closed form J = {exact(-1 / 0.5 + ((m + 1) ** 2 + s**2) / (2 * 0.5**2), '.6f')}, "
      f"computed J = {exact(j.detach(), '.6f')}")
ax = plot_objective_curves(mus, curves, xlabel=r"model mean $\mu$ (variance $v = 1$)", dashed=["J + 1/(2s²)"],
                           title="J = F − const: same minimiser, same gradient")
ax.axvline(m, color="gray", lw=0.5)
plt.show()

# %% [markdown]
# The two objectives differ by the constant $1/(2s^2) = 0.222$ everywhere, so they have the same gradient
# and the same minimiser, $\mu = m$; but only $J$ can be computed from data.
#
# ## 2. Exact score matching on a 2-D Gaussian EBM, and its cost
#
# For the Gaussian EBM $E(\mathbf{x}) = \tfrac12(\mathbf{x}-\boldsymbol\mu)^\top\Lambda(\mathbf{x}-\boldsymbol\mu)$
# the score is $-\Lambda(\mathbf{x}-\boldsymbol\mu)$ and $\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s} = -\operatorname{tr}\Lambda$,
# so $J(\boldsymbol\mu, \Lambda) = -\operatorname{tr}\Lambda + \tfrac12\,\overline{\|\Lambda(\mathbf{x}-\boldsymbol\mu)\|^2}$
# on a sample. Setting its gradients to zero gives $\boldsymbol\mu = \bar{\mathbf{x}}$ and $\Lambda = S^{-1}$,
# the inverse of the sample covariance: for a Gaussian, score matching finds the maximum-likelihood answer
# without ever touching $Z$. Let the optimiser find it from a standard normal start.
#
# *How to read the printed figures.* A number from training or Monte Carlo is printed as, say,
# `0.047 (expected 0.06 ± 0.15)`: the range is the mean ± 4 standard deviations of that figure over 8 seeds,
# and the notebook stops with an error if the figure leaves it. Exact figures (closed forms, float64
# identities) are printed without a range.

# %%
true_mean = torch.tensor([1.0, -1.0], **f64)
true_cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], **f64)
x2d = GaussianEBM.from_moments(true_mean, true_cov).sample(1000 * SCALE, generator=make_generator(3, device))
x_bar = x2d.mean(0)
sample_precision = torch.linalg.inv((x2d - x_bar).T @ (x2d - x_bar) / len(x2d))

fits = {}
for name, objective in [
    ("exact SM", lambda mdl, xb, g: exact_score_matching_loss(mdl.score, xb)),
    ("sliced SM", lambda mdl, xb, g: sliced_score_matching_loss(mdl.score, xb, n_projections=4, generator=g)),
]:
    fits[name] = GaussianEBM.standard(2, **f64)
    train_score_model(fits[name], x2d, objective, n_steps=400, batch_size=len(x2d), lr=0.05,
                      generator=make_generator(4, device))


def show(name, mean, precision):
    mean = ", ".join(exact(v, ".3f") for v in mean.tolist())
    prec = "; ".join(", ".join(exact(v, ".3f") for v in row) for row in precision.tolist())
    print(f"{name:<26s} mu = [{mean}],  Lambda = [{prec}]")


show("true", true_mean, torch.linalg.inv(true_cov))
show("closed form (x_bar, S^-1)", x_bar, sample_precision)
with torch.no_grad():
    deviation = {name: max(float((fit.mu - x_bar).abs().max()), float((fit.precision - sample_precision).abs().max()))
                 for name, fit in fits.items()}
print(f"exact SM, 400 Adam steps: largest deviation from the closed form {expect(deviation['exact SM'], 0, 1e-6)}")
print(f"sliced SM, 400 Adam steps: largest deviation from the closed form {expect(deviation['sliced SM'], 0.06, 0.15)}")

# %% [markdown]
# Exact score matching lands on the closed-form answer; sliced score matching, introduced next, lands close to
# it (its objective is noisy). The catch of exact score matching is the trace: $\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s}$
# needs the $d$ diagonal entries of a $d\times d$ Jacobian, one backward pass each, so the cost grows like
# $d$ times a gradient. For a 784-pixel image that is 784 backward passes per step.
#
# **Sliced score matching** (Song et al., 2019) projects the score on random directions $\mathbf{v}$ with
# $\mathbb{E}[\mathbf{v}\mathbf{v}^\top] = I$:
#
# $$J_S(\theta) = \mathbb{E}_p\,\mathbb{E}_{\mathbf{v}}\left[\mathbf{v}^\top \nabla_{\mathbf{x}}\big(\mathbf{v}^\top\mathbf{s}_\theta(\mathbf{x})\big)
#   + \tfrac12\big(\mathbf{v}^\top \mathbf{s}_\theta(\mathbf{x})\big)^2\right].$$
#
# Since $\mathbb{E}_{\mathbf{v}}[\mathbf{v}^\top A \mathbf{v}] = \operatorname{tr} A$ (Hutchinson's estimator)
# and $\mathbb{E}_{\mathbf{v}}[(\mathbf{v}^\top\mathbf{s})^2] = \|\mathbf{s}\|^2$, $\mathbb{E}_{\mathbf{v}} J_S = J$ for every
# model, so its gradients are unbiased, and $\mathbf{v}^\top\nabla_{\mathbf{x}}(\mathbf{v}^\top\mathbf{s})$ costs one
# backward pass whatever $d$ is. Timing both on an MLP vector field $\mathbb{R}^d \to \mathbb{R}^d$:

# %% tags=["nbval-ignore-output"]
def seconds_per_call(fn, repeats=3):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


dims = [2, 8, 32, 128]
cost = {"exact SM (d backward passes)": [], "sliced SM (1 projection)": []}
seed_everything(1)
for d in dims:
    net = NoiseConditionalScoreNet(dim=d, hidden=128, n_layers=2).to(device)
    xd = torch.randn(128, d, **f32)
    score_d = functools.partial(net, sigma=1.0)  # one fixed noise level: a plain vector field
    cost["exact SM (d backward passes)"].append(
        seconds_per_call(lambda: exact_score_matching_loss(score_d, xd).backward()))
    cost["sliced SM (1 projection)"].append(
        seconds_per_call(lambda: sliced_score_matching_loss(score_d, xd).backward()))
for d, te, ts in zip(dims, *cost.values()):
    print(f"d = {d:4d}: exact {1e3 * te:7.1f} ms, sliced {1e3 * ts:6.1f} ms, ratio {te / ts:5.1f}")
plot_cost_vs_dimension(dims, cost, title="exact SM grows with d; sliced SM does not")
plt.show()

# %% [markdown]
# ## 3. Denoising score matching
#
# A third route avoids the Jacobian altogether (Vincent, 2011). Perturb each data point with Gaussian noise,
# $\tilde{\mathbf{x}} = \mathbf{x} + \sigma\mathbf{z}$, $\mathbf{z}\sim\mathcal N(0, I)$. The perturbation kernel
# $q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x}) = \mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)$ has a score we know:
#
# $$\nabla_{\tilde{\mathbf{x}}}\log q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x}) = \frac{\mathbf{x}-\tilde{\mathbf{x}}}{\sigma^2}
#   = -\frac{\mathbf{z}}{\sigma}.$$
#
# Regressing the model on this target,
# $\ell(\sigma) = \tfrac12\,\mathbb{E}\,\|\mathbf{s}_\theta(\tilde{\mathbf{x}}) - (\mathbf{x}-\tilde{\mathbf{x}})/\sigma^2\|^2$,
# is minimised by the average target at each $\tilde{\mathbf{x}}$, which is the score of the *noisy* data
# $q_\sigma = p * \mathcal N(0,\sigma^2 I)$: $\ell(\sigma)$ equals the Fisher divergence to $q_\sigma$ plus a constant.
# We learn the score of a slightly blurred data set, with no trace and no $Z$.

# %%
print(inspect.getsource(dsm_target))
print(inspect.getsource(denoising_score_matching_loss).split('"""')[-1])

# %% [markdown]
# Train a score network on the eight-Gaussian ring (`toy_data("ring8")`, std 0.5 around a circle of radius 4)
# at $\sigma = 0.5$. The ring is a Gaussian mixture, so `mixture_noisy_score` gives the exact score of
# $q_\sigma$ to compare with. The loss does not go to zero: its minimum is the constant above, and the exact
# score attains it.

# %%
ring = ring_of_gaussians(8, 4.0, 0.5).to(dtype=torch.float32)
exact_ring = mixture_noisy_score(ring)
sigma = 0.5
x_ring = toy_data("ring8", 4000 * SCALE, seed=1, device=device)
x_ring_test = toy_data("ring8", 4000, seed=2, device=device)
noisy_test = x_ring_test + sigma * torch.randn(x_ring_test.shape, generator=make_generator(5, device), **f32)


def relative_fisher(score, exact, x, sigma):
    """Fisher divergence to the exact noisy score, relative to 1/2 E|exact|^2 (0 = perfect, 1 = s = 0)."""
    with torch.no_grad():
        num = fisher_divergence(score, lambda y: exact(y, sigma), x)
        return float(num / (0.5 * (exact(x, sigma) ** 2).sum(1).mean()))


def dsm_at(sigma):
    return lambda mdl, xb, g: denoising_score_matching_loss(lambda y: mdl(y, sigma), xb, sigma, generator=g)


seed_everything(0)
score_net = NoiseConditionalScoreNet(dim=2, hidden=64, n_layers=3).to(device)
hist = train_score_model(score_net, x_ring, dsm_at(sigma), n_steps=1000 * SCALE, lr=2e-3,
                         generator=make_generator(6, device))
with torch.no_grad():
    g = make_generator(7, device)
    loss_net = denoising_score_matching_loss(lambda y: score_net(y, sigma), x_ring_test, sigma, generator=g)
    g = make_generator(7, device)  # the same noise for the exact score
    loss_exact = denoising_score_matching_loss(lambda y: exact_ring(y, sigma), x_ring_test, sigma, generator=g)
print(f"DSM loss on test data: exact noisy score {expect(loss_exact, 2.4, 0.2)}, "
      f"network minus exact {expect(loss_net - loss_exact, 0.08, 0.09)}")
rel_net = relative_fisher(lambda y: score_net(y, sigma), exact_ring, noisy_test, sigma)
print(f"relative Fisher divergence to the exact score of q_sigma: {expect(rel_net, 0.05, 0.04)}")

# %%
bounds = ((-6.5, 6.5), (-6.5, 6.5))
noisy_log_prob = ring.convolve(sigma).log_prob
fig, axes = plt.subplots(1, 2, figsize=(9, 4.3))
with torch.no_grad():
    plot_score_field(lambda y: score_net(y, sigma), bounds, log_density=noisy_log_prob, ax=axes[0],
                     title=r"learned $s_\theta(x)$ by DSM, $\sigma = 0.5$", device=device)
    plot_score_field(lambda y: exact_ring(y, sigma), bounds, log_density=noisy_log_prob, ax=axes[1],
                     title=r"exact score of $q_\sigma = p * N(0, \sigma^2 I)$", device=device)
plt.show()

# %% [markdown]
# The arrows point uphill in log-density, towards the nearest mode. Near the modes, where the training data
# are, the two fields agree; in the empty centre and at the edges the learned field only guesses, since DSM
# never sees a noisy point there. That weakness is the subject of the next section.
#
# ## 4. The low-density problem, and annealed Langevin dynamics
#
# With a score we can sample by Langevin dynamics, $\mathbf{x} \leftarrow \mathbf{x} + \tfrac{\epsilon}{2}\mathbf{s}(\mathbf{x}) + \sqrt{\epsilon}\,\mathbf{z}$
# (chapter 4's update with $-\nabla E$ replaced by $\mathbf{s}$). Song & Ermon (2019) point out two problems
# when the data have modes separated by empty space:
# 1. the learned score is poor where there are no data (we just saw it), and the chains start there;
# 2. even with the exact score, Langevin chains do not cross a wide empty region in any reasonable time, so
#    each chain stays in the mode whose basin it starts in. The relative **weights** of the modes never enter.
#
# Take the mixture $p = 0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$ and start 2000 chains uniformly
# on $[-8, 8]^2$. About half of them start on each side of the diagonal.

# %%
mixture = GaussianMixture.isotropic(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]), 1.0, [0.8, 0.2]).to(device=device, dtype=torch.float32)
exact_mix = mixture_noisy_score(mixture)
x_start = torch.rand(2000 * SCALE, 2, generator=make_generator(8, device), **f32) * 16 - 8


def near_first_mode(x):
    """Fraction of points on the (5, 5) side of the diagonal x1 + x2 = 0."""
    return float((x.sum(1) > 0).float().mean())


sigmas = geometric_sigmas(10.0, 0.5, 10, **f32)
step_size, n_steps_each = 0.05, 100 * SCALE
print("noise levels:", ", ".join(exact(v, ".2f", rel=1e-5) for v in sigmas.tolist()))
print(f"start: fraction near (5, 5) = {expect(near_first_mode(x_start), 0.5, 0.045)}")
x_plain, _ = annealed_langevin(exact_mix, x_start, sigmas[-1:], step_size, 10 * n_steps_each,
                               generator=make_generator(9, device))
x_anneal, info_exact = annealed_langevin(exact_mix, x_start, sigmas, step_size, n_steps_each,
                                         generator=make_generator(9, device))
print(f"exact score, plain Langevin ({10 * n_steps_each} steps at sigma = 0.5): "
      f"{expect(near_first_mode(x_plain), 0.51, 0.035)}")
print(f"exact score, annealed Langevin ({len(sigmas)} levels x {n_steps_each} steps): "
      f"{expect(near_first_mode(x_anneal), 0.8, 0.03)}")

# %% [markdown]
# Plain Langevin keeps the 50/50 split of its start, although the score is exact. **Annealed Langevin**
# (Song & Ermon 2019, Algorithm 1) starts with a large noise level $\sigma_1$, where $q_{\sigma_1}$ is one broad
# blob that the chains explore freely and that already carries the 0.8/0.2 imbalance, and lowers $\sigma$ step
# by step, so that each level starts from samples of the previous one:
#
# $$\text{for } i = 1, \dots, L:\quad \alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2,\qquad
#   T \text{ times: } \mathbf{x} \leftarrow \mathbf{x} + \tfrac{\alpha_i}{2}\,\mathbf{s}(\mathbf{x}, \sigma_i) + \sqrt{\alpha_i}\,\mathbf{z}.$$
#
# The step $\alpha_i \propto \sigma_i^2$ keeps the ratio of step to the width of $q_{\sigma_i}$ the same at every
# level. The fraction lands near 0.8; what is missing is mass that was left behind on the wrong side when the
# gap between the modes opened, and it shrinks with more steps per level.

# %%
print(inspect.getsource(annealed_langevin).split('"""')[-1])

# %% [markdown]
# **Now with a learned score.** A *noise-conditional* network $\mathbf{s}_\theta(\mathbf{x}, \sigma)$ learns all
# levels at once. For a geometric sequence $\sigma_1 > \dots > \sigma_L$ the loss weights level $i$ by
# $\lambda(\sigma_i) = \sigma_i^2$:
#
# $$\mathcal L(\theta) = \frac1L\sum_{i=1}^L \sigma_i^2\, \tfrac12\,\mathbb{E}\,\Big\|\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma_i) + \frac{\mathbf{z}}{\sigma_i}\Big\|^2
#   = \frac1L\sum_{i=1}^L \tfrac12\,\mathbb{E}\,\big\|\sigma_i\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma_i) + \mathbf{z}\big\|^2 ,$$
#
# which makes every level's term of order one (the target $\mathbf{z}/\sigma$ has size $\sqrt d/\sigma$). Each
# example draws its own level, so one batch trains all of them:

# %%
print(inspect.getsource(noise_conditional_dsm_loss).split('"""')[-1])
x_mix = mixture.sample(4000 * SCALE, generator=make_generator(10, device))
seed_everything(0)
nc_net = NoiseConditionalScoreNet(dim=2, hidden=128, n_layers=3).to(device)
hist_nc = train_score_model(nc_net, x_mix,
                            lambda mdl, xb, g: noise_conditional_dsm_loss(mdl, xb, sigmas, generator=g),
                            n_steps=2000 * SCALE, lr=2e-3, generator=make_generator(11, device))
print(f"noise-conditional DSM loss: first 50 steps {expect(hist_nc['loss'][0], 0.49, 0.04)}, "
      f"last 50 steps {expect(hist_nc['loss'][-1], 0.35, 0.02)}")
for i, want, tol in ((0, 0.015, 0.02), (4, 0.012, 0.007), (9, 0.04, 0.1)):
    level = float(sigmas[i])
    noisy = x_mix[:2000] + level * torch.randn(2000, 2, generator=make_generator(12, device), **f32)
    rel = relative_fisher(lambda y: nc_net(y, level), exact_mix, noisy, level)
    print(f"sigma = {exact(level, '5.2f', rel=1e-5)}: relative Fisher divergence to the exact noisy score "
          f"{expect(rel, want, tol)}")

# %% [markdown]
# Averaged over the data, the network is accurate at every level. Where there are no data it is not: the map
# below shows the relative error $\|\mathbf{s}_\theta - \nabla\log q_\sigma\| / \|\nabla\log q_\sigma\|$ at the
# smallest level, with the density's contours in white.

# %%
sigma_min = float(sigmas[-1])
bounds_mix = ((-9, 9), (-9, 9))


def relative_error(y):
    exact = exact_mix(y, sigma_min)
    return ((nc_net(y, sigma_min) - exact).norm(dim=1) / exact.norm(dim=1)).clamp(max=1.0)


plot_scalar_field(relative_error, bounds_mix, log_density=lambda y: mixture.convolve(sigma_min).log_prob(y),
                  title=rf"relative score error at $\sigma$ = {sigma_min:.1f}", label="relative error (capped at 1)",
                  device=device, vmax=1.0)
plt.show()

# %% [markdown]
# Small where the data are, large in the empty band between the modes and in the corners, where most chains
# start. Now sample with the learned score: plain Langevin at the smallest level, and annealed Langevin.

# %%
x_plain_nn, _ = annealed_langevin(nc_net, x_start, sigmas[-1:], step_size, 10 * n_steps_each,
                                  generator=make_generator(13, device))
x_anneal_nn, info_nn = annealed_langevin(nc_net, x_start, sigmas, step_size, n_steps_each,
                                         generator=make_generator(13, device))
print(f"learned score, plain Langevin:    fraction near (5, 5) = {expect(near_first_mode(x_plain_nn), 0.47, 0.12)}")
print(f"learned score, annealed Langevin: fraction near (5, 5) = {expect(near_first_mode(x_anneal_nn), 0.77, 0.18)}"
      "   (true weight 0.8)")
plot_annealing_snapshots(info_nn.x_levels, sigmas, levels=[0, 3, 5, 9], bounds=((-16, 16), (-16, 16)),
                         title="annealed Langevin with the learned score: the 0.8/0.2 split appears as sigma falls")
plt.show()

# %% [markdown]
# ## 5. An energy trained by denoising score matching
#
# Nothing in DSM asks the score to be a free vector field. Take an energy network $E_\theta$ and use
# $\mathbf{s}_\theta = -\nabla_{\mathbf{x}} E_\theta$ in the same loss (`EnergyScore` keeps autograd's graph, so the
# loss trains $E_\theta$'s parameters through the gradient). Train both on the ring at $\sigma = 0.5$ for the
# same number of steps.

# %%
seed_everything(0)
energy_model = EnergyScore(MLPEnergy(dim=2, hidden=64, n_layers=3)).to(device)
start = time.perf_counter()
train_score_model(energy_model, x_ring, dsm_at(sigma), n_steps=1000 * SCALE, lr=2e-3,
                  generator=make_generator(6, device))
seconds_energy = time.perf_counter() - start
start = time.perf_counter()
train_score_model(NoiseConditionalScoreNet(2, 64, 3).to(device), x_ring, dsm_at(sigma), n_steps=1000 * SCALE,
                  lr=2e-3, generator=make_generator(6, device))
seconds_net = time.perf_counter() - start
rel_energy = relative_fisher(energy_model, exact_ring, noisy_test, sigma)
print(f"relative Fisher divergence: score network {expect(rel_net, 0.05, 0.04)}, "
      f"energy network {expect(rel_energy, 0.05, 0.05)}")

# %% tags=["nbval-ignore-output"]
print(f"training time for {1000 * SCALE} steps: score network {seconds_net:.1f} s, energy network {seconds_energy:.1f} s "
      "(the energy's score is a gradient, so each step differentiates twice)")

# %% [markdown]
# Both reach a relative Fisher divergence of about 0.05 (the expected ranges are mean ± 4 standard deviations
# over 8 seeds, and they overlap); the energy version costs a second backward pass. What it buys is
# the energy itself. In two dimensions we can normalise it by quadrature (chapter 1) and get a proper
# density $p_\theta = e^{-E_\theta}/Z_\theta$ of the noisy data, with a test log-likelihood to compare with the truth.
# A score network has no such number to offer.

# %%
learned_energy = energy_model.energy
with torch.no_grad():
    log_z = log_partition_grid(learned_energy, [(-9, 9), (-9, 9)], 300, device=device, dtype=torch.float32)
    loglik_model = float(-learned_energy(noisy_test).mean()) - log_z
    loglik_true = float(ring.convolve(sigma).log_prob(noisy_test).mean())
print(f"mean test log-likelihood of q_sigma: learned energy {expect(loglik_model, -4.2, 0.14)}, "
      f"truth {expect(loglik_true, -4.14, 0.04)}")
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plot_energy_2d(learned_energy, bounds, ax=axes[0], title=r"$e^{-E_\theta}/Z_\theta$ learned by DSM", device=device)
plot_energy_2d(lambda y: -ring.convolve(sigma).log_prob(y), bounds, ax=axes[1], title=r"true $q_\sigma$", device=device)
fig.tight_layout()
plt.show()

# %% [markdown]
# Energies also **compose**: adding an energy multiplies densities (a product of experts, chapter 1). Put an
# expert $E_c(\mathbf{x}) = \|\mathbf{x} - (0, 4)\|^2 / (2\cdot 2^2)$, a wide Gaussian around the top of the ring,
# on the learned energy. Because we have energies, quadrature gives the composed model's exact mass in the three
# top modes, and that number *checks a sampler*. Langevin chains of $-\nabla(E_\theta + E_c)$ started on the ring
# data stay in the modes they start in (section 4's mixing problem again) and miss it. Started instead from the
# ring data resampled with weights $\propto e^{-E_c(\mathbf{x})}$ (importance resampling: those points follow
# data $\times$ expert, which already has the right mode weights), the chains only have to adjust within modes.

# %%
top = torch.tensor([0.0, 4.0], **f32)


def composed(y):
    return learned_energy(y) + ((y - top) ** 2).sum(1) / (2 * 2.0**2)


def in_top(y):
    """1 for points in the three top modes (at 45°, 90° and 135°), else 0."""
    return (y[:, 1] > 4.0 * math.cos(math.pi / 4) - 1.0).float()


pts, _, _ = grid([(-9, 9), (-9, 9)], 300, **f32)
with torch.no_grad():
    p_grid = torch.softmax(-composed(pts), 0)
mass_top = float((p_grid * in_top(pts)).sum())
g = make_generator(14, device)
with torch.no_grad():
    weights = torch.softmax(-((x_ring - top) ** 2).sum(1) / (2 * 2.0**2), 0)  # e^{-E_c}, normalised
resampled = x_ring[torch.multinomial(weights, 2000, replacement=True, generator=g)]
x_stuck, _ = annealed_langevin(EnergyScore(composed), x_ring[:2000], [1.0], 0.02, 300 * SCALE, generator=g)
x_comp, _ = annealed_langevin(EnergyScore(composed), resampled, [1.0], 0.02, 300 * SCALE, generator=g)
print("mass in the top three modes:")
print(f"  ring data alone {expect(in_top(x_ring).mean(), 0.37, 0.025)}")
print(f"  composed model, by quadrature {expect(mass_top, 0.95, 0.045)}")
print(f"  Langevin from the ring data {expect(in_top(x_stuck).mean(), 0.54, 0.07)}")
print(f"  Langevin from the resampled data {expect(in_top(x_comp).mean(), 0.945, 0.03)}")
plot_energy_2d(composed, ((-6.5, 6.5), (-3.5, 8.5)), samples=x_comp[::2],
               title=r"$E_\theta + E_c$: the ring times a Gaussian expert", device=device)
plt.show()

# %% [markdown]
# ## 6. Bridge to diffusion models
#
# DSM with many noise levels *is* the training objective of diffusion models. In DDPM (Ho et al., 2020) a
# network $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ predicts the noise in
# $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$ with the loss
# $\mathbb{E}\|\boldsymbol\epsilon_\theta - \boldsymbol\epsilon\|^2$. The kernel's score is
# $-\boldsymbol\epsilon/\sqrt{1-\bar\alpha_t}$, so that loss is our $\sigma^2$-weighted DSM with
# $\sigma_t = \sqrt{1-\bar\alpha_t}$ (for a kernel centred at $\sqrt{\bar\alpha_t}\,\mathbf{x}_0$ instead of $\mathbf{x}_0$), and
#
# $$\boldsymbol\epsilon_\theta(\mathbf{x}_t, t) = -\sqrt{1-\bar\alpha_t}\;\mathbf{s}_\theta(\mathbf{x}_t, t):$$
#
# the noise predictor is a scaled score. Our noise-conditional network is built the same way: its raw output is
# $\sigma\,\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma)$, a prediction of $-\mathbf{z}$. The best possible prediction
# is $\mathbb{E}[\mathbf{z}\mid\tilde{\mathbf{x}}] = -\sigma\nabla\log q_\sigma(\tilde{\mathbf{x}})$, so the exact score
# gives the lowest achievable error:

# %%
level = float(sigmas[4])
z_test = torch.randn(x_mix[:2000].shape, generator=make_generator(15, device), **f32)
x_noisy = x_mix[:2000] + level * z_test
with torch.no_grad():
    eps_net = -level * nc_net(x_noisy, level)
    eps_best = -level * exact_mix(x_noisy, level)
print(f"sigma = {exact(level, '.2f', rel=1e-5)}: mean squared error of the noise prediction per coordinate:")
print(f"  network {expect(((eps_net - z_test) ** 2).mean(), 0.17, 0.045)}, "
      f"exact score {expect(((eps_best - z_test) ** 2).mean(), 0.16, 0.045)}, "
      f"predicting 0: {expect((z_test**2).mean(), 1.0, 0.08)}")

# %% [markdown]
# **The score SDE in two lines** (Song et al., 2021). Letting the number of levels grow, the noising becomes
# the stochastic differential equation $d\mathbf{x} = \sqrt{d\sigma^2(t)/dt}\; d\mathbf{w}$, and it runs backwards
# in time ($dt < 0$) as
#
# $$d\mathbf{x} = -\frac{d\sigma^2(t)}{dt}\,\nabla_{\mathbf{x}}\log q_{\sigma(t)}(\mathbf{x})\,dt + \sqrt{\frac{d\sigma^2(t)}{dt}}\; d\bar{\mathbf{w}},$$
#
# whose only unknown is the score. An Euler step from $\sigma_k$ down to $\sigma_{k+1}$ is two lines. Start from
# samples of the broad $q_{\sigma_1}$ (here data plus noise; a diffusion model starts from $\mathcal N(0, \sigma_1^2 I)$,
# which is close to it when $\sigma_1$ is large) and step down through 200 levels, with the exact noisy scores
# and with our noise-conditional network, which was trained on 10 of them only:

# %%
fine = geometric_sigmas(10.0, 0.5, 200 * SCALE, **f32).tolist()
for name, score, want, tol in [("exact score", exact_mix, 0.8, 0.03), ("learned score", nc_net, 0.79, 0.075)]:
    g = make_generator(16, device)
    x = mixture.sample(2000, generator=g) + fine[0] * torch.randn(2000, 2, generator=g, **f32)  # q at sigma_1
    with torch.no_grad():
        for s_hi, s_lo in zip(fine[:-1], fine[1:]):
            dvar = s_hi**2 - s_lo**2
            x = x + dvar * score(x, s_hi) + math.sqrt(dvar) * torch.randn(x.shape, generator=g, **f32)
    print(f"reverse SDE, {name}: fraction near (5, 5) = {expect(near_first_mode(x), want, tol)}")

# %% [markdown]
# The reverse SDE transports $q_{\sigma_1}$ to $q_{\sigma_L}$ and keeps the weights, up to the error of its Euler
# steps; annealed Langevin instead re-equilibrates at each of a few fixed levels. Both need nothing but the score.
#
# ## Summary
#
# * The score $\nabla_{\mathbf{x}}\log p$ does not involve $Z$. Hyvärinen's objective
#   $\mathbb{E}_p[\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s} + \tfrac12\|\mathbf{s}\|^2]$ is the Fisher divergence minus a
#   constant, computable from samples; on a Gaussian it recovers $\bar{\mathbf{x}}$ and $S^{-1}$ exactly.
# * Its Jacobian trace costs $d$ backward passes; sliced score matching estimates it with random projections
#   in one pass, without bias.
# * Denoising score matching regresses on $(\mathbf{x}-\tilde{\mathbf{x}})/\sigma^2 = -\mathbf{z}/\sigma$ and learns the
#   score of the noise-blurred data, with no derivatives of the model at all.
# * Learned scores are poor where there are no data, and Langevin chains do not cross empty regions, so plain
#   Langevin gets mode weights wrong; a noise-conditional model with the $\sigma^2$-weighted loss and annealed
#   Langevin from large to small $\sigma$ recovers them.
# * Training an energy by DSM costs a second backward pass and returns an energy you can normalise, compare and
#   compose.
# * The noise-prediction network of a diffusion model is a scaled score, $\boldsymbol\epsilon_\theta = -\sigma\,\mathbf{s}_\theta$.
#
# **Next:** chapter 7 turns a classifier into an energy-based model (JEM) and asks what the energy of an
# image says about its label, its calibration, and whether it is out of distribution.
