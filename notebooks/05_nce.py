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
# # Chapter 5: Noise-contrastive estimation
#
# Maximum likelihood needs the gradient of $\log Z(\theta)$, which is an expectation under the model: every
# training step of chapters 1–4 had to *sample* from the model, by exact sampling, Gibbs sampling or Langevin
# dynamics. Noise-contrastive estimation (NCE, Gutmann & Hyvärinen 2010, 2012) sidesteps sampling from the
# model altogether. It turns density estimation into *classification*: learn to tell the data apart from
# samples of a noise distribution that we chose ourselves, and whose density we know. If the classifier is
# built out of the model's density, the best classifier is the true density, and the normaliser comes out
# as a learned number.
#
# **Learning objectives.** After this chapter you can
# 1. derive the NCE logit $\Delta(\mathbf{x}) = -E_\theta(\mathbf{x}) - c - \log(\nu\, p_n(\mathbf{x}))$ and
#    the NCE loss from Bayes' rule, and explain why the log-normaliser $c$ can be learned at all, and where;
# 2. compute the decision boundary of an NCE classifier by hand;
# 3. explain what noise equal to the data does, and does not do, to the learning signal, and why the best
#    noise is not the data;
# 4. train Gaussian EBMs by NCE and watch the errors of $\boldsymbol\mu$, $\Lambda$ and $c$ (against
#    $\log Z$) fall towards those of maximum likelihood on the same data as the noise ratio $\nu$ grows, as
#    Gutmann & Hyvärinen's asymptotic theory predicts;
# 5. train a neural energy by NCE, check its learned $c$ against $\log Z$ by quadrature, and recognise noise
#    that is too narrow or too broad;
# 6. compare NCE with maximum likelihood (chapter 4's replay-buffer Langevin training) at the same cost, and
#    find out *where* one model is better than the other;
# 7. see InfoNCE, the loss of contrastive representation learning, as NCE with many noise samples per datum,
#    say what it learns and what it cannot (the normaliser), and normalise it afterwards with the same noise.

# %%
import inspect
import itertools
import math
import time
from functools import partial

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import toy_data, toy_distribution
from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.evaluate import grid, log_likelihood_grid, log_partition_grid
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.nce import (
    GaussianNoise,
    NCEModel,
    UniformNoise,
    decision_boundary_1d,
    fit_nce,
    importance_log_z,
    nce_asymptotic_covariance,
    nce_logit,
    nce_loss,
    ranking_nce_loss,
    train_nce,
)
from ebm_teach.plotting import (
    plot_bump_masses,
    plot_error_vs_nu,
    plot_log_density_panels,
    plot_nce_boundary_1d,
    plot_nce_classifier,
)
from ebm_teach.samplers import ReplayBuffer, ula, uniform_noise
from ebm_teach.training import train_ebm

SCALE = 1  # integer; raise it on a GPU: more repetitions, data and steps
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # thousands of tiny tensor ops: one thread
dtype = torch.float64  # the Gaussian sections are exact computations
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. From density estimation to classification
#
# Pool $T_d$ data points (label $C = 1$) with $T_n = \nu T_d$ points drawn from a noise density $p_n$
# (label $C = 0$). A point picked from the pool is data with prior probability $1/(1+\nu)$, so by Bayes' rule
#
# $$P(C = 1 \mid \mathbf{x}) = \frac{p_d(\mathbf{x})}{p_d(\mathbf{x}) + \nu\, p_n(\mathbf{x})}
#   = \sigma\!\left(\log p_d(\mathbf{x}) - \log\big(\nu\, p_n(\mathbf{x})\big)\right),
#   \qquad \sigma(t) = \frac{1}{1 + e^{-t}}.$$
#
# We do not know $p_d$; we put our model in its place. The model is an energy with **its own
# log-normaliser $c$**, a free parameter: $\log p_\theta(\mathbf{x}) = -E_\theta(\mathbf{x}) - c$. The classifier's
# logit is then
#
# $$\boxed{\Delta(\mathbf{x}) = -E_\theta(\mathbf{x}) - c - \log\big(\nu\, p_n(\mathbf{x})\big)}$$
#
# and we fit it like any logistic regression, by maximising the log-likelihood of the labels. Per data point,
# Gutmann & Hyvärinen's objective is
#
# $$J(\theta, c) = \mathbb{E}_{\text{data}}\big[\log \sigma(\Delta)\big]
#   + \nu\, \mathbb{E}_{\text{noise}}\big[\log(1 - \sigma(\Delta))\big].$$
#
# **Our normalisation.** The package minimises the plain binary cross-entropy averaged over all
# $(1+\nu)T_d$ points of the pool,
#
# $$\mathcal{L} = \frac{1}{T_d + T_n}\Big[\sum_{\text{data}} \operatorname{softplus}(-\Delta)
#   + \sum_{\text{noise}} \operatorname{softplus}(\Delta)\Big] = -\frac{J}{1 + \nu},$$
#
# using $-\log\sigma(t) = \operatorname{softplus}(-t)$ and $-\log(1-\sigma(t)) = \operatorname{softplus}(t)$,
# which never overflow. Dividing by the constant $1+\nu$ moves no optimum; it keeps the loss on the same scale
# for every $\nu$ (one learning rate serves a whole sweep over $\nu$), and it reads as what it is, the mean
# classification loss. Written for $\nu = 1$ as the sum of the two means, as some texts do, it is
# $2\mathcal{L}$.

# %%
print(inspect.getsource(nce_logit))
print(inspect.getsource(nce_loss))

# %% [markdown]
# **Why $c$ can be learned.** Under maximum likelihood a free $c$ would be hopeless: $\mathbb{E}_{\text{data}}[-E - c]$
# grows without bound as $c \to -\infty$, because an unnormalised model can claim more mass everywhere. In NCE
# the noise term charges for that: inflating $p_\theta$ everywhere makes the noise look like data. Fix a point
# $\mathbf{x}$ and let $s = \sigma(\Delta(\mathbf{x}))$. The population objective collects
# $p_d(\mathbf{x}) \log s + \nu p_n(\mathbf{x}) \log(1 - s)$ there, which is largest at
# $s^\star = p_d / (p_d + \nu p_n)$, the Bayes classifier. That is reached exactly when
# $e^{-E_\theta(\mathbf{x}) - c} = p_d(\mathbf{x})$ wherever $p_n(\mathbf{x}) > 0$. If that covers everything,
# the optimal model is a normalised density, so $c = \log \int e^{-E_\theta} d\mathbf{x} = \log Z(\theta)$:
# **at the optimum the model normalises itself.**
#
# Three conditions hide in this argument. The model family must contain $p_d$. The noise must be positive
# wherever the data are, so that the matched $e^{-E-c}$ holds all of $p_d$'s mass. And the noise must reach
# wherever *the model* can put mass: where $p_n = 0$ the loss never sees $e^{-E}$, so the energy is free
# there, and $Z$ counts whatever it puts there (the matched part already has mass one, so then
# $c < \log Z$). On an unbounded domain that mass need not even be finite; section 5 shows a network doing
# exactly this. With a finite noise sample, "reach" means "where noise samples actually land". A parametric
# family can be saved by its shape: the Gaussian of section 4, fitted against noise on a box, has its tails
# fixed by its inside.
#
# We check the self-normalisation on the Gaussian EBM $E(x) = \tfrac12 x^2$ with data $\mathcal{N}(0, 1)$
# and noise $\mathcal{N}(0, 4)$, $\nu = 1$: shift $c$ away from $\log Z = \tfrac12\log 2\pi = 0.919$ and
# compute the population NCE loss by quadrature, beside the naive average log-likelihood
# $\mathbb{E}_{\text{data}}[-E - c]$.

# %%
xs, _, dx = grid([(-30.0, 30.0)], 6000, dtype=dtype)  # 1-D quadrature grid
x1 = xs[:, 0]


def log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def population_nce_loss(energy, c, log_pd, log_pn, nu):
    """[int p_d softplus(-Delta) + nu int p_n softplus(Delta)] / (1 + nu)."""
    delta = nce_logit(energy, c, log_pn, nu)
    integrand = (log_pd.exp() * F.softplus(-delta)
                 + nu * log_pn.exp() * F.softplus(delta))
    return integrand.sum() * dx / (1 + nu)


log_z = 0.5 * math.log(2 * math.pi)
log_pd, log_pn = log_normal(x1, 0.0, 1.0), log_normal(x1, 0.0, 4.0)
print(f"log Z = {exact(log_z, '.3f')}")
print(" c - log Z   NCE loss   E_data[-E - c]")
for shift in (-1.0, -0.5, 0.0, 0.5, 1.0):
    c = log_z + shift
    nce = float(population_nce_loss(0.5 * x1**2, c, log_pd, log_pn, 1.0))
    naive = float((log_pd.exp() * (-0.5 * x1**2 - c)).sum() * dx)
    print(f"  {shift:+.1f}      {exact(nce, '.4f')}     {exact(naive, '+.3f')}")

# %% [markdown]
# The naive log-likelihood keeps rising as $c$ falls; the NCE loss has its minimum exactly at $c = \log Z$.
#
# ## 2. The worked example: a decision boundary
#
# Take the unnormalised model $\tilde p(x) = e^{-x^2/2}$ (so $c = 0$), the noise
# $p_n = \mathcal{N}(0, 4)$ and $\nu = 1$, and ask where the classifier is undecided, $\Delta(x) = 0$:
#
# $$e^{-x^2/2} = \frac{1}{2\sqrt{2\pi}}\, e^{-x^2/8}
#   \;\Longleftrightarrow\; \frac{3x^2}{8} = \ln\big(2\sqrt{2\pi}\big)
#   \;\Longleftrightarrow\; |x| = \sqrt{\tfrac83 \ln\big(2\sqrt{2\pi}\big)} \approx 2.073 .$$
#
# Inside the boundary the model's curve lies above the noise's and the classifier says "data"; in the tails
# the broad noise wins. We compute the boundary from the formula and by root-finding on $\Delta$ with the
# package's `decision_boundary_1d`.

# %%
noise_we = GaussianNoise(torch.zeros(1, dtype=dtype),
                         torch.tensor([[4.0]], dtype=dtype))


def delta_we(x, c=0.0):
    return nce_logit(0.5 * x[:, 0] ** 2, c, noise_we.log_prob(x), 1.0)


closed = math.sqrt(8 / 3 * math.log(2 * math.sqrt(2 * math.pi)))
roots = decision_boundary_1d(delta_we, (-8, 8))
print(f"closed form: |x| = {exact(closed, '.3f')}")
print("root-finding on Delta:", [exact(r, "+.3f") for r in roots.tolist()])
xp = torch.linspace(-6, 6, 601, dtype=dtype)[:, None]
plot_nce_boundary_1d(
    xp[:, 0], torch.exp(-0.5 * xp[:, 0] ** 2), noise_we.log_prob(xp).exp(),
    torch.sigmoid(delta_we(xp)), roots,
    title=r"$\tilde p(x) = e^{-x^2/2}$ against $\nu p_n = \mathcal{N}(0, 4)$")
plt.tight_layout()
plt.show()

# %% [markdown]
# Note what $c = 0$ means here: $\tilde p$ has mass $\sqrt{2\pi} \approx 2.5$, so the model claims two and a half
# times too much density everywhere, and its "data" region is too wide. Had NCE learned $c$ for data that
# really are $\mathcal{N}(0,1)$, it would have reached $c = \log\sqrt{2\pi}$, and the boundary would sit where
# the two *normalised* densities cross, $\mathcal{N}(x; 0, 1) = \mathcal{N}(x; 0, 4)$, i.e.
# $|x| = \sqrt{\tfrac83 \ln 2} \approx 1.360$:

# %%
roots_c = decision_boundary_1d(lambda x: delta_we(x, c=log_z), (-8, 8))
print(f"closed form: |x| = {exact(math.sqrt(8 / 3 * math.log(2)), '.3f')};",
      "root-finding:", [exact(r, "+.3f") for r in roots_c.tolist()])

# %% [markdown]
# ## 3. Noise equal to the data: a classifier at chance, not a flat loss
#
# One often reads that noise equal to the data gives NCE "no learning signal". Let us test that. With the
# model $E(x) = x^2/(2\sigma^2)$, its log-normaliser $c$, and noise $\mathcal{N}(0, \sigma_n^2)$,
#
# $$\Delta(x) = -\frac{x^2}{2\sigma^2} - c - \log\nu + \tfrac12\log(2\pi\sigma_n^2)
#   + \frac{x^2}{2\sigma_n^2},$$
#
# which is constant in $x$ exactly when $\sigma_n = \sigma$. With $c$ at $\log Z = \tfrac12\log(2\pi\sigma^2)$
# the constant is $-\log\nu$:
# the classifier says $P(\text{data} \mid x) = 1/(1+\nu)$ everywhere, its prior. No classifier can do better,
# because data and noise *are* the same distribution. The loss sits at the binary entropy
# $H\big(\tfrac{1}{1+\nu}\big)$, its floor, and the gradient there is zero.
#
# So "no learning signal" holds *at the optimum*, where every estimator's gradient vanishes. Away from it
# the model no longer matches the data, the loss rises above its floor, and its gradient points back to the
# truth. Below, the data are $\mathcal{N}(0,1)$, the model is $E(x) = \tfrac12(x-\mu)^2$ with $c = \log Z$,
# $\nu = 1$, and we compute the population loss and its derivative in $\mu$ by quadrature and autograd, for
# noise equal to the data ($\sigma_n = 1$), broader ($\sigma_n = 3$) and far broader ($\sigma_n = 10$).

# %%
nu = 1.0
mus = torch.linspace(-2, 2, 81, dtype=dtype)
fig, axes = plt.subplots(1, 3, figsize=(7.6, 3))
entropy = math.log(2)
print(f"binary entropy H(1/2) = {exact(entropy, '.4f')}")
grads_at_truth = []
keep = x1.abs() < 4
styles = {1.0: {"color": "C0", "ls": "--", "lw": 2.2, "zorder": 3},  # on top: the
          3.0: {"color": "C1", "lw": 1.5}, 10.0: {"color": "C2", "lw": 1.5}}
for sigma_n, style in styles.items():  # sigma_n = 3 curve nearly hides it
    log_pn = log_normal(x1, 0.0, sigma_n**2)
    d = nce_logit(0.5 * x1**2, log_z, log_pn, nu)
    axes[0].plot(x1[keep], d[keep], label=rf"$\sigma_n = {sigma_n:g}$", **style)
    losses, grads = [], []
    for m in mus:
        m = m.clone().requires_grad_(True)
        energy = 0.5 * (x1 - m) ** 2
        loss = population_nce_loss(energy, log_z, log_pd, log_pn, nu)
        (g,) = torch.autograd.grad(loss, m)
        losses.append(float(loss.detach()))
        grads.append(float(g))
    m0 = torch.zeros((), dtype=dtype, requires_grad=True)
    loss0 = population_nce_loss(0.5 * (x1 - m0) ** 2, log_z, log_pd, log_pn, nu)
    (g0,) = torch.autograd.grad(loss0, m0, create_graph=True)
    (curv,) = torch.autograd.grad(g0, m0)
    grads_at_truth.append(float(g0.detach()))
    print(f"sigma_n = {sigma_n:4.1f}: loss at the truth "
          f"{exact(loss0.detach(), '.4f')}, curvature d2L/dmu2 = "
          f"{exact(curv, '.4f')}")
    axes[1].plot(mus, losses, **style)
    axes[2].plot(mus, grads, **style)
axes[0].set(xlabel="$x$", ylabel=r"$\Delta(x)$", title="the logit at the truth")
axes[1].set(xlabel=r"model mean $\mu$", ylabel=r"loss $\mathcal{L}$",
            title="not flat")
axes[2].set(xlabel=r"model mean $\mu$",
            ylabel=r"$\partial\mathcal{L}/\partial\mu$",
            title="its gradient points home")
axes[2].axhline(0, color="gray", lw=0.8)
fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=3,
           frameon=False, bbox_to_anchor=(0.5, 1.06))
print(claim(max(abs(g) for g in grads_at_truth) < 1e-10,
            "the gradient at the truth is 0 (to 1e-10) for every sigma_n"))
plt.tight_layout()
plt.show()

# %% [markdown]
# (The three panels share the colours of the legend; $\nu = 1$ and $c = \log Z$ throughout. In the right
# panel the dashed $\sigma_n = 1$ curve nearly coincides with the $\sigma_n = 3$ one.)
#
# To read the curvatures we need one matrix. Let $\mathbf{g} = \nabla_{(\theta, c)} \log p_\theta(\mathbf{x})$
# at the truth, and $P_\nu(\mathbf{x}) = \nu p_n / (p_d + \nu p_n)$, the Bayes classifier's probability that
# $\mathbf{x}$ is noise. Then
#
# $$I_\nu = \int \mathbf{g}\mathbf{g}^\top P_\nu\, p_d\, d\mathbf{x}$$
#
# is a Fisher information weighted by $P_\nu$, and our $\mathcal{L}$ has Hessian $I_\nu/(1+\nu)$ at the
# truth. With $p_n = p_d$ the weight $P_\nu$ is the constant $\nu/(1+\nu)$, so the curvature in $\mu$ is
# $\nu/(1+\nu)^2 \cdot I_{\mu\mu} = \nu/(1+\nu)^2 \cdot \Lambda = 0.25$ here ($\Lambda = 1/\sigma^2 = 1$).
# With noise equal to the data the loss at the truth is $\ln 2 = H(\tfrac12)$ and its gradient is zero, as
# the "no signal" reading says; yet the loss is a clean bowl. The broader noise $\sigma_n = 3$ gives a slightly
# *steeper* bowl (0.2658): the data are easier to tell from it, and a shifted model is charged more. Only the
# far broader noise flattens it (0.1629): against $\sigma_n = 10$ the data are easy to recognise for a wide
# range of $\mu$.
#
# Curvature alone does not measure how well an estimator learns from finite data; its variance does, which
# is the sampling variance of the gradient divided by the squared curvature (in several dimensions the
# "sandwich" $H^{-1} V H^{-1}$).
#
# **How much signal?** Gutmann & Hyvärinen (2012, Theorem 3) give the estimator's asymptotic covariance:
# $\sqrt{T_d}\,(\hat\theta - \theta^\star) \to \mathcal{N}(0, \Sigma)$ with
#
# $$\Sigma = I_\nu^{-1} - \Big(1 + \frac1\nu\Big) I_\nu^{-1} \mathbf{m}\mathbf{m}^\top I_\nu^{-1},\qquad
#   \mathbf{m} = \int \mathbf{g} P_\nu\, p_d\, d\mathbf{x}.$$
#
# The theorem is about one fixed sample of $T_d$ data points and $\nu T_d$ noise points, with the loss
# minimised to the end: that is `fit_nce` in section 4, not the stochastic `train_nce` of section 5. The
# package evaluates $\Sigma$ by quadrature. For $p_n = p_d$ it is exactly $(1 + 1/\nu)$ times the Cramér–Rao
# bound of maximum likelihood: with $\nu = 1$ noise equal to the data costs half the data, not all of it.
# For the 1-D Gaussian $\log p = -\tfrac12\Lambda(x-\mu)^2 - c$ with parameters $(\mu, \Lambda, c)$, the
# Cramér–Rao variances are $1/\Lambda$, $2\Lambda^2$ and $\tfrac12$ (for $c = \log Z(\Lambda)$, by the delta
# method). We plot the ratio NCE / Cramér–Rao against the noise width.

# %%
def score_1d(mu, lam):
    """g(x) = d/d(mu, Lambda, c) of -Lambda (x - mu)^2 / 2 - c: (batch, 3)."""
    def g(x):
        r = x[:, 0] - mu
        return torch.stack([lam * r, -0.5 * r**2, -torch.ones_like(r)], 1)
    return g


cramer_rao = torch.tensor([1.0, 2.0, 0.5], dtype=dtype)  # mu = 0, Lambda = 1
widths = torch.logspace(math.log10(0.3), 2, 40, dtype=dtype)
log_p_std = lambda x: log_normal(x[:, 0], 0.0, 1.0)  # the data: N(0, 1)


def variance_ratio(sigma_n, nu_):
    """NCE's asymptotic variances of (mu, Lambda, c) / Cramer-Rao, for
    data N(0, 1) and noise N(0, sigma_n^2)."""
    log_noise = lambda x: log_normal(x[:, 0], 0.0, float(sigma_n) ** 2)
    sigma = nce_asymptotic_covariance(score_1d(0.0, 1.0), log_p_std, log_noise,
                                      nu_, [(-60.0, 60.0)], 12000)
    return torch.diagonal(sigma) / cramer_rao


fig, axes = plt.subplots(1, 3, figsize=(7.8, 3.2), sharey=True,
                         layout="constrained")
for nu_ in (1.0, 10.0):
    ratios = torch.stack([variance_ratio(s, nu_) for s in widths])
    for ax, j, name in zip(axes, range(3),
                           (r"$\hat\mu$", r"$\hat\Lambda$", r"$\hat c$")):
        ax.loglog(widths, ratios[:, j], label=rf"$\nu = {nu_:g}$")
        ax.set(xlabel=r"noise width $\sigma_n$", title=f"variance of {name}")
for ax in axes:
    ax.axvline(1.0, color="gray", ls=":", lw=1.2, label="noise = data")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="Cramér–Rao bound")
axes[0].set_ylabel("NCE variance / Cramér–Rao")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center",
           ncol=4, frameon=False)
plt.show()
print("NCE variance / Cramer-Rao, data N(0, 1), noise N(0, sigma_n^2):")
print(f"{'':7s}{'nu = 1':^24s}{'nu = 10':^24s}")
print(f"{'sigma_n':>7s}" + "".join(f"{h:>8s}" for h in ("mu", "Lambda", "c") * 2))
for s in (1.0, 1.5, 2.0, 3.0):
    cells = [exact(v, ".2f") for nu_ in (1.0, 10.0)
             for v in variance_ratio(s, nu_).tolist()]
    print(f"{s:7.1f}" + "".join(f"{v:>8s}" for v in cells))

# %% [markdown]
# Noise equal to the data is a good choice, not a useless one: every variance is $2\times$ the Cramér–Rao
# bound at $\nu = 1$ and $1.1\times$ at $\nu = 10$. But it is not the best choice, and the best choice depends
# on the parameter. The variance explodes for noise *narrower* than the data (the tails of the data are never
# contrasted with anything) and grows steadily for noise much *broader* (most noise lands where it teaches
# nothing), fastest for $\hat c$. In between, at $\nu = 1$, noise $1.5$–$2$ times as broad as the data beats
# noise equal to the data for $\hat\mu$ and $\hat\Lambda$ (about $1.7\times$ and $1.5\times$ the bound instead
# of $2\times$), while the same noise costs $\hat c$ dearly: $2.68\times$ at $\sigma_n = 1.5$ and $3.63\times$
# at $\sigma_n = 2$, that is 34 % and 82 % above noise equal to the data. At $\nu = 10$ every curve is pulled
# towards the bound and the differences shrink ($\hat c$: $1.18\times$ and $1.29\times$ against $1.1\times$).
#
# That the optimal noise is not the data was noticed early (Pihlaja, Gutmann & Hyvärinen 2010) and worked
# out in general by Chehab, Gramfort & Hyvärinen (2022, "The optimal noise in noise-contrastive learning is
# not what you think"): it depends on $\nu$ and on which parameter one cares about. (Exercise 5.4 takes the
# extreme case: the energy is known and only $c$ is estimated.)
#
# ## 4. Gaussian EBMs trained by NCE: convergence as $\nu$ grows
#
# `fit_nce` is the estimator of Gutmann & Hyvärinen: one fixed set of $T_d$ data points and $\nu T_d$ noise
# points, and the loss minimised to the end (full-batch L-BFGS, which for these few parameters needs a dozen
# or two iterations). The model is the chapter 1 `GaussianEBM` wrapped with a learned $c$:

# %%
print(inspect.getsource(NCEModel.log_prob))
print(inspect.getsource(fit_nce))

# %% [markdown]
# **One dimension.** The truth is $\mathcal{N}(1, 0.5^2)$: $\mu = 1$, $\Lambda = 4$,
# $\log Z = \tfrac12\log(2\pi/\Lambda) = 0.226$. The noise is $\mathcal{N}(0, 2^2)$. We draw 20 data sets of
# $T_d = 500$ points and fit each of them with every $\nu$ (fresh noise each time; the same data sets for
# every $\nu$, so that the curves differ only by the noise ratio). We measure the root-mean-square error of
# $\hat\mu$, $\hat\Lambda$ and $\hat c$ against the truth, next to the asymptotic prediction
# $\sqrt{\Sigma_{jj}/T_d}$, the Cramér–Rao bound, and maximum likelihood *on the same 20 data sets* (the
# sample mean, the inverse sample variance, and $\log Z$ of that fit).

# %% tags=["nbval-ignore-output"]
four = torch.tensor([[4.0]], dtype=dtype, device=device)
truth_1d = GaussianEBM(torch.tensor([1.0], dtype=dtype, device=device), four)
noise_1d = GaussianNoise(torch.zeros(1, dtype=dtype, device=device), four)
with torch.no_grad():
    true_1d = torch.tensor([1.0, 4.0, float(truth_1d.log_partition())],
                           dtype=dtype)


def rmse_and_se(err, dim=0):
    """RMS of err over `dim`, and its standard error (delta method)."""
    sq = err**2
    rmse = sq.mean(dim).sqrt()
    return rmse, sq.std(dim) / math.sqrt(sq.shape[dim]) / (2 * rmse)


t_d, reps = 500, 20 * SCALE
nus = [1, 2, 4, 8, 16, 32, 64]
gen = make_generator(1, device)
estimates = torch.zeros(len(nus), reps, 3, dtype=dtype)
ml_1d = torch.zeros(reps, 3, dtype=dtype)
for r in range(reps):
    x = truth_1d.sample(t_d, generator=gen)
    lam_ml = 1 / x.var(correction=0)  # maximum likelihood, closed form
    ml_1d[r] = torch.stack([x.mean(), lam_ml,
                            0.5 * torch.log(2 * math.pi / lam_ml)]).cpu()
    for i, nu_ in enumerate(nus):
        model = NCEModel(GaussianEBM.standard(1, dtype=dtype, device=device))
        x_noise = noise_1d.sample(nu_ * t_d, generator=gen)
        fit_nce(model, x, x_noise, noise_1d, nu_)
        with torch.no_grad():
            estimate = [model.energy.mu[0], model.energy.precision[0, 0],
                        model.c]
            estimates[i, r] = torch.stack(estimate).cpu()
rmse_1d, se_1d = rmse_and_se(estimates - true_1d, dim=1)  # (len(nus), 3)
rmse_ml_1d, _ = rmse_and_se(ml_1d - true_1d)  # (3,)
log_p_1d = lambda x: log_normal(x[:, 0], 1.0, 0.25)
log_noise_1d = lambda x: log_normal(x[:, 0], 0.0, 4.0)
theory_1d = torch.stack([
    torch.diagonal(nce_asymptotic_covariance(
        score_1d(1.0, 4.0), log_p_1d, log_noise_1d, nu_, [(-12.0, 12.0)],
        12000) / t_d).sqrt()
    for nu_ in nus])
floor_1d = (torch.tensor([1 / 4.0, 2 * 4.0**2, 0.5], dtype=dtype) / t_d).sqrt()
print(f"true mu = 1, Lambda = 4, log Z = {float(true_1d[2]):.3f}")
print("RMS error (asymptotic theory) of")
print(f"{'nu':>4s}" + "".join(f"{h:^18s}" for h in ("mu", "Lambda", "c")))
for i, nu_ in enumerate(nus):
    pairs = zip(rmse_1d[i].tolist(), theory_1d[i].tolist())
    print(f"{nu_:4d}" + "".join(f"   {m:.3f} ({t:.3f})  " for m, t in pairs))
for name, row in (("ML", rmse_ml_1d), ("CR", floor_1d)):
    print(f"{name:>4s}" + "".join(f"   {m:.3f}          " for m in row.tolist()))
print("(ML: maximum likelihood on the same data sets; CR: Cramer-Rao)")
names = [r"$\hat\mu$", r"$\hat\Lambda$", r"$\hat c$ vs $\log Z$"]
plot_error_vs_nu(
    nus, {n: rmse_1d[:, j] for j, n in enumerate(names)},
    theory={n: theory_1d[:, j] for j, n in enumerate(names)},
    errors={n: se_1d[:, j] for j, n in enumerate(names)},
    floor={n: rmse_ml_1d[j] for j, n in enumerate(names)},
    floor_label="max. likelihood, same data",
    reference={n: floor_1d[j] for j, n in enumerate(names)})
plt.show()

# %% [markdown]
# The table's measured digits change from one machine to the next; the checked figures below are
# ratios. First the theory alone, which is exact (quadrature): its predicted RMS error as a multiple of the
# Cramér–Rao one, per $\nu$.

# %%
print(f"true log Z = {exact(true_1d[2], '.3f')}; Cramer-Rao RMSE for "
      f"T_d = {t_d}:", [exact(v, ".4f") for v in floor_1d.tolist()])
print("theory RMSE / Cramer-Rao RMSE:")
print(f"{'nu':>4s}" + "".join(f"{h:>8s}" for h in ("mu", "Lambda", "c")))
for i, nu_ in enumerate(nus):
    row = [exact(v, ".2f") for v in (theory_1d[i] / floor_1d).tolist()]
    print(f"{nu_:4d}" + "".join(f"{v:>8s}" for v in row))
gain = (theory_1d[0] / theory_1d[-1]).tolist()
print("theory RMSE at nu = 1 / at nu = 64:",
      ", ".join(f"{n} {exact(g, '.2f')}"
                for n, g in zip(("mu", "Lambda", "c"), gain)))

# %% [markdown]
# Then the measurements. Dividing NCE's measured error by maximum likelihood's on the same data sets cancels
# most of the data sets' shared luck; dividing the theory by the Cramér–Rao error gives what that ratio
# should be. Their quotient, averaged over the seven values of $\nu$, should be 1. Each "expected" range in
# this chapter is the mean ± 4 standard deviations over 12 runs with other seeds (`python -m
# ebm_teach.tools.notebooks spread notebooks/05_nce.py --shifts 12`).

# %%
measured_vs_ml = rmse_1d / rmse_ml_1d  # (len(nus), 3)
predicted_vs_cr = theory_1d / floor_1d
ratio_1d = (measured_vs_ml / predicted_vs_cr).mean(0)
print("(NCE RMSE / ML's on the same data) / (theory / Cramer-Rao),")
print("averaged over nu:")
want = [(1.0, 0.2), (1.0, 0.2), (1.0, 0.2)]
for j, name in enumerate(("mu", "Lambda", "c")):
    print(f"  {name:6s}: {expect(ratio_1d[j], *want[j])}")

# %% [markdown]
# Each measured error is a root-mean-square over only 20 repetitions, so it is good to about ±16 % (the error
# bars are one standard error). And because the same 20 data sets serve every $\nu$, their luck is shared:
# if they happen to be easy, the whole curve sits below the theory, every $\nu$ at once. That is why points
# can fall below the Cramér–Rao line (dotted): that line is the error of maximum likelihood *on average over
# all data sets*, and these 20 can be easier than average. The fair floor is maximum likelihood on the same
# 20 data sets (dashed), and the ratio to it, which cancels the shared luck, is what we checked: with the
# luck divided out, the measurements agree with the theory. Over 12 runs with other seeds each ratio
# averaged about 1 and varied by about 5 % (one standard deviation; the ranges above are four of those).
#
# With that, the theory describes the measurements, and it says more than "NCE approaches maximum
# likelihood as $\nu$ grows". The three parameters do not converge alike. For $\hat\mu$ and $\hat\Lambda$ a
# handful of noise samples per datum is enough: at $\nu = 8$ their RMS error is within 10 % of the
# Cramér–Rao one, and NCE is nearly as efficient as maximum likelihood. $\hat c$ starts furthest away (2.93
# times the bound at $\nu = 1$), gains the most from more noise (its error falls by a factor 2.75 from
# $\nu = 1$ to 64, against 1.46 for $\hat\mu$ and 1.33 for $\hat\Lambda$), and is still 1.44 and 1.24 times
# the bound at $\nu = 8$ and 16. The normaliser is the expensive parameter. Note also that none of these
# errors goes to zero: with $T_d$ fixed, more noise only takes NCE to the error of maximum likelihood on the
# same data.
#
# **Two dimensions, uniform noise.** The truth is the chapter 1 Gaussian with
# $\boldsymbol\mu = (1, -0.5)$ and $\Lambda = \begin{pmatrix}2 & 0.8\\ 0.8 & 1\end{pmatrix}$. This time the
# noise is uniform on the box $[-6, 6]^2$, which knows nothing about the data but covers them. Again 20 data
# sets of 500 points, each fitted with every $\nu$; the reference is maximum likelihood on the same data sets
# (the sample mean and the inverse of the sample covariance).

# %% tags=["nbval-ignore-output"]
mu_2d = torch.tensor([1.0, -0.5], dtype=dtype, device=device)
lam_2d = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=dtype, device=device)
truth_2d = GaussianEBM(mu_2d, lam_2d)
six = torch.full((2,), 6.0, dtype=dtype, device=device)
box = UniformNoise(-six, six)
with torch.no_grad():
    log_z_2d = float(truth_2d.log_partition())
print(f"true log Z = {log_z_2d:.3f}")


def errors_2d(mu_hat, lam_hat, c_hat):
    """|mu error|, ||Lambda error||_F and |c - log Z| of one estimate."""
    mu_err, lam_err = (mu_hat - mu_2d).norm(), (lam_hat - lam_2d).norm()
    return [float(mu_err), float(lam_err), abs(float(c_hat) - log_z_2d)]


t_d2, reps2, nus2 = 500, 20 * SCALE, [1, 4, 16, 64]
gen = make_generator(2, device)
err_nce = torch.zeros(len(nus2), reps2, 3, dtype=dtype)
err_ml = torch.zeros(reps2, 3, dtype=dtype)
for r in range(reps2):
    x = truth_2d.sample(t_d2, generator=gen)
    ml = GaussianEBM.from_moments(x.mean(0), torch.cov(x.T, correction=0))
    with torch.no_grad():
        err_ml[r] = torch.tensor(
            errors_2d(ml.mu, ml.precision, ml.log_partition()))
    for i, nu_ in enumerate(nus2):
        model = NCEModel(GaussianEBM.standard(2, dtype=dtype, device=device))
        fit_nce(model, x, box.sample(nu_ * t_d2, generator=gen), box, nu_)
        with torch.no_grad():
            err_nce[i, r] = torch.tensor(errors_2d(
                model.energy.mu, model.energy.precision, model.c))
rms_nce, se_nce = rmse_and_se(err_nce, dim=1)
rms_ml, _ = rmse_and_se(err_ml)
print("  nu   |mu error|   ||Lambda error||_F   |c - log Z|   (RMS)")
for i, nu_ in enumerate(nus2):
    print("{:4d}   {:10.3f}   {:18.3f}   {:11.3f}".format(nu_, *rms_nce[i]))
print("  ML   {:10.3f}   {:18.3f}   {:11.3f}".format(*rms_ml.tolist()))
names2 = [r"$\|\hat{\mu} - \mu\|$", r"$\|\hat\Lambda - \Lambda\|_F$",
          r"$|\hat c - \log Z|$"]
plot_error_vs_nu(nus2, {n: rms_nce[:, j] for j, n in enumerate(names2)},
                 errors={n: se_nce[:, j] for j, n in enumerate(names2)},
                 floor={n: rms_ml[j] for j, n in enumerate(names2)},
                 floor_label="maximum likelihood, same data")
plt.show()

# %%
print(f"true log Z = {exact(log_z_2d, '.3f')}")
print("NCE's RMS error / maximum likelihood's:")
want = {0: [(2.0, 0.9), (1.7, 1.2), (4.8, 3.2)],
        -1: [(1.04, 0.22), (1.03, 0.19), (1.22, 0.57)]}
for i, w in want.items():
    ratio = (rms_nce[i] / rms_ml).tolist()
    shown = [f"{name} {expect(r, *w_j)}"
             for name, r, w_j in zip(("mu", "Lambda", "c"), ratio, w)]
    print(f"  nu = {nus2[i]:2d}:", ", ".join(shown))

# %% [markdown]
# Uniform noise is a poor match for a concentrated Gaussian, so at $\nu = 1$ NCE's errors are several times
# the maximum-likelihood ones: over 12 runs with other seeds, the ratio ranged from 1.5 to 2.3 for
# $\boldsymbol\mu$, 1.1 to 2.3 for $\Lambda$ and 2.9 to 6.1 for $c$. More noise closes most of the gap,
# and again least for $c$ (at $\nu = 64$: 1.0–1.5 times maximum likelihood's error for $c$, within
# about 10 % for the others). One fit in detail,
# at $\nu = 64$, with $c$ checked against $\log Z$ of the *learned* energy twice: in closed form, and by
# quadrature on a grid (`log_partition_grid` from `ebm_teach.evaluate`, the tool we will need for neural
# energies).

# %%
gen = make_generator(3, device)
x = truth_2d.sample(2000, generator=gen)
model = NCEModel(GaussianEBM.standard(2, dtype=dtype, device=device))
fit_nce(model, x, box.sample(64 * 2000, generator=gen), box, 64)
bounds_2d = [(-8.0, 10.0), (-9.5, 8.5)]
with torch.no_grad():
    lam_hat = model.energy.precision
    log_z_hat = float(model.energy.log_partition())
    log_z_quad = log_partition_grid(model.energy, bounds_2d, 400, device=device)
    print("learned mu                  :",
          expect(model.energy.mu, [1.0, -0.5], 0.12))
    lam_entries = lam_hat[[0, 0, 1], [0, 1, 1]]
    print("learned Lambda_11, _12, _22 :",
          expect(lam_entries, [2.0, 0.8, 1.0], 0.28))
    print("learned c                   :",
          expect(model.c, round(log_z_2d, 3), 0.1))
    print("log Z of the learned energy :",
          expect(log_z_hat, round(log_z_2d, 3), 0.08))
    print(claim(abs(log_z_quad - log_z_hat) < 1e-4,
                "quadrature on the grid agrees with the closed form to 1e-4"))

# %% [markdown]
# ## 5. A deep energy trained by NCE
#
# Now the energy is a small network (`MLPEnergy`, two hidden layers of 48 SiLU units) and nothing is known
# in closed form. The data are the toy `mixture`: three Gaussian bumps with weights 0.5, 0.3 and 0.2. Since we
# generated them, we know their exact density and can say how good a model is. The noise is a Gaussian fitted
# to the training data (`GaussianNoise.fit`), $\nu = 4$, and training is stochastic: each Adam step takes a
# minibatch of 256 data points and draws $4 \times 256$ fresh noise points.
#
# Fresh noise at every step is a different estimator from section 4's. Over 1000 steps the model sees
# $1000 \times 1024$ noise points for 2000 data points, about 500 per datum, far more than the $\nu = 4$ of
# one fixed sample; but its loss is never minimised on a fixed sample, it is followed for 1000 Adam steps.
# Theorem 3 describes `fit_nce`, not this estimator.

# %%
print(inspect.getsource(train_nce).split('    """')[-1])

# %%
x_train = toy_data("mixture", 2000, seed=0, device=device)
x_test = toy_data("mixture", 2000, seed=1, device=device)
mixture = toy_distribution("mixture").to(device)  # the law of toy_data
true_test_ll = float(mixture.log_prob(x_test.double()).mean())
bounds = [(-8.0, 8.0), (-8.0, 8.0)]
n_grid = 300


def true_energy(x):
    return -mixture.to(dtype=x.dtype).log_prob(x)


print("exact test log-likelihood of the true density:",
      exact(true_test_ll, ".3f"))


def train_mlp_nce(noise, seed=0, n_steps=1000 * SCALE):
    seed_everything(seed)  # the network's initial weights
    model = NCEModel(MLPEnergy(2, 48, 2)).to(device)
    bias = model.energy.net[-1].bias  # the last layer's bias: see below
    bias_start = float(bias.detach())
    start = time.perf_counter()
    history = train_nce(model, x_train, noise, nu=4, n_steps=n_steps,
                        batch_size=256, lr=5e-3, log_every=25,
                        generator=make_generator(seed, device))
    history["bias moved"] = float(bias.detach()) - bias_start
    return model, history, time.perf_counter() - start


def report(model):
    """c, log Z by quadrature, the normalised test LL, and the LL c claims."""
    with torch.no_grad():
        log_z = log_partition_grid(model.energy, bounds, n_grid,
                                   device=device, dtype=torch.float32)
        c = float(model.c)
        ll_claimed = float(model.log_prob(x_test).mean())
    ll = log_likelihood_grid(model.energy, x_test, bounds, n_grid)
    return {"c": c, "log Z": log_z, "LL": ll, "LL using c": ll_claimed}


fitted = GaussianNoise.fit(x_train)
nce_model, nce_history, nce_seconds = train_mlp_nce(fitted)
results = {"fitted Gaussian noise": report(nce_model)}
r = results["fitted Gaussian noise"]
print(f"c - log Z (quadrature): {expect(r['c'] - r['log Z'], 0.04, 0.32)}")
print(f"log Z (quadrature)    : {expect(r['log Z'], 0.06, 0.3)}")
print(f"test LL               : {expect(r['LL'], -2.86, 0.12)}")
print(f"test LL using c       : {expect(r['LL using c'], -2.9, 0.32)}")

# %% [markdown]
# The learned $c$ agrees with $\log Z$ of the learned energy, computed by quadrature over $[-8, 8]^2$, to
# within a few tenths, and the normalised test log-likelihood is close to the true density's. The network
# was never told that densities integrate to one; the classifier taught it.
#
# **Who carries the normaliser?** `MLPEnergy` ends in a linear layer with a bias $b$, and $b$ and $c$ enter
# the logit only through their sum $b + c$. So $\partial\mathcal{L}/\partial b = \partial\mathcal{L}/\partial c$
# on every batch, and Adam, which starts both from zero moments, gives them *identical* updates: they move in
# lockstep.

# %%
c_path = torch.tensor(nce_history["c"])  # c every 25 steps; it starts at 0
print(claim(abs(nce_history["bias moved"] - float(c_path[-1])) < 1e-4,
            "the last layer's bias moved by exactly as much as c"))
print(f"c after 25 steps  : {expect(c_path[0], 0.092, 0.02)}")
print(f"c after all steps : {expect(c_path[-1], 0.1, 0.085)}")
drift = float((c_path[3:] - c_path[3]).abs().max())  # from step 100
print(claim(drift < 0.05, "after step 100, c changes by less than 0.05"))

# %% [markdown]
# Both move at Adam's full speed at first (about the learning rate, 0.005, per step) and settle within the
# first hundred steps; the total normaliser of the model is then carried by the rest of the network. The
# reason is that
#
# $$\frac{\partial\mathcal{L}}{\partial c} = \frac{\sum_{\text{data}}\big(1 - \sigma(\Delta)\big) - \sum_{\text{noise}} \sigma(\Delta)}{T_d + T_n}$$
#
# vanishes exactly when the classifier's mean $P(\text{data} \mid \mathbf{x})$ over the pool equals the
# data's share $1/(1+\nu)$. Once that holds on average, the gradient in $c$ is noise with mean zero, and Adam's steps for it are small; any later shift of
# the energy's level is absorbed by all the other weights together. NCE fixes only the *total* normaliser;
# with an over-parameterised last layer, which parameters carry it is arbitrary. Mnih & Teh (2012), training
# neural language models by NCE, exploited exactly this: they fixed $c = 0$ and let the network normalise
# itself ("self-normalisation"). The check that matters is the one above: $c$ against $\log Z$ of the learned
# energy.
#
# **Noise too narrow, noise too broad.** The classic pitfall of NCE, now measured. We shrink the fitted
# Gaussian's standard deviations by a factor 4 (it then sits in the gap between the bumps and hardly
# reaches them), and widen them by a factor 10 (most noise lands far from any data).

# %% tags=["nbval-ignore-output"]
variants = {"narrow noise (x 1/4)": GaussianNoise.fit(x_train, widen=0.25),
            "broad noise (x 10)": GaussianNoise.fit(x_train, widen=10.0)}
models = {"fitted Gaussian noise": (nce_model, nce_history, fitted)}
for name, noise in variants.items():
    m, h, _ = train_mlp_nce(noise)
    results[name] = report(m)
    models[name] = (m, h, noise)
print(f"{'noise':21s} {'c':>6s} {'log Z':>7s} {'c - log Z':>9s} "
      f"{'test LL':>8s} {'LL using c':>10s}")
for name, r in results.items():
    print(f"{name:21s} {r['c']:6.2f} {r['log Z']:7.2f} "
          f"{r['c'] - r['log Z']:9.2f} {r['LL']:8.2f} {r['LL using c']:10.2f}")
print(f"{'true density':21s} {'':6s} {'':7s} {'':9s} {true_test_ll:8.2f}")

# %%
narrow, broad = results["narrow noise (x 1/4)"], results["broad noise (x 10)"]
fit_r = results["fitted Gaussian noise"]
print(claim(narrow["log Z"] - narrow["c"] > 5,
            "narrow noise: log Z exceeds c by over 5 nats"))
print(claim(narrow["LL using c"] > narrow["LL"] + 5,
            "narrow noise: the test LL using c flatters the true one by > 5"))
print("broad noise: c - log Z",
      expect(broad["c"] - broad["log Z"], -0.02, 0.65),
      "test LL", expect(broad["LL"], -2.92, 0.16))
print("test LL, fitted noise minus broad noise:",
      expect(fit_r["LL"] - broad["LL"], 0.06, 0.16))

# %% [markdown]
# Where does the narrow-noise model put its mass? Its $\log Z$ by quadrature depends on the box we integrate
# over; here it is on $[-L, L]^2$ for growing $L$:

# %%
narrow_energy = models["narrow noise (x 1/4)"][0].energy
half_widths = [8.0, 16.0, 24.0, 32.0]
with torch.no_grad():
    log_z_box = [log_partition_grid(narrow_energy, [(-w, w), (-w, w)], 300,
                                    device=device, dtype=torch.float32)
                 for w in half_widths]
print("L            :", "  ".join(f"{w:6.0f}" for w in half_widths))
print("log Z on box :", "  ".join(f"{v:6.1f}" for v in log_z_box))
steps = [b - a for a, b in itertools.pairwise(log_z_box)]
print(claim(min(steps) > 10,
            "log Z rises by more than 10 nats with every 8 units of L"))

# %% [markdown]
# $\log Z$ grows in proportion to $L$: far from the noise the network's energy falls off roughly linearly,
# so $e^{-E}$ *grows* exponentially, and the integral over the plane is infinite. That is the third
# condition of section 1 failing. A Gaussian's density is positive everywhere, but beyond the last noise
# sample nothing charges the model for mass, and the network is free to put any amount there.
#
# The figure shows all four densities on one logarithmic colour scale (normalised on $[-8, 8]^2$), with the
# noise samples in red.

# %%
fig, axes = plt.subplots(2, 2, figsize=(7.2, 6.6), layout="constrained")
panels = {"true density": true_energy}
panels.update({name: m.energy for name, (m, _, _) in models.items()})
plot_log_density_panels(panels, bounds, axes=axes.flat, decades=6,
                        device=device)
for ax, (m, _, noise) in zip(axes.flat[1:], models.values()):
    s = noise.sample(300, generator=make_generator(9, device))
    ax.scatter(s[:, 0].cpu(), s[:, 1].cpu(), s=2, c="red", alpha=0.5)
    ax.set(xlim=bounds[0], ylim=bounds[1])
plt.show()

# %% [markdown]
# With **narrow** noise the classifier's job is trivial: anything outside a small disc is "data". The loss
# is content as soon as $\Delta$ is large on the data, and nothing ever pushes the energy *up* away from the
# noise, so the network lowers it wherever the noise never goes: the mass piles up at the edge of the box,
# and beyond it. The learned $c$ is meaningless, and the "test log-likelihood using $c$" looks splendid while
# the actual, normalised one is dreadful. This is the sharpest warning of the chapter: **an NCE model's $c$
# is only a normaliser where the noise has been.**
#
# With **broad** noise the result is usable, and only a little worse than with the fitted noise: its test
# log-likelihood was lower in each of 12 runs with other seeds, but only by 0.01 to 0.14 nats (the check
# above), and its bumps are less well shaped. Few noise points land near the data,
# so the energy there is shaped by fewer contrasts. One number in the table can mislead: the broad-noise
# "LL using $c$" may come out *above* the true density's log-likelihood. No model beats the truth; that
# number uses $c$ in place of $\log Z$, and when $c$ falls short of $\log Z$ by a tenth of a nat it flatters
# the model by a tenth of a nat. Only the normalised log-likelihood can be compared with the truth.
#
# The classifiers themselves show why. Here is $P(\text{data} \mid \mathbf{x}) = \sigma(\Delta(\mathbf{x}))$
# for the three models. The crosses mark the centres of the three bumps, and the dashed line is where the
# true density falls to 1 % of its peak.

# %%
fig, axes = plt.subplots(1, 3, figsize=(7.8, 2.8), layout="constrained")
centres = mixture.means.to(torch.float32)
for ax, (name, (m, _, noise)) in zip(axes, models.items()):
    def prob(x, m=m, noise=noise):
        return torch.sigmoid(nce_logit(m.energy(x), m.c, noise.log_prob(x), 4))
    plot_nce_classifier(prob, bounds, centres=centres, ax=ax, device=device,
                        log_density=lambda x: -true_energy(x), title=name,
                        colorbar=False)
fig.colorbar(axes[0].collections[0], ax=axes, shrink=0.8,
             label=r"$P(\mathrm{data}\mid x)$")
plt.show()

# %% [markdown]
# Against the fitted noise the classifier has to work: on the bumps the noise is dense too, so it says
# "data" only with moderate confidence, as the Bayes classifier $p_d/(p_d + \nu p_n)$ should. Against narrow
# noise it says "data" everywhere except the noise's own disc, and against broad noise over a wide region
# around all three bumps: easier answers, which shape the energy near the data less finely. Look also at the
# lower-right corner of the first panel. The fitted noise is an elongated Gaussian that rarely goes there, and
# the model claims it as "data": its density there is tiny, but larger than the noise's, and no noise sample
# ever corrects it. The narrow-noise failure, in miniature: NCE is weakest in the tails of its noise.

# %% [markdown]
# ## 6. NCE against maximum likelihood, at the same cost
#
# Is classifying against noise a good way to train this network, compared with maximum likelihood? A fair
# comparison needs the same network, the same data, the same yardstick and the same budget. The
# maximum-likelihood model is trained by chapter 4's recipe: negatives from a replay buffer (5 % fresh
# uniform noise on the box), 20 ULA steps of size $\epsilon = 0.1$ per update, and the energy penalty
# $\alpha = 0.1$ of Du & Mordatch (2019). The yardstick is the normalised test log-likelihood by quadrature
# (neither method's training loss says how good its model is). To see *where* the models differ we also
# measure the mass each model puts on each bump (every grid point counts for its nearest bump centre) and
# the mass it puts far from all of them (more than 2.5 from every centre, about four standard deviations of
# a bump).
#
# The budget is counted in passes of one point through the network and back, the unit of cost for both: an
# NCE update evaluates the energy and its parameter gradient at $(1+\nu)B = 5 \times 256$ points; a
# maximum-likelihood update takes 20 Langevin steps of $B = 128$ chains (one gradient each) and then the
# loss at $2B$ points, $22 \times 128$ in all. NCE's 1000 updates thus buy 455 maximum-likelihood updates.
# One training run is one draw from a noisy procedure, so each method runs with three seeds.

# %% tags=["nbval-ignore-output"]
points, _, _ = grid(bounds, n_grid, device=device, dtype=torch.float32)
to_centres = torch.cdist(points, centres)
nearest, far = to_centres.argmin(1), to_centres.min(1).values > 2.5
true_mass = mixture.weights.to(torch.float64).cpu()
test_bump = torch.cdist(x_test, centres).argmin(1).cpu()


def mass_profile(energy):
    """The model's mass near each bump centre, and far from all of them:
    softmax(-E) on the grid, summed per nearest centre and over `far`."""
    with torch.no_grad():
        p = torch.softmax(-energy(points).double(), 0).cpu()
    masses = torch.stack([p[nearest.cpu() == k].sum() for k in range(3)])
    return masses, float(p[far.cpu()].sum())


def evaluate(energy):
    """Test LL, bump masses, far mass, and the test LL the same model would
    have with its bump masses set to the true ones (shapes kept)."""
    ll = log_likelihood_grid(energy, x_test, bounds, n_grid)
    masses, far_mass = mass_profile(energy)
    ll_true_masses = ll + float(torch.log(true_mass / masses)[test_bump].mean())
    return {"LL": ll, "masses": masses, "far": far_mass,
            "LL, true masses": ll_true_masses}


nce_cost = 1000 * SCALE * (1 + 4) * 256  # updates x points per update
ml_iters = round(nce_cost / ((20 + 2) * 128))
noise_box = uniform_noise((2,), -8.0, 8.0, device=device)
ml_sampler = partial(ula, n_steps=20, step_size=0.1, clamp=(-8.0, 8.0))
train_bump = torch.cdist(x_train, centres).argmin(1)
data_mass = [float((train_bump == k).double().mean()) for k in range(3)]
print(f"budget: {nce_cost} energy-gradient evaluations")
print(f"updates: NCE {1000 * SCALE}, maximum likelihood {ml_iters}")
methods = ("ML, replay buffer", "NCE")
runs = {method: [] for method in methods}
seconds = {"ML, replay buffer": [], "NCE": [nce_seconds]}
for seed in range(3):
    seed_everything(seed)
    ml_energy = MLPEnergy(2, 48, 2).to(device)
    start = time.perf_counter()
    train_ebm(ml_energy, x_train, ml_iters, ml_sampler, noise_box,
              batch_size=128, lr=5e-3, alpha=0.1,
              buffer=ReplayBuffer(2000, noise_box),
              generator=make_generator(seed, device))
    seconds["ML, replay buffer"].append(time.perf_counter() - start)
    runs["ML, replay buffer"].append(ml_energy)
    if seed == 0:
        nce_energy = nce_model.energy  # trained in section 5 with seed 0
    else:
        m, _, sec = train_mlp_nce(fitted, seed=seed)
        nce_energy = m.energy
        seconds["NCE"].append(sec)
    runs["NCE"].append(nce_energy)
scores = {method: [evaluate(e) for e in energies]
          for method, energies in runs.items()}
print("                         test   LL, true   mass on the     far")
print("method              run    LL     masses   three bumps     mass")
for method, rows in scores.items():
    for seed, s in enumerate(rows):
        masses = " ".join(f"{w:.2f}" for w in s["masses"].tolist())
        print(f"{method:18s} {seed:4d}  {s['LL']:6.2f}  "
              f"{s['LL, true masses']:7.2f}    {masses}  {s['far']:7.3f}")
truth_row = " ".join(f"{w:.2f}" for w in true_mass.tolist())
print(f"{'true density':18s}    -  {true_test_ll:6.2f}  "
      f"{true_test_ll:7.2f}    {truth_row}  {0:7.3f}")
print(f"{'training data':18s}    -                    "
      + " ".join(f"{w:.2f}" for w in data_mass))

# %% [markdown]
# The columns: the test log-likelihood; the same with each model's three bump masses set to the true ones
# (its density multiplied, within each bump's region, by true mass / model mass); the masses; and the mass
# far from every bump. The last row gives the training data's own shares of the bumps, which is what a model
# fitted to these 2000 points may be expected to reach. Averaged over the three runs of each method:

# %%
def mean_of(method, key):
    return torch.tensor([float(s[key].max() if key == "masses" else s[key])
                         for s in scores[method]]).mean()


mass_error = {method: torch.tensor([float((s["masses"] - true_mass).abs().max())
                                    for s in scores[method]])
              for method in methods}
want = {"ML, replay buffer": {"ll": (-3.03, 0.17), "true": (-2.98, 0.11),
                                  "mass": (0.11, 0.15), "far": (0.04, 0.021)},
        "NCE": {"ll": (-2.87, 0.12), "true": (-2.86, 0.11), "mass": (0.06, 0.13),
                    "far": (0.0015, 0.0011)}}
for method in methods:
    w = want[method]
    print(f"{method}, mean over 3 runs:")
    print("  test LL                        ",
          expect(mean_of(method, "LL"), *w["ll"]))
    print("  test LL with the true masses   ",
          expect(mean_of(method, "LL, true masses"), *w["true"]))
    print("  largest error in a bump's mass ",
          expect(mass_error[method].mean(), *w["mass"]))
    print("  mass far from every bump       ",
          expect(mean_of(method, "far"), *w["far"]))
ll = {m: [s["LL"] for s in scores[m]] for m in methods}
ll_fixed = {m: [s["LL, true masses"] for s in scores[m]] for m in methods}
far_mass = {m: [s["far"] for s in scores[m]] for m in methods}
print(claim(min(ll["NCE"]) > max(ll["ML, replay buffer"]),
            "NCE's test LL is above maximum likelihood's in every run"))
print(claim(min(ll["NCE"]) > max(ll_fixed["ML, replay buffer"]),
            "... and still above it with ML's bump masses set to the truth"))
print(claim(min(far_mass["ML, replay buffer"]) > 5 * max(far_mass["NCE"]),
            "ML puts over 5 times more mass far from the bumps, every run"))
gap = sum(ll["NCE"]) / 3 - sum(ll["ML, replay buffer"]) / 3
closed_by_masses = (sum(ll_fixed["ML, replay buffer"])
                    - sum(ll["ML, replay buffer"])) / 3
print("share of the mean LL gap that fixing ML's masses closes:",
      expect(closed_by_masses / gap, 0.26, 0.45))

# %%
print(f"{'':27s}{'ML, buffer':>12s}{'NCE':>12s}")
print(f"{'needs MCMC':27s}{'yes':>12s}{'no':>12s}")
print(f"{'needs a noise density':27s}{'no':>12s}{'yes':>12s}")
print(f"{'parameter updates':27s}{ml_iters:>12d}{1000 * SCALE:>12d}")
print(f"{'gradient evaluations/update':27s}{'22 x 128':>12s}{'5 x 256':>12s}")
print(f"{'estimate of log Z':27s}{'none':>12s}{'c':>12s}")

# %% tags=["nbval-ignore-output"]
for method, secs in seconds.items():
    print(f"{method}: mean training time {sum(secs) / len(secs):.1f} s "
          f"on this {device.type}")

# %% [markdown]
# All six trained densities, on one logarithmic colour scale shared with the true density (first panel),
# and the bump masses of every run (last panel):

# %%
fig, axes = plt.subplots(2, 4, figsize=(7.8, 4.6), layout="constrained")
panels = {"true density": true_energy}
for method, short in zip(methods, ("ML", "NCE")):
    for seed, e in enumerate(runs[method]):
        panels[f"{short}, run {seed}"] = e
order = [0, 1, 2, 3, 5, 6, 7]  # the last panel holds the masses
plot_log_density_panels(panels, bounds, axes=[axes.flat[i] for i in order],
                        decades=5, device=device, n_points=150)
masses = {"ML": torch.stack([s["masses"] for s in scores[methods[0]]]),
          "NCE": torch.stack([s["masses"] for s in scores[methods[1]]])}
plot_bump_masses(masses, true_mass, ax=axes[1, 0])
plt.show()

# %% [markdown]
# At equal cost NCE reaches the better test log-likelihood in every run (and in all 12 runs with other
# seeds), and it gives the normaliser $c$ for free; maximum likelihood needs no noise density. *Where* does
# the difference come from? Not mainly from the bump masses. Neither method gets them reliably right (the
# masses are compared with the true weights 0.5, 0.3 and 0.2; the training data's own shares differ from
# those by a few hundredths). Over 12 runs with other seeds, the largest error in a bump's mass, averaged over
# three trainings, was 0.02 to 0.13 for NCE (mean 0.06) and 0.04 to 0.16 for maximum likelihood (mean
# 0.11), and NCE sometimes puts more mass on the 0.3 bump than on the 0.5 one. And when we set each
# maximum-likelihood model's masses to the true ones, keeping its shape within each bump, its test
# log-likelihood rises by only about a quarter of the gap (0.04 to 0.39 of it over those 12 runs) and stays
# below every NCE run.
#
# The rest is mass in the wrong place. The maximum-likelihood models put about 4 % of their mass (3 % to
# 5 % over the 12 runs) far from all three bumps: the faint halo that fills the box in their panels. The
# NCE models put about 0.15 % there. Which of chapter 4's ingredients leaves that halo we have not
# separated: the buffer's 5 % restarts from uniform noise, chains of 20 steps that do not converge, the
# penalty $\alpha$ that keeps energies near zero. Nor is the maximum-likelihood side tuned: 455 updates with
# chapter 4's settings for $\alpha$, the buffer and the step size. The comparison says that *at this budget,
# with these settings*, NCE's model is better, and that its advantage lies in the empty space between and
# around the data, which the noise covers and short Langevin chains do not.
#
# Two more differences between the estimators matter here. `train_nce` draws fresh noise at every step, so
# each datum is contrasted with about 500 noise points over the run, not 4. And maximum likelihood with
# sampled negatives is itself an approximation of the exact gradient. The classical frame for such a
# comparison is Monte Carlo maximum likelihood (Geyer 1994): estimate $Z(\theta)$ by importance sampling
# from a fixed proposal and maximise the resulting approximate likelihood. Riou-Durand & Chopin (2018)
# proved that with the same independent noise samples as the proposal, NCE's asymptotic variance is never
# larger than Monte Carlo maximum likelihood's. Our maximum-likelihood side uses MCMC, not independent
# samples, so their theorem does not apply to it directly; it does explain why NCE is a serious competitor
# whenever good noise is at hand.
#
# **NCE's price is the noise.** In two dimensions a fitted Gaussian covers the data well. In high
# dimensions a simple noise is easy to tell from the data *everywhere*, and the classifier stops learning:
# the narrow/broad failure of section 5 becomes the rule. The loss landscape then becomes extremely flat,
# and gradient descent on it is slow even when the noise is a reasonable simple family (Liu, Rosenfeld,
# Ravikumar & Risteski 2022, who propose normalised gradient descent and an exponential variant of the
# loss, eNCE); Lee, Pabbaraju, Sevekari & Risteski (2023) show how badly Gaussian noise can do. Rhodes, Xu &
# Gutmann (2020) call the gap between $p_d$ and $p_n$ a "density chasm" and bridge it by telescoping: a
# chain of intermediate distributions and one density ratio per step. Other remedies make the noise itself
# a good model of the data: flow-contrastive estimation trains a normalising flow as the noise, jointly
# with the energy (Gao, Nijkamp, Kingma, Xu, Dai & Wu 2020), and conditional NCE draws each noise sample
# close to its datum (Ceylan & Gutmann 2018). Chapter 6 takes another way out, score matching, which needs
# no noise density at all.
#
# ## 7. Many noise samples per datum: ranking NCE and InfoNCE
#
# Binary NCE labels every point on its own. Another classifier is possible: show it one datum $\mathbf{x}$
# together with $K$ noise samples $\mathbf{y}_1, \dots, \mathbf{y}_K \sim p_n$, shuffled, and ask *which one
# is the datum*. With the scores $s(\mathbf{x}) = -E_\theta(\mathbf{x}) - \log p_n(\mathbf{x})$ (the log of
# $\tilde p_\theta / p_n$), the posterior that the datum sits in a given slot is a softmax over the $K+1$
# scores (Bayes' rule again: the datum's slot has density $p_d$, the others $p_n$), and the loss is its
# cross-entropy,
#
# $$\mathcal{L}_K = \mathbb{E}\Big[-s(\mathbf{x}) + \log\Big(e^{s(\mathbf{x})}
#   + \sum_{k=1}^K e^{s(\mathbf{y}_k)}\Big)\Big].$$
#
# This is *ranking NCE* (Jozefowicz et al. 2016; Ma & Collins 2018), and it is the **InfoNCE** loss of
# contrastive representation learning (van den Oord et al. 2018). There a critic $f(\mathbf{x}, \mathbf{y})$
# scores a positive pair (an item and its context) against $K$ negatives drawn from the marginal; put
# $f = \tilde p_\theta / p_n$ for one fixed context and the two losses coincide. Its minimiser is
# $s = \log(p_d/p_n) + \text{const}$, so it learns the energy up to a constant. In the contrastive setting
# $\log(K+1) - \mathcal{L}_K$ is a lower bound on the mutual information between item and context (van den
# Oord et al. argued it with an approximation; Poole et al. 2019 proved it); in our unconditional setting,
# with one datum against noise, the same quantity is a lower bound on $\mathrm{KL}(p_d \,\|\, p_n)$. The
# constant is the catch: adding $c$ to every score changes no softmax, so **the ranking loss cannot learn
# the normaliser**, which the binary loss can.

# %%
print(inspect.getsource(ranking_nce_loss).split('    """')[-1])

# %% [markdown]
# The normaliser can be recovered afterwards, and with the same noise: $e^{-E}/p_n$ is an importance weight,
# so $\log \hat Z = \log \frac{1}{n}\sum_k e^{-E(\mathbf{y}_k)}/p_n(\mathbf{y}_k)$ estimates $\log Z$ of the
# learned energy from noise samples we already have (`importance_log_z`; no quadrature or AIS needed). With
# the energy fixed and only $c$ unknown, binary NCE is itself an estimator of $\log Z$ from the same noise
# (and the data): its equation for $c$, $\partial\mathcal{L}/\partial c = 0$, is the estimating equation
# of the optimal *bridge sampling* estimator of Meng & Wong (1996). Chehab, Hyvärinen & Risteski (2023)
# compare the two kinds of estimator in depth; Exercise 5.4 derives the variance of this one.

# %%
print(inspect.getsource(importance_log_z).split('    """')[-1])

# %% [markdown]
# The section 4 experiment once more, in one dimension: 20 data sets of $T_d = 500$ points from
# $\mathcal{N}(1, 0.5^2)$, noise $\mathcal{N}(0, 2^2)$, $K = 1, 4, 16, 64$ noise samples per datum, each data
# set and noise sample fitted twice, by ranking NCE and by binary NCE with $\nu = K$ (L-BFGS to the end
# both times). $c$ starts at 0; after the ranking fit we estimate $\log Z$ by importance sampling with the
# same $K T_d$ noise samples.

# %% tags=["nbval-ignore-output"]
ks = [1, 4, 16, 64]
gen = make_generator(10, device)
fits = {objective: torch.zeros(len(ks), reps, 3, dtype=dtype)
        for objective in ("ranking", "binary")}
is_log_z = torch.zeros(len(ks), reps, dtype=dtype)
for r in range(reps):
    x = truth_1d.sample(t_d, generator=gen)
    for i, k in enumerate(ks):
        x_noise = noise_1d.sample(k * t_d, generator=gen)
        for objective, est in fits.items():
            energy = GaussianEBM.standard(1, dtype=dtype, device=device)
            model = NCEModel(energy)
            fit_nce(model, x, x_noise, noise_1d, k, objective=objective)
            with torch.no_grad():
                estimate = [model.energy.mu[0], model.energy.precision[0, 0],
                            model.c]
                est[i, r] = torch.stack(estimate).cpu()
            if objective == "ranking":
                is_log_z[i, r] = importance_log_z(model.energy, x_noise,
                                                  noise_1d).log_z
rmse = {objective: ((est - true_1d) ** 2).mean(1).sqrt()
        for objective, est in fits.items()}
rmse_is = ((is_log_z - true_1d[2]) ** 2).mean(1).sqrt()
print("RMS error   ranking NCE + IS log Z   |   binary NCE")
print("   K      mu  Lambda   log Z        |     mu  Lambda      c")
for i, k in enumerate(ks):
    rm, rl, _ = rmse["ranking"][i].tolist()
    bm, bl, bc = rmse["binary"][i].tolist()
    print(f"{k:4d}   {rm:5.3f}  {rl:6.3f}   {rmse_is[i]:5.3f}        |  "
          f"{bm:5.3f}  {bl:6.3f}  {bc:5.3f}")

# %%
ratio = rmse["ranking"][:, :2] / rmse["binary"][:, :2]  # (len(ks), 2)
print(claim(bool((ratio[0] > 1).all()),
            "with K = 1 ranking NCE is less accurate than binary"))
print("RMSE of (mu, Lambda), ranking over binary, at K = 64:",
      expect(ratio[-1], 1.0, 0.04))
print(claim(bool((rmse["ranking"][-1, :2] < rmse["ranking"][0, :2]).all()),
            "more noise samples per datum make ranking NCE's mu and Lambda "
            "more accurate"))
print(claim(bool((fits["ranking"][:, :, 2] == 0).all()),
            "ranking NCE's c never moved from 0"))
print(f"so its c misses log Z by exactly log Z = {exact(true_1d[2], '.3f')}")
print("RMSE of log Z: ranking + importance sampling over binary NCE's c,")
ratio_is = (rmse_is / rmse["binary"][:, 2]).tolist()
print("  K = 1, 4  :", expect(ratio_is[:2], [1.11, 1.04], 0.42))
print("  K = 16, 64:", expect(ratio_is[2:], [1.0, 1.0], 0.13))

# %% [markdown]
# Ranking NCE learns $\mu$ and $\Lambda$, better with more noise samples per datum: with one it only compares
# pairs and is clearly worse than binary NCE, with 64 it is as accurate. It leaves $c$ where it started, but
# importance sampling with the same noise then gives $\log Z$ to an accuracy close to binary NCE's $c$ (the
# last line: the ratio of the two errors at each $K$). For representation learning the normaliser is no loss
# at all: InfoNCE only needs the critic to *rank* the positive above the negatives, and a representation that
# does that well is the goal. The energy-based view explains both the success of contrastive learning with
# many negatives ($K$ in the thousands in practice, since the bound $\log(K+1)$ caps what the loss can
# measure) and what it does not give: a normalised density.
#
# **Relatives.** The same classification idea runs through much of machine learning. Estimating a density
# ratio by training a classifier is a field of its own (Sugiyama, Suzuki & Kanamori 2012). A GAN's
# discriminator is an NCE classifier whose noise, the generator, is trained to fool it (Goodfellow et al.
# 2014), and likelihood-free inference for simulators uses the same trick (Gutmann, Dutta, Kaski & Corander
# 2018). In language modelling, Mnih & Teh (2012) trained word models by NCE with $c$ fixed to 0. word2vec's
# *negative sampling* (Mikolov et al. 2013) keeps NCE's form but sets $\nu p_n \equiv 1$ in the logit, so the
# logit is $-E$ alone; that is no longer a consistent density estimator: it learns a useful representation,
# not the word distribution (Dyer 2014; Goldberg & Levy 2014).
#
# ## Summary
#
# - NCE trains an unnormalised model $\log p_\theta = -E_\theta - c$ as a classifier of data against noise
#   with the logit $\Delta = -E_\theta - c - \log(\nu p_n)$ and the binary cross-entropy; we average it over
#   all $(1+\nu)T_d$ points, which is Gutmann & Hyvärinen's $-J/(1+\nu)$.
# - The optimal classifier is built from the true density, so $c$ is learned and equals $\log Z$ at the
#   optimum, provided the noise reaches the data *and* everywhere the model can put mass. Narrow noise on an
#   unbounded domain lets a network put infinite mass where no noise sample lands.
# - The worked example's boundary is $|x| = \sqrt{\tfrac83\ln(2\sqrt{2\pi})} = 2.073$ (with $c = 0$), and
#   $1.360$ once $c$ is learned.
# - Noise equal to the data puts the classifier at chance at the optimum, but the loss is not flat: the
#   estimator's variance is $(1 + 1/\nu)$ times the Cramér–Rao bound. It is a good noise, not the best one:
#   somewhat broader noise estimates $\boldsymbol\mu$ and $\Lambda$ better and $c$ worse. Noise far from the
#   data is what kills the signal; too narrow is worst.
# - With the data fixed, more noise takes NCE's error down to maximum likelihood's on the same data, not to
#   zero: quickly for $\boldsymbol\mu$ and $\Lambda$, slowly for $c$, the most expensive parameter.
# - In a network, $c$ and the last layer's bias move in lockstep: NCE fixes only the total normaliser. Always
#   check a learned $c$ against $\log Z$ by quadrature (in 2-D), importance sampling or AIS (chapter 3)
#   before trusting a likelihood computed with it.
# - At equal cost (gradient evaluations), NCE beat maximum likelihood with chapter 4's replay-buffer
#   Langevin sampler on a 2-D mixture in test likelihood in every run. Its advantage lies away from the
#   data, where the maximum-likelihood models leave a few per cent of their mass; neither method gets the
#   bump masses reliably right.
# - Ranking NCE (InfoNCE) picks the datum out of $K$ noise samples with a softmax: it learns the energy up to
#   a constant, better as $K$ grows, but never the normaliser, because $c$ cancels; importance sampling with
#   the same noise recovers it.
#
# **Next:** Chapter 6 removes the normaliser from the objective altogether: score matching fits
# $\nabla_{\mathbf{x}} \log p$, in which $Z$ never appears.
#
# ## References
#
# - Ceylan, C. & Gutmann, M. U. (2018). Conditional noise-contrastive estimation of unnormalised models. *ICML*.
# - Chehab, O., Gramfort, A. & Hyvärinen, A. (2022). The optimal noise in noise-contrastive learning is not
#   what you think. *UAI*.
# - Chehab, O., Hyvärinen, A. & Risteski, A. (2023). Provable benefits of annealing for estimating
#   normalizing constants: importance sampling, noise-contrastive estimation, and beyond. *NeurIPS*.
# - Du, Y. & Mordatch, I. (2019). Implicit generation and modeling with energy-based models. *NeurIPS*.
# - Dyer, C. (2014). Notes on noise contrastive estimation and negative sampling. arXiv:1410.8251.
# - Gao, R., Nijkamp, E., Kingma, D. P., Xu, Z., Dai, A. M. & Wu, Y. N. (2020). Flow contrastive estimation of
#   energy-based models. *CVPR*.
# - Geyer, C. J. (1994). On the convergence of Monte Carlo maximum likelihood calculations. *Journal of the
#   Royal Statistical Society B*, 56, 261–274.
# - Goldberg, Y. & Levy, O. (2014). word2vec explained: deriving Mikolov et al.'s negative-sampling
#   word-embedding method. arXiv:1402.3722.
# - Goodfellow, I. et al. (2014). Generative adversarial nets. *NeurIPS*.
# - Gutmann, M. U., Dutta, R., Kaski, S. & Corander, J. (2018). Likelihood-free inference via classification.
#   *Statistics and Computing*, 28, 411–425.
# - Gutmann, M. & Hyvärinen, A. (2010). Noise-contrastive estimation: a new estimation principle for
#   unnormalized statistical models. *AISTATS*.
# - Gutmann, M. U. & Hyvärinen, A. (2012). Noise-contrastive estimation of unnormalized statistical models,
#   with applications to natural image statistics. *JMLR*, 13, 307–361.
# - Jozefowicz, R., Vinyals, O., Schuster, M., Shazeer, N. & Wu, Y. (2016). Exploring the limits of language
#   modeling. arXiv:1602.02410.
# - Lee, H., Pabbaraju, C., Sevekari, A. & Risteski, A. (2023). Pitfalls of Gaussians as a noise
#   distribution in NCE. *ICLR*.
# - Liu, B., Rosenfeld, E., Ravikumar, P. & Risteski, A. (2022). Analyzing and improving the optimization
#   landscape of noise-contrastive estimation. *ICLR*.
# - Ma, Z. & Collins, M. (2018). Noise contrastive estimation and negative sampling for conditional models:
#   consistency and statistical efficiency. *EMNLP*.
# - Meng, X.-L. & Wong, W. H. (1996). Simulating ratios of normalizing constants via a simple identity: a
#   theoretical exploration. *Statistica Sinica*, 6, 831–860.
# - Mikolov, T., Sutskever, I., Chen, K., Corrado, G. & Dean, J. (2013). Distributed representations of words
#   and phrases and their compositionality. *NeurIPS*.
# - Mnih, A. & Teh, Y. W. (2012). A fast and simple algorithm for training neural probabilistic language
#   models. *ICML*.
# - van den Oord, A., Li, Y. & Vinyals, O. (2018). Representation learning with contrastive predictive
#   coding. arXiv:1807.03748.
# - Pihlaja, M., Gutmann, M. & Hyvärinen, A. (2010). A family of computationally efficient and simple
#   estimators for unnormalized statistical models. *UAI*.
# - Poole, B., Ozair, S., van den Oord, A., Alemi, A. & Tucker, G. (2019). On variational bounds of mutual
#   information. *ICML*.
# - Rhodes, B., Xu, K. & Gutmann, M. U. (2020). Telescoping density-ratio estimation. *NeurIPS*.
# - Riou-Durand, L. & Chopin, N. (2018). Noise contrastive estimation: asymptotic properties, formal
#   comparison with MC-MLE. *Electronic Journal of Statistics*, 12, 3473–3518.
# - Sugiyama, M., Suzuki, T. & Kanamori, T. (2012). *Density Ratio Estimation in Machine Learning*. Cambridge
#   University Press.
