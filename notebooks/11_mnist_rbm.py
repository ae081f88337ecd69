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
# # Chapter 11: A published likelihood, reproduced and bracketed
#
# In 2008 Salakhutdinov and Murray gave the first careful numbers for how well restricted Boltzmann machines
# model binarized MNIST. With annealed importance sampling (AIS, chapter 3) they estimated the test
# log-likelihood of RBMs with 500 hidden units: about $-125.5$ nats per image after training with CD-1,
# $-105.5$ after CD-3, $-86.3$ after CD-25. The table made the field careful about contrastive divergence: the
# length of the negative chains decides whether the model is any good.
#
# Every number in that table is an AIS estimate, and chapter 3 showed that AIS errs in one direction: its
# $\log\hat Z$ is a stochastic *lower* bound, so a log-likelihood computed with it is *optimistic*. This
# chapter reruns the experiment and then builds the other side of the bracket:
#
# - **reverse AIS** runs the annealing backwards from exact samples of the model and bounds $\log Z$ from
#   *above* (bidirectional Monte Carlo, Grosse, Ghahramani & Adams, 2015);
# - **RAISE** runs it backwards from the test images themselves and bounds from *below* the log-likelihood of
#   a closely related model, the annealing model (Burda, Grosse & Salakhutdinov, 2015).
#
# **Learning objectives.** After this chapter you can
# 1. say what a published AIS log-likelihood estimates, and in which direction it errs;
# 2. derive reverse AIS, and explain why it bounds $\log Z$ from above when its chains start at exact samples,
#    and why not otherwise;
# 3. explain RAISE: whose likelihood it bounds, and when that is a conservative estimate for the RBM;
# 4. bracket a log-likelihood from both sides and read the width of the bracket.

# %%
import inspect

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import load_binarized_mnist
from ebm_teach.evaluate import (
    ais_log_partition,
    log_mean_exp,
    raise_log_likelihood,
    reverse_ais_log_partition,
)
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting.mnist import plot_bidirectional
from ebm_teach.rbm import BernoulliRBM

# integer; raise it on a GPU for more epochs, more temperatures and more test images
SCALE = 1
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # small matrices: a second thread costs more than it saves
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. The published table
#
# Salakhutdinov and Murray trained RBMs with 784 visible and 500 hidden units on the 60,000 MNIST training
# images (binarized once, at random, with the grey levels as probabilities: the fixed binarization shipped
# with this package) and report in their Table 2 the average test log-likelihood of the 10,000 test images,
# each $\log Z$ estimated by AIS from a base-rate base with 14,500 temperatures and 100 runs:

# %%
# Salakhutdinov & Murray (2008), Table 2: 500 hidden units, MNIST test set
published = {"CD-1": -125.53, "CD-3": -105.50, "CD-25": -86.34}
print("784 x 500 RBMs on binarized MNIST, test log-likelihood by AIS (nats per image)")
for method, ll in published.items():
    print(f"  {method:6s} {exact(ll, '8.2f')}")
print(claim(published["CD-1"] < published["CD-3"] < published["CD-25"],
            "longer negative chains, better model: CD-1 < CD-3 < CD-25"))

# %% [markdown]
# Forty nats per image separate CD-1 from CD-25: the same model family, the same data, only the length of the
# negative chains changed. `experiments/mnist_rbm.py` repeats the experiment (CD-1, CD-3, CD-25, and PCD,
# which the paper did not include; Tieleman, 2008), with AIS at the paper's settings and RAISE (section 6)
# as the conservative side; at the paper's scale it takes hours of CPU, so the chapter does not run it live:
#
# ```
# python experiments/mnist_rbm.py --preset paper --device cuda   # the paper's scale
# python experiments/mnist_rbm.py --preset test --out /tmp/x     # seconds: 784 x 8 RBMs, everything exact
# ```
#
# ## 2. Why a published AIS number is optimistic
#
# AIS (chapter 3) anneals $M$ chains from a base distribution $p_0$ with known $Z_0$ (independent pixels with
# the data's base rates) through RBMs $p_{\beta_k}$ with couplings $\beta_k W$ to the RBM at $\beta_K = 1$, and
# multiplies each chain's weight by $p^*_{\beta_k}(\mathbf v_k)/p^*_{\beta_{k-1}}(\mathbf v_k)$ along the way.
# The estimate $\hat Z = Z_0 \frac1M\sum_m w_m$ is unbiased, and by Jensen's inequality
# $\mathbb E[\log\hat Z] \le \log Z$: on average $\log\hat Z$ is low, and a test log-likelihood
# $\frac1n\sum_i -F(\mathbf v_i) - \log\hat Z$ is high. How high depends on the variance of the weights, which
# grows when the path is too coarse for the model. A model whose distribution is hard to anneal into, with
# well-separated modes, is exactly the model whose AIS number flatters it most. Repeating the run does not
# reveal this: every run shares the bias, and their spread measures only their noise.
#
# We need an estimate that errs the other way.
#
# ## 3. Running AIS backwards
#
# Chapter 3 derived AIS as importance sampling on the space of whole paths
# $\mathbf x = (\mathbf v_1, \dots, \mathbf v_K)$: the chain proposes paths from
# $q(\mathbf x) = p_0(\mathbf v_1)\,T_1(\mathbf v_1, \mathbf v_2)\cdots T_{K-1}(\mathbf v_{K-1}, \mathbf v_K)$,
# and the target is the reversed chain that starts at the model,
# $\pi(\mathbf x) = p_K(\mathbf v_K)\,\tilde T_{K-1}(\mathbf v_K, \mathbf v_{K-1})\cdots\tilde T_1(\mathbf v_2, \mathbf v_1)$,
# with $\tilde T_k$ the reversal of $T_k$. The weight is $w = \frac{Z_K}{Z_0}\,\frac{\pi(\mathbf x)}{q(\mathbf x)}$,
# so $\mathbb E_q[w] = Z_K/Z_0$.
#
# Swap the roles. If we could draw $\mathbf v_K$ from the model itself, we could *propose* from $\pi$: start
# at $\mathbf v_K \sim p_K$, walk down with the reversed steps to $\beta = 0$, and weigh each path by
# $r = \frac{Z_0}{Z_K}\frac{q(\mathbf x)}{\pi(\mathbf x)} = 1/w$. Then $\mathbb E_\pi[r] = \sum_{\mathbf x}
# \pi\,\frac{Z_0}{Z_K}\frac{q}{\pi} = Z_0/Z_K$, exactly. In the RBM's terms, each chain collects
#
# $$\log r \mathrel{+}= F_{\beta_k}(\mathbf v_k) - F_{\beta_{k-1}}(\mathbf v_k), \qquad
#   \mathbf v_{k-1} \sim T_{k-1}(\mathbf v_k, \cdot) \quad (k = K, \dots, 1),$$
#
# where the block Gibbs step is its own reversal ($\tilde T = T$: it satisfies detailed balance on
# $\mathbf v$). Now $\log\hat Z_{\text{rev}} = \log Z_0 - \log\frac1M\sum_m r_m$, and Jensen's inequality
# flips: $\mathbb E[\log \hat Z_{\text{rev}}] \ge \log Z$. Markov's inequality bounds the other tail, as in
# chapter 3: $P(\log\hat Z_{\text{rev}} < \log Z - b) \le e^{-b}$. AIS and reverse AIS together **bracket**
# $\log Z$: bidirectional Monte Carlo (Grosse, Ghahramani & Adams, 2015).
#
# The catch is the start. The argument needs $\mathbf v_K$ drawn *exactly* from the model. Samples from a long
# Gibbs chain are not enough: a chain stuck in one mode gives reverse runs that never see the others, and the
# "upper bound" can land below $\log Z$ with nothing to warn us. In the package the reverse direction is the
# same annealing loop as AIS, fed the path from $\beta = 1$ down:

# %%
print(inspect.getsource(reverse_ais_log_partition).split('"""')[-1])

# %% [markdown]
# Exact samples exist when one layer is small enough to list. With $n_h$ hidden units, summing out the
# visible ones gives $p(\mathbf h) \propto \exp\big(\mathbf c^\top\mathbf h + \sum_i
# \operatorname{softplus}(b_i + (W\mathbf h)_i)\big)$: compute it for all $2^{n_h}$ states, draw $\mathbf h$
# from that list, then $\mathbf v \sim p(\mathbf v \mid \mathbf h)$. No chain, no burn-in
# (`BernoulliRBM.sample_exact`; exercise 11.1 writes it). For 500 hidden units that is out of reach, so the
# bracket for the models of section 1 needs another idea (section 5). First, a model where everything is exact.
#
# ## 4. A small model of MNIST, where the truth is known
#
# RBMs with 16 hidden units: $\log Z$ is a sum over $2^{16}$ hidden states, so we know every log-likelihood
# exactly. As in chapter 3, 2,000 training images, 20 epochs, minibatches of 20, the step size decaying from
# 0.1 to 0, visible biases started at the pixels' log-odds; CD-1 against PCD-1 with 20 persistent chains (the
# same Gibbs work), three seeds each, evaluated on 1,000 test images.

# %%
g = make_generator(7)
x_train = load_binarized_mnist("train", device=device)
x_train = x_train[torch.randperm(len(x_train), generator=g)[:2000].to(device)]
x_test = load_binarized_mnist("test", device=device)
x_test = x_test[torch.randperm(len(x_test), generator=g)[:1000].to(device)]
n_hidden, n_epochs = 16, 20 * SCALE
models, exact_ll, exact_log_z = {}, {}, {}
for name, n_particles in [("CD-1", None), ("PCD-1", 20)]:
    for seed in range(3):
        model = BernoulliRBM(784, n_hidden, device=device, seed=seed)
        model.init_visible_biases(x_train)
        model.fit(x_train, n_epochs=n_epochs, batch_size=20, k=1,
                  step_size=lambda e: 0.1 * (1 - (e - 1) / n_epochs),
                  persistent=n_particles is not None, n_chains=n_particles,
                  generator=make_generator(10 + seed, device))
        models[name, seed] = model
        exact_log_z[name, seed] = model.log_partition_exact()
        exact_ll[name, seed] = model.log_likelihood_exact(x_test, exact_log_z[name, seed])
gaps = torch.tensor([exact_ll["PCD-1", s] - exact_ll["CD-1", s] for s in range(3)])
# (mean, 4 sd) over 4 seed shifts of the mean exact test log-likelihood of the 3 seeds
small_expected = {"CD-1": (-173.0, 9.0), "PCD-1": (-164.0, 9.0)}
for name in ("CD-1", "PCD-1"):
    ll = torch.tensor([exact_ll[name, s] for s in range(3)])
    print(f"{name:5s}: exact test log-likelihood, mean of 3 seeds "
          f"{expect(ll.mean(), *small_expected[name])} nats")
# (mean, 4 sd) over 4 seed shifts of the 3 paired differences, pooled
print(f"PCD-1 minus CD-1, seed by seed: {expect(gaps, 9.5, 14.0)} nats")
print(claim(bool((gaps > 0).all()), "PCD-1 is ahead of CD-1 on every seed"))

# %% [markdown]
# PCD-1 is ahead of CD-1 on every seed, by a few nats to more than ten per image, in the direction of the
# published table: CD-1's short chains never correct the probability its model puts far from the data (chapter 3).
#
# ## 5. Both sides of $\log Z$
#
# Take the first PCD-1 model and estimate its $\log Z$ both ways, with $K$ = 30 to 1,000 temperatures (the
# paper's schedule scaled to $K$, the base-rate base), each as 10 independent runs of 10 chains: forward AIS,
# and reverse AIS from 100 exact samples.

# %%
model = models["PCD-1", 0]
truth = exact_log_z["PCD-1", 0]
n_betas_list = [30, 100, 300, 1000 * SCALE]
n_runs, per_run = 10, 10
forward, reverse = [], []
for i, n_betas in enumerate(n_betas_list):
    fwd = ais_log_partition(model, n_chains=n_runs * per_run, n_betas=n_betas, base=x_train,
                            seed=20 + i)
    samples, _ = model.sample_exact(n_runs * per_run, generator=make_generator(30 + i, device))
    rev = reverse_ais_log_partition(model, samples, n_betas=n_betas, base=x_train, seed=40 + i)
    forward.append(fwd.log_z_base + log_mean_exp(fwd.log_weights.view(n_runs, per_run), dim=1))
    reverse.append(rev.log_z_base - log_mean_exp(rev.log_weights.view(n_runs, per_run), dim=1))
forward, reverse = torch.stack(forward), torch.stack(reverse)  # (len(K), runs)
# (mean, 4 sd) over 4 seed shifts of each figure below
print(f"exact log Z of the PCD-1 model: {expect(truth, 171.0, 43.0)}")
low, high = forward.mean(1) - truth, reverse.mean(1) - truth
print(f"mean error of AIS at K = 30: {expect(low[0], -6.0, 6.0)}, "
      f"at K = 1000: {expect(low[-1], -0.15, 0.9)}")
print(f"mean error of reverse AIS at K = 30: {expect(high[0], 8.0, 10.5)}, "
      f"at K = 1000: {expect(high[-1], 0.25, 1.25)}")
print(claim(bool(low[0] < 0 < high[0]),
            "at K = 30 the bracket holds on average: AIS low, reverse AIS high"))
print(claim(bool(max(abs(low[-1]), abs(high[-1])) < 1),
            "at K = 1000 both mean errors are below 1 nat"))
plot_bidirectional(n_betas_list, forward.cpu(), reverse.cpu(), exact=truth,
                   title="log Z of a 784 x 16 PCD RBM, from both sides (10 runs each)")
plt.show()

# %% [markdown]
# With a coarse path ($K$ = 30) the two estimates are more than ten nats apart, one below and one above the
# truth; as $K$ grows they close in on it from both sides, to within a nat at $K$ = 1,000. When the bracket is narrow, both ends can be trusted, and we have learned
# that without knowing $\log Z$. Single runs can cross (a run of reverse AIS can land a little below
# $\log Z$, a run of AIS a little above); the bounds hold on average, and Markov's inequality keeps large
# crossings rare.
#
# ## 6. RAISE: a conservative estimate without exact samples
#
# At 500 hidden units there are no exact samples. Burda, Grosse and Salakhutdinov (2015) noticed that
# forward AIS is itself a generative model: draw $\mathbf v_1 \sim p_0$, take the $K-1$ Gibbs steps, output
# $\mathbf v_K$. Call its distribution the **annealing model** $p_{\text{ann}}$. It is a proper, normalised
# distribution, and it is close to the RBM when the path is fine and the chains keep up. Its probability of a
# test image is a sum over the hidden path, which the reverse chain *started at the test image* estimates
# without bias:
#
# $$\hat p_{\text{ann}}(\mathbf v) = \frac{p^*_K(\mathbf v)}{Z_0}\, r, \qquad \mathbb E[\hat p_{\text{ann}}(\mathbf v)]
#   = p_{\text{ann}}(\mathbf v),$$
#
# with $r$ the weight of section 3. (The proof is the one of section 3 with $p_K$ replaced by a point mass at
# $\mathbf v$; `tests/test_ais.py` checks the unbiasedness against $p_{\text{ann}}$ computed by multiplying out
# its transition matrices.) So $\log\hat p_{\text{ann}}(\mathbf v)$ is a stochastic *lower* bound on
# $\log p_{\text{ann}}(\mathbf v)$. Note whose likelihood that is: the annealing model's, not the RBM's. It is
# conservative for the RBM as far as the annealing model is the worse model of the test digits, which Burda et
# al. found for every model they checked, and which is guaranteed for data drawn from the RBM itself (no model
# beats the true distribution on its own samples: Gibbs' inequality). It needs neither exact samples nor
# $\log Z$. Here it is on 100 test images, for all six small models, against the exact log-likelihood of
# the same images, with $K$ = 100 and 1,000.

# %%
images = x_test[:100]
raise_minus_exact = {}  # (method, seed, K) -> mean over the images of RAISE - exact log p
for (name, seed), m in models.items():
    log_p = -m.free_energy(images).double() - exact_log_z[name, seed]
    for n_betas in (100, 1000):
        est = raise_log_likelihood(m, images, n_betas=n_betas * SCALE, base=x_train,
                                   seed=50 + seed)
        raise_minus_exact[name, seed, n_betas] = float((est.log_p - log_p).mean())
# (mean, 4 sd) over 4 seed shifts of RAISE minus exact, per method and K, the 3 seeds pooled
raise_expected = {("CD-1", 100): (-1.2, 4.3), ("PCD-1", 100): (-2.75, 3.5),
                  ("CD-1", 1000): (-0.26, 0.55), ("PCD-1", 1000): (-0.61, 0.85)}
for (name, n_betas), expected in raise_expected.items():
    d = torch.tensor([raise_minus_exact[name, s, n_betas] for s in range(3)])
    print(f"{name:5s}, K = {n_betas:4d}: RAISE minus exact, seed by seed: "
          f"{expect(d, *expected)} nats")
print(claim(all(raise_minus_exact["PCD-1", s, 100] < 0 for s in range(3)),
            "for the PCD-1 models RAISE with K = 100 is below the exact log-likelihood"))

# %% [markdown]
# At $K$ = 1,000 RAISE sits a fraction of a nat below the exact log-likelihood of every model; at $K$ = 100
# it is a few nats below for the PCD-1 models, whose sharper distributions are harder to anneal into, and
# closer for the CD-1 models. It bounds the annealing model, not the RBM, and nothing forces it below the
# RBM's value: with other seeds a CD-1 model's RAISE at $K$ = 100 can land above the exact log-likelihood.
# A conservative estimate is only as conservative as its assumption, so report RAISE together with the AIS
# number and the $K$ they used.
#
# ## 7. What the width of the bracket says
#
# How wide should we expect the bracket to be? Take one chain in each direction. The forward log-weight is
# $\log w = \log\frac{Z_K}{Z_0} + \log\frac{\pi}{q}$, averaged over paths from $q$; the reverse one is
# $\log r = \log\frac{Z_0}{Z_K} + \log\frac{q}{\pi}$, averaged over paths from $\pi$. Exercise 11.3 asks you
# to finish the argument: the expected gap between the reverse and the forward estimate of $\log Z$ is the
# symmetrised KL divergence between the forward and the reverse path distributions, a number that does not
# involve $Z$ and is zero only when the annealing is at equilibrium all along the path (Grosse, Ghahramani
# & Adams, 2015; Grosse et al., 2016, use it to measure how far approximate samples are from the posterior).
# A wide bracket is therefore not bad luck: it says that the chains do not keep up with the path, and that
# both ends of the bracket, and the AIS samples themselves, are to be distrusted by about that much.
#
# ## Summary
#
# - A published AIS log-likelihood is an estimate from above (optimistic): $\log\hat Z$ is low on average,
#   and the bias is shared by every run, so the spread of repeated runs does not show it.
# - Reverse AIS starts at exact samples of the model, walks the same path down and weighs each path by
#   $r = 1/w$; $\mathbb E[r] = Z_0/Z$, so $\log\hat Z_{\text{rev}}$ is a stochastic *upper* bound on
#   $\log Z$. Together with AIS it brackets $\log Z$ (bidirectional Monte Carlo). It needs exact samples,
#   which exist when a layer can be enumerated; chain samples void the guarantee.
# - RAISE starts the reverse chain at each test image and estimates the probability of the *annealing model*;
#   it is a stochastic lower bound on that model's log-likelihood, conservative for the RBM in practice but
#   not by a theorem.
# - The expected width of the bracket is the symmetrised KL divergence between the forward and reverse
#   paths: it measures how far the annealing is from equilibrium.
# - On small MNIST models, where the likelihood is exact, PCD-1 beats CD-1 on every seed: the direction of
#   the published table, in which longer negative chains gave better models.
