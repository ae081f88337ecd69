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
# # Chapter 3: Persistent contrastive divergence and annealed importance sampling
#
# Chapter 2 trained restricted Boltzmann machines (RBMs) with CD-$k$ and judged them by their exact
# log-likelihood, summing over the $2^{16}$ states of the hidden layer. This chapter changes one thing in the
# training, and one thing in the evaluation:
#
# - **Persistent contrastive divergence (PCD)** keeps the negative-phase Markov chains alive from one update
#   to the next instead of restarting them at the data (Tieleman, 2008).
# - **Annealed importance sampling (AIS)** estimates $\log Z$ when no layer is small enough to enumerate, by
#   walking from a distribution whose $Z$ we know to the RBM through many intermediate distributions
#   (Neal, 2001; Salakhutdinov & Murray, 2008).
#
# Every AIS estimate below is first checked against an exact $\log Z$, so that we know how far to trust it
# when no exact value exists.
#
# **Learning objectives.** After this chapter you can
# 1. say where CD's negative chains start, why that biases the gradient, and what persistent chains change;
# 2. list PCD's costs: memory for the chains, chains that lag behind the parameters, and sensitivity to the
#    step size;
# 3. compare CD-1, CD-10 and PCD by exact log-likelihood on binarized digits;
# 4. derive AIS for an RBM: the path of intermediate RBMs, the Gibbs transitions and the importance weights;
# 5. choose the base distribution and the number of temperatures, and read off an estimate's uncertainty;
# 6. explain why $\log \hat Z$ is a stochastic lower bound, so that AIS tends to flatter a model.

# %%
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import load_digits, train_test_split
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.evaluate import (ais_betas, ais_log_likelihood, ais_log_partition, base_rate_bias,
                                log_mean_exp)
from ebm_teach.plotting import (image_grid, plot_ais_convergence, plot_image_rows, plot_log_likelihood_curves,
                                plot_log_z_errors)
from ebm_teach.rbm import BernoulliRBM

SCALE = 1  # integer; raise it on a GPU for more epochs, larger models, more temperatures and AIS runs
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # small matrices: a second thread costs more than it saves
x_train, x_test = train_test_split(load_digits(binarize=True, device=device), seed=0)
print(f"device: {device.type}, SCALE = {SCALE}; binarized digits: {len(x_train)} train, {len(x_test)} test, "
      f"{x_train.shape[1]} pixels")

# %% [markdown]
# ## 1. Where the negative chains start
#
# The gradient of the mean log-likelihood of an RBM is a difference of two averages (chapter 2),
#
# $$\frac{\partial \log p(\mathbf v)}{\partial W_{ij}}
#   = \big\langle v_i\, p(h_j{=}1\mid\mathbf v)\big\rangle_{\text{data}} - \big\langle v_i h_j\big\rangle_{\text{model}} .$$
#
# The positive phase is exact. The negative phase needs samples from the model, and the two algorithms differ
# only in **where the Gibbs chains that supply them start**:
#
# - **CD-$k$** starts them at the current minibatch and runs $k$ steps. The samples stay close to the data,
#   so the model is only ever corrected near the data: a spurious mode far from every training image is
#   never visited, and never pushed down. That is CD's bias, and it shrinks only as $k$ grows.
# - **PCD-$k$** keeps a set of $M$ chains, the *fantasy particles*, that is never reset: each update advances
#   them $k$ steps under the current parameters, and the next update continues from where they stopped.
#   Because the parameters change a little per update, the chains stay close to the model's distribution and
#   can travel to wherever the model puts its mass, spurious modes included, which the update then
#   lowers.
#
# Keeping chains alive has costs. **Memory:** $M$ states of the visible layer, nothing for an RBM on digits,
# but a real buffer for a large image model (chapter 4's replay buffer is the same idea). **Stale chains:**
# the particles were sampled under older parameters; if the step size is large, the model moves faster than
# the chains mix and the negative phase describes a model that no longer exists, which makes training
# oscillate. So PCD is **sensitive to the step size**, and wants one that decays. A common remedy for chains
# stuck in one mode is to **re-initialise a small fraction** of them (5 % per update, say) from data or noise.
#
# In code, the two differ in one argument: `cd_gradient` starts the negative chains at `v_negative_start`
# when it is given (the persistent chains) and at the data otherwise.

# %%
print(inspect.getsource(BernoulliRBM.cd_gradient))

# %% [markdown]
# A few PCD updates by hand, with the package's pieces: the chains returned by one update are the start of
# the next. `fit(..., persistent=True)` does exactly this, unrolled for speed.

# %%
rbm = BernoulliRBM(64, 16, device=device, seed=0)
g = make_generator(0, device)
chains = (torch.rand(100, 64, generator=g, device=device) < 0.5).float()  # M = 100 fantasy particles, from noise
by_hand = {1: ((0.50, 0.02), (0.50, 0.025)), 10: ((0.363, 0.035), (0.40, 0.03)),
           50: ((0.269, 0.03), (0.309, 0.035)), 200: ((0.262, 0.025), (0.296, 0.025))}  # (mean, 4 sd), 8 seeds
print(f"pixels on in the data: {exact(x_train.mean(), '.3f', rel=1e-6)}")
for update in range(1, 201):
    start = 20 * update % (len(x_train) - 20)
    before = chains
    grad, chains = rbm.cd_gradient(x_train[start:start + 20], k=1, v_negative_start=chains, generator=g)
    rbm.update(grad, step_size=0.1)
    if update in (1, 10, 50, 200):
        flipped, on = float((chains != before).float().mean()), float(chains.mean())
        print(f"update {update:3d}: pixels flipped {expect(flipped, *by_hand[update][0])}, "
              f"pixels on {expect(on, *by_hand[update][1])}")

# %% [markdown]
# The particles start as noise, with half their pixels on; within a few dozen updates they have the data's
# density of ink, and each Gibbs step (one per update) flips fewer of their pixels as the model acquires
# structure.

# %% [markdown]
# ## 2. CD-1, CD-10 and PCD on binarized digits
#
# The setting of chapter 2, trained five times longer: 16 hidden units, minibatches of 20, the step size
# decaying linearly from 0.1 to 0 over 200 epochs. PCD-1 keeps 100 fantasy particles. With 16 hidden units
# the exact log-likelihood is cheap ($2^{16}$ hidden states), so we record it on the training and the test set
# every 20 epochs. For PCD we also keep the particles at a few moments of training.

# %%
n_hidden, batch_size, n_epochs, n_chains = 16, 20, 200 * SCALE, 100


def anneal(epoch):
    return 0.1 * (1 - (epoch - 1) / n_epochs)


def exact_log_lik(epoch, model):
    """fit's callback: the exact train and test log-likelihood every 20 epochs."""
    if epoch % (20 * SCALE):
        return None
    log_z = model.log_partition_exact()
    return {"at": epoch, "train": model.log_likelihood_exact(x_train, log_z),
            "test": model.log_likelihood_exact(x_test, log_z)}


models, histories = {}, {}
for name, k in [("CD-1", 1), ("CD-10", 10)]:
    models[name] = BernoulliRBM(64, n_hidden, device=device, seed=0)
    histories[name] = models[name].fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=k,
                                       generator=make_generator(1, device), callback=exact_log_lik)

# PCD-1, in four legs so that we can look at the particles in between: each leg continues the chains
models["PCD-1"] = pcd = BernoulliRBM(64, n_hidden, device=device, seed=0)
g, legs, particles = make_generator(1, device), [5, 20, 75, 100], {}
histories["PCD-1"], chains, done = {"at": [], "train": [], "test": [], "seconds": []}, None, 0
for leg in legs:
    epochs = leg * n_epochs // 200
    h = pcd.fit(x_train, n_epochs=epochs, batch_size=batch_size, step_size=lambda e, d=done: anneal(e + d), k=1,
                persistent=True, n_chains=None if chains is not None else n_chains, v_chains=chains, generator=g,
                callback=lambda e, m, d=done: exact_log_lik(e + d, m))
    for key in ("at", "train", "test"):
        histories["PCD-1"][key] += h.get(key, [])
    histories["PCD-1"]["seconds"].append(h["seconds"][-1])
    chains, done = h["v_chains"], done + epochs
    particles[f"epoch {done}"] = chains[:16]

final = {"CD-1": ((-17.59, 0.35), (-18.15, 0.8)), "CD-10": ((-17.45, 0.25), (-18.05, 1.0)),
         "PCD-1": ((-17.48, 0.3), (-18.04, 0.95))}  # (mean, 4 sd) over 8 seeds: train, test
for name, h in histories.items():
    print(f"{name:5s}: exact log-likelihood train {expect(h['train'][-1], *final[name][0])},")
    print(f"       test {expect(h['test'][-1], *final[name][1])} nats")
gap_train = histories["PCD-1"]["train"][-1] - histories["CD-1"]["train"][-1]
gap_test = histories["PCD-1"]["test"][-1] - histories["CD-1"]["test"][-1]
print(f"PCD-1 minus CD-1: train {expect(gap_train, 0.11, 0.2)}, test {expect(gap_test, 0.11, 0.28)} nats")
plot_log_likelihood_curves(histories, title=r"exact log-likelihood during training ($2^{16}$ hidden states summed)")
plt.show()

# %% tags=["nbval-ignore-output"]
for name, h in histories.items():
    print(f"{name:5s}: train {h['train'][-1]:.3f}, test {h['test'][-1]:.3f} nats; "
          f"{sum(h['seconds']) if name == 'PCD-1' else h['seconds'][-1]:.2f} s of training")

# %% [markdown]
# PCD-1 ends a little above CD-1, at the same cost per update, and a little below CD-10, which costs ten Gibbs
# steps per update (the cell above prints three decimals; beyond the first they vary from machine to machine,
# like the timings). The differences are small because this model mixes fast, as chapter 2 found; it is the
# *order* that is reproducible: over six seeds PCD-1 ended above CD-1 on both sets every time, by 0.05 to 0.2
# nats (`tests/test_pcd.py` asserts it for two seeds). The path there is not smooth: while the step size is
# still large, PCD's likelihood dips and recovers, because the particles lag behind a model that moves
# quickly; as the step size decays, the particles keep up and PCD overtakes CD-1.
#
# Below, the 16 first fantasy particles at the end of each leg. They are samples of the model as it was being
# trained, not of the data: blurry strokes at first, then digit-like shapes that keep moving between classes.

# %%
plot_image_rows(particles, n_cols=16, title="PCD fantasy particles (binary states) during training")
plt.show()
on = torch.stack([v.sum(1).mean() for v in particles.values()])
print(f"pixels on per particle at epochs {', '.join(k.split()[1] for k in particles)}: "
      f"{expect(on, [19.4, 18.6, 18.4, 18.7], 3.0)}")

# %% [markdown]
# **The step size matters more for PCD.** Chapter 2 saw PCD's likelihood wander with a constant step size.
# Here is the same comparison with a large constant step size, 0.5, instead of the decaying schedule: CD-1
# loses a little, while PCD's particles lag behind a model that moves too fast, and it loses several nats.

# %%
constant = {}
steady = {"CD-1": (-19.2, 2.0), "PCD-1": (-22.8, 6.5)}  # (mean, 4 sd) over 8 seeds
for name, persistent in [("CD-1", False), ("PCD-1", True)]:
    model = BernoulliRBM(64, n_hidden, device=device, seed=0)
    model.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=0.5, k=1, persistent=persistent,
              n_chains=n_chains if persistent else None, generator=make_generator(1, device))
    constant[name] = model.log_likelihood_exact(x_test)
    print(f"{name}, step size 0.5: exact test log-likelihood {expect(constant[name], *steady[name])} nats")

# %% [markdown]
# **Re-initialising a few chains.** `fit(..., reinit_fraction=0.05)` restarts 5 of the 100 particles before
# every update, picked at random, from the data's base rates (each pixel on with its frequency in the
# training set). Same schedule and seed as the PCD-1 run above:

# %%
pcd_reinit = BernoulliRBM(64, n_hidden, device=device, seed=0)
pcd_reinit.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=1, persistent=True,
               n_chains=n_chains, reinit_fraction=0.05, generator=make_generator(1, device))
reinit_log_z = pcd_reinit.log_partition_exact()
reinit_ll = {part: pcd_reinit.log_likelihood_exact(x, reinit_log_z) for part, x in [("train", x_train), ("test", x_test)]}
print(f"PCD-1, 5 % re-init: exact log-likelihood train {expect(reinit_ll['train'], -17.57, 0.35)}, "
      f"test {expect(reinit_ll['test'], -18.13, 0.95)} nats")
cost = {part: histories['PCD-1'][part][-1] - reinit_ll[part] for part in reinit_ll}
print(f"what re-initialisation cost: train {expect(cost['train'], 0.094, 0.12)}, "
      f"test {expect(cost['test'], 0.09, 0.14)} nats")

# %% tags=["nbval-ignore-output"]
print(f"PCD-1 + 5 % re-init: train {reinit_ll['train']:.3f}, test {reinit_ll['test']:.3f} nats "
      f"(plain PCD-1: train {histories['PCD-1']['train'][-1]:.3f}, test {histories['PCD-1']['test'][-1]:.3f})")

# %% [markdown]
# Here re-initialisation *costs* about a tenth of a nat (over six seeds, 0.05 to 0.18 nats on the test set,
# and sometimes enough to fall below CD-1). A restarted particle is far from the model's distribution for its
# first Gibbs steps, and with 5 % restarted per update and one Gibbs step each, a good share of the
# particles are always young: the negative phase is pulled toward the base rates. Re-initialisation pays
# when particles get *stuck*, in a model whose modes are separated by barriers that one Gibbs step rarely
# crosses. Our 16-unit digit model mixes fast (section 2's one-step chains already move between digits), so
# it has nothing to gain. It is a remedy to use when the particles stop moving, not a default.

# %% [markdown]
# ## 3. Annealed importance sampling
#
# ### Importance sampling, and why it needs a path
#
# Let $p_A(\mathbf v) = p^*_A(\mathbf v)/Z_A$ be a distribution we can sample and whose $Z_A$ we know, and
# $p^*_B(\mathbf v) = e^{-F(\mathbf v)}$ the RBM's unnormalised marginal. Then
#
# $$\frac{Z_B}{Z_A} = \sum_{\mathbf v} p_A(\mathbf v)\,\frac{p^*_B(\mathbf v)}{p^*_A(\mathbf v)}
#   = \mathbb E_{p_A}\!\left[w(\mathbf v)\right],\qquad w = \frac{p^*_B}{p^*_A},$$
#
# and the average of $w$ over samples from $p_A$ is an unbiased estimate of $Z_B/Z_A$. But when $p_A$ and
# $p_B$ differ a lot, almost every sample lands where $p_B$ is tiny and one rare sample carries the
# whole sum: the variance is astronomical.
#
# AIS (Neal, 2001) puts a path of distributions $p_0 = p_A, p_1, \dots, p_K = p_B$ in between, close enough
# that each ratio $p^*_k / p^*_{k-1}$ is tame. A chain starts with $\mathbf v_1 \sim p_A$; at step $k$ it
# multiplies its weight by $p^*_k(\mathbf v_k)/p^*_{k-1}(\mathbf v_k)$ and then moves by a Markov transition
# $T_k$ that leaves $p_k$ invariant. The product
#
# $$w = \prod_{k=1}^{K} \frac{p^*_k(\mathbf v_k)}{p^*_{k-1}(\mathbf v_k)}$$
#
# is again an importance weight, on the space of whole trajectories, with $\mathbb E[w] = Z_B / Z_A$
# **exactly**, for any $K$ and any transitions: the path only changes the variance. With $M$ chains,
# $\hat Z = Z_A \cdot \frac1M\sum_m w_m$, and we work with logs,
# $\log \hat Z = \log Z_A + \operatorname{log\text{-}mean\text{-}exp}_m(\log w_m)$.
#
# ### The path for an RBM
#
# Take as base an RBM with no couplings, $W = 0$, visible biases $\mathbf b_A$ and the same hidden units,
# and mix the two *energies*: $E_\beta = (1-\beta) E_A + \beta E$, with inverse temperatures
# $0 = \beta_0 < \beta_1 < \dots < \beta_K = 1$. Then every $p_\beta$ is itself an RBM, with couplings
# $\beta W$, visible biases $(1-\beta)\mathbf b_A + \beta \mathbf b$ and hidden biases $\beta \mathbf c$:
#
# $$-F_\beta(\mathbf v) = (1-\beta)\,\mathbf b_A^\top \mathbf v + \beta\,\mathbf b^\top \mathbf v
#   + \sum_j \operatorname{softplus}\!\big(\beta\,(c_j + (\mathbf v^\top W)_j)\big),$$
#
# and its block Gibbs step is the transition $T_k$: $h_j \sim \sigma(\beta(c_j + (\mathbf v^\top W)_j))$,
# then $v_i \sim \sigma((1-\beta) b_{A,i} + \beta(b_i + (W\mathbf h)_i))$. At $\beta = 0$ the pixels are
# independent with $p(v_i{=}1) = \sigma(b_{A,i})$ and the hidden units are fair coins, so
# $\log Z_A = \sum_i \operatorname{softplus}(b_{A,i}) + n_h \log 2$. The log-weight collects
# $F_{\beta_{k-1}}(\mathbf v_k) - F_{\beta_k}(\mathbf v_k)$ at every step (in float64: 14,500 small
# increments). (Note that $\beta$ sits *inside* the softplus. Mixing the two free energies instead,
# $\beta F + (1-\beta) F_A$, gives a path whose distributions are not RBMs and have no block Gibbs sampler.)
#
# **The base.** $\mathbf b_A = 0$ is the uniform distribution over all $2^{64}$ images, far from any digit
# model. The *base-rate* RBM sets $b_{A,i} = \log\frac{\bar p_i}{1-\bar p_i}$ from the training pixels'
# means $\bar p_i$ (clipped away from 0 and 1): the best model with independent pixels, already much
# closer to the RBM. **The schedule** of Salakhutdinov & Murray (2008) takes 500 steps from 0 to 0.5, 4,000
# to 0.9 and 10,000 to 1, denser where the couplings reach full strength; `ais_betas(K)` scales it to $K$
# steps. The whole estimator, vectorised over chains:

# %%
print(inspect.getsource(ais_log_partition))

# %% [markdown]
# Every intermediate distribution is an RBM we can sample. Here are samples along the path from the
# base-rate RBM to the PCD model of section 2 (each row: 300 Gibbs steps at that $\beta$, from base samples).
# Near $\beta = 0$ they are independent pixels with the digits' base rates; digits only take shape close to
# $\beta = 1$, which is why the schedule is densest there.

# %%
b_A = base_rate_bias(x_train)
g = make_generator(2, device)
path_rows = {}
for beta in (0.0, 0.5, 0.8, 0.9, 0.95, 1.0):
    p_beta = BernoulliRBM.from_arrays(beta * pcd.W, (1 - beta) * b_A + beta * pcd.b, beta * pcd.c)
    start = (torch.rand(16, 64, generator=g, device=device) < torch.sigmoid(b_A)).float()
    path_rows[rf"$\beta$ = {beta:g}"] = p_beta.gibbs(start, n_steps=300, generator=g)
plot_image_rows(path_rows, n_cols=16, title=r"samples of $p_\beta$ along the AIS path, from the base rates ($\beta = 0$) to the PCD RBM ($\beta = 1$)")
plt.show()
print(f"base-rate biases b_A: from {exact(b_A.min(), '.2f', rel=1e-5)} to {exact(b_A.max(), '.2f', rel=1e-5)}")

# %% [markdown]
# ### AIS against the exact $\log Z$
#
# On the 16-hidden-unit PCD model, $\log Z$ is exact, so we can measure AIS's error as the number of
# temperatures $K$ grows, for both bases. Each setting runs 10 independent AIS estimates of 100 chains each,
# as one vectorised call of 1,000 chains whose weights are split into 10 groups.

# %%
exact_log_z = pcd.log_partition_exact()
n_betas_list = [10, 30, 100, 300, 1000, 3000 * SCALE]
n_runs, per_run = 10, 100
errors, seconds = {"uniform base": [], "base-rate base": []}, {"uniform base": [], "base-rate base": []}
for label, base in [("uniform base", "uniform"), ("base-rate base", x_train)]:
    for i, n_betas in enumerate(n_betas_list):
        start = time.perf_counter()
        result = ais_log_partition(pcd, n_chains=n_runs * per_run, n_betas=n_betas, base=base, seed=i)
        seconds[label].append((time.perf_counter() - start) / n_runs)
        log_z_hat = result.log_z_base + log_mean_exp(result.log_weights.view(n_runs, per_run), dim=1)
        errors[label].append(float(((log_z_hat - exact_log_z) ** 2).mean().sqrt()))
print(f"exact log Z of the PCD model: {expect(exact_log_z, 63.4, 8.0)} (it depends on the trained model)")
rms_expected = {"uniform base": ((10.6, 4.0), (0.076, 0.07)), "base-rate base": ((0.54, 0.45), (0.025, 0.025))}
for label in errors:
    first, last = rms_expected[label]
    print(f"{label}: RMS error of log Z^ at K = {n_betas_list[0]}: {expect(errors[label][0], *first)} nats,")
    print(f"    at K = {n_betas_list[-1]}: {expect(errors[label][-1], *last)} nats")
plot_ais_convergence(n_betas_list, errors, seconds, title="AIS on the 64 x 16 PCD RBM: error and cost")
plt.show()

# %% tags=["nbval-ignore-output"]
for label in seconds:
    print(f"{label:15s}: " + ", ".join(f"K={k}: {s * 1e3:.1f} ms" for k, s in zip(n_betas_list, seconds[label])))

# %% [markdown]
# The time per run grows linearly with $K$; the error falls roughly like $K^{-1/2}$ once the path is fine
# enough (the variance of $\log w$ is a sum of $K$ small terms, each shrinking like $1/K^2$). The base-rate
# base starts an order of magnitude ahead: for a given accuracy it needs far fewer temperatures, so use it
# whenever training data exist.
#
# ## 4. A larger RBM, where only AIS can tell
#
# With 128 hidden units neither layer can be enumerated ($2^{64}$ visible states, $2^{128}$ hidden). We
# train one model with CD-1 and one with PCD-1 (100 particles), same initial weights, same decaying step
# size, 100 epochs, and rank them by AIS log-likelihood on the test set: the free energy is exact, only
# $\log Z$ is estimated, so the uncertainty of the log-likelihood is that of $\log \hat Z$. Each model gets
# three AIS runs: the base-rate base with 3,000 temperatures, the same with twice as many (a convergence
# check), and the uniform base with 3,000.

# %%
big, ais_results = {}, {}
big_epochs = 100 * SCALE
for name, persistent in [("CD-1", False), ("PCD-1", True)]:
    big[name] = model = BernoulliRBM(64, 128 * SCALE, device=device, seed=0)
    model.fit(x_train, n_epochs=big_epochs, batch_size=batch_size, k=1, persistent=persistent,
              step_size=lambda e: 0.1 * (1 - (e - 1) / big_epochs), n_chains=n_chains if persistent else None,
              generator=make_generator(1, device))
    for label, base, n_betas in [("base rates, K = 3000", x_train, 3000), ("base rates, K = 6000", x_train, 6000),
                                 ("uniform, K = 3000", "uniform", 3000)]:
        ais_results[name, label] = ais_log_partition(model, n_chains=100, n_betas=n_betas * SCALE, base=base, seed=3)
big_expected = {"CD-1": (-16.97, 0.85), "PCD-1": (-16.71, 0.9)}  # (mean, 4 sd) over 8 seeds
test_ll = {name: ais_log_likelihood(big[name], x_test, ais_results[name, "base rates, K = 6000"]) for name in big}
for name in big:
    r3, r6 = ais_results[name, "base rates, K = 3000"], ais_results[name, "base rates, K = 6000"]
    ru = ais_results[name, "uniform, K = 3000"]
    print(f"{name:5s}: AIS test log-likelihood {expect(test_ll[name], *big_expected[name])} nats")
    print("      ", claim(abs(r6.log_z - r3.log_z) < 3 * math.hypot(r3.std_error, r6.std_error),
                         "doubling K moved log Z^ by less than 3 s.e."))
    print("      ", claim(ru.std_error > r6.std_error, "the uniform base's s.e. is larger"))
ranking = sorted(big, key=lambda n: -test_ll[n])
gap = test_ll[ranking[0]] - test_ll[ranking[1]]
gap_se = math.hypot(*(ais_results[n, "base rates, K = 6000"].std_error for n in big))
print("ranked by AIS test log-likelihood:", " > ".join(ranking))
print(claim(ranking[0] == "PCD-1" and gap > 2 * gap_se, "PCD-1 is ahead by more than 2 standard errors"))

# %% tags=["nbval-ignore-output"]
for (name, label), r in ais_results.items():
    print(f"{name:5s}, {label:20s}: log Z^ = {r.log_z:8.3f} +- {r.std_error:.3f} (1 s.e.), "
          f"3-s.e. interval [{r.log_z_lower:.3f}, {r.log_z_upper:.3f}], ESS {r.ess:.0f} of 100")
for name in big:
    print(f"{name:5s}: AIS test log-likelihood {test_ll[name]:.3f} nats "
          f"(16 hidden units, exact: {histories[name]['test'][-1]:.3f})")

# %% [markdown]
# Two checks before believing a ranking like this one. First, the estimate's own uncertainty: the standard
# error from the spread of the weights is a few hundredths of a nat, and the effective sample size is close
# to the number of chains. Second, agreement between independent routes: doubling the number of temperatures
# moves the estimate by no more than its noise, while the uniform base, at the same cost, gives a noisier
# estimate, usually lower, with a smaller ESS: the signature of a path that is too coarse (section 5). With
# 128 hidden units both models beat the 16-unit ones of section 2 (cell above), and PCD-1 still beats CD-1.
#
# ## 5. Pitfalls: AIS is a stochastic lower bound
#
# $\hat Z$ is unbiased, $\mathbb E[\hat Z] = Z$. The logarithm is concave, so by Jensen's inequality
#
# $$\mathbb E[\log \hat Z] \le \log \mathbb E[\hat Z] = \log Z :$$
#
# on average, $\log \hat Z$ is **too low**, and a log-likelihood computed with it, $-F(\mathbf v) - \log \hat Z$,
# is **too high**. The gap grows with the variance of the weights: too few temperatures, too few chains, or a
# poor base (uniform) all make the model look better than it is. Worse, a high-variance estimate usually
# *looks* precise, because the rare large weights that would correct it were never drawn. Below, 400 AIS runs
# of 10 chains each on the 16-hidden-unit model (exact $\log Z$ known), for three settings.

# %%
settings = [("base rates, K = 1000", x_train, 1000), ("base rates, K = 100", x_train, 100),
            ("uniform, K = 100", "uniform", 100)]
n_runs, per_run = 400, 10
log_z_errors = {}
pitfalls = {"base rates, K = 1000": ((-0.005, 0.025), (0.52, 0.08), (0.995, 0.02)),
            "base rates, K = 100": ((-0.09, 0.09), (0.60, 0.085), (0.91, 0.12)),
            "uniform, K = 100": ((-3.85, 0.55), (0.948, 0.06), (0.018, 0.01))}  # (mean, 4 sd) over 8 seeds
for i, (label, base, n_betas) in enumerate(settings):
    result = ais_log_partition(pcd, n_chains=n_runs * per_run, n_betas=n_betas * SCALE, base=base, seed=10 + i)
    log_z_hat = result.log_z_base + log_mean_exp(result.log_weights.view(n_runs, per_run), dim=1)
    err = log_z_hat - exact_log_z
    log_z_errors[label] = err
    ratio = torch.exp(err)  # Z^ / Z, whose mean is 1
    mean_err, below, mean_ratio = pitfalls[label]  # the ratio: its median, as its mean is erratic
    print(f"{label}: mean log Z^ - log Z = {expect(err.mean(), *mean_err)} nats;")
    print(f"    below the truth in {expect((err < 0).float().mean(), *below)} of the runs; "
          f"median Z^/Z = {expect(ratio.median(), *mean_ratio)}")
plot_log_z_errors(log_z_errors, title=r"400 runs of 10 chains each: $\log \hat Z$ is low on average")
plt.show()

# %% [markdown]
# With the base rates and 1,000 temperatures the runs scatter tightly around the truth. With the uniform base
# and 100 temperatures, most runs fall well below $\log Z$. The mean of $\hat Z / Z$ is 1 in expectation, but
# over 400 runs it is erratic (from 0.2 to 5 over 8 seeds): it hangs on the rare runs with huge weights. The
# typical run, the median, underestimates $Z$ by a factor of about 60, $\log Z$ by about 4 nats. In
# practice:
#
# - use the base-rate base, the standard 14,500-temperature schedule (or more) and 100 or more chains;
# - report the standard error and the ESS, and distrust an estimate whose ESS is a small fraction of $M$;
# - compare models with the *same* generous AIS settings, and check $K$ by doubling it: an estimate that still
#   rises with $K$ has not converged, and the log-likelihood it implies is an overestimate;
# - where a layer is small enough to enumerate, check AIS against the exact value first, as we did.
#
# ## Summary
#
# - CD-$k$ starts its negative chains at the data; PCD keeps $M$ fantasy particles across updates, so the
#   negative phase follows the model rather than the data. It costs memory for the chains and needs a
#   decaying step size, because the chains lag behind the parameters; re-initialising a few chains per
#   update guards against stuck chains, at the price of a negative phase pulled toward the restart
#   distribution (a loss on a model that mixes well, like ours).
# - On binarized digits with 16 hidden units, PCD-1 ends above CD-1 in exact log-likelihood and level with
#   CD-10, at the cost of CD-1; with a constant step size PCD does worse.
# - AIS anneals from a base RBM ($W=0$) to the target through RBMs with couplings $\beta W$, moving by Gibbs
#   steps and accumulating $\log w \mathrel{+}= F_{\beta_{k-1}}(\mathbf v_k) - F_{\beta_k}(\mathbf v_k)$.
#   $\hat Z$ is unbiased; $\log \hat Z$ is a stochastic lower bound.
# - The base-rate base and enough temperatures make AIS accurate to a few hundredths of a nat on models we
#   can check exactly; that is what licenses its use on models we cannot (`tests/test_ais.py` checks a
#   784 x 15 MNIST RBM to 0.1 nats).
#
# **Next:** chapter 4 leaves binary units for continuous data, where Gibbs sampling gives way to Langevin
# dynamics, and the persistent chains of PCD come back as a replay buffer.
