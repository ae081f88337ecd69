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
#    the NCE loss from Bayes' rule, and explain why the log-normaliser $c$ can be learned at all;
# 2. compute the decision boundary of an NCE classifier by hand;
# 3. explain what noise equal to the data does, and does not do, to the learning signal;
# 4. train Gaussian EBMs by NCE and watch $\boldsymbol\mu$, $\Lambda$ and $c$ approach the truth (and
#    $c \to \log Z$) as the noise ratio $\nu$ grows, against Gutmann & Hyvärinen's asymptotic theory;
# 5. train a neural energy by NCE, check its learned $c$ against $\log Z$ by quadrature, and recognise noise
#    that is too narrow or too broad;
# 6. compare NCE with maximum likelihood (chapter 4's replay-buffer Langevin training) at the same cost;
# 7. see InfoNCE, the loss of contrastive representation learning, as NCE with many noise samples per datum,
#    and say what it learns and what it cannot (the normaliser).

# %%
import inspect
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
    GaussianNoise, NCEModel, UniformNoise, decision_boundary_1d, fit_nce,
    nce_asymptotic_covariance, nce_logit, nce_loss, ranking_nce_loss, train_nce,
)
from ebm_teach.plotting import (
    plot_density_panels, plot_energy_2d, plot_error_vs_nu, plot_nce_boundary_1d, plot_nce_classifier,
)
from ebm_teach.samplers import ReplayBuffer, ula, uniform_noise
from ebm_teach.training import train_ebm

SCALE = 1  # integer; raise it on a GPU: more repetitions, data and training steps
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # thousands of tiny tensor ops: a second thread would only wait
dtype = torch.float64  # the Gaussian sections are exact computations: double precision
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
# $e^{-E_\theta(\mathbf{x}) - c} = p_d(\mathbf{x})$ wherever $p_n(\mathbf{x}) > 0$. The optimal model is then a
# normalised density, so $c = \log \int e^{-E_\theta} d\mathbf{x} = \log Z(\theta)$: **at the optimum the
# model normalises itself.** (Two conditions hide in this argument: the model family must contain $p_d$, and
# the noise must be positive wherever the data are.)
#
# We check it on the Gaussian EBM $E(x) = \tfrac12 x^2$ with data $\mathcal{N}(0, 1)$ and noise
# $\mathcal{N}(0, 4)$, $\nu = 1$: shift $c$ away from $\log Z = \tfrac12\log 2\pi = 0.919$ and compute the
# population NCE loss by quadrature, beside the naive average log-likelihood $\mathbb{E}_{\text{data}}[-E - c]$.

# %%
xs, _, dx = grid([(-30.0, 30.0)], 6000, dtype=dtype)  # 1-D grid for population losses
x1 = xs[:, 0]


def log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def population_nce_loss(energy, c, log_pd, log_pn, nu):
    """L = [int p_d softplus(-Delta) + nu int p_n softplus(Delta)] / (1 + nu) by quadrature."""
    delta = nce_logit(energy, c, log_pn, nu)
    integrand = log_pd.exp() * F.softplus(-delta) + nu * log_pn.exp() * F.softplus(delta)
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
# $p_n = \mathcal{N}(0, 4)$ and $\nu = 1$, and asks where the classifier is undecided, $\Delta(x) = 0$:
#
# $$e^{-x^2/2} = \frac{1}{2\sqrt{2\pi}}\, e^{-x^2/8}
#   \;\Longleftrightarrow\; \frac{3x^2}{8} = \ln\big(2\sqrt{2\pi}\big)
#   \;\Longleftrightarrow\; |x| = \sqrt{\tfrac83 \ln\big(2\sqrt{2\pi}\big)} \approx 2.073 .$$
#
# Inside the boundary the model's curve lies above the noise's and the classifier says "data"; in the tails
# the broad noise wins. We compute the boundary from the formula and by root-finding on $\Delta$ with the
# package's `decision_boundary_1d`.

# %%
noise_we = GaussianNoise(torch.zeros(1, dtype=dtype), torch.tensor([[4.0]], dtype=dtype))


def delta_we(x, c=0.0):
    return nce_logit(0.5 * x[:, 0] ** 2, c, noise_we.log_prob(x), 1.0)


closed = math.sqrt(8 / 3 * math.log(2 * math.sqrt(2 * math.pi)))
roots = decision_boundary_1d(delta_we, (-8, 8))
print(f"closed form: |x| = {exact(closed, '.3f')}")
print("root-finding on Delta:", [exact(r, "+.3f") for r in roots.tolist()])
xp = torch.linspace(-6, 6, 601, dtype=dtype)[:, None]
plot_nce_boundary_1d(xp[:, 0], torch.exp(-0.5 * xp[:, 0] ** 2), noise_we.log_prob(xp).exp(),
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
print(f"closed form: |x| = {exact(math.sqrt(8 / 3 * math.log(2)), '.3f')}; root-finding:",
      [exact(r, "+.3f") for r in roots_c.tolist()])

# %% [markdown]
# ## 3. Noise equal to the data: a classifier at chance, not a flat loss
#
# A classic practice problem: with the model $E(x) = x^2/(2\sigma^2)$, its log-normaliser $c$, and noise
# $\mathcal{N}(0, \sigma_n^2)$,
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
# The problem's usual conclusion is that NCE then has "no learning signal". That holds *at the optimum*, where every
# estimator's gradient vanishes. Away from it the model no longer matches the data, the loss rises above its
# floor, and its gradient points back to the truth. Below, the data are $\mathcal{N}(0,1)$, the model is
# $E(x) = \tfrac12(x-\mu)^2$ with $c = \log Z$, $\nu = 1$, and we compute the population loss and its
# derivative in $\mu$ by quadrature and autograd, for noise equal to the data ($\sigma_n = 1$), broader
# ($\sigma_n = 3$) and far broader ($\sigma_n = 10$).

# %%
nu = 1.0
mus = torch.linspace(-2, 2, 81, dtype=dtype)
fig, axes = plt.subplots(1, 3, figsize=(7.6, 3))
entropy = math.log(2)
print(f"binary entropy H(1/2) = {exact(entropy, '.4f')}")
grads_at_truth = []
keep = x1.abs() < 4
for colour, sigma_n in zip(("C0", "C1", "C2"), (1.0, 3.0, 10.0)):
    log_pn = log_normal(x1, 0.0, sigma_n**2)
    d = nce_logit(0.5 * x1**2, log_z, log_pn, nu)
    axes[0].plot(x1[keep], d[keep], color=colour, label=rf"$\sigma_n = {sigma_n:g}$")
    losses, grads = [], []
    for m in mus:
        m = m.clone().requires_grad_(True)
        loss = population_nce_loss(0.5 * (x1 - m) ** 2, log_z, log_pd, log_pn, nu)
        (g,) = torch.autograd.grad(loss, m)
        losses.append(float(loss.detach()))
        grads.append(float(g))
    m0 = torch.zeros((), dtype=dtype, requires_grad=True)
    loss0 = population_nce_loss(0.5 * (x1 - m0) ** 2, log_z, log_pd, log_pn, nu)
    (g0,) = torch.autograd.grad(loss0, m0, create_graph=True)
    (curv,) = torch.autograd.grad(g0, m0)
    grads_at_truth.append(float(g0.detach()))
    print(f"sigma_n = {sigma_n:4.1f}: loss at the truth {exact(loss0.detach(), '.4f')}, "
          f"curvature d2L/dmu2 = {exact(curv, '.4f')}")
    axes[1].plot(mus, losses, color=colour)
    axes[2].plot(mus, grads, color=colour)
axes[0].set(xlabel="$x$", ylabel=r"$\Delta(x)$", title="the logit at the truth")
axes[1].set(xlabel=r"model mean $\mu$", ylabel=r"loss $\mathcal{L}$", title="not flat")
axes[2].set(xlabel=r"model mean $\mu$", ylabel=r"$\partial\mathcal{L}/\partial\mu$",
            title="its gradient points home")
axes[2].axhline(0, color="gray", lw=0.8)
fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=3, frameon=False,
           bbox_to_anchor=(0.5, 1.06))
print(claim(max(abs(g) for g in grads_at_truth) < 1e-10,
            "the gradient at the truth is 0 (to 1e-10) for every sigma_n"))
plt.tight_layout()
plt.show()

# %% [markdown]
# (The three panels share the colours of the legend; $\nu = 1$ and $c = \log Z$ throughout.) With noise
# equal to the data the loss at the truth is $\ln 2 = H(\tfrac12)$ and its gradient is zero, as the usual
# conclusion says; yet the loss is a clean bowl with curvature $\nu/(1+\nu)^2 = 0.25$ in $\mu$ (our $\mathcal{L}$
# has Hessian $I_\nu/(1+\nu)$ with $I_\nu = \int p_d P_\nu\, \mathbf{g}\mathbf{g}^\top$, see below, and with
# $p_n = p_d$ the weight $P_\nu$ is the constant $\nu/(1+\nu)$). If anything it is the *far broader* noise
# whose bowl is flatter (curvature 0.16): against it the data are easy to recognise for a wide range of $\mu$.
#
# Curvature alone does not measure how well an estimator learns from finite data; its variance does, which
# is the sampling variance of the gradient divided by the squared curvature (in several dimensions the
# "sandwich" $H^{-1} V H^{-1}$).
#
# **How much signal?** Gutmann & Hyvärinen (2012, Theorem 3) give the estimator's asymptotic covariance:
# $\sqrt{T_d}\,(\hat\theta - \theta^\star) \to \mathcal{N}(0, \Sigma)$ with
#
# $$\Sigma = I_\nu^{-1} - \Big(1 + \frac1\nu\Big) I_\nu^{-1} \mathbf{m}\mathbf{m}^\top I_\nu^{-1},\qquad
#   I_\nu = \int \mathbf{g}\mathbf{g}^\top P_\nu\, p_d\, d\mathbf{x},\quad
#   \mathbf{m} = \int \mathbf{g} P_\nu\, p_d\, d\mathbf{x},\quad P_\nu = \frac{\nu p_n}{p_d + \nu p_n},$$
#
# where $\mathbf{g} = \nabla_{(\theta, c)} \log p_\theta(\mathbf{x})$ at the truth. The package evaluates it by
# quadrature. For $p_n = p_d$ it is exactly $(1 + 1/\nu)$ times the Cramér–Rao bound of maximum likelihood:
# with $\nu = 1$ noise equal to the data costs half the data, not all of it. For the 1-D Gaussian
# $\log p = -\tfrac12\Lambda(x-\mu)^2 - c$ with parameters $(\mu, \Lambda, c)$, the Cramér–Rao variances are
# $1/\Lambda$, $2\Lambda^2$ and $\tfrac12$ (for $c = \log Z(\Lambda)$, by the delta method). We plot the ratio
# NCE / Cramér–Rao against the noise width.

# %%
def score_1d(mu, lam):
    """g(x) = d/d(mu, Lambda, c) of -Lambda (x - mu)^2 / 2 - c, shape (batch, 3)."""
    def g(x):
        r = x[:, 0] - mu
        return torch.stack([lam * r, -0.5 * r**2, -torch.ones_like(r)], 1)
    return g


cramer_rao = torch.tensor([1.0, 2.0, 0.5], dtype=dtype)  # mu = 0, Lambda = 1
widths = torch.logspace(math.log10(0.3), 2, 40, dtype=dtype)
log_p_std = lambda x: log_normal(x[:, 0], 0.0, 1.0)  # the data: N(0, 1)


def variance_ratio(sigma_n, nu_):
    """NCE's asymptotic variances of (mu, Lambda, c) / Cramer-Rao, noise N(0, sigma_n^2)."""
    log_noise = lambda x: log_normal(x[:, 0], 0.0, float(sigma_n) ** 2)
    score = score_1d(0.0, 1.0)
    sigma = nce_asymptotic_covariance(score, log_p_std, log_noise, nu_, [(-60.0, 60.0)], 12000)
    return torch.diagonal(sigma) / cramer_rao


fig, axes = plt.subplots(1, 3, figsize=(8, 3), sharey=True)
for nu_ in (1.0, 10.0):
    ratios = torch.stack([variance_ratio(s, nu_) for s in widths])
    at_one = variance_ratio(1.0, nu_)
    print(f"nu = {nu_:4.1f}, noise = data: variance / Cramer-Rao =",
          [exact(v, ".3f") for v in at_one.tolist()], f" (1 + 1/nu = {1 + 1 / nu_:.3f})")
    for ax, j, name in zip(axes, range(3), (r"$\hat\mu$", r"$\hat\Lambda$", r"$\hat c$")):
        ax.loglog(widths, ratios[:, j], label=rf"$\nu = {nu_:g}$")
        ax.set(xlabel=r"noise width $\sigma_n$", title=f"variance of {name}")
for ax in axes:
    ax.axvline(1.0, color="gray", ls=":", lw=1)
    ax.axhline(1.0, color="k", ls="--", lw=1)
axes[0].set_ylabel("NCE variance / Cramér–Rao")
axes[0].legend(frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# Noise equal to the data is close to the best choice, not a useless one: the variance is $2\times$ the
# optimum at $\nu = 1$ and $1.1\times$ at $\nu = 10$. The variance explodes for noise *narrower* than the data
# (the tails of the data are never contrasted with anything) and grows steadily for noise much *broader*
# (most noise lands where it teaches nothing), fastest for $\hat c$. Slightly broader noise
# ($\sigma_n \approx 2$) is a little better for $\hat\mu$ and $\hat\Lambda$, a little worse for $\hat c$. More
# noise ($\nu = 10$) pulls every curve towards the bound; that is the next section.
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
# $\sqrt{\Sigma_{jj}/T_d}$ and the Cramér–Rao floor of maximum likelihood.

# %% tags=["nbval-ignore-output"]
four = torch.tensor([[4.0]], dtype=dtype, device=device)
truth_1d = GaussianEBM(torch.tensor([1.0], dtype=dtype, device=device), four)
noise_1d = GaussianNoise(torch.zeros(1, dtype=dtype, device=device), four)
with torch.no_grad():
    true_1d = torch.tensor([1.0, 4.0, float(truth_1d.log_partition())], dtype=dtype)
print(f"true mu = 1, Lambda = 4, log Z = {float(true_1d[2]):.3f}")

t_d, reps = 500, 20 * SCALE
nus = [1, 2, 4, 8, 16, 32, 64]
gen = make_generator(1, device)
estimates = torch.zeros(len(nus), reps, 3, dtype=dtype)
for r in range(reps):
    x = truth_1d.sample(t_d, generator=gen)
    for i, nu_ in enumerate(nus):
        model = NCEModel(GaussianEBM.standard(1, dtype=dtype, device=device))
        fit_nce(model, x, noise_1d.sample(nu_ * t_d, generator=gen), noise_1d, nu_)
        with torch.no_grad():
            estimate = [model.energy.mu[0], model.energy.precision[0, 0], model.c]
            estimates[i, r] = torch.stack(estimate).cpu()
rmse_1d = ((estimates - true_1d) ** 2).mean(1).sqrt()  # (len(nus), 3)
log_p_1d = lambda x: log_normal(x[:, 0], 1.0, 0.25)
log_noise_1d = lambda x: log_normal(x[:, 0], 0.0, 4.0)
theory_1d = torch.stack([
    torch.diagonal(nce_asymptotic_covariance(score_1d(1.0, 4.0), log_p_1d, log_noise_1d, nu_,
                                             [(-12.0, 12.0)], 12000) / t_d).sqrt()
    for nu_ in nus])
floor_1d = (torch.tensor([1 / 4.0, 2 * 4.0**2, 0.5], dtype=dtype) / t_d).sqrt()
print("  nu   RMSE mu (theory)   RMSE Lambda (theory)   RMSE c (theory)")
for i, nu_ in enumerate(nus):
    (m0, m1, m2), (t0, t1, t2) = rmse_1d[i].tolist(), theory_1d[i].tolist()
    print(f"{nu_:4d}    {m0:.3f}  ({t0:.3f})      {m1:.3f}  ({t1:.3f})"
          f"      {m2:.3f}  ({t2:.3f})")
print("Cramer-Rao     {:.3f}              {:.3f}".format(*floor_1d[:2].tolist()),
      "             {:.3f}".format(floor_1d[2]))
names = [r"$\hat\mu$", r"$\hat\Lambda$", r"$\hat c$ vs $\log Z$"]
plot_error_vs_nu(nus, {n: rmse_1d[:, j] for j, n in enumerate(names)},
                 {n: theory_1d[:, j] for j, n in enumerate(names)},
                 {n: floor_1d[j] for j, n in enumerate(names)},
                 floor_label="Cramér–Rao (max. likelihood)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The table's measured digits change from one machine to the next; the checked figures are the ratios of
# measured to predicted error, averaged over $\nu$ (each "expected" range in this chapter is the mean ± 4
# standard deviations over 8 runs with other seeds):

# %%
print(f"true log Z = {exact(true_1d[2], '.3f')}; Cramer-Rao RMSE for T_d = {t_d}:",
      [exact(v, ".4f") for v in floor_1d.tolist()])
ratio_1d = (rmse_1d / theory_1d).mean(0)  # averaged over the 7 values of nu
print("measured RMSE / asymptotic theory, averaged over nu:")
want = [(1.0, 0.65), (0.88, 0.52), (0.89, 0.4)]
for j, name in enumerate(("mu", "Lambda", "c")):
    print(f"  {name:6s}: {expect(ratio_1d[j], *want[j])}")

# %% [markdown]
# The measured errors (each an RMS over 20 repetitions, so good to about ±16 %; the largest deviation, for
# $\hat\Lambda$ at $\nu = 1$, is about two of those) follow the asymptotic theory and fall towards the
# maximum-likelihood floor as $\nu$ grows: with $\nu \gtrsim 10$ noise samples per data point
# NCE is nearly as efficient as maximum likelihood, and it never sampled from the model. The learned $c$
# converges to the true $\log Z$ at the same rate as the other parameters.
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
    mu_err, lam_err = float((mu_hat - mu_2d).norm()), float((lam_hat - lam_2d).norm())
    return [mu_err, lam_err, abs(float(c_hat) - log_z_2d)]


t_d2, reps2, nus2 = 500, 20 * SCALE, [1, 4, 16, 64]
gen = make_generator(2, device)
err_nce = torch.zeros(len(nus2), reps2, 3, dtype=dtype)
err_ml = torch.zeros(reps2, 3, dtype=dtype)
for r in range(reps2):
    x = truth_2d.sample(t_d2, generator=gen)
    ml = GaussianEBM.from_moments(x.mean(0), torch.cov(x.T, correction=0))  # ML: closed form
    with torch.no_grad():
        err_ml[r] = torch.tensor(errors_2d(ml.mu, ml.precision, ml.log_partition()))
    for i, nu_ in enumerate(nus2):
        model = NCEModel(GaussianEBM.standard(2, dtype=dtype, device=device))
        fit_nce(model, x, box.sample(nu_ * t_d2, generator=gen), box, nu_)
        with torch.no_grad():
            estimate = errors_2d(model.energy.mu, model.energy.precision, model.c)
            err_nce[i, r] = torch.tensor(estimate)
rms_nce, rms_ml = (err_nce**2).mean(1).sqrt(), (err_ml**2).mean(0).sqrt()
print("  nu   |mu error|   ||Lambda error||_F   |c - log Z|   (RMS over repetitions)")
for i, nu_ in enumerate(nus2):
    print("{:4d}   {:10.3f}   {:18.3f}   {:11.3f}".format(nu_, *rms_nce[i].tolist()))
print("  ML   {:10.3f}   {:18.3f}   {:11.3f}".format(*rms_ml.tolist()))
names2 = [r"$\|\hat{\mu} - \mu\|$", r"$\|\hat\Lambda - \Lambda\|_F$", r"$|\hat c - \log Z|$"]
plot_error_vs_nu(nus2, {n: rms_nce[:, j] for j, n in enumerate(names2)},
                 floor={n: rms_ml[j] for j, n in enumerate(names2)},
                 floor_label="maximum likelihood, same data")
plt.tight_layout()
plt.show()

# %%
print(f"true log Z = {exact(log_z_2d, '.3f')}")
print("NCE's RMS error / maximum likelihood's:")
want = {0: [(2.0, 1.1), (1.6, 0.7), (4.9, 2.4)], -1: [(1.05, 0.16), (1.03, 0.19), (1.24, 0.6)]}
for i, w in want.items():
    ratio = (rms_nce[i] / rms_ml).tolist()
    names_w = zip(("mu", "Lambda", "c"), ratio, w)
    shown = [f"{name} {expect(r, *w_j)}" for name, r, w_j in names_w]
    print(f"  nu = {nus2[i]:2d}:", ", ".join(shown))

# %% [markdown]
# Uniform noise is a poor match for a concentrated Gaussian, so at $\nu = 1$ the errors are two (for
# $\boldsymbol\mu$, $\Lambda$) to five (for $c$) times the maximum-likelihood ones; more noise closes most of
# the gap. One fit in detail, at $\nu = 64$, with $c$ checked
# against $\log Z$ of the *learned* energy twice: in closed form, and by quadrature on a grid
# (`log_partition_grid` from `ebm_teach.evaluate`, the tool we will need for neural energies).

# %%
gen = make_generator(3, device)
x = truth_2d.sample(2000, generator=gen)
model = NCEModel(GaussianEBM.standard(2, dtype=dtype, device=device))
fit_nce(model, x, box.sample(64 * 2000, generator=gen), box, 64)
bounds_2d = [(-8.0, 10.0), (-9.5, 8.5)]
with torch.no_grad():
    lam_hat, log_z_hat = model.energy.precision, float(model.energy.log_partition())
    log_z_quad = log_partition_grid(model.energy, bounds_2d, 400, device=device)
    print(f"learned mu                  : {expect(model.energy.mu, [1.0, -0.5], 0.14)}")
    lam_entries = lam_hat[[0, 0, 1], [0, 1, 1]]
    print(f"learned Lambda_11, _12, _22 : {expect(lam_entries, [2.0, 0.8, 1.0], 0.28)}")
    print(f"learned c                   : {expect(model.c, round(log_z_2d, 3), 0.1)}")
    print(f"log Z of the learned energy : {expect(log_z_hat, round(log_z_2d, 3), 0.08)}")
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

# %%
print(inspect.getsource(train_nce))

# %%
x_train = toy_data("mixture", 2000, seed=0, device=device)
x_test = toy_data("mixture", 2000, seed=1, device=device)
mixture = toy_distribution("mixture").to(device)  # the law toy_data("mixture") samples from
true_test_ll = float(mixture.log_prob(x_test.double()).mean())
bounds = [(-8.0, 8.0), (-8.0, 8.0)]
n_grid = 300


def true_energy(x):
    return -mixture.to(dtype=x.dtype).log_prob(x)


print(f"exact test log-likelihood of the true density: {exact(true_test_ll, '.3f')}")


def train_mlp_nce(noise, seed=0, n_steps=1000 * SCALE):
    seed_everything(seed)  # the network's initial weights
    model = NCEModel(MLPEnergy(2, 48, 2)).to(device)
    start = time.perf_counter()
    history = train_nce(model, x_train, noise, nu=4, n_steps=n_steps, batch_size=256, lr=5e-3,
                        generator=make_generator(seed, device), log_every=25)
    return model, history, time.perf_counter() - start


def report(model):
    """c, log Z by quadrature, the normalised test log-likelihood, and the one c claims."""
    with torch.no_grad():
        log_z = log_partition_grid(model.energy, bounds, n_grid, device=device,
                                   dtype=torch.float32)
        c = float(model.c)
        ll_claimed = float(model.log_prob(x_test).mean())
    ll = log_likelihood_grid(model.energy, x_test, bounds, n_grid)
    return {"c": c, "log Z": log_z, "LL": ll, "LL using c": ll_claimed}


fitted = GaussianNoise.fit(x_train)
nce_model, nce_history, nce_seconds = train_mlp_nce(fitted)
results = {"fitted Gaussian noise": report(nce_model)}
r = results["fitted Gaussian noise"]
print(f"c - log Z (quadrature): {expect(r['c'] - r['log Z'], 0.04, 0.3)}")
print(f"log Z (quadrature)    : {expect(r['log Z'], 0.06, 0.27)}")
print(f"test LL               : {expect(r['LL'], -2.85, 0.1)}")
print(f"test LL using c       : {expect(r['LL using c'], -2.9, 0.32)}")

# %% [markdown]
# The learned $c$ agrees with $\log Z$ of the learned energy, computed by quadrature over $[-8, 8]^2$, to
# within a few tenths, and the normalised test log-likelihood is close to the true density's $-2.811$. The
# network was never told that densities integrate to one; the classifier taught it.
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
print(f"{'noise':22s} {'c':>6s} {'log Z (quadr.)':>15s} {'test LL':>8s} {'LL using c':>11s}")
for name, r in results.items():
    print(f"{name:22s} {r['c']:6.2f} {r['log Z']:15.2f} {r['LL']:8.2f} "
          f"{r['LL using c']:11.2f}")

# %%
narrow, broad = results["narrow noise (x 1/4)"], results["broad noise (x 10)"]
print(claim(narrow["log Z"] - narrow["c"] > 5, "narrow noise: log Z exceeds c by over 5 nats"))
print(claim(narrow["LL using c"] > narrow["LL"] + 5,
            "narrow noise: the test LL using c flatters the true one by more than 5 nats"))
print(f"broad noise: c - log Z {expect(broad['c'] - broad['log Z'], -0.07, 0.5)}, "
      f"test LL {expect(broad['LL'], -2.93, 0.2)}")

# %%
fig, axes = plt.subplots(2, 2, figsize=(8, 7))
plot_energy_2d(true_energy, bounds, ax=axes[0, 0], device=device, samples=x_train[:500],
               title="true density and data")
for ax, (name, (m, _, noise)) in zip(axes.flat[1:], models.items()):
    plot_energy_2d(m.energy, bounds, ax=ax, device=device, title=name)
    s = noise.sample(300, generator=make_generator(9, device))
    ax.scatter(s[:, 0].cpu(), s[:, 1].cpu(), s=2, c="red", alpha=0.5)
    ax.set(xlim=bounds[0], ylim=bounds[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# (Red dots: noise samples.) With **narrow** noise the classifier's job is trivial: anything outside a small
# disc is "data". The loss is content as soon as $\Delta$ is large on the data, and nothing ever pushes the
# energy *up* away from the noise, so the network lowers it wherever the noise never goes. The learned $c$ is
# meaningless: the mass of $e^{-E}$ piles up at the edge of the box (its quadrature $\log Z$ grows with the
# box, and the integral over the whole plane may not even be finite), and the "test log-likelihood using $c$"
# looks splendid while the actual, normalised one is dreadful. This is the sharpest warning of the chapter:
# **an NCE model's $c$ is only a normaliser where the noise has been.** With **broad** noise the result is
# still usable but worse: few noise points land near the data, so the energy there is shaped by few
# contrasts, the bumps are misshapen and $c$ is less accurate.
#
# The classifiers themselves show why. Here is $P(\text{data} \mid \mathbf{x}) = \sigma(\Delta(\mathbf{x}))$
# for the three models. The crosses mark the centres of the three bumps, and the dashed line is where the
# true density falls to 1 % of its peak: the classifier is visible everywhere, the bump centres included.

# %%
fig, axes = plt.subplots(1, 3, figsize=(7.8, 2.8), layout="constrained")
centres = mixture.means.to(torch.float32)
for ax, (name, (m, _, noise)) in zip(axes, models.items()):
    logit = lambda x, m=m, noise=noise: nce_logit(m.energy(x), m.c, noise.log_prob(x), 4)
    plot_nce_classifier(lambda x, f=logit: torch.sigmoid(f(x)), bounds, centres=centres,
                        log_density=lambda x: -true_energy(x), ax=ax, device=device,
                        title=name, colorbar=False)
fig.colorbar(axes[0].collections[0], ax=axes, shrink=0.8, label=r"$P(\mathrm{data}\mid x)$")
plt.show()

# %% [markdown]
# Against the fitted noise the classifier has to work: on the bumps the noise is dense too, so it says
# "data" only with moderate confidence, as the Bayes classifier $p_d/(p_d + \nu p_n)$ should. Against narrow
# noise it says "data" everywhere except the noise's own disc, and against broad noise over a wide region
# around all three bumps: easy answers that teach the energy little. Look also at the lower-right corner of
# the first panel. The fitted noise is an elongated Gaussian that rarely goes there, and the model claims it
# as "data": its density there is tiny, but larger than the noise's, and no noise sample ever corrects it.
# The narrow-noise failure, in miniature: NCE is weakest in the tails of its noise.

# %% [markdown]
# A remark on $c$ for a network: `MLPEnergy` ends in a linear layer with a bias, and that bias and $c$ enter
# the logit only through their sum. NCE pins down the sum (the normaliser of the whole model); how it is split
# between the two is arbitrary. That is why $c$ itself hardly moves from its start at 0 during training here:
# the network's bias does the work. The check that matters is the one above, $c$ against $\log Z$ of the
# learned energy.

# %% [markdown]
# ## 6. NCE against maximum likelihood, at the same cost
#
# Is classifying against noise a good way to train this network, compared with maximum likelihood? A fair
# comparison needs the same network, the same data, the same yardstick and the same budget. The
# maximum-likelihood model is trained by chapter 4's recipe: negatives from a replay buffer (5 % fresh
# uniform noise on the box), 20 ULA steps of size $\epsilon = 0.1$ per update, Du & Mordatch's penalty
# $\alpha = 0.1$. The yardstick is the normalised test log-likelihood by quadrature (neither method's
# training loss says how good its model is), and the mass each model puts on each bump (every grid point
# counts for its nearest bump centre; the data put 0.50, 0.32 and 0.18 there).
#
# The budget is counted in passes of one point through the network and back, the unit of cost for both: an
# NCE update evaluates the energy and its parameter gradient at $(1+\nu)B = 5 \times 256$ points; a
# maximum-likelihood update takes 20 Langevin steps of $B = 128$ chains (one gradient each) and then the
# loss at $2B$ points, $22 \times 128$ in all. NCE's 1000 updates thus buy 455 maximum-likelihood updates.
# One training run is one draw from a noisy procedure, so each method runs with three seeds.

# %% tags=["nbval-ignore-output"]
points, _, _ = grid(bounds, n_grid, device=device, dtype=torch.float32)
nearest = torch.cdist(points, centres).argmin(1)


def bump_weights(energy):
    """The model's mass near each bump centre: softmax(-E) on the grid, per nearest centre."""
    with torch.no_grad():
        p = torch.softmax(-energy(points).double(), 0)
    return [float(p[nearest == k].sum()) for k in range(3)]


nce_cost = 1000 * SCALE * (1 + 4) * 256  # updates x points per update
ml_iters = round(nce_cost / ((20 + 2) * 128))
noise_box = uniform_noise((2,), -8.0, 8.0, device=device)
ml_sampler = partial(ula, n_steps=20, step_size=0.1, clamp=(-8.0, 8.0))
data_bump = torch.cdist(x_train, centres).argmin(1)
data_mass = [float((data_bump == k).double().mean()) for k in range(3)]
print(f"budget: {nce_cost} energy-gradient evaluations: NCE {1000 * SCALE} updates, "
      f"maximum likelihood {ml_iters}")
runs = {"ML, replay buffer": [], "NCE": []}
seconds = {"ML, replay buffer": [], "NCE": [nce_seconds]}
for seed in range(3):
    seed_everything(seed)
    ml_energy = MLPEnergy(2, 48, 2).to(device)
    start = time.perf_counter()
    train_ebm(ml_energy, x_train, ml_iters, ml_sampler, noise_box, batch_size=128, lr=5e-3,
              alpha=0.1, buffer=ReplayBuffer(2000, noise_box),
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
print("method              seed  test LL   mass on the three bumps")
test_ll, mass_error = {}, {}
for method, energies in runs.items():
    for seed, e in enumerate(energies):
        ll, masses = log_likelihood_grid(e, x_test, bounds, n_grid), bump_weights(e)
        test_ll.setdefault(method, []).append(ll)
        error = max(abs(a - b) for a, b in zip(masses, data_mass))
        mass_error.setdefault(method, []).append(error)
        print(f"{method:18s}  {seed:4d}  {ll:7.2f}    {' '.join(f'{w:.2f}' for w in masses)}")
true_mass = " ".join(f"{w:.3f}" for w in bump_weights(true_energy))
print(f"{'true density':18s}     -  {true_test_ll:7.3f}    {true_mass}")

# %%
want = {"ML, replay buffer": dict(ll=(-3.02, 0.12), mass=(0.11, 0.17)),
        "NCE": dict(ll=(-2.86, 0.1), mass=(0.04, 0.085))}
for method in runs:
    ll, err = torch.tensor(test_ll[method]), torch.tensor(mass_error[method])
    print(f"{method}, mean over 3 runs:")
    print(f"  test LL                        {expect(ll.mean(), *want[method]['ll'])}")
    print(f"  largest error in a bump's mass {expect(err.mean(), *want[method]['mass'])}")
print(claim(min(test_ll["NCE"]) > max(test_ll["ML, replay buffer"]),
            "NCE's test LL is above maximum likelihood's in every run"))
print(f"{'':27s}{'ML, buffer':>12s}{'NCE':>12s}")
print(f"{'needs MCMC':27s}{'yes':>12s}{'no':>12s}")
print(f"{'needs a noise density':27s}{'no':>12s}{'yes':>12s}")
print(f"{'parameter updates':27s}{ml_iters:>12d}{1000 * SCALE:>12d}")
print(f"{'gradient evaluations/update':27s}{'22 x 128':>12s}{'5 x 256':>12s}")
print(f"{'estimate of log Z':27s}{'none':>12s}{'c':>12s}")

# %% tags=["nbval-ignore-output"]
for method, secs in seconds.items():
    print(f"{method}: mean training time {sum(secs) / len(secs):.1f} s on this {device.type}")

# %%
panels = {"true density": true_energy, "ML, replay buffer, seed 0": runs["ML, replay buffer"][0],
          "NCE, seed 0": runs["NCE"][0]}
plot_density_panels(panels, bounds, n_cols=3, n_points=150, device=device)
plt.show()

# %% [markdown]
# At equal cost NCE reaches the better likelihood on every seed, and it gives the normaliser $c$ for free;
# maximum likelihood needs no noise density. Both find the three bumps, and the masses they give them are
# where the two mechanisms differ. The Langevin chains of maximum likelihood rarely cross between bumps
# (chapter 4, section 2), so the negatives come in whatever proportions the chains happened to fall into,
# and the gradient hardly compares one bump with another: the relative weights are left to the initial
# network and the path of training. NCE's noise covers the whole plane, so the classifier weighs every
# region against the same reference. Yet with three runs of each, the two methods' mass errors overlap from
# seed to seed: at this budget the masses alone would not separate them reliably; the likelihood does.
#
# NCE's price is the noise. In two dimensions a fitted Gaussian covers the data well. In high dimensions a
# simple noise is easy to tell from data *everywhere*, and the classifier stops learning: the narrow/broad
# failure of section 5 becomes the rule. That is why NCE for images needs noise that is itself a good model
# (flow-contrastive estimation trains a normalising flow as the noise), and why chapter 6 turns to score
# matching.
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
# contrastive representation learning (van den Oord et al. 2018), where a critic $f(\mathbf{x}, \mathbf{c})$
# scores a positive pair against $K$ negatives drawn from the marginal: put $f = \tilde p_\theta / p_n$ and
# the two losses coincide. Its minimiser is $s = \log(p_d/p_n) + \text{const}$, so it learns the energy
# up to a constant; van den Oord et al. use the same fact to show that $\log(K+1) - \mathcal{L}_K$ is a lower
# bound on the mutual information. The constant is the catch: adding $c$ to every score changes no softmax,
# so **the ranking loss cannot learn the normaliser**, which the binary loss can.

# %%
print(inspect.getsource(ranking_nce_loss).split('    """')[-1])

# %% [markdown]
# The section 4 experiment once more, in one dimension: 20 data sets of $T_d = 500$ points from
# $\mathcal{N}(1, 0.5^2)$, noise $\mathcal{N}(0, 2^2)$, $K = 1, 4, 16, 64$ noise samples per datum, each data
# set and noise sample fitted twice, by ranking NCE and by binary NCE with $\nu = K$ (L-BFGS to the end
# both times). $c$ starts at 0.

# %% tags=["nbval-ignore-output"]
ks = [1, 4, 16, 64]
gen = make_generator(10, device)
fits = {objective: torch.zeros(len(ks), reps, 3, dtype=dtype) for objective
        in ("ranking", "binary")}
for r in range(reps):
    x = truth_1d.sample(t_d, generator=gen)
    for i, k in enumerate(ks):
        x_noise = noise_1d.sample(k * t_d, generator=gen)
        for objective, est in fits.items():
            model = NCEModel(GaussianEBM.standard(1, dtype=dtype, device=device))
            fit_nce(model, x, x_noise, noise_1d, k, objective=objective)
            with torch.no_grad():
                estimate = [model.energy.mu[0], model.energy.precision[0, 0], model.c]
                est[i, r] = torch.stack(estimate).cpu()
rmse = {objective: ((est - true_1d) ** 2).mean(1).sqrt() for objective, est in fits.items()}
print("   K   ranking NCE: RMSE mu  RMSE Lambda   |   binary NCE: RMSE mu  RMSE Lambda")
for i, k in enumerate(ks):
    (rm, rl), (bm, bl) = rmse["ranking"][i, :2].tolist(), rmse["binary"][i, :2].tolist()
    print(f"{k:4d}   {rm:18.3f} {rl:12.3f}   |   {bm:18.3f} {bl:12.3f}")

# %%
ratio = rmse["ranking"][:, :2] / rmse["binary"][:, :2]  # (len(ks), 2): mu, Lambda
print(claim(bool((ratio[0] > 1).all()), "with K = 1 ranking NCE is less accurate than binary"))
print(f"RMSE of (mu, Lambda), ranking over binary, at K = 64: {expect(ratio[-1], 1.0, 0.04)}")
print(claim(bool((rmse["ranking"][-1, :2] < rmse["ranking"][0, :2]).all()),
            "more noise samples per datum make ranking NCE's mu and Lambda more accurate"))
print(claim(bool((fits["ranking"][:, :, 2] == 0).all()), "ranking NCE's c never moved from 0"))
print(f"so it misses log Z by exactly log Z = {exact(true_1d[2], '.3f')}")

# %% [markdown]
# Ranking NCE learns $\mu$ and $\Lambda$, better with more noise samples per datum: with one it only compares
# pairs and is clearly worse than binary NCE, with 64 it is as accurate. And it leaves $c$ where it started. For density estimation that is
# a real loss: the model must be normalised some other way (quadrature here, AIS in chapter 3). For
# representation learning it is no loss at all: InfoNCE only needs the critic to *rank* the positive above
# the negatives, and a representation that does that well is the goal. The energy-based view explains both
# the success of contrastive learning with many negatives ($K$ in the thousands in practice, since the bound
# $\log(K+1)$ caps what the loss can measure) and what it does not give: a normalised density.
#
# ## Summary
#
# - NCE trains an unnormalised model $\log p_\theta = -E_\theta - c$ as a classifier of data against noise
#   with the logit $\Delta = -E_\theta - c - \log(\nu p_n)$ and the binary cross-entropy; we average it over
#   all $(1+\nu)T_d$ points, which is Gutmann & Hyvärinen's $-J/(1+\nu)$.
# - The optimal classifier is built from the true density, so $c$ is learned and equals $\log Z$ at the
#   optimum: the model normalises itself, wherever the noise reaches.
# - The worked example's boundary is $|x| = \sqrt{\tfrac83\ln(2\sqrt{2\pi})} = 2.073$ (with $c = 0$), and
#   $1.360$ once $c$ is learned.
# - Noise equal to the data puts the classifier at chance at the optimum, but the loss is not flat: the
#   estimator is $(1 + 1/\nu)$ times the maximum-likelihood variance. Noise far from the data is what kills the
#   signal; too narrow is worst, since the model is then unconstrained where the noise never goes.
# - As $\nu$ grows NCE approaches maximum-likelihood efficiency, as the asymptotic theory predicts and the
#   Gaussian experiments confirm; $c \to \log Z$ at the same rate.
# - Always check a learned $c$ against $\log Z$ by quadrature (in 2-D) or by AIS (chapter 3) before trusting
#   a likelihood computed with it.
# - At equal cost (gradient evaluations), NCE beat maximum likelihood with chapter 4's replay-buffer
#   Langevin sampler on a 2-D mixture in test likelihood on every seed: its noise compares every region with
#   the same reference, where Langevin chains rarely cross between modes.
# - Ranking NCE (InfoNCE) picks the datum out of $K$ noise samples with a softmax: it learns the energy up to
#   a constant, better as $K$ grows, but never the normaliser, because $c$ cancels.
#
# **Next:** Chapter 6 removes the normaliser from the objective altogether: score matching fits
# $\nabla_{\mathbf{x}} \log p$, in which $Z$ never appears.
