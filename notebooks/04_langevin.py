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
#    sample size and the rank-normalised $\hat R$; recognise a chain stuck in one mode, and unstick it with
#    parallel tempering;
# 4. train a deep EBM with short-run Langevin chains, with and without a replay buffer, and say where its
#    energy gap should settle;
# 5. recognise a diverging run, stop it with a message that says what to change, and prevent it with
#    spectral normalisation (and say what that costs).
#
# **A map of the chapter.** Seven sections; each needs the ones named in its row. A course short of time
# can skip the rows marked *optional*: nothing later in the book depends on them.
#
# | section | what it teaches | needs | |
# |---|---|---|---|
# | 1. Langevin dynamics | the update, why it samples, ULA's bias, MALA | chapter 1 | core |
# | 2. Diagnostics | $\tau$, ESS, $\hat R$; a chain stuck in one mode | 1 | core |
# | 3. Parallel tempering | replica exchange unsticks the chains of section 2 | 1, 2 | optional |
# | 4. Training a deep EBM | short-run chains, a replay buffer, the energy gap | 1, chapter 3 (PCD) | core |
# | 5. A failure on purpose | a diverging run and the guard that stops it | 4 | core |
# | 6. Spectral normalisation | a Lipschitz bound: stability and its price | 4, 5 | optional |
# | 7. Digits | an image EBM; images along a Langevin chain | 4 | optional |

# %%
import copy
import functools
import inspect
import math

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.core import DivergenceError
from ebm_teach.data import GaussianMixture, load_digits, toy_data, toy_distribution
from ebm_teach.diagnostics import (
    autocorrelation, effective_sample_size, integrated_autocorr_time, rank_normalized_rhat,
    split_rhat,
)
from ebm_teach.energies import ConvEnergy, MLPEnergy
from ebm_teach.evaluate import grid, log_likelihood_grid
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting import (
    image_grid, plot_autocorr, plot_density_panels, plot_energy_gap, plot_energy_magnitudes,
    plot_image_chains, plot_sample_panels, plot_samples_vs_density, plot_traces,
)
from ebm_teach.samplers import (
    ReplayBuffer, langevin_step, mala, mala_kernel, parallel_tempering, pt_kernel, run_chain,
    sgld, ula, uniform_noise,
)
from ebm_teach.training import divergence_guard, train_ebm

SCALE = 1  # integer; raise it on a GPU: more chains, longer runs, more training iterations
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # thousands of tiny tensor ops: a second thread would only wait
dtype = torch.float64  # sections 1-3 compare with exact densities in double precision
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
# This is the book's convention throughout. Some texts write
# $\mathbf{x}' = \mathbf{x} - \epsilon'\nabla E + \sqrt{2\epsilon'}\,\mathbf{z}$: the same update with
# $\epsilon' = \epsilon/2$. Mixing the two conventions silently halves or doubles the temperature.
#
# **A note on names.** Deep-EBM papers often call this update, and its variants, *SGLD*: stochastic
# gradient Langevin dynamics (Welling & Teh 2011). The name is loose. Welling & Teh's SGLD samples a
# model's *parameters* from a Bayesian posterior, with a minibatch (hence stochastic) estimate of the
# log-posterior's gradient and a step size that decreases to zero. An EBM sampler moves $\mathbf{x}$ with
# the exact gradient $\nabla_{\mathbf{x}}E$, at a fixed step size: nothing in it is a stochastic gradient.
# "Unadjusted Langevin" (ULA) is the accurate name; this book uses "SGLD" only for the variant of section
# 7, as the papers that introduced it do.
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
# everywhere and $\partial_t p = 0$: $e^{-E}/Z$ is stationary. (A common slip writes the drift term as
# $\nabla\cdot(p\nabla E)$, without the $\tfrac12$ that belongs to the drift $-\tfrac12\nabla E$, and then
# finds a non-zero flux; with the factor in place the check goes through. The form
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
# $q(\mathbf{x}'\mid\mathbf{x}) = \mathcal N(\mathbf{x} - \tfrac\epsilon2\nabla E(\mathbf{x}), \epsilon I)$
# and accepts it with probability
#
# $$\alpha = \min\left(1,\ \frac{e^{-E(\mathbf{x}')}\, q(\mathbf{x}\mid\mathbf{x}')}
#   {e^{-E(\mathbf{x})}\, q(\mathbf{x}'\mid\mathbf{x})}\right),$$
#
# which enforces detailed balance with respect to $e^{-E}/Z$: exact at every step size; the step size now
# only sets the speed. Here is the one package function behind all of it, and the MALA step:

# %%
print(inspect.getsource(langevin_step))
print(inspect.getsource(mala_kernel))

# %% [markdown]
# First the closed form. Many independent chains on $E = x^2/2$ ($s = 1$) run to stationarity; their
# variance is compared with $v_\epsilon$ and with MALA, whose answer should be $1$ at every $\epsilon$.
# Each simulated variance comes with its standard error: for $n$ independent Gaussian draws of variance
# $v$ the sample variance has standard error $v\sqrt{2/(n-1)}$.

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
se = lambda v: v * math.sqrt(2 / (n_chains - 1))
print(" eps | ULA variance: exact | simulated ± s.e. | MALA: variance ± s.e. | acceptance")
for eps, ve, vu, vm, a in zip(step_sizes, v_exact, v_ula, v_mala, acc_mala):
    print(f"{eps:4.1f} | {ve:19.3f} | {vu:9.3f} ± {se(vu):.3f} "
          f"| {vm:13.3f} ± {se(vm):.3f} | {a:10.2f}")

# %% [markdown]
# The table's last digits differ from one machine to the next; the checked figures follow. Each
# "expected" range in this book is the mean ± 4 standard deviations of that figure over 8 runs with other
# seeds: a correct implementation lands inside on any machine, a wrong one (drop the $\tfrac12$ from the
# drift, say, and the ratio below falls to about $0.5$) lands outside.

# %%
v_exact, v_ula, v_mala = (torch.tensor(v) for v in (v_exact, v_ula, v_mala))
print("ULA variance / exact ULA variance:", expect(v_ula / v_exact, 1.0, 0.06))
print("MALA variance (the truth is 1)   :", expect(v_mala, 1.0, 0.06))
acc_expected = [0.9975, 0.972, 0.921, 0.783]
print("MALA acceptance rates            :", expect(acc_mala, acc_expected, 0.003))

# %% [markdown]
# ULA's variance follows the formula, twice the truth at $\epsilon = 2$; MALA gets $1$ at every step size
# and pays with a falling acceptance rate. Now a target with several modes: a mixture of three Gaussians
# in 2-D whose density we know exactly. Its energy is $E = -\log p$; for isotropic components it takes a
# few lines of log-sum-exp, and we check it against `GaussianMixture.log_prob`.

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
        log_norm = 0.5 * d * torch.log(2 * math.pi * var)
        return -torch.logsumexp(log_w - sq / (2 * var) - log_norm, dim=1)

    return energy


E_target = mixture_energy(target)
gen = make_generator(1, device)
check_x = 2 * torch.randn(500, 2, generator=gen, device=device, dtype=dtype)
max_err = float((E_target(check_x) + target.log_prob(check_x)).abs().max())
print(claim(max_err < 1e-12, "E(x) = -log p(x) to 1e-12 on 500 random points"))
w, m = target.weights, target.means
mean_exact = w @ m
second = (w[:, None, None] * (target.covs + m[:, :, None] * m[:, None, :])).sum(0)
cov_exact = second - torch.outer(mean_exact, mean_exact)
var_exact = torch.diagonal(cov_exact)
print(f"exact variances: Var(x1) = {exact(var_exact[0], '.3f')}, "
      f"Var(x2) = {exact(var_exact[1], '.3f')}")

# %% [markdown]
# 4000 chains start from a broad Gaussian and take 400 steps; their end points are 4000 independent
# draws. The grey histogram should follow the orange contours of the exact density.

# %%
n_chains = 4000 * SCALE
gen = make_generator(2, device)
x0 = 2 * torch.randn(n_chains, 2, generator=gen, device=device, dtype=dtype)
gen = make_generator(3, device)
runs = {}
for eps in (0.05, 0.3, 1.0):
    runs[f"ULA, eps = {eps}"] = ula(x0, E_target, 400, eps, gen)
runs["MALA, eps = 1.0"], acc_mala = mala(x0, E_target, 400, 1.0, gen)
print(f"MALA acceptance rate at eps = 1.0: {expect(acc_mala, 0.674, 0.003)}")
expected_var = {"ULA, eps = 0.05": [2.19, 1.23], "ULA, eps = 0.3": [2.23, 1.30],
                "ULA, eps = 1.0": [2.37, 1.62],
                "MALA, eps = 1.0": [round(v, 3) for v in var_exact.tolist()]}  # MALA: exact
for name, x in runs.items():
    var = torch.diagonal(torch.cov(x.T))
    print(f"{name:16s}: (Var(x1), Var(x2)) = {expect(var, expected_var[name], 0.16)}")
fig, axes = plt.subplots(2, 2, figsize=(7.2, 7))
for ax, (name, x) in zip(axes.flat, runs.items()):
    plot_samples_vs_density(x, target.log_prob, ((-4, 4), (-4, 4)), ax=ax, title=name, bins=40)
plt.tight_layout()
plt.show()

# %% [markdown]
# The small step is faithful; at $\epsilon = 1$ ULA's samples spread visibly beyond the contours (its
# variances are too large by about 10 and 30 %), while MALA at the same step size matches the exact
# variances up to Monte Carlo error (about $\pm 0.04$ here). Small steps cost time, though, as the next
# section measures.
#
# ## 2. Diagnostics: is the chain mixing?
#
# In training we never have 4000 independent chains run to convergence: we have a few chains and
# correlated steps. Successive states of one chain are correlated, so $n$ steps carry less information
# than $n$ independent draws. For a scalar summary $f(\mathbf{x}_t)$ with autocorrelation $\rho(t)$,
#
# $$\operatorname{Var}\Big(\frac1n\sum_{t=1}^n f(\mathbf{x}_t)\Big) \approx
#   \frac{\tau\, \operatorname{Var}(f)}{n}, \qquad \tau = 1 + 2\sum_{t\ge1}\rho(t),\qquad
#   \text{ESS} = n/\tau .$$
#
# $\tau$ is the *integrated autocorrelation time*. Summing the noisy empirical $\rho(t)$ over all lags would
# add pure noise, so the sum is cut at a window $M$: Sokal's rule takes the smallest $M \ge 5\,\tau(M)$;
# Geyer's initial monotone sequence sums pairs $\rho(2k)+\rho(2k+1)$ while they stay positive and
# decreasing. For an AR(1) chain $x_t = \rho x_{t-1} + e_t$ the answer is known, $\tau = (1+\rho)/(1-\rho)$,
# and the tests check both estimators against it to 5 %.
#
# $\hat R$ compares the variance between chains with the variance within them. Each chain is split in
# half (so that a drifting chain is caught too); with $W$ the mean within-half variance and $B/n$ the
# variance of the halves' means ($n$ draws each),
#
# $$\hat R = \sqrt{\frac{\tfrac{n-1}{n}W + \tfrac1n B}{W}}.$$
#
# That is the classic split-$\hat R$ (Gelman et al., *Bayesian Data Analysis*). It compares means and
# variances, so heavy tails can hide a problem from it, and chains that differ only in their spread pass.
# Vehtari et al. (2021) therefore compute it twice on *ranks*: replace every draw by the normal quantile of
# its rank among all draws, $z = \Phi^{-1}\big((r - \tfrac38)/(S + \tfrac14)\big)$, and take $\hat R$ of the
# $z$ (the *bulk*), and again of the ranks of $|x - \mathrm{median}|$ (the *tail*, which sees differing
# spreads); their $\hat R$ is the larger of the two, and their threshold **$\hat R < 1.01$** refers to it.
# Both are in `ebm_teach.diagnostics`; the rank-normalised one is the one to use:

# %%
print(inspect.getsource(rank_normalized_rhat).split('    """')[-1])

# %% [markdown]
# 128 chains on the 3-mode target, all started at the origin, for two step sizes. (128 chains cost
# little more time than 4: each step is one batched gradient. More chains make the estimates of $\tau$
# steadier.)

# %%
n_steps, n_chains = 5000 * SCALE, 128
gen = make_generator(4, device)
start = torch.zeros(n_chains, 2, device=device, dtype=dtype)
traces = {}
for eps in (0.05, 0.5):
    step = lambda x, e=eps: langevin_step(x, E_target, e, gen)[0]
    traces[eps] = run_chain(step, start, n_steps)
acfs = {}
want = {0.05: dict(tau=(260, 90), ess=(2460, 750), rhat=(1.051, 0.012), rank=(1.047, 0.02)),
        0.5: dict(tau=(21.8, 3), ess=(29200, 3000), rhat=(1.004, 0.002), rank=(1.004, 0.003))}
for eps, tr in traces.items():
    chains = tr[:, :, 0].T  # first coordinate, (n_chains, n_steps)
    acfs[f"eps = {eps}"] = autocorrelation(chains[0])
    w = want[eps]
    print(f"eps = {eps}")
    tau_s = integrated_autocorr_time(chains, "sokal", quiet=True)
    tau_g = integrated_autocorr_time(chains, "geyer", quiet=True)
    print(f"  tau (Sokal)     : {expect(tau_s, *w['tau'])}")
    print(f"  tau (Geyer)     : {expect(tau_g, *w['tau'])}")
    ess = effective_sample_size(chains)
    print(f"  ESS             : {expect(ess, *w['ess'])} of {chains.numel()}")
    print(f"  split R-hat     : {expect(split_rhat(chains), *w['rhat'])}")
    print(f"  rank-normalised : {expect(rank_normalized_rhat(chains), *w['rank'])}")
fig = plt.figure(figsize=(8, 5.6))
for i, (eps, tr) in enumerate(traces.items()):
    plot_traces(tr[:1000, :2, 0].T, ax=fig.add_subplot(2, 2, i + 1),
                title=f"2 chains, first 1000 steps, eps = {eps}")
plot_autocorr(acfs, max_lag=300, ax=fig.add_subplot(2, 1, 2), title="autocorrelation of $x_1$")
plt.tight_layout()
plt.show()

# %% [markdown]
# The small step wanders slowly between the modes: its $\tau$ is more than ten times larger (about 260
# steps against 22), so its 640 000 steps are worth only about 2500 independent draws. Its $\hat R$ fails
# the $1.01$ threshold, the fast chains pass. A larger step mixes faster but is more biased (section 1):
# the step size trades bias for variance.
#
# Now separate the modes: two at $x_1 = \pm 4$ with standard deviation $0.6$. Between them the density
# drops by a factor $e^{-\Delta E}$ with $\Delta E = 4^2/(2\cdot0.6^2) \approx 22$, and Langevin dynamics
# crosses such a barrier at a rate of order $e^{-\Delta E}$: never, in practice. Four chains, three of them
# started on the left:

# %%
far = GaussianMixture.isotropic(torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=dtype), 0.6,
                                [0.5, 0.5]).to(device)
E_far = mixture_energy(far)
starts = torch.tensor([[-3.0, 0.0], [-4.0, 1.0], [5.0, 0.0], [-5.0, -1.0]], dtype=dtype)
starts = starts.to(device)
tr = run_chain(lambda x: langevin_step(x, E_far, 0.2, gen)[0], starts, n_steps)
chains = tr[:, :, 0].T
left = float((chains < 0).double().mean())
ess, ess_1 = effective_sample_size(chains), effective_sample_size(chains[0])
print(f"4 chains: rank-normalised R-hat = {expect(rank_normalized_rhat(chains), 1.53, 0.01)}")
print(f"          ESS = {expect(ess, 2.054, 0.01)} of {chains.numel()} draws")
print(f"fraction of all draws in the left mode: {expect(left, 0.75, 0.005)} (exact: 0.50)")
rhat_1 = rank_normalized_rhat(chains[:1])
print(f"chain 1 alone: rank-normalised R-hat = {expect(rhat_1, 1.002, 0.006)}")
print(f"               ESS = {expect(ess_1, 820, 280)} of {n_steps} draws")
fig, axes = plt.subplots(2, 1, figsize=(8, 5.6), gridspec_kw={"height_ratios": [1, 1.3]})
plot_traces(chains, ax=axes[0], labels=[f"chain {i + 1}" for i in range(4)],
            title="4 chains on two well-separated modes: none ever crosses")
plot_samples_vs_density(tr[:, 0], far.log_prob, ((-6, 6), (-3, 3)), ax=axes[1],
                        title="chain 1's samples", bins=(48, 24))
plt.tight_layout()
plt.show()

# %% [markdown]
# Chain 1 alone looks perfect: a stable trace, $\hat R \approx 1$, hundreds of effective samples. It has
# simply never seen the other mode. Only several chains started apart reveal the problem ($\hat R \gg 1$,
# an ESS of two draws: one per mode), and the pooled draws put three quarters of the mass on the left
# because three chains started there. **No diagnostic can certify that a chain has found every mode**;
# several dispersed starts are the best cheap defence. Deep-EBM training lives with exactly this problem.
#
# ## 3. Parallel tempering: let hot copies cross the barrier
#
# A barrier of $\Delta E = 22$ nats is impassable at temperature 1, but at temperature $T = 1/\beta$ the
# chain samples $p^\beta \propto e^{-\beta E}$, whose barrier is only $\beta\,\Delta E$: at $\beta = 0.02$ it
# is half a nat. *Parallel tempering* (replica exchange; Swendsen & Wang 1986, Geyer 1991) runs one copy of
# the chain at each inverse temperature $1 = \beta_0 > \beta_1 > \dots > \beta_{K-1}$, each with its own
# Langevin moves (MALA here, so that each is exact for its $p^{\beta_k}$), and now and then proposes to
# exchange the states of two neighbours. The joint target is $\prod_k e^{-\beta_k E(\mathbf{x}_k)}/Z_k$;
# exchanging $\mathbf{x}_k$ and $\mathbf{x}_{k+1}$ multiplies it by
#
# $$\frac{e^{-\beta_k E(\mathbf{x}_{k+1}) - \beta_{k+1} E(\mathbf{x}_k)}}
#         {e^{-\beta_k E(\mathbf{x}_k) - \beta_{k+1} E(\mathbf{x}_{k+1})}}
#   = e^{(\beta_k - \beta_{k+1})\,(E(\mathbf{x}_k) - E(\mathbf{x}_{k+1}))},$$
#
# and a swap is its own reverse, so Metropolis accepts it with the minimum of 1 and that ratio. Every move
# keeps the joint target invariant, so the $\beta_0 = 1$ copy samples $e^{-E}/Z$ *exactly*, and it inherits
# the crossings that the hot copies make. The package's kernel, one step for all temperatures at once:

# %%
source = inspect.getsource(pt_kernel)
print(source[source.index("    x, e, grad = state") :])

# %% [markdown]
# The same four starts as above, now each with a ladder of 8 temperatures, geometric from $\beta = 1$ to
# $0.02$, and MALA step sizes $0.3/\beta_k$ (a hotter copy has a flatter energy and takes larger steps).
# We measure the $\beta = 1$ copies with the diagnostics of section 2.

# %%
betas = torch.logspace(0, math.log10(0.02), 8, dtype=dtype, device=device)
gen = make_generator(5, device)
traj, rates = parallel_tempering(starts, E_far, betas, n_steps, 0.3 / betas, gen)
pt_chains = traj[:, :, 0].T  # the beta = 1 copies, (4, n_steps)
print("swap acceptance between neighbours:", expect(rates["swap"], 0.74, 0.04))
tau, ess = integrated_autocorr_time(pt_chains, quiet=True), effective_sample_size(pt_chains)
rhat = rank_normalized_rhat(pt_chains)
print(f"4 chains: rank-normalised R-hat = {expect(rhat, 1.002, 0.007)}")
print(f"          tau = {expect(tau, 14, 7)}, ESS = {expect(ess, 1400, 750)} "
      f"of {pt_chains.numel()} draws")
left = (pt_chains < 0).double().mean()
print(f"fraction of all draws in the left mode: {expect(left, 0.5, 0.055)} (exact: 0.50)")
fig, axes = plt.subplots(2, 1, figsize=(8, 5.6), gridspec_kw={"height_ratios": [1, 1.3]})
plot_traces(pt_chains, ax=axes[0], title="the beta = 1 copies under parallel tempering",
            labels=[f"chain {i + 1}" for i in range(4)])
plot_samples_vs_density(traj[:, 0], far.log_prob, ((-6, 6), (-3, 3)), ax=axes[1],
                        title="chain 1's samples", bins=(48, 24))
plt.tight_layout()
plt.show()

# %% [markdown]
# With the same starts, the chains now cross, $\hat R$ passes $1.01$, the modes share the mass equally (to
# within the Monte Carlo error) and 20 000 draws are worth well over a thousand. The price is $K = 8$ gradient evaluations per step instead of
# one; per gradient evaluation that is still hundreds of times the two effective draws of the lone chains.
# The ladder needs care: neighbours must overlap enough for swaps to be accepted (here about three in
# four), and the hottest copy must cross freely. In high dimension the number of temperatures needed grows
# like $\sqrt{d}$, which is why deep-EBM training rarely uses it (Desjardins et al. 2010 did, for RBMs).
#
# ## 4. Training a deep EBM on 2-D data
#
# The maximum-likelihood gradient needs negatives from the current model (Chapter 1). With Langevin
# chains that cannot run to convergence at every training step, two practical recipes are used:
#
# * **short-run chains from noise** (Nijkamp et al. 2019): every step starts $k$ Langevin steps from uniform
#   noise;
# * **a replay buffer** (Du & Mordatch 2019): start 95 % of the chains from samples of earlier steps and 5 %
#   from fresh noise, and put the results back, so chains persist across training steps like PCD
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
# except for where the chains start. At iterations 0, 200 and 399 a snapshot of the network and the
# negatives are kept.

# %%
bounds = ((-6.0, 6.0), (-6.0, 6.0))
data = toy_data("ring8", 4000, seed=0, device=device)
data_test = toy_data("ring8", 2000, seed=1, device=device)
ring = toy_distribution("ring8").to(device)
noise2d = uniform_noise((2,), -6.0, 6.0, device=device)
sampler2d = functools.partial(ula, n_steps=20, step_size=0.1, clamp=(-6.0, 6.0))
n_iters = 400 * SCALE
recipes = {"short-run from noise": False, "replay buffer, 5% noise": True}


def train_2d(use_buffer, seed, every=n_iters):
    """One run of section 4's recipe; returns the model, its buffer, history and snapshots."""
    seed_everything(seed)  # the network's initial weights
    model = MLPEnergy(dim=2, hidden=64 * SCALE, n_layers=3).to(device)
    buffer = ReplayBuffer(2000, noise2d, reinit_fraction=0.05) if use_buffer else None
    snaps = {}
    keep = lambda it, energy, x_neg: snaps.__setitem__(it, (copy.deepcopy(energy), x_neg))
    history = train_ebm(model, data, n_iters, sampler2d, noise2d, batch_size=128, lr=5e-3,
                        alpha=0.1, buffer=buffer, generator=make_generator(seed + 1, device),
                        callback=keep, callback_every=every)
    return dict(model=model, buffer=buffer, history=history, snapshots=snaps)


results = {name: train_2d(buffer, 0, every=200 * SCALE) for name, buffer in recipes.items()}
print(f"trained {len(results)} models, {n_iters} iterations each: {', '.join(results)}")

# %% [markdown]
# The energy landscapes over training, shown as the normalised density $e^{-E}/Z$ on the box (rows: the two
# recipes; columns: iterations; each panel has its own colour scale):

# %%
panels = {f"{name}:\niteration {it}": snap
          for name, res in results.items() for it, (snap, _) in res["snapshots"].items()}
plot_density_panels(panels, bounds, n_cols=3, device=device)
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
        x_neg = sampler2d(noise2d(2000, gen), model, generator=gen)
        panels[f"{name}:\n20 steps from noise"] = x_neg
    panels[f"{name}:\n500 steps from noise"] = ula(noise2d(2000, gen), model, 500, 0.1, gen,
                                                   clamp=(-6.0, 6.0))
plot_sample_panels(panels, bounds, n_cols=3)
plt.show()

# %% [markdown]
# In 2-D we can check the models exactly: $\log Z$ by quadrature over the box gives the test
# log-likelihood, to compare with the true density's. We also measure how $e^{-E}/Z$ shares its mass among
# the eight modes (each should hold $1/8$ of it): the mass in each $45°$ sector around a mode.

# %%
points, _, cell = grid(bounds, 200, device=device, dtype=torch.float32)
angle = torch.atan2(points[:, 1], points[:, 0]) + math.pi / 8
sector = (torch.remainder(angle, 2 * math.pi) // (math.pi / 4)).long()


def mode_masses(model):
    """The mass of e^{-E}/Z in each 45-degree sector around one of the modes, by quadrature."""
    with torch.no_grad():
        p = torch.softmax(-model(points).double(), 0)
    return torch.zeros(8, dtype=torch.float64, device=device).index_add_(0, sector, p)


true_ll = float(ring.log_prob(data_test.double()).mean())
print(f"true density: test log-likelihood {exact(true_ll, '.3f')}, mode masses 0.125")
want = {"short-run from noise": dict(ll=(-3.82, 0.45), lo=(0.074, 0.09), hi=(0.178, 0.12)),
        "replay buffer, 5% noise": dict(ll=(-3.81, 0.55), lo=(0.080, 0.08), hi=(0.195, 0.13))}
for name, res in results.items():
    ll = log_likelihood_grid(res["model"], data_test, bounds, n_points=200)
    mass = mode_masses(res["model"])
    w = want[name]
    print(f"{name}:\n  test log-likelihood {expect(ll, *w['ll'])}")
    print(f"  mode masses from {expect(mass.min(), *w['lo'])} "
          f"to {expect(mass.max(), *w['hi'])}")

# %% [markdown]
# Both recipes find the eight modes, and both stay about 0.3 nats below the true density's test
# log-likelihood. Neither density shares its mass equally among the modes (each should hold 0.125). The
# chains rarely cross between modes (section 2), so the training signal hardly compares one mode's mass
# with another's, and the relative depths of the modes drift. Samples that look right do not make a
# correct density; in 2-D the quadrature log-likelihood says how far off it is, in high dimension nothing
# does.
#
# **Where should the energy gap settle?** A tempting guess is $0$: the negatives should look like the
# data, so their mean energies should agree. That holds for the plain maximum-likelihood loss, not for the
# regularised one. Write the network's last layer as $E(\mathbf{x}) = \mathbf{w}\cdot\mathbf{h}(\mathbf{x})
# + b$. At a stationary point of $\mathcal L$, $\partial\mathcal L/\partial b = 1 - 1 +
# 2\alpha(\overline{E(\mathbf{x}^+)} + \overline{E(\mathbf{x}^-)}) = 0$, and the dot product of
# $\partial\mathcal L/\partial\mathbf{w} = \overline{\mathbf{h}^+} - \overline{\mathbf{h}^-} +
# 2\alpha(\overline{E^+\mathbf{h}^+} + \overline{E^-\mathbf{h}^-}) = 0$ with $\mathbf{w}$ gives, using
# $\mathbf{w}\cdot\mathbf{h} = E - b$,
#
# $$\overline{E(\mathbf{x}^+)} - \overline{E(\mathbf{x}^-)}
#   = -2\alpha\Big(\overline{E(\mathbf{x}^+)^2} + \overline{E(\mathbf{x}^-)^2}\Big) < 0 .$$
#
# The gap settles *below* zero, by an amount set by the regulariser and by how spread out the energies
# are (`diagnostics.regularized_gap`). The history holds both sides: the loss minus the gap is
# $\alpha(\overline{E^{+2}} + \overline{E^{-2}})$. The solid lines are the measured gaps, the dashed lines
# the stationary values:

# %%
histories = {name: res["history"] for name, res in results.items()}
plot_energy_gap(histories, smooth=20, title="energy gap and its stationary value")
plt.show()
for name, h in histories.items():
    gap, stationary = h["gap"][-100:].mean(), (-2 * (h["loss"] - h["gap"]))[-100:].mean()
    w = {"short-run from noise": (-0.64, 0.37), "replay buffer, 5% noise": (-0.31, 0.28)}[name]
    print(f"{name}, last 100 iterations: gap {expect(gap, *w)}, "
          f"gap - stationary value {expect(gap - stationary, 0.0, 0.03)}")
short_gap, buffer_gap = (h["gap"][-100:].mean() for h in histories.values())
print(claim(short_gap < buffer_gap, "the short-run gap is the more negative one"))

# %% [markdown]
# The measured gap tracks its stationary value throughout: it is not a sampler that lags behind, but the
# regularised loss doing what it should. It keeps falling because the energies keep spreading out as the
# modes deepen, and $\overline{E^2}$ grows with them; a smaller $\alpha$ gives a gap closer to 0 (and
# energies less tied down). What to watch for instead: a gap far *below* its stationary value (the sampler
# does not reach the model's low-energy regions), or one drifting without bound (the energies run away,
# section 5). The short-run gap is the more negative one: its 20-step negatives sit between the modes, at
# energies further from the data's.
#
# **Which recipe is better?** One training run of each cannot say: a neural network's training is one draw
# from a noisy procedure. Two more seeds of each, and three measures: the test log-likelihood, the spread of
# the mode masses, and how far the negatives that training uses sit from the nearest mode centre (for the
# data themselves that mean distance is $0.5\sqrt{\pi/2} = 0.63$). The negatives are 2000 fresh ones made
# the way training makes them at its last iteration: 20 steps from noise, or from the buffer.

# %% tags=["nbval-ignore-output"]
centres = toy_distribution("ring8").means.to(device=device, dtype=torch.float32)
seeds = [0, 1, 2]
table = {name: [] for name in recipes}
gen = make_generator(7, device)
for name, use_buffer in recipes.items():
    for seed in seeds:
        res = results[name] if seed == 0 else train_2d(use_buffer, seed)
        model, mass = res["model"], mode_masses(res["model"])
        x0 = res["buffer"].sample(2000, gen)[0] if use_buffer else noise2d(2000, gen)
        x_neg = sampler2d(x0, model, generator=gen)
        table[name].append(dict(ll=log_likelihood_grid(model, data_test, bounds, n_points=200),
                                spread=float(mass.max() - mass.min()),
                                dist=float(torch.cdist(x_neg, centres).min(1).values.mean())))
print(f"{'recipe':24s} seed  test LL  mode-mass spread  negatives' distance to a mode")
for name, rows in table.items():
    for seed, r in zip(seeds, rows):
        print(f"{name:24s} {seed:4d}  {r['ll']:7.2f}  {r['spread']:16.3f}  {r['dist']:29.2f}")

# %%
stats = {name: {k: torch.tensor([r[k] for r in rows]) for k in ("ll", "spread", "dist")}
         for name, rows in table.items()}
short, buf = stats["short-run from noise"], stats["replay buffer, 5% noise"]
want = {"short-run from noise": dict(ll=(-3.82, 0.2), dist=(1.035, 0.12)),
        "replay buffer, 5% noise": dict(ll=(-3.88, 0.22), dist=(0.93, 0.12))}
for name, s in stats.items():
    print(f"{name}, mean over {len(seeds)} seeds:")
    print(f"  test LL                  {expect(s['ll'].mean(), *want[name]['ll'])}")
    print(f"  negatives' mode distance {expect(s['dist'].mean(), *want[name]['dist'])}")
print(claim(bool(buf["dist"].mean() < short["dist"].mean()),
            "on average over the seeds the buffer's negatives sit nearer the modes"))
ll_gap = float(buf["ll"].mean() - short["ll"].mean())
ll_noise = float(buf["ll"].std() + short["ll"].std())
print(claim(abs(ll_gap) < 2 * ll_noise,
            "the recipes' mean test LLs differ by less than twice their seed-to-seed spread"))

# %% [markdown]
# The buffer changes the negatives more than (at this budget) the density: its negatives sit closer to
# the modes, as the data do (about 0.93 from a mode centre on average, against 1.03 for 20 steps from
# noise, which leave more of them between the modes); yet the test log-likelihoods of the two recipes
# agree within their spread over seeds. A model
# trained with short-run chains learns to make *20-step chains from noise* look like the data, and its
# density is judged by them; that it comes out as good here says the 2-D task is easy, not that the
# negatives do not matter (the buffer's matter more as the chains get shorter relative to the mixing time,
# as in images, section 7).
#
# ## 5. A failure on purpose, and the guard that catches it
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
print(claim(len(history["e_pos"]) < 100, "the guard stopped the run within 100 iterations"))
plot_energy_magnitudes(history, title="alpha = 0, eps = 0.5: until the guard stopped the run")
plt.show()

# %% [markdown]
# The energies grow by orders of magnitude within a few dozen iterations before the guard stops the run,
# and the message names the likely cause and the fixes (the settings of section 4 are exactly those fixes).
# The guard is a plain function that any loop can call; its check costs one reduction and one read-back:

# %%
source = inspect.getsource(divergence_guard)
first = source.index("    if step % check_every")
last = source.index("    for name, t in tensors.items():\n        t = t.detach()")
print(source[first:last])
try:
    divergence_guard(12, e_pos=torch.tensor([0.1, -0.3]), e_neg=torch.tensor([0.2, math.nan]))
except DivergenceError as err:
    print("DivergenceError:", str(err)[:95], "...")

# %% [markdown]
# ## 6. Spectral normalisation: a Lipschitz bound, and its price
#
# The run above blew up because nothing limited how steep the energy could get: steep energies throw
# Langevin chains far, far-away negatives make the energy steeper still. *Spectral normalisation*
# (Miyato et al. 2018; used for EBMs by Du & Mordatch 2019) limits the steepness directly. It divides each
# weight matrix $W$ by its largest singular value $\sigma(W)$ (estimated by one step of power iteration per
# forward pass), so that every linear layer is 1-Lipschitz. The SiLU's slope never exceeds $1.0998$, so an
# MLP with $n$ hidden layers then has a Lipschitz constant $L \le 1.0998^n$:
# $|E(\mathbf{x}) - E(\mathbf{y})| \le L\,\|\mathbf{x} - \mathbf{y}\|$ and $\|\nabla_{\mathbf{x}} E\| \le L$
# everywhere. For any network the product of the layers' spectral norms gives such a bound:

# %%
print(inspect.getsource(MLPEnergy.lipschitz_bound).split('"""')[-1])

# %% [markdown]
# The reckless settings of section 5 once more, with `spectral_norm=True` and 150 iterations:

# %%
seed_everything(0)
sn_model = MLPEnergy(dim=2, hidden=64, n_layers=3, spectral_norm=True).to(device)
sn_history = train_ebm(sn_model, data, 150 * SCALE, reckless, noise2d, batch_size=128, lr=1e-2,
                       alpha=0.0, buffer=ReplayBuffer(2000, noise2d),
                       generator=make_generator(1, device))
sn_model.eval()  # use the power iteration's current estimate, without another update
largest_e = float(torch.cat([sn_history["e_pos"], sn_history["e_neg"]]).abs().max())
print(claim(len(sn_history["e_pos"]) == 150 * SCALE, "150 iterations without divergence"))
print(f"largest |mean energy| during training: {expect(largest_e, 3.7, 0.9)}")
plain = results["replay buffer, 5% noise"]["model"]
print(f"Lipschitz bound: spectral norm {expect(sn_model.lipschitz_bound(), 1.43, 0.25)}, "
      f"section 4's network {expect(plain.lipschitz_bound(), 130, 110)}")
# What the data ask for: the true energy rises from a mode's centre to the ring's centre by
ring_e = -ring.log_prob(torch.stack([centres[0], torch.zeros(2, device=device)]).double())
rise = float(ring_e[1] - ring_e[0])
print(f"true energy at the ring's centre minus at a mode: {exact(rise, '.2f')} nats over a "
      f"distance 4, a slope of at least {exact(rise / 4, '.1f')}")
sn_ll = log_likelihood_grid(sn_model, data_test, bounds, n_points=200)
print(f"test log-likelihood: {expect(sn_ll, -4.88, 0.06)} "
      f"(uniform on the box: {exact(-math.log(144), '.2f')}; truth: {exact(true_ll, '.2f')})")
panels = {"section 4, replay buffer": plain, "spectral norm, section 5's settings": sn_model}
plot_density_panels(panels, bounds, n_cols=2, device=device)
plt.show()

# %% [markdown]
# Spectral normalisation keeps the reckless run stable: the energies stay of order one, where the plain
# network's blew up within a few dozen iterations. The price is visible too. A density whose energy has
# slope at most $L \approx 1.4$ cannot rise by the $\approx 30$ nats that separate a mode from the ring's
# centre within a distance of 4: the model can only sketch a broad, blurred density (here a single wide
# bump), barely better than uniform on the box. Practitioners get sharpness back by multiplying the normalised network by a constant (a
# temperature), or by normalising some layers only; each gives back part of the steepness, and with it part
# of the risk. Spectral normalisation is a dial between stability and expressiveness, not a free lunch.
#
# ## 7. An energy model of handwritten digits
#
# The same machinery on the 8×8 digits (pixel values in $[0, 1]$), with a small convolutional energy
# (`ConvEnergy`) and a replay buffer. For images, practitioners decouple the two halves of the Langevin
# step (JEM; Du & Mordatch), and call the result SGLD (see section 1 for why the name is loose):
# $\mathbf{x} \leftarrow \mathbf{x} - a\nabla E + \sigma\mathbf{z}$ with $a = 1$, $\sigma = 0.01$. That is
# Langevin on $E/T$ only if $\sigma^2 = 2aT$, i.e. at temperature $T = 5\cdot10^{-5}$: effectively noisy
# gradient descent into low-energy images. It does not sample $e^{-E}$, but it yields negatives the model
# rates too highly, which is all the learning rule needs.

# %%
print(inspect.getsource(sgld).split('    """')[1])
digits = load_digits(device=device)
noise_img = uniform_noise((64,), 0.0, 1.0, device=device)
img_sampler = functools.partial(sgld, n_steps=15, step_size=1.0, noise_std=0.01, clamp=(0, 1))
seed_everything(0)
conv = ConvEnergy(channels=8 * SCALE).to(device)
img_buffer = ReplayBuffer(1000, noise_img, reinit_fraction=0.05)
hist_img = train_ebm(conv, digits, 150 * SCALE, img_sampler, noise_img, batch_size=64, lr=2e-3,
                     alpha=0.1, buffer=img_buffer, generator=make_generator(2, device))
print(f"mean pixel value, data: {exact(digits.mean(), '.3f', rel=1e-5)}")
print(f"buffer after training: {expect(img_buffer.samples().mean(), 0.306, 0.01)}")

# %%
fig, axes = plt.subplots(2, 1, figsize=(6, 4.6))
image_grid(digits[:30], n_cols=10, ax=axes[0], title="data")
newest = img_buffer.samples()[-30:]
image_grid(newest, n_cols=10, ax=axes[1], title="the buffer's newest negatives")
print(f"{len(img_buffer)} images in the buffer; the last 30 pushed are shown")
plt.tight_layout()
plt.show()

# %% [markdown]
# What does the sampler do to an image? Six chains start from uniform noise and run 60 SGLD steps of the
# trained model; the columns show them after 0, 1, 2, 3, 5, 10, 15, 30 and 60 steps (training runs 15 steps
# per iteration, from the buffer).

# %%
steps = [0, 1, 2, 3, 5, 10, 15, 30, 60]
gen = make_generator(6, device)
x = noise_img(6, gen)
frames = [x]
for t in range(1, steps[-1] + 1):
    x = sgld(x, conv, 1, 1.0, 0.01, gen, clamp=(0.0, 1.0))
    if t in steps:
        frames.append(x)
plot_image_chains(torch.stack(frames), steps, title="six SGLD chains of the trained digit EBM")
plt.show()

# %% [markdown]
# Noise turns into strokes within a few steps: the first steps are large (the gradient of the energy is
# steep far from the data, and $a = 1$), then the chains settle into the low-energy images the model
# prefers. After a few seconds of training on a CPU the buffer holds digit-like strokes of the right
# brightness, few of them readable yet; with `SCALE` raised on a GPU (more iterations, a wider network)
# they sharpen. Keep in mind what they are: the low-energy images found by a near-zero-temperature
# sampler, not draws from $e^{-E}/Z$.
#
# ## Summary
#
# - Langevin dynamics $\mathbf{x}' = \mathbf{x} - \tfrac\epsilon2\nabla E + \sqrt\epsilon\,\mathbf{z}$ is the
#   Euler–Maruyama step of $d\mathbf{x} = -\tfrac12\nabla E\,dt + d\mathbf{W}$, whose Fokker–Planck flux
#   $\tfrac12(p\nabla E + \nabla p)$ vanishes at $p \propto e^{-E}$.
# - At a finite step ULA is biased (variance $s^2/(1-\epsilon/4s^2)$ on a Gaussian); MALA's accept/reject
#   step makes it exact, at the cost of rejected moves.
# - Correlated chains are worth $n/\tau$ draws; the rank-normalised $\hat R$ over dispersed chains exposes
#   chains that disagree (use it below 1.01), but a lone chain stuck in one mode looks healthy to every
#   single-chain diagnostic.
# - Parallel tempering hands barrier crossings down a ladder of temperatures and stays exact at
#   temperature 1, at the cost of one chain per temperature.
# - Deep EBMs train with short-run Langevin negatives; a replay buffer puts the negatives where the data
#   are. Under the L2 energy penalty the energy gap settles at $-2\alpha(\overline{E^{+2}} +
#   \overline{E^{-2}})$, not at 0.
# - Good-looking samples do not certify a good density: mode weights can be wrong when chains cannot move
#   between modes.
# - A divergence guard turns NaNs and runaway energies into an error that names the cause and the fix;
#   spectral normalisation prevents the runaway by bounding the energy's slope, and the same bound limits
#   how sharp the density can be.
#
# **Next:** Chapter 5 avoids sampling from the model altogether: noise-contrastive estimation turns density
# estimation into classifying data against samples from a known noise distribution.
