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
# 3. derive why denoising score matching (DSM) learns the score of the noisy data, train a score network
#    with it, and turn the score into a denoiser with Tweedie's formula;
# 4. explain why plain Langevin dynamics with a learned score gets the weights of separated modes wrong, fix
#    it with a noise-conditional model and annealed Langevin dynamics, choose its noise levels, step size and
#    number of steps, and stabilise the model with an average of its weights;
# 5. train an *energy* by DSM, measure how little score matching sees of mode weights, and compose energies
#    by AND, OR and NOT;
# 6. connect DSM to the noise-prediction network of diffusion models and to the score SDE.

# %%
import copy
import functools
import inspect
import itertools
import math
import time

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import GaussianMixture, ring_of_gaussians, toy_data
from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.evaluate import grid, log_partition_grid
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting import (
    plot_annealing_snapshots,
    plot_cost_vs_dimension,
    plot_density_pair,
    plot_energy_2d,
    plot_log_density_2d,
    plot_objective_curves,
    plot_scalar_field,
    plot_score_field,
)
from ebm_teach.score import (
    EnergyScore,
    NoiseConditionalScoreNet,
    annealed_langevin,
    annealed_variance_ratio,
    choose_step_size,
    denoising_score_matching_loss,
    dsm_target,
    ema_update,
    exact_score_matching_loss,
    fisher_divergence,
    geometric_sigmas,
    mixture_noisy_score,
    noise_conditional_dsm_loss,
    sigma_max_rule,
    sigma_ratio_rule,
    sliced_score_matching_loss,
    train_score_model,
    tweedie_denoise,
)

SCALE = 1  # integer; raise it on a GPU for more training steps, samples and Langevin steps
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # small 2-D networks: more CPU threads only add synchronisation
f64 = {"device": device, "dtype": torch.float64}  # exact computations in double precision
f32 = {"device": device, "dtype": torch.float32}  # networks in single precision
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
shifted = EnergyScore(lambda y: energy(y) + 123.0)  # E + c: Z changes by e^{-c}, the score not
with torch.no_grad():  # no graph needed: we only look at the values
    diff = float((EnergyScore(energy)(x) - shifted(x)).abs().max())
print(claim(diff == 0.0, f"score(E + 123) equals score(E): max |difference| = {diff:g}"))

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
# $p = \mathcal N(m, s^2)$ it is $-1/(2s^2)$. The integration by parts needs $p\,s_\theta \to 0$ at the edge of the
# data's support, and a density with a gradient. Data on a bounded set (pixels in $[0, 1]$) or discrete data
# break that; ratio matching (Hyvärinen, 2007) adapts the idea to binary data, and generalised score matching
# (Lyu, 2009) replaces the gradient by other linear operators. Here is the package's version; the trace takes
# one backward pass per coordinate:

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
x1d = m + s * (z - z.mean()) / z.std(unbiased=False)  # sample mean m, variance s^2 exactly
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
print(f"F - J over {len(mus)} values of mu: min {exact(min(gap), '.6f')}, "
      f"max {exact(max(gap), '.6f')}; 1/(2 s^2) = {exact(1 / (2 * s**2), '.6f')}")

model, j, f = objectives(-1.0, 0.5)
grad_j = torch.autograd.grad(j, [model.mu, model.log_diag])
grad_f = torch.autograd.grad(f, [model.mu, model.log_diag])
print("at mu = -1, v = 0.5:  dJ/d(mu, log L) =", [exact(float(g), ".4f") for g in grad_j],
      "  dF/d(mu, log L) =", [exact(float(g), ".4f") for g in grad_f])
print(f"closed form J = {exact(-1 / 0.5 + ((m + 1) ** 2 + s**2) / (2 * 0.5**2), '.6f')}, "
      f"computed J = {exact(j.detach(), '.6f')}")
ax = plot_objective_curves(mus, curves, xlabel=r"model mean $\mu$ (variance $v = 1$)",
                           dashed=["J + 1/(2s²)"],
                           title="J = F − const: same minimiser and gradient")
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
# `0.047 (expected 0.06 ± 0.15)`: the range is about the mean ± 4 standard deviations of that figure over several seeds,
# and the notebook stops with an error if the figure leaves it. Exact figures (closed forms, float64
# identities) are printed without a range.

# %%
true_mean = torch.tensor([1.0, -1.0], **f64)
true_cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], **f64)
x2d = GaussianEBM.from_moments(true_mean, true_cov).sample(1000 * SCALE,
                                                           generator=make_generator(3, device))
x_bar = x2d.mean(0)
sample_precision = torch.linalg.inv((x2d - x_bar).T @ (x2d - x_bar) / len(x2d))

fit = GaussianEBM.standard(2, **f64)
train_score_model(fit, x2d, lambda mdl, xb, g: exact_score_matching_loss(mdl.score, xb),
                  n_steps=400, batch_size=len(x2d), lr=0.05, generator=make_generator(4, device))


def show(name, mean, precision):
    mean = ", ".join(exact(v, ".3f") for v in mean.tolist())
    prec = "; ".join(", ".join(exact(v, ".3f") for v in row) for row in precision.tolist())
    print(f"{name:<26s} mu = [{mean}],  Lambda = [{prec}]")


def deviation(fit):
    """The largest |difference| of a fit's mean and precision from (x_bar, S^-1)."""
    with torch.no_grad():
        return max(float((fit.mu - x_bar).abs().max()),
                   float((fit.precision - sample_precision).abs().max()))


show("true", true_mean, torch.linalg.inv(true_cov))
show("closed form (x_bar, S^-1)", x_bar, sample_precision)
print(f"exact SM after 400 Adam steps, largest deviation from the closed form "
      f"{expect(deviation(fit), 0, 1e-6)}")

# %% [markdown]
# Exact score matching lands on the closed-form answer. The catch is the trace: $\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s}$
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
# backward pass whatever $d$ is. The price is variance: $\mathbf{v}^\top A\mathbf{v}$ varies from direction to
# direction. Rademacher directions ($\pm1$ entries) give Hutchinson's estimator a smaller variance than
# Gaussian ones (Hutchinson, 1990), and the second term can be replaced by its exact average
# $\tfrac12\|\mathbf{s}\|^2$ ("SSM-VR", Song et al. 2019); `sliced_score_matching_loss` has both (`projection=`,
# `variance_reduction=`). Here it is on the same data with four Gaussian directions per point:

# %%
fit_sliced = GaussianEBM.standard(2, **f64)
train_score_model(fit_sliced, x2d,
                  lambda mdl, xb, g: sliced_score_matching_loss(mdl.score, xb, n_projections=4,
                                                                generator=g),
                  n_steps=400, batch_size=len(x2d), lr=0.05, generator=make_generator(4, device))
show("sliced SM", fit_sliced.mu.detach(), fit_sliced.precision.detach())
print("sliced SM, largest deviation from the closed form "
      f"{expect(deviation(fit_sliced), 0.06, 0.15)}")

# %% [markdown]
# Sliced score matching lands close to the closed form, not on it: its objective is a noisy estimate, so Adam's
# last iterate jitters around the minimiser. Timing both on an MLP vector field $\mathbb{R}^d \to \mathbb{R}^d$:

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
        seconds_per_call(lambda f=score_d, x=xd: exact_score_matching_loss(f, x).backward()))
    cost["sliced SM (1 projection)"].append(
        seconds_per_call(lambda f=score_d, x=xd: sliced_score_matching_loss(f, x).backward()))
for d, te, ts in zip(dims, *cost.values()):
    print(f"d = {d:4d}: exact {1e3 * te:6.1f} ms, sliced {1e3 * ts:5.1f} ms, ratio {te / ts:.0f}")
plot_cost_vs_dimension(dims, cost, title="time per loss and gradient on this machine")
plt.show()

# %% [markdown]
# The exact objective's time grows about in proportion to $d$ (the dotted line), since it takes $d$ backward
# passes. The sliced one grows only as fast as the cost of one gradient, which rises with $d$ as well: the
# network's first layer has $d$ inputs. (The timings are this machine's; the ratio between the two is what
# carries over.)
#
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
# needs no trace and no $Z$:

# %%
print(inspect.getsource(dsm_target))
print(inspect.getsource(denoising_score_matching_loss).split('"""')[-1])

# %% [markdown]
# **Why the target is right: DSM is the Fisher divergence to the noisy data.** The noisy points
# $\tilde{\mathbf{x}}$ follow $q_\sigma(\tilde{\mathbf{x}}) = \int p(\mathbf{x})\, q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})\,
# d\mathbf{x} = (p * \mathcal N(0, \sigma^2 I))(\tilde{\mathbf{x}})$, the data blurred by the noise. Expand the two
# squares, writing $\mathbf{s}$ for $\mathbf{s}_\theta(\tilde{\mathbf{x}})$:
#
# $$\begin{aligned}
# \ell(\sigma) &= \tfrac12\mathbb{E}_{q_\sigma(\tilde{\mathbf{x}})}\|\mathbf{s}\|^2
#   - \mathbb{E}_{p(\mathbf{x})\,q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})}\big[\mathbf{s}^\top
#   \nabla_{\tilde{\mathbf{x}}}\log q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})\big] + C_1,\\
# F_\sigma &= \tfrac12\mathbb{E}_{q_\sigma}\|\mathbf{s} - \nabla\log q_\sigma\|^2
#   = \tfrac12\mathbb{E}_{q_\sigma}\|\mathbf{s}\|^2 - \mathbb{E}_{q_\sigma}\big[\mathbf{s}^\top\nabla\log q_\sigma\big]
#   + C_2,
# \end{aligned}$$
#
# with constants $C_1, C_2$ that do not involve $\theta$. The first terms are equal. In the cross term of
# $\ell$, $q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})\nabla\log q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x}) =
# \nabla q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})$, and the integral over $\mathbf{x}$ moves inside the gradient:
#
# $$\int\!\!\int p(\mathbf{x})\, \mathbf{s}^\top \nabla_{\tilde{\mathbf{x}}} q_\sigma(\tilde{\mathbf{x}}\mid\mathbf{x})
#   \, d\mathbf{x}\, d\tilde{\mathbf{x}}
#   = \int \mathbf{s}^\top \nabla_{\tilde{\mathbf{x}}} q_\sigma(\tilde{\mathbf{x}})\, d\tilde{\mathbf{x}}
#   = \mathbb{E}_{q_\sigma}\big[\mathbf{s}^\top \nabla \log q_\sigma\big].$$
#
# So $\ell(\sigma) = F_\sigma + C_1 - C_2$ (Vincent, 2011): the same minimiser and the same gradients as the
# Fisher divergence to $q_\sigma$. Two consequences. What DSM learns is the score of $q_\sigma$, the data blurred
# by $\sigma$, not of $p$: a bias that shrinks with $\sigma$. And the constant is why the loss never reaches
# zero: the target $-\mathbf{z}/\sigma$ has variance $d/\sigma^2$, while the score it averages to stays bounded,
# so at small $\sigma$ the loss is mostly irreducible noise (it grows like $d/(2\sigma^2)$). That is why
# section 4 weights its noise levels by $\sigma^2$. A check where both sides are exact: data $\mathcal N(0, s^2)$ in 1-D, the
# linear scores $s_a(\tilde x) = -a\tilde x$, and a sample of pairs $(x, z)$ whitened so that every average of
# a quadratic equals its expectation. Then $\ell - F_\sigma$ should be
# $C_1 - C_2 = \tfrac12\big(1/\sigma^2 - 1/(s^2 + \sigma^2)\big)$ for every $a$.

# %%
s_data, sigma_check = 1.0, 0.5
pairs = torch.randn(1000, 2, generator=make_generator(20, device), **f64)
pairs = pairs - pairs.mean(0)
pairs = pairs @ torch.linalg.inv(torch.linalg.cholesky(pairs.T @ pairs / len(pairs))).T  # cov I
x_check, z_check = s_data * pairs[:, :1], pairs[:, 1:]
noisy_score = mixture_noisy_score(GaussianMixture.isotropic(torch.zeros(1, 1, **f64), s_data))
for a in (0.0, 0.5, 1.0, 2.0):
    dsm = denoising_score_matching_loss(lambda y, a=a: -a * y, x_check, sigma_check, z=z_check)
    fisher = fisher_divergence(lambda y, a=a: -a * y, lambda y: noisy_score(y, sigma_check),
                               x_check + sigma_check * z_check)
    print(f"a = {a:.2f}: DSM loss {exact(dsm, '.6f')}, Fisher divergence to q_sigma "
          f"{exact(fisher, '.6f')}, difference {exact(dsm - fisher, '.6f')}")
constant = 0.5 * (1 / sigma_check**2 - 1 / (s_data**2 + sigma_check**2))
print(f"1/2 (1/sigma^2 - 1/(s^2 + sigma^2)) = {exact(constant, '.6f')}")

# %% [markdown]
# The Fisher divergence is smallest (zero) at $a = 1/(s^2 + \sigma^2) = 0.8$, the exact score of $q_\sigma$,
# where the DSM loss is just the constant. Now train a score network on the eight-Gaussian ring (`toy_data("ring8")`, std
# 0.5 around a circle of radius 4) at $\sigma = 0.5$. The ring is a Gaussian mixture, so
# `mixture_noisy_score` gives the exact score of $q_\sigma$ to compare with.

# %%
ring = ring_of_gaussians(8, 4.0, 0.5).to(dtype=torch.float32)
exact_ring = mixture_noisy_score(ring)
sigma = 0.5
x_ring = toy_data("ring8", 4000 * SCALE, seed=1, device=device)
x_ring_test = toy_data("ring8", 4000, seed=2, device=device)
noise = torch.randn(x_ring_test.shape, generator=make_generator(5, device), **f32)
noisy_test = x_ring_test + sigma * noise


def relative_fisher(score, exact, x, sigma):
    """Fisher divergence to the exact noisy score over 1/2 E|exact|^2 (0: perfect; 1: s = 0)."""
    with torch.no_grad():
        num = fisher_divergence(score, lambda y: exact(y, sigma), x)
        return float(num / (0.5 * (exact(x, sigma) ** 2).sum(1).mean()))


def dsm_at(sigma):
    def objective(mdl, xb, g):
        return denoising_score_matching_loss(lambda y: mdl(y, sigma), xb, sigma, generator=g)
    return objective


seed_everything(0)
score_net = NoiseConditionalScoreNet(dim=2, hidden=64, n_layers=3).to(device)
hist = train_score_model(score_net, x_ring, dsm_at(sigma), n_steps=1000 * SCALE, lr=2e-3,
                         generator=make_generator(6, device))
with torch.no_grad():
    g = make_generator(7, device)
    loss_net = denoising_score_matching_loss(lambda y: score_net(y, sigma), x_ring_test, sigma,
                                             generator=g)
    g = make_generator(7, device)  # the same noise for the exact score
    loss_exact = denoising_score_matching_loss(lambda y: exact_ring(y, sigma), x_ring_test,
                                               sigma, generator=g)
print(f"DSM loss on test data: exact noisy score {expect(loss_exact, 2.4, 0.2)}, "
      f"network minus exact {expect(loss_net - loss_exact, 0.08, 0.09)}")
rel_net = relative_fisher(lambda y: score_net(y, sigma), exact_ring, noisy_test, sigma)
print(f"relative Fisher divergence to the exact score of q_sigma {expect(rel_net, 0.05, 0.04)}")

# %%
bounds = ((-6.5, 6.5), (-6.5, 6.5))
noisy_log_prob = ring.convolve(sigma).log_prob


def score_error(y):
    """|s_theta(y) - exact score of q_sigma at y|, the length of the arrows on the right."""
    return (score_net(y, sigma) - exact_ring(y, sigma)).norm(dim=1)


fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
with torch.no_grad():
    plot_score_field(lambda y: score_net(y, sigma), bounds, log_density=noisy_log_prob,
                     ax=axes[0], device=device, title=r"learned $s_\theta$ ($\sigma$ = 0.5)")
    plot_scalar_field(score_error, bounds, log_density=noisy_log_prob, ax=axes[1],
                      device=device, title=r"$s_\theta - \nabla\log q_\sigma$",
                      label="length of the error")
    plot_score_field(lambda y: score_net(y, sigma) - exact_ring(y, sigma), bounds, ax=axes[1],
                     device=device)
fig.tight_layout()
plt.show()

# %% [markdown]
# The arrows point uphill in log-density, towards the nearest mode. On the left the learned field looks
# right everywhere; the right panel shows where it is not: the error $\mathbf{s}_\theta - \nabla\log q_\sigma$,
# with the density's contours in white. Near the modes, where the training data are, the error is small;
# in the empty centre and beyond the ring it is large, since DSM never sees a noisy point there. That
# weakness is the subject of the next section.
#
# **Tweedie's formula: a score is a denoiser.** Differentiate
# $q_\sigma(\tilde{\mathbf{x}}) = \int p(\mathbf{x})\,\mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)\,d\mathbf{x}$
# under the integral. The Gaussian's gradient is
# $\nabla_{\tilde{\mathbf{x}}}\mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I) =
# \mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)\,(\mathbf{x}-\tilde{\mathbf{x}})/\sigma^2$, so
#
# $$\begin{aligned}
# \nabla\log q_\sigma(\tilde{\mathbf{x}})
#   &= \frac{\int p(\mathbf{x})\,\mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)\,(\mathbf{x}-\tilde{\mathbf{x}})\,d\mathbf{x}}
#          {\sigma^2\, q_\sigma(\tilde{\mathbf{x}})}
#   = \frac{\mathbb{E}[\mathbf{x}\mid\tilde{\mathbf{x}}] - \tilde{\mathbf{x}}}{\sigma^2},\\
# \text{so}\quad \mathbb{E}[\mathbf{x}\mid\tilde{\mathbf{x}}]
#   &= \tilde{\mathbf{x}} + \sigma^2\,\nabla\log q_\sigma(\tilde{\mathbf{x}}),
# \end{aligned}$$
#
# because $p(\mathbf{x})\,\mathcal N(\tilde{\mathbf{x}}; \mathbf{x}, \sigma^2 I)/q_\sigma(\tilde{\mathbf{x}})$ is the posterior
# $p(\mathbf{x}\mid\tilde{\mathbf{x}})$ (Robbins, 1956; Miyasawa, 1961; Efron, 2011, who credits Tweedie). The
# posterior mean is the denoiser with the least mean squared error, so one step along the exact noisy score is
# the best possible denoiser. How much a learned score loses follows from the same formula: write
# $\hat{\mathbf{x}}_\theta = \tilde{\mathbf{x}} + \sigma^2\mathbf{s}_\theta$ and $\hat{\mathbf{x}} = \mathbb{E}[\mathbf{x}\mid\tilde{\mathbf{x}}]$.
# Then $\hat{\mathbf{x}}_\theta - \mathbf{x} = (\hat{\mathbf{x}} - \mathbf{x}) + \sigma^2(\mathbf{s}_\theta - \nabla\log q_\sigma)$,
# and the cross term averages to zero because $\mathbb{E}[\hat{\mathbf{x}} - \mathbf{x}\mid\tilde{\mathbf{x}}] = 0$, so
#
# $$\text{MSE}(\text{learned}) - \text{MSE}(\text{exact})
#   = \frac{\sigma^4}{d}\,\mathbb{E}_{q_\sigma}\|\mathbf{s}_\theta - \nabla\log q_\sigma\|^2 = \frac{2\sigma^4}{d}\,F_\sigma$$
#
# per coordinate: the denoiser is exactly as good as the score, in the Fisher divergence's own units. Measured
# on the noisy test points (doing nothing leaves $\sigma^2 = 0.25$ per coordinate):

# %%
print(inspect.getsource(tweedie_denoise).split('"""')[-1])
with torch.no_grad():
    denoised = {"noisy input (no denoising)": noisy_test,
                "Tweedie, learned score": tweedie_denoise(score_net, noisy_test, sigma),
                "Tweedie, exact score": tweedie_denoise(exact_ring, noisy_test, sigma)}
mse = {name: ((x - x_ring_test) ** 2).mean() for name, x in denoised.items()}
want = {"noisy input (no denoising)": (0.25, 0.02), "Tweedie, learned score": (0.155, 0.015),
        "Tweedie, exact score": (0.15, 0.015)}
for name, value in mse.items():
    print(f"{name:28s} mean squared error per coordinate {expect(value, *want[name])}")
with torch.no_grad():
    fisher_gap = fisher_divergence(lambda y: score_net(y, sigma), lambda y: exact_ring(y, sigma),
                                   noisy_test)
excess = mse["Tweedie, learned score"] - mse["Tweedie, exact score"]
predicted = 2 * sigma**4 * fisher_gap / 2  # 2 sigma^4 F / d with d = 2
print(f"learned minus exact {expect(excess, 0.006, 0.004, fmt='.4f')}; "
      f"2 sigma^4 F / d {expect(predicted, 0.006, 0.004, fmt='.4f')}")
print(claim(abs(excess - predicted) < 0.0015,
            "the two agree to 0.0015 (the cross term's sampling error on 4000 points)"))

# %% [markdown]
# Denoising with the exact score cuts the error from 0.25 to about 0.15 per coordinate, and the learned score
# comes within a few thousandths of it. The excess is what the formula predicts from the learned score's
# Fisher divergence: a better score is a better denoiser, term for term. What is left with the exact score is
# not the score's fault but the posterior's own spread: many clean points fit one noisy point. For a single
# mode of the ring, a Gaussian of standard deviation $s = 0.5$, the posterior variance is
# $s^2\sigma^2/(s^2 + \sigma^2) = 0.125$ per coordinate, most of the 0.15.
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
mixture = GaussianMixture.isotropic(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]), 1.0, [0.8, 0.2])
mixture = mixture.to(device=device, dtype=torch.float32)
exact_mix = mixture_noisy_score(mixture)
x_mix = mixture.sample(4000 * SCALE, generator=make_generator(10, device))  # training data
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
      f"{expect(near_first_mode(x_anneal), 0.78, 0.03)}")

# %% [markdown]
# Plain Langevin keeps roughly the split of its start, although the score is exact. Roughly: the boundary
# between the two basins is not quite the diagonal. Along the line through the two means the density at
# $\sigma = 0.5$ is $0.8\,\mathcal N(u; m, v) + 0.2\,\mathcal N(u; -m, v)$ with $m = 5\sqrt2$ and $v = 1 + \sigma^2$, and
# its lowest point between the modes, where a chain's drift changes sign, sits where the two weighted
# components balance, slightly towards the lighter mode. That is the one place the weights enter. By bisection,
# with the share of the start square on the heavy side of that boundary:

# %%
def basin_boundary(w=0.8, m=5 * 2**0.5, v=1 + 0.5**2):
    """u* where d/du [w N(u; m, v) + (1 - w) N(u; -m, v)] = 0 between the modes, by bisection."""
    def slope_sign(u):  # log(w (m - u) N(u; m, v)) - log((1 - w) (m + u) N(u; -m, v))
        return math.log(w * (m - u) / ((1 - w) * (m + u))) + 2 * m * u / v
    lo, hi = -m + 1e-9, m - 1e-9
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if slope_sign(mid) > 0 else (mid, hi)
    return 0.5 * (lo + hi)


c = math.sqrt(2) * basin_boundary()  # u = (x1 + x2)/sqrt(2), so the boundary is x1 + x2 = c
# x1 + x2 of a uniform point on [-8, 8]^2 is triangular on [-16, 16]
share = 1 - (16 + c) ** 2 / (2 * 16**2)
print(f"basin boundary at sigma = 0.5: x1 + x2 = {exact(c, '.3f')}; "
      f"share of [-8, 8]^2 beyond it: {exact(share, '.3f')}")
gain = near_first_mode(x_plain) - near_first_mode(x_start)
print(claim(abs(gain - (share - 0.5)) < 0.008,
            "plain Langevin gains the strip between the diagonal and the boundary, within 0.008"))

# %% [markdown]
# The boundary moves by less than a fifth of a unit, which moves the predicted share from 0.5 to 0.511.
# Plain Langevin's chains in the thin strip between the diagonal and the boundary drift to the heavy mode,
# so its fraction should exceed the start's by about 0.011; over the five seeds we ran the gain was 0.010 to
# 0.015, and the check above holds it to within 0.008. Exercise 6.4 asks you to predict this fraction for
# other squares.
#
# **Annealed Langevin** (Song & Ermon 2019, Algorithm 1) starts with a large noise level $\sigma_1$, where
# $q_{\sigma_1}$ is one broad blob that the chains explore freely and that already carries most of the 0.8/0.2
# imbalance, and lowers $\sigma$ step by step, so that each level starts from samples of the previous one:
#
# $$\text{for } i = 1, \dots, L:\quad \alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2,\qquad
#   T \text{ times: } \mathbf{x} \leftarrow \mathbf{x} + \tfrac{\alpha_i}{2}\,\mathbf{s}(\mathbf{x}, \sigma_i) + \sqrt{\alpha_i}\,\mathbf{z}.$$
#
# The step $\alpha_i \propto \sigma_i^2$ keeps the ratio of step to the width of $q_{\sigma_i}$ the same at every
# level when that width is $\sigma_i$, i.e. when the data's own spread is negligible; for this mixture the width
# is $\sqrt{1 + \sigma_i^2}$, which matters at the last levels (technique 4 below). The fraction lands near 0.8 (0.79 to
# 0.81 over the seeds we ran, each with a binomial error of 0.009 from 2000 chains). Whether some mass is
# missing is not visible at this sample size, so we measured it separately with 40 000 chains per setting
# (binomial error 0.002; the same starts and noise in every run):
#
# | step $\epsilon$ | $T$ = 100 | 300 | 400 | 1000 | 1200 |
# |---|---|---|---|---|---|
# | 0.2 | 0.781 | | | 0.783 | |
# | 0.05 | 0.789 | 0.791 | | 0.795 | |
# | 0.0125 | | | 0.789 | | 0.799 |
#
# The split is decided at the levels where the modes separate ($\sigma \approx 4$ to $2.6$ here); below them no
# chain crosses. Two things keep the chains from the right split there. Mass needs time to move between
# the modes: at $\epsilon = 0.05$ the split creeps up with more steps per level. And unadjusted Langevin samples
# a slightly wider distribution than its target at every level (its step-size bias, chapter 4), which puts too
# much mass across the diagonal: at $\epsilon = 0.2$ the split stays at 0.78 however many steps it takes, while
# the smallest step, run for the same simulated time as $\epsilon = 0.05$ with $T = 300$, gets to 0.799.

# %%
print(inspect.getsource(annealed_langevin).split('"""')[-1])

# %% [markdown]
# **Choosing $\sigma_1$, $\sigma_L$, $\epsilon$ and $T$.** Song & Ermon (2020, "Improved techniques for training
# score-based generative models") give numbered techniques, derived from a model in which the data sit at a
# single point, so that every $q_{\sigma_i}$ is $\mathcal N(0, \sigma_i^2 I)$. Three of them set the sampler.
#
# **Technique 1**: $\sigma_1$ as large as the largest distance between two training points, so that at the
# first level a chain can reach any data point from any other.
#
# **Technique 2**: a geometric sequence whose ratio $\gamma = \sigma_{i-1}/\sigma_i$ keeps neighbouring levels
# overlapping. In $d$ dimensions the norm of a sample of $\mathcal N(0, \sigma^2 I)$ is close to $\sigma\sqrt d$
# with standard deviation $\sigma/\sqrt2$; $\gamma$ is set so that a sample of level $i$ lies within 3 of those
# standard deviations of level $i-1$'s typical norm half of the time:
#
# $$\Phi\big(\sqrt{2d}\,(\gamma-1) + 3\gamma\big) - \Phi\big(\sqrt{2d}\,(\gamma-1) - 3\gamma\big) = \tfrac12 .$$
#
# **Technique 4**: $T$ as large as the budget allows, then $\epsilon$ such that $T$ steps at a level take a
# sample of the previous level to the right spread. For data at a point, each step at level $i$ is the
# linear recursion $\mathbf{x} \leftarrow \rho\,\mathbf{x} + \sqrt{\alpha_i}\,\mathbf{z}$ with
# $\rho = 1 - \epsilon/(2\sigma_L^2)$ at every level, so starting from variance $\gamma^2\sigma_i^2$ the variance
# after $T$ steps, relative to the target $\sigma_i^2$, is
#
# $$r(\epsilon) = \rho^{2T}(\gamma^2 - c) + c, \qquad c = \frac{\epsilon/\sigma_L^2}{1-\rho^2} > 1,$$
#
# where $c$ is unadjusted Langevin's stationary bias (chapter 4); $\epsilon$ is chosen to bring $r$ closest
# to one. Song & Ermon write the step as $\mathbf{x} + \alpha\mathbf{s} + \sqrt{2\alpha}\,\mathbf{z}$, so their
# $\epsilon$ is half of ours.
#
# Their technique 3 is the network's noise conditioning and technique 5 an average of the weights; both come
# below. For $\sigma_L$ they give no technique. A working guide (ours): small enough that $q_{\sigma_L}$ is the
# data for practical purposes, for images a fraction of one grey level.
#
# Applied to this chapter's mixture: technique 1 asks for $\sigma_1 \approx 21$ (we used 10). Technique 2 places
# no constraint in two dimensions: for $d \le 4$ the left side of its equation never falls below 0.997, so every
# $\gamma$ passes (it is meant for images). For $T = 100$ technique 4 picks $\epsilon \approx 0.015$. Its premise fails
# at the last levels here: $q_{\sigma_L}$'s modes are not $\sigma_L = 0.5$ wide but $\sqrt{1 + \sigma_L^2} \approx 1.1$, and
# Langevin relaxes a Gaussian of variance $w^2$ at a rate proportional to $\epsilon / w^2$, five times more slowly.
# The same formula with the modes' width in place of $\sigma_L$ gives $\epsilon \approx 0.077$. Each setting, run
# three times from fresh starts with the exact score, measured by the mass near $(5, 5)$ (truth 0.8) and the
# variance of that mode's samples (truth $1 + \sigma_L^2 = 1.25$); the second row changes only $\sigma_1$:

# %%
print(inspect.getsource(annealed_variance_ratio).split('"""')[-1])
sigma_rule = sigma_max_rule(x_mix)
print(f"technique 1: the largest distance between data points {expect(sigma_rule, 21.0, 1.5)}")
sigma_1 = 21.0  # technique 1's value, rounded and fixed: the levels are the same on every run
try:
    sigma_ratio_rule(2)
except ValueError as err:
    print("technique 2 in 2-D:", err)
gamma_rule = (sigma_1 / 0.5) ** (1 / 9)  # 10 geometric levels from sigma_1 down to 0.5
width_l = math.sqrt(1 + 0.5**2)  # the standard deviation of a mode of q at sigma_L = 0.5
settings = {  # name: sigma_1, epsilon; expected epsilon, mass near (5, 5), variance of that mode
    "sigma_1 = 10, eps = 0.05 (by trying)": (10.0, 0.05, (0.05, 0.785, 1.25)),
    "sigma_1 = 21 (technique 1), eps = 0.05": (sigma_1, 0.05, (0.05, 0.785, 1.25)),
    "techniques 1 and 4": (sigma_1, choose_step_size(100, gamma_rule, 0.5), (0.0153, 0.765, 1.36)),
    "technique 4 with the modes' width": (sigma_1, choose_step_size(100, gamma_rule, width_l),
                                          (0.077, 0.785, 1.25)),
}
print(f"sigma_1 = {exact(sigma_1, '.0f')}: 10 levels with gamma = {exact(gamma_rule, '.3f')}")
mode_var, mode_mass = {}, {}
for name, (s1, eps, (want_eps, want_mass, want_var)) in settings.items():
    levels = geometric_sigmas(s1, 0.5, 10, **f32)
    fractions, variances = [], []
    for rep in range(3):
        g = make_generator(30 + rep, device)
        start = 16 * torch.rand(4000 * SCALE, 2, generator=g, **f32) - 8
        x_end, _ = annealed_langevin(exact_mix, start, levels, eps, 100 * SCALE,
                                     generator=make_generator(40 + rep, device))
        fractions.append(near_first_mode(x_end))
        variances.append(float(x_end[x_end.sum(1) > 0].var(0).mean()))
    mode_var[name], mode_mass[name] = variances, fractions
    print(f"{name}: eps = {exact(eps, '.4f', rel=1e-6)}")
    print(f"  mass near (5, 5) {expect(fractions, want_mass, 0.04)}")
    print(f"  variance of that mode {expect(variances, want_var, 0.08)}")
by_eye, rule_1, rule_4, width = (sum(v) / len(v) for v in mode_var.values())
print(claim(rule_4 > rule_1 + 0.05 and rule_4 > width + 0.05,
            "technique 4's step leaves the mode at least 0.05 too broad (mean of three runs)"))
print(claim(abs(width - 1.25) < 0.06,
            "with the modes' width in technique 4 the spread is 1.25 ± 0.06"))
mass_by_eye, mass_rule_1, mass_rule_4, mass_width = (sum(v) / len(v) for v in mode_mass.values())
print(claim(abs(mass_rule_1 - mass_by_eye) < 0.015,
            "sigma_1 = 21 leaves the same mass near (5, 5) as sigma_1 = 10, within 0.015"))
print(claim(mass_rule_4 < min(mass_rule_1, mass_width) - 0.005,
            "techniques 1 and 4 leave less mass near (5, 5) than the larger steps"))

# %% [markdown]
# The chapter's $\epsilon = 0.05$ was chosen by trying. Technique 4 with the right width gives a similar step,
# 0.077, and the right spread; technique 4 as stated does not, because its model of the data is wrong at the
# last levels. Its small step also loses mass: after $T = 100$ steps of $\epsilon = 0.015$ each level's samples
# are still about as wide as the previous level's, which is the same excess width that costs mass in the
# table above. The larger $\sigma_1$ of technique 1 does no harm, and for annealed Langevin it also brings
# nothing here: $q_{10}$ is already one blob, since the modes are 14 apart, and the chains reach it from any
# start. Section 6 shows a sampler for which it matters. The techniques are where to start; the spread of
# each level's samples, checked against $q_{\sigma_i}$ where you can, says whether they worked. From here on we
# follow technique 1, $\sigma_1 = 21$, and keep $\epsilon = 0.05$.
#
# **Now with a learned score.** A *noise-conditional* network $\mathbf{s}_\theta(\mathbf{x}, \sigma)$ learns all
# levels at once, here on technique 1's levels from $\sigma_1 = 21$ down to $0.5$. For a geometric sequence
# $\sigma_1 > \dots > \sigma_L$ the loss weights level $i$ by $\lambda(\sigma_i) = \sigma_i^2$:
#
# $$\mathcal L(\theta) = \frac1L\sum_{i=1}^L \sigma_i^2\, \tfrac12\,\mathbb{E}\,\Big\|\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma_i) + \frac{\mathbf{z}}{\sigma_i}\Big\|^2
#   = \frac1L\sum_{i=1}^L \tfrac12\,\mathbb{E}\,\big\|\sigma_i\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma_i) + \mathbf{z}\big\|^2 ,$$
#
# which makes every level's term of order one (the target $\mathbf{z}/\sigma$ has size $\sqrt d/\sigma$). Each
# example draws its own level, so one batch trains all of them. The network is built the same way, by Song &
# Ermon's technique 3 (*noise conditioning*): it computes $f(\mathbf{x}, \log\sigma)$ and divides by $\sigma$, since
# the true noisy score shrinks like $1/\sigma$ when $\sigma$ dominates the data's spread. The network's output
# $f = \sigma\mathbf{s}_\theta$ then has the same size at every level, and so does the term it is trained on:

# %%
print(inspect.getsource(NoiseConditionalScoreNet.forward))
print(inspect.getsource(noise_conditional_dsm_loss).split('"""')[-1])
sigmas_nc = geometric_sigmas(sigma_1, 0.5, 10, **f32)  # technique 1's levels
seed_everything(0)
nc_net = NoiseConditionalScoreNet(dim=2, hidden=128, n_layers=3).to(device)
nc_ema = copy.deepcopy(nc_net)  # a moving average of nc_net's weights (explained below)
noise = torch.randn(2000, 2, generator=make_generator(12, device), **f32)
noisy_min = x_mix[:2000] + 0.5 * noise
tracked = {"trained weights": [], "EMA weights": []}


def track(step, model):
    """Every 100 steps of the second half: relative Fisher divergence at sigma_L, both models."""
    if step > 1000 * SCALE and step % 100 == 0:
        for name, m in (("trained weights", model), ("EMA weights", nc_ema)):
            rel = relative_fisher(lambda y, m=m: m(y, 0.5), exact_mix, noisy_min, 0.5)
            tracked[name].append(rel)


def nc_objective(mdl, xb, g):
    return noise_conditional_dsm_loss(mdl, xb, sigmas_nc, generator=g)


hist_nc = train_score_model(nc_net, x_mix, nc_objective, n_steps=2000 * SCALE, lr=2e-3,
                            generator=make_generator(11, device), ema=nc_ema, ema_decay=0.99,
                            callback=track)
print(f"noise-conditional DSM loss: first 50 steps {expect(hist_nc['loss'][0], 0.49, 0.04)}, "
      f"last 50 steps {expect(hist_nc['loss'][-1], 0.3, 0.02)}")

# %% [markdown]
# **An exponential moving average (EMA) of the weights** (Song & Ermon 2020, technique 5). With a constant
# learning rate, Adam's iterates jitter around a good solution, and the last iterate is one draw from that
# jitter. Averaging the weights over the last steps, $\theta_\text{EMA} \leftarrow m\,\theta_\text{EMA} + (1-m)\,\theta$
# after every step, cancels much of it. With $m = 0.99$ the average covers about the last $1/(1-m) = 100$
# steps (Song & Ermon use $m = 0.999$ over hundreds of thousands of steps). The training above kept such a copy
# and measured both every 100 steps of its second half, at the smallest level where the error is largest:

# %%
print(inspect.getsource(ema_update).split('"""')[-1])
want = {"trained weights": (0.04, 0.07), "EMA weights": (0.0055, 0.0065)}
print("relative Fisher divergence at sigma = 0.5, at the last 10 checkpoints:")
for name, values in tracked.items():
    print(f"  {name:15s} {expect(values, *want[name], fmt='.3f')}")
raw, averaged = tracked.values()
print(claim(all(a < r for a, r in zip(averaged, raw)), "the EMA is better at every checkpoint"))
print(claim(max(averaged) < sum(raw) / len(raw),
            "the EMA's worst checkpoint beats the trained weights' average"))

# %% [markdown]
# From here on we use the EMA weights. At every level, averaged over noisy data:

# %%
for i, want, tol in ((0, 0.003, 0.0015), (4, 0.003, 0.003), (9, 0.0055, 0.008)):
    level = float(sigmas_nc[i])
    noisy = x_mix[:2000] + level * noise
    rel = relative_fisher(lambda y, s=level: nc_ema(y, s), exact_mix, noisy, level)
    print(f"sigma = {exact(level, '5.2f', rel=1e-5)}: relative Fisher divergence "
          f"{expect(rel, want, tol)}")

# %% [markdown]
# Averaged over the data, the network is accurate at every level. Where there are no data it is not. The map
# below shows the error at the smallest level relative to the size of the true score,
# $\|\mathbf{s}_\theta - \nabla\log q_\sigma\| / (\|\nabla\log q_\sigma\| + 1/\sigma)$, with the density's contours in white.
# (The $1/\sigma$ in the denominator, the size of the score one noise standard deviation from a mode, keeps the
# ratio finite at the modes' centres, where the true score is zero.)

# %%
sigma_min = float(sigmas_nc[-1])
bounds_mix = ((-9, 9), (-9, 9))


def relative_error(y):
    truth = exact_mix(y, sigma_min)
    error = (nc_ema(y, sigma_min) - truth).norm(dim=1)
    return (error / (truth.norm(dim=1) + 1 / sigma_min)).clamp(max=1.0)


fig, ax = plt.subplots(figsize=(5, 4))
plot_scalar_field(relative_error, bounds_mix, log_density=mixture.convolve(sigma_min).log_prob,
                  ax=ax, title=rf"relative score error at $\sigma$ = {sigma_min:.1f}",
                  label="relative error (capped at 1)", device=device, vmax=1.0)
fig.tight_layout()
plt.show()

# %% [markdown]
# Small near the modes, and largest in the band between them along the diagonal $x_1 + x_2 = 0$, brightest
# near the centre: there the true score turns from one mode to the other within a short distance, and
# hardly any noisy training point of this level falls there, so the network only guesses. Now sample with
# the learned score: plain Langevin at the smallest level, and
# annealed Langevin on the network's levels, beside the exact score on the same levels from the same start.

# %%
x_plain_nn, _ = annealed_langevin(nc_ema, x_start, sigmas_nc[-1:], step_size, 10 * n_steps_each,
                                  generator=make_generator(13, device))
x_anneal_nn, info_nn = annealed_langevin(nc_ema, x_start, sigmas_nc, step_size, n_steps_each,
                                         generator=make_generator(13, device))
x_anneal_21, _ = annealed_langevin(exact_mix, x_start, sigmas_nc, step_size, n_steps_each,
                                   generator=make_generator(13, device))
learned, exact_21 = near_first_mode(x_anneal_nn), near_first_mode(x_anneal_21)
print("fraction near (5, 5) (true weight 0.8):")
print(f"  learned score, plain Langevin    {expect(near_first_mode(x_plain_nn), 0.47, 0.11)}")
print(f"  learned score, annealed Langevin {expect(learned, 0.79, 0.05)}")
print(f"  exact score, annealed Langevin   {expect(exact_21, 0.785, 0.04)}")
print(claim(abs(learned - exact_21) < 0.04,
            "learned and exact scores land within 0.04 of each other"))
plot_annealing_snapshots(info_nn.x_levels, sigmas_nc, levels=[2, 4, 6, 9], bounds=((-16, 16),) * 2,
                         title=r"learned score: the 0.8/0.2 split appears as $\sigma$ falls")
plt.show()

# %% [markdown]
# The learned score behaves like the exact one on the same levels: plain Langevin keeps roughly the split
# of its start, and annealed Langevin recovers most of the 0.8/0.2 imbalance, within a few hundredths of what
# the exact score reaches from the same start and, like it, a little short of 0.8 (the table above says why).
#
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
train_score_model(NoiseConditionalScoreNet(2, 64, 3).to(device), x_ring, dsm_at(sigma),
                  n_steps=1000 * SCALE, lr=2e-3, generator=make_generator(6, device))
seconds_net = time.perf_counter() - start
rel_energy = relative_fisher(energy_model, exact_ring, noisy_test, sigma)
print(f"relative Fisher divergence: score network {expect(rel_net, 0.05, 0.04)}, "
      f"energy network {expect(rel_energy, 0.05, 0.05)}")

# %% tags=["nbval-ignore-output"]
print(f"training time for {1000 * SCALE} steps: score network {seconds_net:.1f} s, "
      f"energy network {seconds_energy:.1f} s (its score is a gradient: two backward passes)")

# %% [markdown]
# Both reach a relative Fisher divergence of about 0.05; the energy version costs a second backward pass.
# What it buys is the energy itself. In two dimensions we can normalise it by quadrature (chapter 1) and get
# a proper density $p_\theta = e^{-E_\theta}/Z_\theta$ of the noisy data, with a test log-likelihood to compare with
# the truth. A score network has no such number to offer.

# %%
learned_energy = energy_model.energy
with torch.no_grad():
    log_z = log_partition_grid(learned_energy, [(-9, 9), (-9, 9)], 300, device=device,
                               dtype=torch.float32)
    loglik_model = float(-learned_energy(noisy_test).mean()) - log_z
    loglik_true = float(ring.convolve(sigma).log_prob(noisy_test).mean())
print(f"mean test log-likelihood of q_sigma: learned energy {expect(loglik_model, -4.2, 0.14)},"
      f" truth {expect(loglik_true, -4.14, 0.04)}")
plot_density_pair({r"$e^{-E_\theta}/Z_\theta$ learned by DSM": learned_energy,
                   r"true $q_\sigma$": lambda y: -noisy_log_prob(y)}, bounds, device=device)
plt.show()

# %% [markdown]
# **Score matching is nearly blind to the weights of separated modes.** The learned density's modes are not
# equally bright, although the eight true weights are equal (both panels share one colour scale).
# Quadrature gives each mode's mass (the mass of the eighth of the plane around it), and two more trainings,
# from other initial weights and with other minibatches and noise, show that the error is not bad luck:

# %%
pts, _, cell = grid([(-9, 9), (-9, 9)], 300, **f32)


def mode_of(y):
    """Index 0-7 of the ring mode nearest in angle to each point (mode k at k * 45 degrees)."""
    angle = torch.atan2(y[:, 1], y[:, 0])
    return torch.remainder(torch.round(angle / (math.pi / 4)), 8).long()


def mode_masses(energy):
    """The mass of e^{-E}/Z around each of the eight modes, by quadrature on the grid."""
    with torch.no_grad():
        w = torch.softmax(-energy(pts).double(), 0)
    return torch.zeros(8, dtype=torch.float64, device=device).index_add_(0, mode_of(pts), w)


energy_models = [energy_model]
for rep in (1, 2):
    seed_everything(rep)
    energy_models.append(EnergyScore(MLPEnergy(dim=2, hidden=64, n_layers=3)).to(device))
    train_score_model(energy_models[-1], x_ring, dsm_at(sigma), n_steps=1000 * SCALE, lr=2e-3,
                      generator=make_generator(6 + rep, device))
data_masses = torch.bincount(mode_of(x_ring), minlength=8).double() / len(x_ring)
print(f"the training data's mode masses: {expect(data_masses, 0.125, 0.02, fmt='.3f')}")
off_model, off_weights, kl_weights = [], [], []
off_data = float((data_masses - 0.125).abs().max())
for rep, model in enumerate(energy_models):
    masses = mode_masses(model.energy)
    # the exact ring with the learned masses as weights: how much does the objective see?
    ring_reweighted = GaussianMixture(ring.means, ring.covs, (masses / masses.sum()).float())
    reweighted = mixture_noisy_score(ring_reweighted)
    with torch.no_grad():  # KL(q_sigma || the same ring with the learned masses), by quadrature
        log_q = noisy_log_prob(pts)
        log_q_reweighted = ring_reweighted.convolve(sigma).log_prob(pts)
        kl_weights.append(float((log_q.exp() * cell * (log_q - log_q_reweighted)).sum()))
    off_weights.append(relative_fisher(lambda y, r=reweighted: r(y, sigma), exact_ring, noisy_test,
                                       sigma))
    off_model.append(relative_fisher(model, exact_ring, noisy_test, sigma))
    print(f"training {rep + 1}: learned mode masses {expect(masses, 0.125, 0.12, fmt='.3f')}")
print(f"relative Fisher divergence of the learned energies: {expect(off_model, 0.05, 0.05)}")
print(f"... and of the exact ring with the learned masses:  {expect(off_weights, 0.005, 0.006)}")
print(f"KL divergence the learned masses alone cost: {expect(kl_weights, 0.04, 0.07)} nats")
print(claim(all(abs(mode_masses(m.energy) - 0.125).max() > 2 * off_data for m in energy_models),
            "every training puts a mode's mass twice as far from 0.125 as any data mass is"))
print(claim(max(off_weights) < min(off_model),
            "the exact ring with any training's masses beats every trained energy "
            "in Fisher divergence"))

# %% [markdown]
# The training data are balanced to within sampling error, the learned energies are not, and the objective
# hardly cares: an exact ring with the learned, wrong masses is closer to the truth in Fisher divergence than
# any trained network gets. The reason is where the Fisher divergence looks. It compares *slopes* of
# $\log p$, weighted by $p$. Two mixtures with the same components and different weights have the same slopes
# near every mode, since each mode's score is that of its own Gaussian; they differ only where two modes
# overlap, where the responsibilities change, and that region has little mass. A weight is a *height*
# difference between modes, and the slopes near the modes do not record it. The log-likelihood compares
# heights directly: the wrong masses alone cost between about 0.01 and 0.07 nats of KL divergence over the
# trainings and seeds we ran, the same order as the 0.03 to 0.07 nats by which the first learned energy's test
# log-likelihood fell short of the truth's.
#
# An exact example shows how extreme this gets. Section 4's mixture $0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$
# against the same components with weights $0.5/0.5$, both blurred by noise of level $\sigma$, by quadrature:

# %%
def mixture_at(weights):
    means = torch.tensor([[5.0, 5.0], [-5.0, -5.0]], **f64)
    return GaussianMixture.isotropic(means, 1.0, weights)


p_08, p_05 = mixture_at([0.8, 0.2]), mixture_at([0.5, 0.5])
score_08, score_05 = mixture_noisy_score(p_08), mixture_noisy_score(p_05)
print("sigma   KL(p_0.8 || p_0.5)   Fisher divergence")
for level in (0.0, 0.5, 2.64, 10.0):
    half_width = 7 + 8 * math.sqrt(1 + level**2)  # the box holds all but ~e^-30 of the mass
    pts64, _, cell64 = grid([(-half_width, half_width)] * 2, 801, **f64)
    blur_08 = p_08.convolve(level) if level > 0 else p_08
    blur_05 = p_05.convolve(level) if level > 0 else p_05
    log_p, log_q = blur_08.log_prob(pts64), blur_05.log_prob(pts64)
    weight = log_p.exp() * cell64
    kl = (weight * (log_p - log_q)).sum()
    score_gap = score_08(pts64, level) - score_05(pts64, level)
    fisher = (weight * 0.5 * (score_gap**2).sum(1)).sum()
    kl, fisher = exact(kl, ".4f", rel=1e-6), exact(fisher, ".1e", rel=1e-6)
    print(f"{level:5.2f}   {kl:>18s}   {fisher:>17s}")

# %% [markdown]
# On the clean data the two mixtures differ by 0.19 nats in KL but by $10^{-11}$ in Fisher divergence: score
# matching cannot tell 0.8/0.2 from 0.5/0.5. Noise that makes the modes overlap exposes the weights (at
# $\sigma = 2.64$, the fifth of section 4's levels from $\sigma_1 = 10$), until so much noise that both become one
# blob. This is the second reason, after the empty regions, why the noise-conditional model of section 4 with
# its large levels recovered the 0.8/0.2 split: a model trained at $\sigma = 0.5$ alone gets almost no signal
# about the weights ($10^{-9}$). Wenliang & Kanagawa (2020) analyse this *blindness of score-based methods to
# isolated components and mixing proportions*; Koehler, Heckett & Risteski (2023) quantify it as a loss of
# statistical efficiency: where a distribution has regions that a Langevin chain crosses slowly, score matching
# needs far more data than maximum likelihood to pin it down.
#
# Energies also **compose**: adding an energy multiplies densities (a product of experts, chapter 1). Put an
# expert $E_c(\mathbf{x}) = \|\mathbf{x} - (0, 4)\|^2 / (2\cdot 2^2)$, a wide Gaussian around the top of the ring,
# on the learned energy. Because we have energies, quadrature gives the composed model's exact mass in the three
# top modes, and that number *checks a sampler*. Langevin chains of $-\nabla(E_\theta + E_c)$ started on the ring
# data stay in the modes they start in (section 4's mixing problem again) and miss it. Started instead from the
# ring data resampled with weights $\propto e^{-E_c(\mathbf{x})}$, the chains only have to adjust within modes.
# A caveat: those resampled points follow data $\times$ expert, not model $\times$ expert. The two differ by the
# learned energy's wrong mode masses (section 5), and they come close here only because the expert, which
# changes the modes' weights far more than those errors do, dominates. So the agreement below checks the
# sampler only to that precision: it cannot tell "samples the model" from "samples data $\times$ expert".

# %%
top = torch.tensor([0.0, 4.0], **f32)


def expert(y):
    """E_c: a Gaussian of standard deviation 2 around the top of the ring."""
    return ((y - top) ** 2).sum(1) / (2 * 2.0**2)


def composed(y):
    return learned_energy(y) + expert(y)


def in_top(y):
    """1 for points in the three top modes (at 45°, 90° and 135°), else 0."""
    return (y[:, 1] > 4.0 * math.cos(math.pi / 4) - 1.0).float()


def mass(energy, region):
    """The mass e^{-energy}/Z puts on a region (a 0/1 function), by quadrature on the grid."""
    with torch.no_grad():
        return float((torch.softmax(-energy(pts).double(), 0) * region(pts)).sum())


mass_top = mass(composed, in_top)
g = make_generator(14, device)
with torch.no_grad():
    weights = torch.softmax(-expert(x_ring), 0)  # e^{-E_c}, normalised
resampled = x_ring[torch.multinomial(weights, 2000, replacement=True, generator=g)]
x_stuck, _ = annealed_langevin(EnergyScore(composed), x_ring[:2000], [1.0], 0.02, 300 * SCALE,
                               generator=g)
x_comp, _ = annealed_langevin(EnergyScore(composed), resampled, [1.0], 0.02, 300 * SCALE,
                              generator=g)
print("mass in the top three modes:")
print(f"  ring data alone {expect(in_top(x_ring).mean(), 0.37, 0.025)}")
print(f"  composed model, by quadrature {expect(mass_top, 0.95, 0.045)}")
print(f"  Langevin from the ring data {expect(in_top(x_stuck).mean(), 0.54, 0.07)}")
print(f"  Langevin from the resampled data {expect(in_top(x_comp).mean(), 0.945, 0.03)}")
fig, ax = plt.subplots(figsize=(4.6, 3.8))
plot_energy_2d(composed, ((-6.5, 6.5), (-3.5, 8.5)), samples=x_comp[::2], ax=ax,
               title=r"$E_\theta + E_c$: the ring AND a Gaussian expert", device=device)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Beyond a sum: OR and NOT.** Du, Li & Mordatch (2020) compose energies in two more ways.
# - *Disjunction* (OR), a mixture: $p \propto e^{-E_1} + e^{-E_2}$, the energy $-\log(e^{-E_1} + e^{-E_2})$. The
#   mixture's weights are $Z_1/(Z_1 + Z_2)$ and $Z_2/(Z_1 + Z_2)$: the partition functions, which an EBM does not
#   know, decide how much of each part you get. To weight the parts equally you must subtract each $\log Z_i$.
# - *Negation* (AND NOT): $p \propto p_1(\mathbf{x}) / p_2(\mathbf{x})^\alpha$, the energy $E_1 - \alpha E_2$, removes what $p_2$
#   describes. It is a proper density only if $E_1$ grows faster than $\alpha E_2$ far away; a learned energy
#   may not, so check where the mass goes.
#
# With the learned ring as $E_1$: OR with a narrow Gaussian $E_2 = \|\mathbf{x}\|^2/(2\cdot 0.5^2)$ at the centre
# ($Z_2 = 2\pi\cdot 0.5^2$), and the ring AND NOT the top expert $E_c$ above, with $\alpha = 0.5$.

# %%
def centre_energy(y):
    return (y**2).sum(1) / (2 * 0.5**2)


def near_centre(y):
    return (y.norm(dim=1) < 1.5).float()


def near_edge(y):
    """1 within 2 of the edge of the box [-9, 9]^2 that the quadrature covers."""
    return (y.abs().max(1).values > 7).float()


log_z_centre = math.log(2 * math.pi * 0.5**2)
compositions = {
    "OR (unnormalised)": lambda y: -torch.logsumexp(
        torch.stack([-learned_energy(y), -centre_energy(y)]), 0),
    "OR (each log Z subtracted)": lambda y: -torch.logsumexp(
        torch.stack([-learned_energy(y) - log_z, -centre_energy(y) - log_z_centre]), 0),
    "ring AND NOT top (alpha = 0.5)": lambda y: learned_energy(y) - 0.5 * expert(y),
}
or_raw = mass(compositions["OR (unnormalised)"], near_centre)
print(claim(or_raw < 0.05, "OR (unnormalised) puts less than 5 % of its mass at the centre"))
print(f"OR (each log Z subtracted): mass at the centre "
      f"{expect(mass(compositions['OR (each log Z subtracted)'], near_centre), 0.5, 0.01)}")
not_top = compositions["ring AND NOT top (alpha = 0.5)"]
print(f"ring AND NOT top: mass in the top modes {expect(mass(not_top, in_top), 0.03, 0.03)}, "
      f"near the edge of the box {expect(mass(not_top, near_edge), 0.002, 0.004)}")
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
plot_log_density_2d(compositions["OR (each log Z subtracted)"], bounds, ax=axes[0],
                    device=device, decades=3, title="ring OR centre (log Z's subtracted)")
plot_log_density_2d(not_top, bounds, ax=axes[1], device=device, decades=3,
                    title="ring AND NOT top")
fig.tight_layout()
plt.show()

# %% [markdown]
# Without the partition functions the OR is almost all ring, because $Z_\theta$ is hundreds of times $Z_2$
# or more, and that factor is arbitrary: DSM never fixes the additive constant of $E_\theta$, so another
# training gives another one. With the $\log Z$'s subtracted it is the half-and-half mixture we asked for. The negation removes the top modes, and on this box little mass leaks
# to the edges, where $E_\theta - \tfrac12 E_c$ eventually falls (the learned energy grows linearly, the expert
# quadratically). Product and negation need no partition function; a mixture does.

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
# $\sigma\,\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma)$, a prediction of $-\mathbf{z}$. Tweedie's formula (section 3)
# says which prediction is best: $\mathbb{E}[\mathbf{z}\mid\tilde{\mathbf{x}}] = (\tilde{\mathbf{x}} - \mathbb{E}[\mathbf{x}\mid\tilde{\mathbf{x}}])/\sigma
# = -\sigma\nabla\log q_\sigma(\tilde{\mathbf{x}})$, so the exact score gives the lowest achievable error:

# %%
level = float(sigmas_nc[4])
z_test = torch.randn(x_mix[:2000].shape, generator=make_generator(15, device), **f32)
x_noisy = x_mix[:2000] + level * z_test
with torch.no_grad():
    eps_net = -level * nc_ema(x_noisy, level)
    eps_best = -level * exact_mix(x_noisy, level)
print(f"sigma = {exact(level, '.2f', rel=1e-5)}: mean squared error of the noise prediction")
print(f"  network {expect(((eps_net - z_test) ** 2).mean(), 0.197, 0.05)}, "
      f"exact score {expect(((eps_best - z_test) ** 2).mean(), 0.195, 0.05)}, "
      f"predicting 0: {expect((z_test**2).mean(), 1.0, 0.08)}")

# %% [markdown]
# **The score SDE in two lines** (Song et al., 2021). Letting the number of levels grow, the noising becomes
# the stochastic differential equation $d\mathbf{x} = \sqrt{d\sigma^2(t)/dt}\; d\mathbf{w}$, and it runs backwards
# in time ($dt < 0$) as
#
# $$d\mathbf{x} = -\frac{d\sigma^2(t)}{dt}\,\nabla_{\mathbf{x}}\log q_{\sigma(t)}(\mathbf{x})\,dt + \sqrt{\frac{d\sigma^2(t)}{dt}}\; d\bar{\mathbf{w}},$$
#
# whose only unknown is the score. An Euler step from $\sigma_k$ down to $\sigma_{k+1}$ is two lines. It must start
# from samples of $q_{\sigma_1}$, which a diffusion model does not have: it starts from $\mathcal N(0, \sigma_1^2 I)$
# and relies on $\sigma_1$ being so large that the data's own spread is lost in the noise. How large is large
# enough? Below, 200 levels from $\sigma_1$ down to 0.5 with the exact noisy scores, started from
# $\mathcal N(0, \sigma_1^2 I)$ for three values of $\sigma_1$ and, for comparison, from true samples of $q_{10}$ (data plus
# noise). Beside each start, the share of $q_{\sigma_1}$ on the $(5, 5)$ side, in closed form:
# $0.8\,\Phi(10/\sqrt{2(1+\sigma_1^2)}) + 0.2\,\Phi(-10/\sqrt{2(1+\sigma_1^2)})$. Last, our noise-conditional network
# (its EMA weights), trained on 10 levels from $\sigma_1 = 21$, run through the 200:

# %%
def share_of_q(level):
    """The exact fraction of q_sigma with x1 + x2 > 0; x1 + x2 ~ N(+-10, 2 (1 + sigma^2))."""
    t = 10 / math.sqrt(2 * (1 + level**2))
    return 0.8 * 0.5 * math.erfc(-t / math.sqrt(2)) + 0.2 * 0.5 * math.erfc(t / math.sqrt(2))


def reverse_sde(score, sigma_start, from_data, generator, n=4000):
    """Euler steps of the reverse VE SDE through 200 geometric levels from sigma_start to 0.5."""
    fine = geometric_sigmas(sigma_start, 0.5, 200 * SCALE, **f32).tolist()
    x = fine[0] * torch.randn(n, 2, generator=generator, **f32)  # N(0, sigma_1^2 I)
    if from_data:
        x = x + mixture.sample(n, generator=generator)  # data + noise: a sample of q at sigma_1
    with torch.no_grad():
        for s_hi, s_lo in itertools.pairwise(fine):
            dvar = s_hi**2 - s_lo**2
            z = torch.randn(x.shape, generator=generator, **f32)
            x = x + dvar * score(x, s_hi) + math.sqrt(dvar) * z
    return near_first_mode(x)


runs = [("exact", exact_mix, 10.0, True, (0.8, 0.03)),
        ("exact", exact_mix, 10.0, False, (0.73, 0.03)),
        ("exact", exact_mix, 21.0, False, (0.78, 0.03)),
        ("exact", exact_mix, 50.0, False, (0.79, 0.03)),
        ("learned", nc_ema, 21.0, False, (0.78, 0.04))]
print("score     sigma_1  start              q's share  end: fraction near (5, 5)")
ends = {}
for name, score, s1, from_data, want in runs:
    ends[name, s1, from_data] = reverse_sde(score, s1, from_data, make_generator(16, device))
    start = "data + noise" if from_data else "N(0, sigma_1^2 I)"
    print(f"{name:9s} {s1:6.0f}   {start:18s} {exact(share_of_q(s1), '.3f'):>9s}  "
          f"{expect(ends[name, s1, from_data], *want)}")
from_noise = {s1: ends["exact", s1, False] for s1 in (10.0, 21.0, 50.0)}
print(claim(from_noise[10.0] < min(from_noise[21.0], from_noise[50.0]) - 0.02,
            "from N(0, sigma_1^2 I), sigma_1 = 10 ends at least 0.02 below sigma_1 = 21 and 50"))

# %% [markdown]
# At $\sigma_1 = 10$ the Gaussian start is wrong by 0.155 (one half against $q_{10}$'s 0.655), and the sampler
# carries much of that error down to the end: it keeps the weights of what it is given. From true samples of
# $q_{10}$ it keeps the right ones. Technique 1's $\sigma_1 = 21$ makes the Gaussian a far better start (0.5
# against 0.579), and 50 better still; the learned score, run from technique 1's start, does about as well as the
# exact one. So for this sampler technique 1 matters, where for annealed Langevin it did not: annealed Langevin
# re-equilibrates at every level and can repair a poor start at the first, broad one, while the reverse SDE
# only transports what it starts with, up to the error of its Euler steps. Song et al. (2021) combine the two:
# a *predictor–corrector* sampler follows each reverse-SDE step by a few Langevin steps at the new level, and
# the *probability-flow ODE*, a deterministic version of the reverse SDE with the same marginals, gives exact
# likelihoods. Both need nothing but the score.
#
# ## Summary
#
# * The score $\nabla_{\mathbf{x}}\log p$ does not involve $Z$. Hyvärinen's objective
#   $\mathbb{E}_p[\operatorname{tr}\nabla_{\mathbf{x}}\mathbf{s} + \tfrac12\|\mathbf{s}\|^2]$ is the Fisher divergence minus a
#   constant, computable from samples; on a Gaussian it recovers $\bar{\mathbf{x}}$ and $S^{-1}$ exactly.
# * Its Jacobian trace costs $d$ backward passes; sliced score matching estimates it with random projections
#   in one pass, without bias.
# * Denoising score matching regresses on $(\mathbf{x}-\tilde{\mathbf{x}})/\sigma^2 = -\mathbf{z}/\sigma$; its loss is the
#   Fisher divergence to the noise-blurred data plus a constant (derived and checked exactly), so it learns
#   that score with no derivatives of the model at all. By Tweedie's formula,
#   $\mathbb{E}[\mathbf{x}\mid\tilde{\mathbf{x}}] = \tilde{\mathbf{x}} + \sigma^2\nabla\log q_\sigma(\tilde{\mathbf{x}})$: a score is a denoiser.
# * Learned scores are poor where there are no data, and Langevin chains do not cross empty regions, so plain
#   Langevin gets mode weights wrong; a noise-conditional model with the $\sigma^2$-weighted loss and annealed
#   Langevin from large to small $\sigma$ recovers them to within a few hundredths. Song & Ermon's techniques
#   for $\sigma_1$, $\gamma$ and $\epsilon$ are a starting point whose assumptions must be checked (technique 4
#   assumes data at a point); an EMA of the weights cut the score error at the smallest level several-fold.
#   A reverse-SDE sampler started from pure noise needs technique 1's large $\sigma_1$.
# * Score matching barely sees the weights of separated modes: they change heights, not slopes near the
#   modes (Fisher divergence $10^{-11}$ against KL 0.19 nats for 0.8/0.2 vs 0.5/0.5). A DSM-trained energy's mode
#   masses came out between about 0.05 and 0.22 where the truth is 0.125.
# * Training an energy by DSM costs a second backward pass and returns an energy you can normalise, compare and
#   compose: AND (a sum) and NOT (a difference) need no partition function; OR (a mixture) does.
# * The noise-prediction network of a diffusion model is a scaled score, $\boldsymbol\epsilon_\theta = -\sigma\,\mathbf{s}_\theta$.
#
# **Next:** chapter 7 turns a classifier into an energy-based model (JEM) and asks what the energy of an
# image says about its label, its calibration, and whether it is out of distribution.
