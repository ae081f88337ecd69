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
# # Chapter 4: Langevin dynamics, MCMC diagnostics and deep EBMs
#
# Training an EBM by maximum likelihood needs samples from the model $p_\theta(\mathbf{x}) =
# e^{-E_\theta(\mathbf{x})}/Z(\theta)$ for the negative phase (Chapter 1). For binary units we had Gibbs
# sampling (Chapters 2–3). For continuous data and a neural energy we have something better: the gradient
# $\nabla_{\mathbf{x}} E_\theta$, one backward pass away. Langevin dynamics turns that gradient into a
# sampler. This chapter builds it, measures how well it works, and then uses it to train deep EBMs.
#
# **Learning objectives.** After this chapter you can
# 1. write the Langevin update and explain, with the Fokker–Planck equation, why its continuous-time limit
#    samples from $e^{-E}/Z$;
# 2. predict the bias of the unadjusted Langevin algorithm (ULA) at a finite step size, and remove it with a
#    Metropolis correction (MALA);
# 3. read trace plots and autocorrelations, and compute the integrated autocorrelation time, the effective
#    sample size and $\hat R$; recognise a chain stuck in one mode;
# 4. train a deep EBM with short-run Langevin chains, with and without a replay buffer, and track the
#    energy gap;
# 5. recognise a diverging run and stop it with a message that says what to change.

# %%
import copy
import functools
import inspect
import math

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.core import DivergenceError
from ebm_teach.data import GaussianMixture, load_digits, ring_of_gaussians, toy_data
from ebm_teach.diagnostics import (
    autocorrelation, effective_sample_size, integrated_autocorr_time, split_rhat,
)
from ebm_teach.energies import ConvEnergy, MLPEnergy
from ebm_teach.evaluate import grid, log_likelihood_grid
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting import (
    image_grid, plot_autocorr, plot_energy_2d, plot_sample_panels, plot_samples_vs_density, plot_traces,
    plot_training_curves,
)
from ebm_teach.samplers import (
    ReplayBuffer, langevin_step, mala, mala_kernel, run_chain, sgld, ula, uniform_noise,
)
from ebm_teach.training import divergence_guard, train_ebm

SCALE = 1  # integer; raise it on a GPU: more chains, longer runs, more training iterations
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # thousands of tiny tensor ops: a second thread would only wait
dtype = torch.float64  # sections 1-2 compare with exact densities in double precision
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. Langevin dynamics: noisy gradient descent that samples
#
# ### The update
# Gradient descent $\mathbf{x} \leftarrow \mathbf{x} - \tfrac{\epsilon}{2}\nabla_{\mathbf{x}}E(\mathbf{x})$
# slides into the nearest minimum of the energy. Add Gaussian noise of the right size and it samples
# instead:
#
# $$\mathbf{x}' = \mathbf{x} - \frac{\epsilon}{2}\nabla_{\mathbf{x}}E(\mathbf{x}) + \sqrt{\epsilon}\,\mathbf{z},
#   \qquad \mathbf{z} \sim \mathcal N(0, I).$$
#
# This is the book's convention throughout (seeds 003, 004). Some texts write
# $\mathbf{x}' = \mathbf{x} - \epsilon'\nabla E + \sqrt{2\epsilon'}\,\mathbf{z}$: the same update with
# $\epsilon' = \epsilon/2$. Mixing the two conventions silently halves or doubles the temperature.
#
# ### Why it targets $e^{-E}/Z$
# The update is the Euler–Maruyama step, with time step $\epsilon$, of the stochastic differential equation
# $d\mathbf{x} = -\tfrac12 \nabla E(\mathbf{x})\,dt + d\mathbf{W}$ ($\mathbf{W}$ a standard Brownian motion).
# The density $p_t$ of $\mathbf{x}_t$ obeys the Fokker–Planck equation: the drift $-\tfrac12\nabla E$ gives a
# divergence term, the unit diffusion a Laplacian with the factor $\tfrac12$,
#
# $$\partial_t p = \nabla\cdot\left(\tfrac12\, p\, \nabla E\right) + \tfrac12 \nabla^2 p
#   = \tfrac12\,\nabla\cdot\left(p\,\nabla E + \nabla p\right).$$
#
# For $p \propto e^{-E}$ we have $\nabla p = -p\,\nabla E$, so the flux $p\nabla E + \nabla p$ is zero
# everywhere and $\partial_t p = 0$: $e^{-E}/Z$ is stationary. (Seed 003's practice problem 2 writes the
# drift term as $\nabla\cdot(p\nabla E)$, without the $\tfrac12$ that belongs to the drift $-\tfrac12\nabla E$,
# and then finds a non-zero flux; with the factor in place the check goes through. The form
# $d\mathbf{x} = -\nabla E\,dt + \sqrt2\,d\mathbf{W}$ gives $\partial_t p = \nabla\cdot(p\nabla E + \nabla p)$:
# the same stationary law, with time running twice as fast.) Under mild conditions on $E$ the
# stationary law is also the limit from any start.
#
# ### The price of a finite step
# The SDE is exact; the *discrete* chain is not. Its stationary law is biased by $O(\epsilon)$. For
# $E(x) = x^2/(2s^2)$ the step is linear, $x' = (1 - \tfrac{\epsilon}{2s^2})\,x + \sqrt\epsilon\,z$, so its
# stationary variance $v$ solves $v = (1-\tfrac{\epsilon}{2s^2})^2 v + \epsilon$:
#
# $$v_\epsilon = \frac{\epsilon}{1 - (1 - \epsilon/(2s^2))^2} = \frac{s^2}{1 - \epsilon/(4s^2)}
#   \quad (> s^2;\ \text{the chain diverges once } \epsilon \ge 4s^2).$$
#
# The Metropolis-adjusted Langevin algorithm (MALA) uses the Langevin step only as a *proposal*
# $q(\mathbf{x}'\mid\mathbf{x}) = \mathcal N(\mathbf{x} - \tfrac\epsilon2\nabla E(\mathbf{x}), \epsilon I)$ and accepts it with
# probability
#
# $$\alpha = \min\left(1,\ \frac{e^{-E(\mathbf{x}')}\, q(\mathbf{x}\mid\mathbf{x}')}{e^{-E(\mathbf{x})}\, q(\mathbf{x}'\mid\mathbf{x})}\right),$$
#
# which enforces detailed balance with respect to $e^{-E}/Z$: exact at every step size; the step size now
# only sets the speed. Here is the one package function behind all of it, and the MALA step:

# %%
print(inspect.getsource(langevin_step))
print(inspect.getsource(mala_kernel))

# %% [markdown]
# First the closed form. Many independent chains on $E = x^2/2$ ($s = 1$) run to stationarity; their
# variance is compared with $v_\epsilon$ and with MALA, whose answer should be $1$ at every $\epsilon$.

# %%
# %% tags=["nbval-ignore-output"]
n_chains = 20_000 * SCALE
gen = make_generator(0, device)
x0 = torch.zeros(n_chains, 1, device=device, dtype=dtype)
half_square = lambda x: 0.5 * (x**2).sum(1)
step_sizes = (0.1, 0.5, 1.0, 2.0)
v_exact, v_ula, v_mala, acc_mala = [], [], [], []
for eps in step_sizes:
    v_exact.append(eps / (1 - (1 - eps / 2) ** 2))
    v_ula.append(float(ula(x0, half_square, 200, eps, gen).var()))
    x_mala, acc = mala(x0, half_square, 200, eps, gen)
    v_mala.append(float(x_mala.var()))
    acc_mala.append(float(acc))
# the standard error of a sample variance of n Gaussian draws is v sqrt(2 / (n - 1))
se = lambda v: v * math.sqrt(2 / (n_chains - 1))
print(" eps | ULA variance: exact | simulated ± s.e. | MALA variance ± s.e. | MALA acceptance")
for eps, ve, vu, vm, a in zip(step_sizes, v_exact, v_ula, v_mala, acc_mala):
    print(f"{eps:4.1f} | {ve:19.3f} | {vu:9.3f} ± {se(vu):.3f} | {vm:12.3f} ± {se(vm):.3f} | {a:15.2f}")

# %% [markdown]
# (The table's last digits differ from one machine to the next; the checked figures follow. Each
# "expected" range in this book is the mean ± 4 standard deviations over 8 runs with other seeds.)

# %%
v_exact, v_ula, v_mala = (torch.tensor(v) for v in (v_exact, v_ula, v_mala))
print("ULA variance / exact ULA variance:", expect(v_ula / v_exact, 1.0, 0.06))
print("MALA variance (the truth is 1)   :", expect(v_mala, 1.0, 0.06))
print("MALA acceptance rates            :", expect(acc_mala, [0.9975, 0.972, 0.921, 0.783], 0.003))

# %% [markdown]
# ULA's variance follows the formula, twice the truth at $\epsilon = 2$; MALA gets $1$ at every step size
# and pays with a falling acceptance rate. Now a target with several modes: a mixture of three Gaussians in 2-D whose density we know
# exactly. Its energy is $E = -\log p$; for isotropic components it takes a few lines of log-sum-exp, and
# we check it against `GaussianMixture.log_prob`.

# %%
target = GaussianMixture.isotropic(
    torch.tensor([[-1.5, -0.5], [1.5, -0.5], [0.0, 1.5]], dtype=dtype), 0.7, [0.4, 0.35, 0.25]
).to(device)


def mixture_energy(gm):
    """E(x) = -log p(x) for a mixture of isotropic Gaussians; x: (batch, d) -> (batch,)."""
    means, log_w, var = gm.means, gm.weights.log(), gm.covs[:, 0, 0]
    d = gm.dim

    def energy(x):
        sq = ((x[:, None, :] - means) ** 2).sum(-1)  # (batch, K)
        return -torch.logsumexp(log_w - sq / (2 * var) - 0.5 * d * torch.log(2 * math.pi * var), dim=1)

    return energy


E_target = mixture_energy(target)
check_x = torch.randn(500, 2, generator=make_generator(1, device), device=device, dtype=dtype) * 2
max_err = float((E_target(check_x) + target.log_prob(check_x)).abs().max())
print(claim(max_err < 1e-12, "E(x) = -log p(x) to 1e-12 on 500 random points"))
w, m = target.weights, target.means
mean_exact = w @ m
second = (w[:, None, None] * (target.covs + m[:, :, None] * m[:, None, :])).sum(0)
cov_exact = second - torch.outer(mean_exact, mean_exact)
print(f"exact variances: Var(x1) = {exact(cov_exact[0, 0], '.3f')}, Var(x2) = {exact(cov_exact[1, 1], '.3f')}")

# %% [markdown]
# 4000 chains start from a broad Gaussian and take 400 steps; their end points are 4000 independent
# draws. The grey histogram should follow the orange contours of the exact density.

# %%
n_chains = 4000 * SCALE
x0 = 2.0 * torch.randn(n_chains, 2, generator=make_generator(2, device), device=device, dtype=dtype)
gen = make_generator(3, device)
runs = {}
for eps in (0.05, 0.3, 1.0):
    runs[f"ULA, eps = {eps}"] = ula(x0, E_target, 400, eps, gen)
runs["MALA, eps = 1.0"], acc_mala = mala(x0, E_target, 400, 1.0, gen)
print(f"MALA acceptance rate at eps = 1.0: {expect(acc_mala, 0.674, 0.003)}")
var_exact = torch.diagonal(cov_exact)
expected_var = {"ULA, eps = 0.05": [2.19, 1.23], "ULA, eps = 0.3": [2.23, 1.30], "ULA, eps = 1.0": [2.37, 1.62],
                "MALA, eps = 1.0": [round(v, 3) for v in var_exact.tolist()]}  # MALA: the exact ones
for name, x in runs.items():
    print(f"{name:16s}: (Var(x1), Var(x2)) = {expect(torch.diagonal(torch.cov(x.T)), expected_var[name], 0.16)}")
fig, axes = plt.subplots(1, 4, figsize=(15, 3.9))
for ax, (name, x) in zip(axes, runs.items()):
    plot_samples_vs_density(x, target.log_prob, ((-4, 4), (-4, 4)), ax=ax, title=name, bins=40)
plt.tight_layout()
plt.show()

# %% [markdown]
# The small step is faithful; at $\epsilon = 1$ ULA's samples spread visibly beyond the contours (its
# variances are too large by 10–30 %), while MALA at the same step size matches the exact moments up to Monte
# Carlo error (about $\pm 0.05$ here). Small steps cost time, though, as the next section measures.
#
# ## 2. Diagnostics: is the chain mixing?
#
# In training we never have 4000 independent chains run to convergence: we have a few chains and
# correlated steps. Successive states of one chain are correlated, so $n$ steps carry less information
# than $n$ independent draws. For a scalar summary $f(\mathbf{x}_t)$ with autocorrelation $\rho(t)$,
#
# $$\operatorname{Var}\Big(\frac1n\sum_{t=1}^n f(\mathbf{x}_t)\Big) \approx \frac{\tau\, \operatorname{Var}(f)}{n},
#   \qquad \tau = 1 + 2\sum_{t\ge1}\rho(t),\qquad \text{ESS} = n/\tau .$$
#
# $\tau$ is the *integrated autocorrelation time*. Summing the noisy empirical $\rho(t)$ over all lags would
# add pure noise, so the sum is cut at a window $M$: Sokal's rule takes the smallest $M \ge 5\,\tau(M)$;
# Geyer's initial monotone sequence sums pairs $\rho(2k)+\rho(2k+1)$ while they stay positive and
# decreasing. For an AR(1) chain $x_t = \rho x_{t-1} + e_t$ the answer is known, $\tau = (1+\rho)/(1-\rho)$,
# and the tests check both estimators against it to 5 %.
#
# 128 chains on the 3-mode target, all started at the origin, for two step sizes. (128 chains cost little more
# time than 4: each step is one batched gradient. More chains make the estimates of $\tau$ steadier.)

# %%
n_steps, n_chains = 5000 * SCALE, 128
gen = make_generator(4, device)
start = torch.zeros(n_chains, 2, device=device, dtype=dtype)
traces = {eps: run_chain(lambda x, e=eps: langevin_step(x, E_target, e, gen)[0], start, n_steps) for eps in (0.05, 0.5)}
acfs = {}
for eps, tr in traces.items():
    chains = tr[:, :, 0].T  # first coordinate, (n_chains, n_steps)
    acfs[f"eps = {eps}"] = autocorrelation(chains[0])
    want = {0.05: dict(tau=(260, 90), ess=(2460, 750), rhat=(1.051, 0.012)),
            0.5: dict(tau=(21.8, 3), ess=(29200, 3000), rhat=(1.004, 0.002))}[eps]
    print(f"eps = {eps}")
    print(f"  tau (Sokal) : {expect(integrated_autocorr_time(chains, 'sokal', quiet=True), *want['tau'])}")
    print(f"  tau (Geyer) : {expect(integrated_autocorr_time(chains, 'geyer', quiet=True), *want['tau'])}")
    print(f"  ESS         : {expect(effective_sample_size(chains), *want['ess'])} of {chains.numel()} draws")
    print(f"  split R-hat : {expect(split_rhat(chains), *want['rhat'])}")
fig, axes = plt.subplots(1, 3, figsize=(15, 3.2), gridspec_kw={"width_ratios": [2, 2, 1.3]})
for ax, (eps, tr) in zip(axes, traces.items()):
    plot_traces(tr[:1000, :2, 0].T, ax=ax, title=f"first 1000 steps of 2 chains, eps = {eps}")
plot_autocorr(acfs, max_lag=300, ax=axes[2], title="autocorrelation of $x_1$")
plt.tight_layout()
plt.show()

# %% [markdown]
# The small step wanders slowly between the modes: its $\tau$ is more than ten times larger (about 300 steps
# against 22), so its 640 000 steps are worth only about 2500 independent draws. A larger step mixes faster but
# is more biased (section 1): the step size trades bias for variance.
#
# $\hat R$ compares the variance between chains with the variance within them (each chain split in half, so
# that a drifting chain is caught too):
#
# $$\hat R = \sqrt{\frac{\tfrac{n-1}{n}W + \tfrac1n B}{W}},$$
#
# with $W$ the mean within-chain variance and $B/n$ the variance of the chain means. Near $1$ the chains
# agree; Vehtari et al. (2021) ask for $\hat R < 1.01$. The slow chains above already fail that test, the
# fast ones pass. Now separate the modes: two at $x_1 = \pm 4$ with standard deviation $0.6$. Between them
# the density drops by a factor $e^{-\Delta E}$ with $\Delta E = 4^2/(2\cdot0.6^2) \approx 22$, and Langevin
# dynamics crosses such a barrier at a rate of order $e^{-\Delta E}$: never, in practice.

# %%
far = GaussianMixture.isotropic(torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=dtype), 0.6, [0.5, 0.5]).to(device)
E_far = mixture_energy(far)
starts = torch.tensor([[-3.0, 0.0], [-4.0, 1.0], [5.0, 0.0], [-5.0, -1.0]], device=device, dtype=dtype)
tr = run_chain(lambda x: langevin_step(x, E_far, 0.2, gen)[0], starts, n_steps)
chains = tr[:, :, 0].T
left = float((tr[..., 0] < 0).double().mean())
print(f"4 chains: split R-hat = {expect(split_rhat(chains), 5.83, 0.25)}")
print(f"          ESS = {expect(effective_sample_size(chains), 2.054, 0.01)} of {chains.numel()} draws")
print(f"fraction of all draws in the left mode: {expect(left, 0.75, 0.005)} (exact: 0.50)")
print(f"chain 1 alone: split R-hat = {expect(split_rhat(chains[:1]), 1.001, 0.005)}")
print(f"               ESS = {expect(effective_sample_size(chains[0]), 820, 280)} of {chains.shape[1]} draws")
fig, axes = plt.subplots(1, 2, figsize=(13, 3.2), gridspec_kw={"width_ratios": [2.2, 1]})
plot_traces(chains, ax=axes[0], title="4 chains on two well-separated modes: none ever crosses",
            labels=[f"chain {i + 1}" for i in range(4)])
plot_samples_vs_density(tr[:, 0], far.log_prob, ((-6, 6), (-3, 3)), ax=axes[1], title="chain 1's samples", bins=(48, 24))
plt.tight_layout()
plt.show()

# %% [markdown]
# Chain 1 alone looks perfect: a stable trace, $\hat R \approx 1$, hundreds of effective samples. It has
# simply never seen the other mode. Only several chains started apart reveal the problem ($\hat R \gg 1$,
# an ESS of a few draws), and the pooled draws put three quarters of the mass on the left because three
# chains started there. **No diagnostic can certify that a chain has found every mode**; several dispersed
# starts are the best cheap defence. Deep-EBM training lives with exactly this problem.
#
# ## 3. Training a deep EBM on 2-D data
#
# The maximum-likelihood gradient needs negatives from the current model (Chapter 1). With Langevin
# chains that cannot run to convergence at every training step, two practical recipes are used:
#
# * **short-run chains from noise** (Nijkamp et al. 2019): every step starts $k$ Langevin steps from uniform
#   noise;
# * **a replay buffer** (Du & Mordatch 2019; seed 001): start 95 % of the chains from samples of earlier steps
#   and 5 % from fresh noise, and put the results back, so chains persist across training steps like PCD
#   (Chapter 3) while the fresh 5 % keep exploring.
#
# The loss adds Du & Mordatch's weak L2 penalty on the energies, which keeps them from drifting off:
#
# $$\mathcal L(\theta) = \overline{E_\theta(\mathbf{x}^+)} - \overline{E_\theta(\mathbf{x}^-)}
#   + \alpha\big(\overline{E_\theta(\mathbf{x}^+)^2} + \overline{E_\theta(\mathbf{x}^-)^2}\big).$$
#
# The training loop of `train_ebm` (after its input checks) is short enough to read in full;
# `ReplayBuffer.sample` is the other piece:

# %%
source = inspect.getsource(train_ebm)
print(source[source.index("    optimizer = ") :])
print(inspect.getsource(ReplayBuffer.sample))

# %% [markdown]
# The data: eight Gaussians on a circle of radius 4 (standard deviation 0.5), an MLP energy with SiLU
# activations, 20 ULA steps of size $\epsilon = 0.1$ per training step, clamped to the box $[-6, 6]^2$ where
# the noise is drawn, $\alpha = 0.1$, Adam with learning rate $5\cdot10^{-3}$. Both runs are identical
# except for where the chains start. Every 100 iterations a
# snapshot of the network is kept for the landscape plots.

# %%
bounds = ((-6.0, 6.0), (-6.0, 6.0))
data = toy_data("ring8", 4000, seed=0, device=device)
data_test = toy_data("ring8", 2000, seed=1, device=device)
noise2d = uniform_noise((2,), -6.0, 6.0, device=device)
sampler2d = functools.partial(ula, n_steps=20, step_size=0.1, clamp=(-6.0, 6.0))
n_iters = 400 * SCALE
results = {}
for name, use_buffer in [("short-run from noise", False), ("replay buffer, 5% noise", True)]:
    seed_everything(0)  # the network's initial weights
    model = MLPEnergy(dim=2, hidden=64 * SCALE, n_layers=3).to(device)
    buffer = ReplayBuffer(2000, noise2d, reinit_fraction=0.05) if use_buffer else None
    snapshots = {}
    keep = lambda it, energy, x_neg, snaps=snapshots: snaps.__setitem__(it, copy.deepcopy(energy))
    history = train_ebm(model, data, n_iters, sampler2d, noise2d, batch_size=128, lr=5e-3, alpha=0.1,
                        buffer=buffer, generator=make_generator(1, device), callback=keep, callback_every=100 * SCALE)
    results[name] = dict(model=model, buffer=buffer, history=history, snapshots=snapshots)
    gap = history["gap"][-50:].mean()
    want_gap = {"short-run from noise": (-0.67, 0.35), "replay buffer, 5% noise": (-0.32, 0.3)}[name]
    print(f"{name:24s}: energy gap over the last 50 iterations {expect(gap, *want_gap)}")

# %% [markdown]
# The energy landscapes over training, shown as the normalised density $e^{-E}/Z$ on the box (rows: the two
# recipes; columns: iterations):

# %%
fig, axes = plt.subplots(2, 5, figsize=(17, 6.6))
for row, (name, res) in zip(axes, results.items()):
    for ax, (it, snap) in zip(row, res["snapshots"].items()):
        plot_energy_2d(snap, bounds, n_points=80, ax=ax, device=device, title=f"{name}\niteration {it}")
for ax in axes.flat:
    ax.title.set_fontsize(9)
plt.tight_layout()
plt.show()

# %% [markdown]
# Now the samples. For each model: what the training chains produce (20 steps from noise, or the buffer's
# contents), and what *long* chains of 500 steps from noise produce, which is closer to the model's actual
# density $e^{-E}/Z$.

# %%
gen = make_generator(5, device)
panels = {"data": data[:2000]}
for name, res in results.items():
    model = res["model"]
    if res["buffer"] is not None:
        panels[f"{name}:\nbuffer contents"] = res["buffer"].samples()
    else:
        panels[f"{name}:\n20 steps from noise"] = sampler2d(noise2d(2000, gen), model, generator=gen)
    panels[f"{name}:\n500 steps from noise"] = ula(noise2d(2000, gen), model, 500, 0.1, gen, clamp=(-6.0, 6.0))
plot_sample_panels(panels, bounds)
plt.show()

# %% [markdown]
# In 2-D we can check the models exactly: $\log Z$ by quadrature over the box gives the test
# log-likelihood, to compare with the true density's. We also measure how $e^{-E}/Z$ shares its mass among
# the eight modes (each should hold $1/8$ of it): the mass in each $45°$ sector around a mode.

# %%
points, _, cell = grid(bounds, 200, device=device, dtype=torch.float32)
sector = torch.remainder(torch.atan2(points[:, 1], points[:, 0]) + math.pi / 8, 2 * math.pi) // (math.pi / 4)
ring = ring_of_gaussians(8, 4.0, 0.5).to(device)
true_ll = float(ring.log_prob(data_test.double()).mean())
print(f"true density: test log-likelihood {exact(true_ll, '.3f')}, mode masses 0.125")
for name, res in results.items():
    ll = log_likelihood_grid(res["model"], data_test, bounds, n_points=200)
    with torch.no_grad():
        p = torch.softmax(-res["model"](points).double(), 0)
    mass = torch.zeros(8, dtype=torch.float64, device=device).index_add_(0, sector.long(), p)
    want = {"short-run from noise": dict(ll=(-3.82, 0.45), mass_min=(0.074, 0.09), mass_max=(0.178, 0.12)),
            "replay buffer, 5% noise": dict(ll=(-3.81, 0.55), mass_min=(0.080, 0.08), mass_max=(0.195, 0.13))}[name]
    print(f"{name}:\n  test log-likelihood {expect(ll, *want['ll'])}")
    print(f"  mode masses from {expect(mass.min(), *want['mass_min'])} to {expect(mass.max(), *want['mass_max'])}")
fig, ax = plt.subplots(figsize=(7, 3))
plot_training_curves({k: v["history"] for k, v in results.items()}, "gap", ax=ax, smooth=20,
                     ylabel=r"$\overline{E(x^+)} - \overline{E(x^-)}$", title="energy gap (running mean over 20 iterations)")
plt.show()

# %% [markdown]
# What to take from these figures:
#
# * Both recipes find the eight modes, and both stay about 0.3 nats below the true density's test
#   log-likelihood. One training run of each cannot rank them: over other seeds each moves by about 0.1.
# * The samples the training actually uses differ most. Twenty steps from noise leave many chains between
#   the modes, so the model trained with them learns to make *20-step chains from noise* look like the
#   data, and its density stays blurred. The buffer's chains persist for hundreds of steps in total, and its
#   contents look like the data.
# * The energy gap settles below $0$ and stays there: the negatives have higher energy than the data. A
#   short chain has not finished its descent, and ULA's finite step spreads samples beyond the modes (section
#   1); the gap measures both. A gap that keeps drifting would instead mean that the energies run away.
# * Neither density shares its mass equally among the modes (each should hold 0.125). The chains rarely
#   cross between modes (section 2), so the training signal hardly compares one mode's mass with
#   another's, and the relative depths of the modes drift. Samples that look right do not make a correct
#   density; in 2-D the quadrature log-likelihood says how far off it is, in high dimension nothing does.
#
# ## 4. A failure on purpose, and the guard that catches it
#
# Drop the L2 penalty ($\alpha = 0$), take Langevin steps five times larger ($\epsilon = 0.5$) and let the
# chains leave the box. Negatives fly far from the data, the model raises their energy, the chains go
# further still, and nothing holds the energies back. `train_ebm` calls `divergence_guard` after every
# step: it reduces all watched tensors to one flag on the device (one synchronisation per step) and raises
# `DivergenceError` with a diagnosis when a value is NaN/inf or exceeds `max_abs`.

# %%
seed_everything(0)
model = MLPEnergy(dim=2, hidden=64, n_layers=3).to(device)
reckless = functools.partial(ula, n_steps=20, step_size=0.5)  # no clamp
try:
    train_ebm(model, data, 300, reckless, noise2d, batch_size=128, lr=1e-2, alpha=0.0,
              buffer=ReplayBuffer(2000, noise2d), generator=make_generator(1, device))
    print("no divergence (unexpected)")
except DivergenceError as err:
    message, history = str(err), err.history
    print("DivergenceError:", message[message.index("Likely cause") :])
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(history["e_pos"], label=r"$\overline{E(x^+)}$ (data)")
ax.plot(history["e_neg"], label=r"$\overline{E(x^-)}$ (negatives)")
ax.set(xlabel="iteration", ylabel="mean energy", yscale="symlog",
       title=f"alpha = 0, eps = 0.5: stopped at iteration {len(history['e_pos']) - 1}")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# The energies blow up within a few iterations before the guard stops the run, and the message names the
# likely cause and the fixes (the settings of section 3 are exactly those fixes). The guard is a plain
# function that any loop can call; its check costs one reduction and one read-back:

# %%
source = inspect.getsource(divergence_guard)
print(source[source.index("    if step % check_every") : source.index("    for name, t in tensors.items():\n        t = t.detach()")])
try:
    divergence_guard(12, e_pos=torch.tensor([0.1, -0.3]), e_neg=torch.tensor([0.2, float("nan")]))
except DivergenceError as err:
    print("DivergenceError:", str(err)[:95], "...")

# %% [markdown]
# ## 5. An energy model of handwritten digits
#
# The same machinery on the 8×8 digits (pixel values in $[0, 1]$), with a small convolutional energy
# (`ConvEnergy`) and a replay buffer. For images, practitioners decouple the two halves of the Langevin
# step (JEM; Du & Mordatch): $\mathbf{x} \leftarrow \mathbf{x} - a\nabla E + \sigma\mathbf{z}$ with $a = 1$,
# $\sigma = 0.01$. That is Langevin on $E/T$ only if $\sigma^2 = 2aT$, i.e. at temperature
# $T = 5\cdot10^{-5}$: effectively noisy gradient descent into low-energy images. It does not sample
# $e^{-E}$, but it yields negatives the model rates too highly, which is all the learning rule needs.

# %%
print(inspect.getsource(sgld).split('    """')[1])
digits = load_digits(device=device)
noise_img = uniform_noise((64,), 0.0, 1.0, device=device)
img_sampler = functools.partial(sgld, n_steps=15, step_size=1.0, noise_std=0.01, clamp=(0.0, 1.0))
seed_everything(0)
conv = ConvEnergy(channels=8 * SCALE).to(device)
img_buffer = ReplayBuffer(1000, noise_img, reinit_fraction=0.05)
hist_img = train_ebm(conv, digits, 150 * SCALE, img_sampler, noise_img, batch_size=64, lr=2e-3, alpha=0.1,
                     buffer=img_buffer, generator=make_generator(2, device))
print(f"mean pixel value: data {exact(digits.mean(), '.3f', rel=1e-5)}")
print(f"                  buffer after training {expect(img_buffer.samples().mean(), 0.306, 0.01)}")

# %%
fig, axes = plt.subplots(2, 1, figsize=(10, 3.4))
image_grid(digits[:30], n_cols=30, ax=axes[0], title="data")
image_grid(img_buffer.samples()[-30:], n_cols=30, ax=axes[1], title="replay buffer after training: the latest negatives")
print(f"{len(img_buffer)} images in the buffer; the last 30 pushed are shown")
plt.tight_layout()
plt.show()

# %% [markdown]
# After a few seconds of training on a CPU the buffer holds digit-like strokes of the right brightness, few
# of them readable yet; with `SCALE` raised on a GPU (more iterations, a wider network) they sharpen. Keep
# in mind what they are: the low-energy images found by a near-zero-temperature sampler, not draws from
# $e^{-E}/Z$.
#
# ## Summary
#
# - Langevin dynamics $\mathbf{x}' = \mathbf{x} - \tfrac\epsilon2\nabla E + \sqrt\epsilon\,\mathbf{z}$ is the
#   Euler–Maruyama step of $d\mathbf{x} = -\tfrac12\nabla E\,dt + d\mathbf{W}$, whose Fokker–Planck flux
#   $\tfrac12(p\nabla E + \nabla p)$ vanishes at $p \propto e^{-E}$.
# - At a finite step ULA is biased (variance $s^2/(1-\epsilon/4s^2)$ on a Gaussian); MALA's accept/reject
#   step makes it exact, at the cost of rejected moves.
# - Correlated chains are worth $n/\tau$ draws; $\hat R$ over dispersed chains exposes chains that disagree,
#   but a lone chain stuck in one mode looks healthy to every single-chain diagnostic.
# - Deep EBMs train with short-run Langevin negatives; a replay buffer with 5 % fresh noise gives better
#   negatives and a sharper density, the L2 energy penalty keeps energies bounded, and the energy gap
#   should settle rather than drift.
# - Good-looking samples do not certify a good density: mode weights can be wrong when chains cannot move
#   between modes.
# - A divergence guard turns NaNs and runaway energies into an error that names the cause and the fix.
#
# **Next:** Chapter 5 avoids sampling from the model altogether: noise-contrastive estimation turns density
# estimation into classifying data against samples from a known noise distribution.
