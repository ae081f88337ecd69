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
# # Chapter 1: The Gaussian EBM and the partition function
#
# An energy-based model (EBM) turns any scalar function $E_\theta(\mathbf{x})$, the *energy*, into a
# probability density
#
# $$p_\theta(\mathbf{x}) = \frac{\exp(-E_\theta(\mathbf{x}))}{Z(\theta)}, \qquad
#   Z(\theta) = \int \exp(-E_\theta(\mathbf{x}))\, d\mathbf{x}.$$
#
# Low energy means high probability. The normaliser $Z(\theta)$, the *partition function*, is what makes
# EBMs both flexible and hard. This chapter works with the one EBM where everything is exact, the Gaussian,
# so that every later approximation has something to be checked against.
#
# **Learning objectives.** After this chapter you can
# 1. say why $Z$ is intractable in general, and show that shifting the energy by a constant changes nothing;
# 2. compute $Z$ of a quadratic energy by completing the square, and check it by quadrature;
# 3. derive the log-likelihood gradient, a positive phase at the data and a negative phase under the model,
#    and verify it with autograd and by Monte Carlo;
# 4. train an EBM by maximum likelihood with a positive and a negative phase;
# 5. run one step of contrastive divergence (CD-1) by hand;
# 6. compose EBMs by adding energies (a product of experts).

# %%
import inspect
import math

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.energies import GaussianEBM, product_of_experts, quadratic_energy
from ebm_teach.evaluate import grid, log_partition_grid
from ebm_teach.plotting import plot_energy_2d

SCALE = 1  # integer; raise it on a GPU for more Monte Carlo samples and training steps
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    # every computation here is small: a second thread costs more than it saves
    torch.set_num_threads(1)
dtype = torch.float64  # exact computations in this chapter are done in double precision
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. Energies, densities, and why $Z$ is the hard part
#
# In one dimension we can simply compute $Z$ on a grid. Take the energy of a two-well landscape,
# $E(x) = (x^2 - 1)^2 \cdot 2 + 0.3\,x$. Adding a constant $k$ to the energy multiplies
# $\exp(-E)$ by $e^{-k}$ and $Z$ by the same $e^{-k}$: the density does not move.
#
# $$\frac{e^{-(E(x)+k)}}{\int e^{-(E(x')+k)}dx'} = \frac{e^{-k} e^{-E(x)}}{e^{-k}\int e^{-E(x')}dx'} = p(x).$$
#
# Only energy *differences* carry meaning; the absolute level of an energy is arbitrary.

# %%
def double_well(x):
    return 2.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.3 * x[:, 0]


xs, _, dx = grid([(-3, 3)], 2000, dtype=dtype)
origin = torch.zeros(1, 1, dtype=dtype)
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for k in (0.0, 5.0):
    e = double_well(xs) + k
    log_z = log_partition_grid(lambda x: double_well(x) + k, [(-3, 3)], 2000)
    p = torch.exp(-e - log_z)
    axes[0].plot(xs[:, 0], e, label=f"E(x) + {k:g}")
    axes[1].plot(xs[:, 0], p, ls="-" if k == 0 else "--",
                 label=f"shift {k:g}: log Z = {log_z:.3f}")
    p0 = float(torch.exp(-double_well(origin) - k - log_z))
    print(f"shift k = {k:g}: log Z = {exact(log_z, '.4f')}, p(0) = {exact(p0, '.6f')}")
axes[0].set(xlabel="x", ylabel="energy", title="two energies that differ by a constant")
axes[1].set(xlabel="x", ylabel="p(x)", title="... define the same density")
axes[0].legend(frameon=False)
axes[1].legend(frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# The log-partition functions differ by exactly 5 and $p(0)$ is identical. The grid we used has 2000
# points on one axis. Even a coarse grid of 100 points per axis has $100^d = 10^{2d}$ points in $d$
# dimensions (printed below): fine for $d = 2$, hopeless for an 8×8 image ($d = 64$), let alone MNIST
# ($d = 784$). That is why $Z$ of a neural energy is
# *intractable*: it is an integral over a space too large to visit. The rest of this book is about living
# without it. The Gaussian is the exception where the integral has a closed form.
#
# Why not replace the grid by random points? Monte Carlo escapes the $10^{2d}$ count: $Z = Z_q\,
# \mathbb E_{x\sim q}[e^{-E(x)}/q^*(x)]$ for any distribution $q = q^*/Z_q$ we can sample, estimated by an
# average over draws of $q$ (*importance sampling*). But it trades the count for variance: when $q$ and
# $e^{-E}$ differ, almost every draw lands where $e^{-E}$ is tiny and a few rare draws carry the whole sum.
# Chapter 3's annealed importance sampling is built to tame exactly that.

# %%
for d in (1, 2, 64, 784):
    print(f"d = {d:3d}: a 100-points-per-axis grid has 10^{2 * d} points")

# %% [markdown]
# ## 2. The partition function of a quadratic energy
#
# **One dimension.** For $E(x) = a x^2 - b x$ with $a > 0$, complete the square,
# $-a x^2 + b x = -a\left(x - \tfrac{b}{2a}\right)^2 + \tfrac{b^2}{4a}$, and use
# $\int e^{-a u^2} du = \sqrt{\pi/a}$:
#
# $$Z = \sqrt{\frac{\pi}{a}}\; e^{b^2/(4a)}, \qquad \log Z = \tfrac12 \log\frac{\pi}{a} + \frac{b^2}{4a}.$$
#
# With $a = 1/(2\sigma^2)$ and $b = \mu/\sigma^2$ this is the familiar $\sqrt{2\pi\sigma^2}$ times
# $e^{\mu^2/(2\sigma^2)}$ (the second factor appears because $E$ omits the constant $\mu^2/(2\sigma^2)$).
# We check the formula against quadrature on a grid.

# %%
for a, b in [(0.5, 0.0), (2.0, 1.0), (0.1, -0.7)]:
    closed = 0.5 * math.log(math.pi / a) + b**2 / (4 * a)
    width = 12 / math.sqrt(a)
    centre = b / (2 * a)
    bounds = [(centre - width, centre + width)]
    quad = log_partition_grid(lambda x: a * x[:, 0] ** 2 - b * x[:, 0], bounds, 4000)
    print(f"a = {a:4.1f}, b = {b:5.1f}: closed form log Z = {exact(closed, '.6f')}, "
          f"quadrature = {exact(quad, '.6f')}")

# %% [markdown]
# **Any dimension.** The Gaussian EBM $E(\mathbf{x}) = \tfrac12 (\mathbf{x}-\boldsymbol{\mu})^\top \Lambda
# (\mathbf{x}-\boldsymbol{\mu})$ with a positive definite *precision* $\Lambda$ has, by the same argument in
# the eigenbasis of $\Lambda$,
#
# $$\log Z = \frac{d}{2}\log(2\pi) - \frac12 \log\det\Lambda .$$
#
# The package's `GaussianEBM` keeps $\Lambda = L L^\top$ with $L$ lower triangular and a positive diagonal
# (stored as its logarithm), so $\Lambda$ stays positive definite whatever a gradient step does, and
# $\log\det\Lambda = 2\sum_i \log L_{ii}$:

# %%
print(inspect.getsource(GaussianEBM.log_partition))

# %%
mu_true = torch.tensor([1.0, -0.5], dtype=dtype)
precision_true = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=dtype)
model = GaussianEBM(mu_true, precision_true).to(device)
closed = model.log_partition().item()
quad = log_partition_grid(model.energy, [(-9.0, 11.0), (-10.5, 9.5)], 500, device=device)
print(f"2-D Gaussian EBM: closed form log Z = {exact(closed, '.6f')}, "
      f"quadrature on a 500x500 grid = {exact(quad, '.6f')}")
ax = plot_energy_2d(model.energy, [(-3, 5), (-4.5, 3.5)], kind="density", dtype=dtype,
                    device=device, title="p(x) of the Gaussian EBM")
plt.show()

# %% [markdown]
# ## 3. The log-likelihood gradient
#
# Differentiate $\log p_\theta(\mathbf{x}) = -E_\theta(\mathbf{x}) - \log Z(\theta)$. The second term is
#
# $$\nabla_\theta \log Z = \frac{1}{Z}\int \nabla_\theta e^{-E_\theta(\mathbf{x}')} d\mathbf{x}'
#   = -\int \frac{e^{-E_\theta(\mathbf{x}')}}{Z} \nabla_\theta E_\theta(\mathbf{x}') d\mathbf{x}'
#   = -\mathbb{E}_{\mathbf{x}'\sim p_\theta}\left[\nabla_\theta E_\theta(\mathbf{x}')\right],$$
#
# so
#
# $$\boxed{\nabla_\theta \log p_\theta(\mathbf{x}) = \underbrace{-\nabla_\theta E_\theta(\mathbf{x})}_{\text{positive phase}} +
#   \underbrace{\mathbb{E}_{\mathbf{x}'\sim p_\theta}[\nabla_\theta E_\theta(\mathbf{x}')]}_{\text{negative phase}}}$$
#
# Learning lowers the energy of the data and raises the energy of what the model currently believes in.
# For the Gaussian both phases are known exactly:
# $\nabla_{\boldsymbol\mu} E = -\Lambda(\mathbf{x}-\boldsymbol\mu)$ with $\mathbb{E}_p[\cdot] = 0$, and
# $\nabla_\Lambda E = \tfrac12(\mathbf{x}-\boldsymbol\mu)(\mathbf{x}-\boldsymbol\mu)^\top$ with
# $\mathbb{E}_p[\cdot] = \tfrac12\Lambda^{-1}$. We compare the formula with autograd applied to the
# closed-form $\log p$, treating $\boldsymbol\mu$ and $\Lambda$ themselves as the parameters.

# %%
x_obs = torch.tensor([[2.0, 0.5]], dtype=dtype)
mu = mu_true.clone().requires_grad_(True)
lam = precision_true.clone().requires_grad_(True)
# log Z = (d/2) log(2 pi) - (1/2) log det Lambda, with d = 2 here
log_p = -quadratic_energy(x_obs, mu, lam) - (math.log(2 * math.pi) - 0.5 * torch.logdet(lam))
grad_mu_auto, grad_lam_auto = torch.autograd.grad(log_p.sum(), (mu, lam))

diff = (x_obs[0] - mu_true)
sigma_true = torch.linalg.inv(precision_true)
grad_mu_formula = precision_true @ diff + 0.0  # -dE/dmu + E_p[dE/dmu] (= 0)
# -dE/dLambda + E_p[dE/dLambda]
grad_lam_formula = -0.5 * torch.outer(diff, diff) + 0.5 * sigma_true


def show(t, fmt=".6f"):
    """The entries of t as exact figures, in brackets."""
    values = torch.as_tensor(t).reshape(-1).tolist()
    return "[" + ", ".join(exact(v, fmt) for v in values) + "]"


print("d log p / d mu      autograd:", show(grad_mu_auto))
print("                    formula :", show(grad_mu_formula))
print("d log p / d Lambda  autograd:", show(grad_lam_auto))
print("                    formula :", show(grad_lam_formula))
max_err = max((grad_mu_auto - grad_mu_formula).abs().max(),
              (grad_lam_auto - grad_lam_formula).abs().max())
print(claim(max_err < 1e-12, "autograd and the formula agree to 1e-12"))

# %% [markdown]
# **The negative phase by Monte Carlo.** For a neural energy we cannot compute $\mathbb{E}_{p_\theta}$
# exactly; we average over samples $\mathbf{x}'_1, \dots, \mathbf{x}'_N \sim p_\theta$ instead. Here we can
# draw *exact* samples ($\mathbf{x} = \boldsymbol\mu + L^{-\top}\mathbf{z}$), so the only error is Monte
# Carlo error, which should shrink like $1/\sqrt N$. We measure the root-mean-square error of the
# $\Lambda$-gradient estimate over 50 repetitions for each $N$.
#
# **How to read "(expected m ± t)".** A number that comes from random draws or from training is printed
# beside the range this book expects it in, such as `-0.49 (expected -0.5 ± 0.05)`. The range comes from
# rerunning the whole chapter with other seeds: $m$ is the mean over those runs and $t$ about 4 standard
# deviations (wider, with the reason given, where a number has a long tail), and every range was then
# checked on seeds that were not used to set it. Another computer changes the last bits of every
# floating-point operation, and training amplifies them, so your machine may print other digits than the
# stored output; the number should still fall inside the range. If it does not, the notebook stops with an
# error. That means *investigate* (a changed setting, another library version, or a real bug), not that
# your code is certainly wrong.

# %%
gen = make_generator(1, device)
sizes = [10, 30, 100, 300, 1000, 3000, 10000 * SCALE]
rms = []
for n in sizes:
    errs = []
    for _ in range(50):
        xp = model.sample(n, generator=gen) - model.mu.detach()
        est = 0.5 * xp.T @ xp / n  # (1/N) sum of dE/dLambda at the samples
        errs.append(((est - 0.5 * sigma_true.to(device)) ** 2).sum())
    rms.append(float(torch.stack(errs).mean().sqrt()))
logn = torch.log(torch.tensor(sizes, dtype=dtype))
loge = torch.log(torch.tensor(rms, dtype=dtype))
centred = logn - logn.mean()
fit_slope = float((centred * (loge - loge.mean())).sum() / (centred**2).sum())
print(f"fitted slope of log(RMS error) against log N: {expect(fit_slope, -0.5, 0.05)}")
fig, ax = plt.subplots(figsize=(4.5, 3.3))
ax.loglog(sizes, rms, "o-", label="Monte Carlo negative phase")
reference = rms[0] * (torch.tensor(sizes) / sizes[0]) ** -0.5
ax.loglog(sizes, reference, "k--", label=r"$\propto 1/\sqrt{N}$")
ax.set(xlabel="number of model samples N", ylabel="RMS error of the gradient",
       title=r"Monte Carlo error shrinks as $1/\sqrt{N}$")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# ## 4. Maximum-likelihood training with a positive and a negative phase
#
# Training minimises the *loss* $\mathcal L(\theta) = -\frac1n\sum_{i=1}^n \log p_\theta(\mathbf x_i)$, the
# negative log-likelihood of a data set $\{\mathbf{x}_i\}$. Averaging the box over the data and flipping the
# sign gives its gradient,
# $\nabla_\theta \mathcal{L} = \mathbb{E}_{\text{data}}[\nabla_\theta E_\theta] - \mathbb{E}_{p_\theta}[\nabla_\theta E_\theta]$.
# A convenient way to get it from autograd is the *surrogate loss*
# $\frac1n\sum_i E_\theta(\mathbf{x}_i) - \frac1N\sum_j E_\theta(\mathbf{x}'_j)$ with the model samples
# $\mathbf{x}'_j$ held fixed (detached): its gradient is exactly the estimate above. Its *value* means
# nothing; only its gradient does. At the optimum the two phases balance, which for a Gaussian means the
# model's mean and covariance equal the sample mean and covariance of the data.

# %%
mix = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=dtype)  # data = (2, 1) + z mix: correlated
z = torch.randn(500, 2, dtype=dtype, generator=make_generator(2))
data = torch.tensor([[2.0, 1.0]], dtype=dtype) + z @ mix
data = data.to(device)
learner = GaussianEBM.standard(2, dtype=dtype, device=device)
opt = torch.optim.Adam(learner.parameters(), lr=0.05)
gen = make_generator(3, device)
history = []
n_steps = 300 * SCALE
for step in range(n_steps):
    negatives = learner.sample(4000, generator=gen)  # exact samples, no gradient
    loss = learner.energy(data).mean() - learner.energy(negatives).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 10 == 0 or step == n_steps - 1:
        history.append(learner.mu.detach().cpu().clone())
    if step == 200 * SCALE:
        for group in opt.param_groups:
            group["lr"] = 0.01  # smaller steps average out the Monte Carlo noise

x_bar = data.mean(0)
cov_data = torch.cov(data.T, correction=0)
# training is over; read the parameters without tracking gradients
learner.requires_grad_(False)
print("sample mean             :", show(x_bar, ".3f"))
print("learned mu - sample mean:", expect(learner.mu - x_bar, 0.0, 0.02))
print("sample covariance             :", show(cov_data, ".3f"))
cov_error = (learner.covariance - cov_data).reshape(-1)
print("learned Lambda^-1 - sample cov:", expect(cov_error, 0.0, 0.025))

# %%
traj = torch.stack(history)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
axes[0].plot(traj[:, 0], traj[:, 1], ".-", ms=3)
axes[0].plot(*x_bar.tolist(), "r*", ms=12, label="sample mean")
axes[0].set(xlabel=r"$\mu_1$", ylabel=r"$\mu_2$",
            title=r"$\mu$ during training (from the origin)")
axes[0].legend(frameon=False)
plot_energy_2d(learner.energy, [(-2, 6), (-3, 5)], kind="density", samples=data, ax=axes[1],
               dtype=dtype, device=device, title="learned density and the data")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. One step of contrastive divergence, by hand
#
# For a neural energy we have no exact sampler. Contrastive divergence (Hinton 2002) starts a short
# Markov chain *at the data* and uses where it lands after $k$ steps as the negative sample. With Langevin
# dynamics as the chain,
#
# $$x^{(t+1)} = x^{(t)} - \frac{\epsilon}{2}\nabla_x E_\theta(x^{(t)}) + \sqrt{\epsilon}\,\eta_t,\qquad \eta_t\sim\mathcal N(0, 1),$$
#
# and the CD-$k$ gradient of the loss is $\nabla_\theta E_\theta(x^{(0)}) - \nabla_\theta E_\theta(x^{(k)})$.
#
# **Worked example.** $E_\theta(x) = \theta x^2$, one data point $x_{\text{data}} = 1$, $\epsilon = 0.1$,
# $\theta = 1$, and the noise switched off ($\eta = 0$): $x^{(1)} = 1 - 0.05\cdot 2\cdot 1 = 0.9$ and the
# gradient is $1^2 - 0.9^2 = 0.19$.

# %%
theta = torch.tensor(1.0, dtype=dtype, requires_grad=True)
x0 = torch.tensor(1.0, dtype=dtype)
epsilon, eta = 0.1, 0.0
x_req = x0.clone().requires_grad_(True)
(grad_x,) = torch.autograd.grad(theta.detach() * x_req**2, x_req)  # dE/dx = 2 theta x
x1 = (x0 - 0.5 * epsilon * grad_x + math.sqrt(epsilon) * eta).detach()
cd_loss = theta * x0**2 - theta * x1**2  # E(x0) - E(x1), x1 held fixed
(cd_grad,) = torch.autograd.grad(cd_loss, theta)
print(f"x1 = {exact(x1, '.4f')}")
print(f"CD-1 gradient dE/dtheta(x0) - dE/dtheta(x1) = {exact(cd_grad, '.4f')}")

# %% [markdown]
# Which way does this gradient push? Gradient *descent* on the loss lowers $\theta$ when the gradient is
# positive, which flattens the energy and widens $p_\theta(x) \propto e^{-\theta x^2}$, whose variance is
# $1/(2\theta)$. That is the right direction: the maximum-likelihood $\theta$ for a single point at $x = 1$
# solves $\mathbb{E}_{p_\theta}[x^2] = 1/(2\theta) = 1$, i.e. $\theta_{\text{ML}} = 0.5$.
#
# With the noise switched back on, $x^{(1)} = 0.9 + \sqrt{0.1}\,\eta$ and
# $\mathbb{E}[(x^{(1)})^2] = 0.81 + 0.1$, so the *expected* CD-1 gradient at $\theta = 1$ is
# $1 - 0.91 = 0.09$. Compare it with the exact gradient of the loss, the negative log-likelihood of section 4:
# $\partial_\theta[-\log p_\theta(x)] = x^2 - \mathbb{E}_{p_\theta}[x^2] = 1 - \frac{1}{2\theta} = 0.5$ at
# $\theta = 1$. (The box of section 3 gives $\partial_\theta \log p_\theta(x) = -0.5$; the loss has the
# opposite sign, and descending it lowers $\theta$.) A Monte Carlo check of the expectation:

# %%
gen = make_generator(4, device)
etas = torch.randn(200000 * SCALE, generator=gen, device=device, dtype=dtype)
x1_noisy = 0.9 + math.sqrt(epsilon) * etas
cd_mean = float((1.0 - x1_noisy**2).mean())
se = float((1.0 - x1_noisy**2).std() / math.sqrt(len(etas)))
print(f"expected CD-1 gradient: Monte Carlo {expect(cd_mean, 0.09, 0.008)}, exact 0.09; "
      f"standard error {expect(se, 0.00131, 0.00002)}")
print("exact gradient of the loss (the negative log-likelihood): 1 - 1/(2 theta) = 0.50")

# %% [markdown]
# **What CD-1 follows here.** Write $s$ for the data's second moment ($s = 1$ here). One Langevin step from
# $x^{(0)}$ is $x^{(1)} = (1 - \epsilon\theta)\,x^{(0)} + \sqrt\epsilon\,\eta$, so the expected CD-1 gradient is
#
# $$g_{\text{CD}}(\theta) = \mathbb{E}\big[(x^{(0)})^2 - (x^{(1)})^2\big] = s - (1-\epsilon\theta)^2 s - \epsilon
#   = \frac{\epsilon}{2}\cdot 2(2\theta s - 1) \;-\; \epsilon^2\theta^2 s .$$
#
# The first term is a known objective in disguise. *Score matching* (Hyvärinen, 2005; chapter 6) fits the
# model's score $\psi_\theta(x) = -\partial_x E_\theta(x) = -2\theta x$ to the data by minimising
# $J_{\text{SM}}(\theta) = \mathbb{E}_{\text{data}}\big[\tfrac12\psi_\theta^2 + \partial_x\psi_\theta\big]
# = 2\theta^2 s - 2\theta$, whose derivative is $2(2\theta s - 1)$. So
# $g_{\text{CD}} = \frac{\epsilon}{2} J'_{\text{SM}}(\theta) - \epsilon^2\theta^2 s$: to first order in
# $\epsilon$, CD-1 with a Langevin step follows score matching, scaled by $\epsilon/2$ (Hyvärinen, 2007, makes
# this connection in general). That explains the 0.09: $0.05 \cdot 2 - 0.01$. And since
# $J'_{\text{SM}} = 4\theta\,(s - \frac{1}{2\theta})$ is $4\theta$ times the loss gradient, CD-1's expected
# gradient is about $2\epsilon\theta$ times the loss gradient: 5.6 times smaller at $\theta = 1$ (0.09
# against 0.5), and about ten times flatter near the optimum (slopes 0.19 against 2). It points the right
# way and moves slowly, which alone would not change the answer.
#
# What decides the answer is where the expected update vanishes. Score matching alone stops at
# $J'_{\text{SM}} = 0$, that is at $\theta = 1/(2s) = \theta_{\text{ML}}$; the $\epsilon^2$ term moves the zero.
# $g_{\text{CD}} = 0$ is a quadratic in $\theta$, and its root with $\epsilon\theta < 1$ (a step that does
# not overshoot) is, for $s = 1$ and $\epsilon = 0.1$, $\theta_{\text{CD}} = 0.513$, not 0.5. Where does the
# 0.013 come from? The Langevin step is not exact: iterated, it is the chain
# $x \mapsto (1-\epsilon\theta)x + \sqrt\epsilon\,\eta$, whose stationary variance is
# $\epsilon / (1 - (1-\epsilon\theta)^2) = 1/(\theta(2 - \epsilon\theta))$ instead of $1/(2\theta)$. CD-1 stops
# where that *discretised* chain leaves the data's second moment unchanged. Replace the step by an exact move
# that leaves $p_\theta$ invariant (for a Gaussian, $x \mapsto a x + \sqrt{1-a^2}\,\sigma\eta$ with
# $\sigma^2 = 1/(2\theta)$) and $\mathbb{E}[(x^{(1)})^2] = a^2 s + (1-a^2)\sigma^2$ equals $s$ exactly when
# $\sigma^2 = s$: the fixed point becomes $\theta_{\text{ML}}$. So for this model the whole 0.013 is the
# sampler's discretisation bias, and it vanishes as $\epsilon \to 0$. Would more Langevin steps per update
# (CD-$k$) move it? Exercise 1.4 asks you to find out.
#
# The exact move also shows what CD's *own* bias, from chains too short to reach the model, needs. Slow mixing
# is not enough: with $a$ close to 1 the exact move mixes arbitrarily slowly, yet CD-1 still stops at
# $\theta_{\text{ML}}$, for every $a < 1$. The reason is that $\mathbb{E}[(x^{(1)})^2 \mid x^{(0)}]$ is linear in
# $(x^{(0)})^2$: the one statistic the gradient needs, $x^2$, moves in a straight line from the data's value
# towards the model's, so it stays put only where the two agree. CD's own bias needs a model and a kernel
# whose $k$-step chain from the data does not carry the data's statistics towards the model's, for example
# modes of the model that $k$ steps from the data never connect. Chapter 2 shows such a case.
#
# Below, the two expected gradients as functions of $\theta$, a zoom on their zeros, and CD-1 run as a
# stochastic algorithm (40,000 noisy one-step chains per update, step size 0.5, 300 updates from
# $\theta = 1$).

# %%
s_data = 1.0  # the second moment of the data (one point at x = 1)
# the root with epsilon * theta < 1 of the quadratic g_CD(theta) = 0 (at s = 1)
theta_cd = (1 - math.sqrt(1 - epsilon)) / epsilon
# variance of the Langevin chain at theta_CD
stationary = 1 / (theta_cd * (2 - epsilon * theta_cd))
print(f"theta_ML = 0.5; theta_CD = {exact(theta_cd, '.4f')}")
print(f"the Langevin chain's stationary variance there: {exact(stationary, '.6f')} (= s)")

gen = make_generator(5, device)
theta_run = torch.tensor(1.0, dtype=dtype, device=device)
path = [float(theta_run)]
for update in range(300 * SCALE):
    eta = torch.randn(40_000, generator=gen, device=device, dtype=dtype)
    # one Langevin step from x = 1
    x1 = (1 - epsilon * theta_run) * 1.0 + math.sqrt(epsilon) * eta
    theta_run = theta_run - 0.5 * (1.0 - (x1**2).mean())  # descend the CD-1 loss E(x0) - E(x1)
    path.append(float(theta_run))
theta_final = sum(path[-200:]) / 200  # averaged over the last 200 updates
print(f"stochastic CD-1, mean theta over its last 200 updates: "
      f"{expect(theta_final, 0.513, 0.004)}")
print(claim(abs(theta_final - theta_cd) < abs(theta_final - 0.5),
            "stochastic CD-1 settles nearer theta_CD than theta_ML"))

fig, axes = plt.subplots(1, 3, figsize=(8, 2.9))
thetas, zoom = (torch.linspace(lo, hi, 241, dtype=dtype) for lo, hi in ((0.3, 1.5), (0.49, 0.53)))
for ax, th in zip(axes[:2], (thetas, zoom)):  # the two expected gradients, as functions of theta
    ax.plot(th, s_data - 1 / (2 * th), label="loss gradient (ML)")
    ax.plot(th, s_data - (1 - epsilon * th) ** 2 * s_data - epsilon, label="expected CD-1")
    ax.axhline(0, color="gray", lw=0.8)
    ax.axvline(0.5, color="C0", ls=":", lw=1.2)
    ax.axvline(theta_cd, color="C1", ls="--", lw=1.2)
    ax.set(xlabel=r"$\theta$")
axes[0].set(ylabel="gradient of the loss", title="two gradients")
axes[0].legend(frameon=False, fontsize=9, loc="upper left")
axes[1].set(xlim=(0.49, 0.53), ylim=(-0.03, 0.03), xticks=[0.49, 0.5, 0.513, 0.53],
            title="zoom: zeros at 0.5 and 0.513")
axes[1].tick_params(axis="x", labelsize=9)
axes[2].plot(path, color="C1", lw=1)
axes[2].axhline(theta_cd, color="C1", ls="--", lw=1.2, label=r"$\theta_{\mathrm{CD}} = 0.513$")
axes[2].axhline(0.5, color="C0", ls=":", lw=1.2, label=r"$\theta_{\mathrm{ML}} = 0.5$")
axes[2].set(xlabel="update", ylabel=r"$\theta$", ylim=(0.49, 0.535),
            title="stochastic CD-1 (from 1)")
axes[2].legend(frameon=False, fontsize=9, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Composition: adding energies multiplies densities
#
# If $p_1 \propto e^{-E_1}$ and $p_2 \propto e^{-E_2}$, the energy $E_1 + E_2$ defines
# $p \propto p_1 p_2$, a *product of experts* (Hinton, 2002): a point is likely only if every expert finds it
# likely. For two Gaussian experts the sum of two quadratics is again a quadratic. Completing the square,
#
# $$\Lambda = \Lambda_1 + \Lambda_2, \qquad \boldsymbol\mu = \Lambda^{-1}(\Lambda_1\boldsymbol\mu_1 + \Lambda_2\boldsymbol\mu_2),$$
#
# and $E_1 + E_2 = E_{\boldsymbol\mu,\Lambda} + \text{const}$. We check the claim numerically: normalise
# $e^{-(E_1+E_2)}$ on a grid and compare it with the Gaussian that `product_of_experts` returns.

# %%
expert1 = GaussianEBM(torch.tensor([-1.0, 0.0], dtype=dtype),
                      torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=dtype)).to(device)
expert2 = GaussianEBM(torch.tensor([1.5, 1.0], dtype=dtype),
                      torch.tensor([[3.0, -1.0], [-1.0, 1.0]], dtype=dtype)).to(device)
poe = product_of_experts(expert1, expert2)
bounds = [(-5.0, 5.0), (-5.0, 5.0)]
points, _, cell = grid(bounds, 400, device=device, dtype=dtype)
with torch.no_grad():
    summed = expert1.energy(points) + expert2.energy(points)
    p_sum = torch.softmax(-summed, 0) / cell  # exp(-(E1+E2)) normalised on the grid
    p_poe = poe.log_prob(points).exp()
print("product mean     :", show(poe.mu, ".4f"))
print("product precision:", show(poe.precision, ".4f"))
rel_err = float((p_sum - p_poe).abs().max() / p_poe.max())
print(f"peak density {exact(p_poe.max(), '.3f')}")
print(claim(rel_err < 1e-10, "normalised exp(-(E1+E2)) equals the product Gaussian to 1e-10"))
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
energies = [expert1.energy, expert2.energy, lambda x: expert1.energy(x) + expert2.energy(x)]
for ax, e, title in zip(axes, energies, ["expert 1", "expert 2", "E1 + E2: the product"]):
    plot_energy_2d(e, bounds, kind="density", ax=ax, dtype=dtype, device=device, title=title,
                   colorbar=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Products of non-Gaussian experts.** The rule holds for any energies, and it is where products earn
# their keep: each expert can enforce one constraint and leave the rest to the others. Take a *ring*,
# $E_1(\mathbf x) = (\lVert\mathbf x\rVert - 2)^2 / (2\cdot 0.2^2)$, which says "about 2 from the origin",
# and a soft *half-plane*, $E_2(\mathbf x) = \operatorname{softplus}(-6x_2)$, which says "above the
# $x_1$-axis" and nothing about $x_1$ (its density is not even normalisable on its own, but the product is).
# Their product is the upper half of the ring: sharper than either expert. A *mixture*
# $\tfrac12(p_1 + p_2)$ can only spread mass out; a product concentrates it where all experts agree. Both
# densities below (the ring alone, and the product) are normalised by quadrature, so the masses are exact to
# the grid's accuracy. In the figures each panel has its own colour scale; the half-plane alone is not
# normalisable, so its panel is normalised on the plotted box only.

# %%
def ring(x):
    return (x.norm(dim=1) - 2.0) ** 2 / (2 * 0.2**2)


def half_plane(x):
    return torch.nn.functional.softplus(-6.0 * x[:, 1])


box = [(-3.5, 3.5), (-3.5, 3.5)]
points, _, cell = grid(box, 400, dtype=dtype)
upper = points[:, 1] > 0
for name, energy in [("ring", ring), ("ring x half-plane", lambda x: ring(x) + half_plane(x))]:
    log_z = log_partition_grid(energy, box, 400)
    p = torch.exp(-energy(points) - log_z) * cell  # probability of each grid cell
    print(f"{name:17s}: log Z = {exact(log_z, '.4f')}, "
          f"mass above the x1-axis = {exact(p[upper].sum(), '.4f')}")
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
panels = [(ring, "expert 1: a ring"), (half_plane, "expert 2: $x_2 > 0$ (on this box)"),
          (lambda x: ring(x) + half_plane(x), "their product")]
for ax, (energy, title) in zip(axes, panels):
    plot_energy_2d(energy, box, kind="density", ax=ax, dtype=dtype, title=title,
                   colorbar=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - An EBM is $p_\theta = e^{-E_\theta}/Z(\theta)$; only energy differences matter, and $Z$ is an integral
#   over the whole space, intractable beyond a few dimensions.
# - For a quadratic energy, completing the square gives $\log Z = \frac d2\log 2\pi - \frac12\log\det\Lambda$,
#   which quadrature confirms to six digits.
# - The log-likelihood gradient is a *positive phase* at the data minus a *negative phase* under the model;
#   with model samples, the negative phase is a Monte Carlo average whose error falls as $1/\sqrt N$. The
#   loss, the negative log-likelihood, has the same gradient with the opposite sign.
# - With exact samples, gradient descent on the loss recovers the maximum-likelihood Gaussian (sample mean and
#   covariance). Without them, contrastive divergence runs a short chain from the data. In the worked
#   example its expected gradient is about $2\epsilon\theta$ times the loss gradient (0.09 against 0.5 at
#   $\theta = 1$): to first order in $\epsilon$ it is score matching. It stops at $\theta = 0.513$ instead
#   of 0.5: a bias of the *discretised* Langevin step, which an exact sampler would remove, however slowly
#   it mixed. CD's own bias needs a short chain that does not carry the data's statistics towards the
#   model's, such as modes it never connects: chapter 2 meets it.
# - Adding energies multiplies densities: a product of experts, which can be sharper than every expert.
#
# **Next:** Chapter 2 meets the first EBM whose partition function is a sum over $2^n$ binary states, the
# restricted Boltzmann machine, and trains it with CD-$k$ where Gibbs sampling replaces Langevin dynamics.
