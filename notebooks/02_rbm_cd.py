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
# # Chapter 2: Restricted Boltzmann machines and contrastive divergence
#
# Chapter 1 had one EBM whose partition function was an integral with a closed form. This chapter moves to
# binary data, where $Z$ is a *sum* over $2^d$ states: finite, exact in principle, and hopeless to add up
# once $d$ is large. The restricted Boltzmann machine (RBM) is the EBM that makes this world workable: its
# conditionals are exact, its Gibbs sampler moves a whole layer at once, and for a small hidden layer even
# $\log Z$ is exact. That last fact lets us do what is rarely possible: train with an *approximate* gradient
# (contrastive divergence) and measure the *exact* likelihood it reaches.
#
# **Learning objectives.** After this chapter you can
# 1. write the Ising model as a Boltzmann machine and sample it with checkerboard Gibbs updates;
# 2. derive why the bipartite graph of an RBM makes $p(\mathbf h\mid\mathbf v)$ and $p(\mathbf v\mid\mathbf h)$
#    factorise into sigmoids, and what the free energy $F(\mathbf v)$ is;
# 3. compute $\log Z$ of a small RBM exactly by summing over its smaller layer;
# 4. state the CD-$k$ algorithm, what objective it follows, and why it is biased;
# 5. train an RBM on binarized digits and judge it by its exact log-likelihood, not by proxies;
# 6. compare CD-1, CD-5, CD-10 and scikit-learn's PCD on the same footing.

# %%
import inspect
import itertools
import math

import matplotlib.pyplot as plt
import torch

import ebm_teach.rbm
from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import load_digits, train_test_split
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting import (image_grid, plot_curves, plot_ising_lattices, plot_magnetisation, plot_rbm_filters,
                                plot_rbm_graph, plot_state_distribution)
from ebm_teach.rbm import BernoulliRBM, ising_gibbs

SCALE = 1  # integer; raise it on a GPU for longer chains, more epochs and more Monte Carlo samples
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    # Every matrix in this chapter is small; on a CPU, waking a second thread for each operation costs more
    # than it saves (benchmarks/README.md measures it), so we use one.
    torch.set_num_threads(1)
D = torch.float64  # for the exact calculations on tiny models
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. From Boltzmann machines to RBMs
#
# A **Boltzmann machine** is an EBM on binary units $\mathbf x \in \{0,1\}^d$ with pairwise couplings,
#
# $$E(\mathbf x) = -\tfrac12 \mathbf x^\top J \mathbf x - \mathbf b^\top \mathbf x,
#   \qquad p(\mathbf x) = \frac{e^{-E(\mathbf x)}}{Z}, \qquad Z = \sum_{\mathbf x \in \{0,1\}^d} e^{-E(\mathbf x)},$$
#
# with $J$ symmetric and zero on the diagonal. One unit given all the others is easy: only the terms that
# contain $x_i$ change when it flips, so
#
# $$p(x_i = 1 \mid \mathbf x_{-i}) = \frac{e^{-E(x_i=1,\,\cdot)}}{e^{-E(x_i=0,\,\cdot)} + e^{-E(x_i=1,\,\cdot)}}
#   = \sigma\Big(b_i + \sum_j J_{ij} x_j\Big), \qquad \sigma(a) = \frac{1}{1 + e^{-a}}.$$
#
# Resampling units one at a time from these conditionals is **Gibbs sampling**; its stationary law is $p$.
#
# ### The Ising model
# The oldest Boltzmann machine is the Ising model of a magnet: spins $s_i = 2x_i - 1 \in \{-1, +1\}$ on an
# $L \times L$ lattice (periodic edges), coupled to their four neighbours,
#
# $$E(\mathbf s) = -J \sum_{\langle ij \rangle} s_i s_j, \qquad p(\mathbf s) \propto e^{-\beta E(\mathbf s)},
#   \quad \beta = 1/T.$$
#
# The conditional of one spin is $p(s_i = +1 \mid \text{rest}) = \sigma\big(2\beta J \sum_{j \sim i} s_j\big)$.
# Colour the lattice like a chessboard: every neighbour of a red site is black. Given the black spins, the
# red ones are therefore *independent*, and all of them can be resampled at once; then all black ones. This
# checkerboard (red-black) sweep is a **block** Gibbs step, and it is exactly the trick that makes RBMs fast.
#
# Below $T_c = 2/\ln(1+\sqrt2) \approx 2.269$ (Onsager, 1944) the spins align and the magnetisation
# $m = \frac{1}{L^2}\sum_i s_i$ stays near $\pm 1$; above it, $m$ hovers near 0. For the infinite lattice
# $|m| = (1 - \sinh(2\beta J)^{-4})^{1/8}$ below $T_c$. We run 8 chains at each of several temperatures on a
# $24 \times 24$ lattice, all temperatures in one batched tensor. Here is one sweep of
# `ebm_teach.rbm.ising_gibbs`:

# %%
print(inspect.getsource(ebm_teach.rbm._checkerboard_sweep))

# %%
L, n_chains = 24, 8
temperatures = torch.tensor([1.6, 1.8, 2.0, 2.1, 2.2, 2.27, 2.35, 2.5, 2.8, 3.2], dtype=D)
t_c = 2 / math.log(1 + math.sqrt(2))
beta = (1 / temperatures).repeat_interleave(n_chains)  # one inverse temperature per chain
n_sweeps, burn_in = 600 * SCALE, 200 * SCALE
trace = ising_gibbs(torch.ones(len(beta), L, L, dtype=D), beta, n_sweeps, generator=make_generator(0))
abs_m = trace.magnetisation[burn_in:].abs().mean(0).reshape(len(temperatures), n_chains)  # per chain
m_mean, m_err = abs_m.mean(1), abs_m.std(1) / math.sqrt(n_chains)


def onsager(t):
    return (1 - math.sinh(2 / t) ** -4) ** 0.125 if t < t_c else 0.0


# what this chapter expects <|m|> to be at each T: the mean over 8 seeds, give or take 4 sd
m_expected = [0.98, 0.957, 0.911, 0.866, 0.79, 0.69, 0.48, 0.27, 0.144, 0.097]
m_tol = [0.01, 0.01, 0.015, 0.035, 0.09, 0.17, 0.2, 0.14, 0.04, 0.015]
print(f"T_c = 2 / ln(1 + sqrt 2) = {exact(t_c, '.3f')}")
for t, m, want, tol in zip(temperatures.tolist(), m_mean.tolist(), m_expected, m_tol):
    infinite = exact(onsager(t), ".2f") if t < t_c else "0"
    print(f"T = {t:.2f}: <|m|> = {expect(m, want, tol)};  Onsager, infinite lattice: {infinite}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.4))
plot_magnetisation(temperatures, m_mean, m_err, exact=onsager, t_critical=t_c, ax=ax,
                   title=f"the Ising model on a {L}x{L} lattice: order melts at $T_c$")
plt.show()
snap = [int((temperatures - t).abs().argmin()) * n_chains for t in (1.8, 2.27, 3.2)]
plot_ising_lattices(trace.spins[snap], [f"T = {temperatures[i // n_chains]:.2f}" for i in snap])
plt.show()

# %% [markdown]
# Far from $T_c$ the finite lattice follows Onsager's curve; near $T_c$ a $24\times24$ lattice stays partly
# magnetised above $T_c$ (finite-size rounding), and the chains decorrelate slowly (critical slowing down),
# hence the larger error bars. At $T_c$ the snapshot shows clusters of every size.
#
# ### The restriction: a bipartite graph
# A Boltzmann machine with *hidden* units can model data that no pairwise model of the pixels alone can. Take
# visible units $\mathbf v \in \{0,1\}^{n_v}$ (the data), hidden units $\mathbf h \in \{0,1\}^{n_h}$, and
# allow couplings only *between* the layers:
#
# $$E(\mathbf v, \mathbf h) = -\mathbf v^\top W \mathbf h - \mathbf b^\top \mathbf v - \mathbf c^\top \mathbf h,
#   \qquad W \in \mathbb R^{n_v \times n_h}.$$
#
# This is the **restricted** Boltzmann machine. The graph is bipartite, like the chessboard. Fix $\mathbf v$:
# with $a_j = c_j + \sum_i v_i W_{ij}$,
#
# $$p(\mathbf h \mid \mathbf v) = \frac{e^{\mathbf v^\top W \mathbf h + \mathbf c^\top \mathbf h}}
#   {\sum_{\mathbf h'} e^{\mathbf v^\top W \mathbf h' + \mathbf c^\top \mathbf h'}}
#   = \frac{\prod_j e^{a_j h_j}}{\prod_j \sum_{h'_j \in\{0,1\}} e^{a_j h'_j}}
#   = \prod_j \frac{e^{a_j h_j}}{1 + e^{a_j}},$$
#
# because $\mathbf v^\top W \mathbf h + \mathbf c^\top \mathbf h = \sum_j a_j h_j$ is a sum of one term per
# hidden unit, so the exponential is a product and the sum over $\mathbf h'$ splits unit by unit. Each factor
# is a Bernoulli law: $p(h_j = 1 \mid \mathbf v) = e^{a_j}/(1+e^{a_j}) = \sigma(a_j)$. The same argument
# with the roles swapped gives $p(v_i = 1 \mid \mathbf h) = \sigma\big(b_i + \sum_j W_{ij} h_j\big)$.

# %%
plot_rbm_graph(6, 4)
plt.show()
print(inspect.getsource(BernoulliRBM.p_h_given_v))
print(inspect.getsource(BernoulliRBM.p_v_given_h))


# %% [markdown]
# Let us check the factorised conditional against the definition, $p(\mathbf h\mid\mathbf v) =
# p(\mathbf v, \mathbf h)/\sum_{\mathbf h'} p(\mathbf v, \mathbf h')$, on a tiny RBM where every joint state
# can be listed. The helpers below list all binary states, and give the probability of each state of a layer
# of independent units with logits $\mathbf a$ (so $p_i = \sigma(a_i)$):
# $\prod_i p_i^{s_i}(1-p_i)^{1-s_i} = \exp\big(\mathbf a^\top \mathbf s - \sum_i \operatorname{softplus}(a_i)\big)$.
# We use them for every exact calculation that follows.

# %%
def all_states(n):
    """All 2^n binary vectors as rows, (2^n, n)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=D)


def layer_law(logits, states):
    """logits: (a, n) -> (a, S): the probability of each of the S rows of states, units independent."""
    return torch.exp(logits @ states.T - torch.nn.functional.softplus(logits).sum(1, keepdim=True))


fixed = torch.Generator().manual_seed(1)  # one fixed example model, whatever the seeds of the experiments
tiny = BernoulliRBM(6, 4, generator=fixed, dtype=D, init_std=1.5)
tiny.b, tiny.c = 0.5 * torch.randn(6, generator=fixed, dtype=D), 0.5 * torch.randn(4, generator=fixed, dtype=D)
vs, hs = all_states(6), all_states(4)
joint = torch.exp(-torch.stack([tiny.energy(vs, h.expand(len(vs), 4)) for h in hs], 1))  # (64, 16), unnormalised
p_h_given_v_exact = joint / joint.sum(1, keepdim=True)
gap = (layer_law(torch.logit(tiny.p_h_given_v(vs)), hs) - p_h_given_v_exact).abs().max()
print(claim(gap < 1e-12, "p(h|v) as a product of sigmoids matches the enumerated joint to 1e-12"))

# %% [markdown]
# ## 2. Block Gibbs sampling and the free energy
#
# Because each layer is conditionally independent given the other, one Gibbs step updates a whole layer:
# $\mathbf h \sim p(\mathbf h \mid \mathbf v)$, then $\mathbf v \sim p(\mathbf v \mid \mathbf h)$ (two
# matrix products, two sigmoids, two comparisons with uniform numbers). The chain on $\mathbf v$ alone has
# $p(\mathbf v) = \sum_{\mathbf h} p(\mathbf v, \mathbf h)$ as its stationary law.
#
# That marginal has a closed form too. Summing $e^{-E}$ over $\mathbf h$ factorises exactly like the
# conditional did:
#
# $$\sum_{\mathbf h} e^{-E(\mathbf v,\mathbf h)} = e^{\mathbf b^\top \mathbf v} \prod_j \left(1 + e^{a_j}\right)
#   = e^{-F(\mathbf v)}, \qquad
#   F(\mathbf v) = -\mathbf b^\top \mathbf v - \sum_j \operatorname{softplus}\!\Big(c_j + \sum_i v_i W_{ij}\Big),$$
#
# the **free energy**, with $\operatorname{softplus}(a) = \log(1 + e^a)$. So $p(\mathbf v) = e^{-F(\mathbf v)}/Z$:
# the RBM is an EBM on $\mathbf v$ with energy $F$. The same sum over the other layer gives
# $Z = \sum_{\mathbf h} e^{\mathbf c^\top \mathbf h} \prod_i (1 + e^{b_i + (W\mathbf h)_i})$: a sum over
# $2^{n_h}$ terms only. With 16 hidden units that is 65,536 terms, whatever the number of pixels.

# %%
print(inspect.getsource(BernoulliRBM._free_energy))
print(inspect.getsource(BernoulliRBM.log_partition_exact).split('"""')[-1])

# %%
log_z_hidden = tiny.log_partition_exact()  # 2^4 hidden states
log_z_visible = float(torch.logsumexp(-tiny.free_energy(vs), 0))  # 2^6 visible states
log_z_both = float(torch.log(joint.sum()))  # all 2^10 joint states
print(f"log Z by summing over h: {exact(log_z_hidden, '.3f')}, over v: {exact(log_z_visible, '.3f')}, "
      f"over (v, h): {exact(log_z_both, '.3f')}")

# %% [markdown]
# Now block Gibbs sampling of the tiny RBM: 4,000 chains, all started at $\mathbf v = \mathbf 0$. After $t$
# steps the chains' states have a law $p_t$, which we can compute exactly here: one Gibbs step is the
# $64\times64$ transition matrix $T(\mathbf v, \mathbf v') = \sum_{\mathbf h} p(\mathbf h\mid\mathbf v)\,
# p(\mathbf v'\mid\mathbf h)$, and $p_t = p_0 T^t$. We measure the total variation distance
# $\tfrac12\sum_{\mathbf v} |p_t(\mathbf v) - p(\mathbf v)|$ exactly, and for the histogram $\hat p_t$ of the
# 4,000 chains. Even perfect samples leave a small TV, because 4,000 draws spread over 64 states do not
# reproduce $p$ exactly; 4,000 exact draws (`torch.multinomial` on the enumerated $p(\mathbf v)$) show how small.
#
# A number that comes from random draws or from training is printed beside the range this book expects it
# in, such as `0.05 (expected 0.05 ± 0.02)`: the mean over 8 runs with different seeds, plus or minus about
# 4 standard deviations. Your machine may print other last digits; the number should still fall inside the
# range, and the notebook stops with an error if it does not.

# %%
p_v_exact = torch.exp(-tiny.free_energy(vs) - log_z_hidden)
weights = 2.0 ** torch.arange(5, -1, -1, dtype=D)


def empirical(v):
    return torch.bincount((v @ weights).long(), minlength=64).to(D) / len(v)


n_gibbs = 4000 * SCALE
g = make_generator(2)
v = torch.zeros(n_gibbs, 6, dtype=D)
transition = layer_law(vs @ tiny.W + tiny.c, hs) @ layer_law(hs @ tiny.W.T + tiny.b, vs)  # T(v, v')
p_t = torch.zeros(64, dtype=D)
p_t[0] = 1.0  # every chain starts at v = 0
hist, t_done = {}, 0
tv_expected = {1: (0.46, 0.045), 3: (0.10, 0.045), 10: (0.026, 0.015), 30: (0.026, 0.016),
               "exact draws": (0.024, 0.014)}  # (mean, 4 sd) over 8 seeds


def tv_text(tv):
    """An exact TV distance, to 3 decimals or, once tiny, to 2 significant digits."""
    return exact(tv, ".3f") if tv >= 1e-3 else exact(tv, ".1e", rel=1e-3) if tv >= 1e-9 else "below 1e-9"


for t in (1, 3, 10, 30):
    v = tiny.gibbs(v, n_steps=t - t_done, generator=g)
    p_t = p_t @ torch.linalg.matrix_power(transition, t - t_done)
    t_done = t
    hist[t] = empirical(v)
    tv_chains = 0.5 * float((hist[t] - p_v_exact).abs().sum())
    print(f"after {t:2d} Gibbs steps: TV(p_t, p) = {tv_text(0.5 * float((p_t - p_v_exact).abs().sum()))}; "
          f"of the chains' histogram {expect(tv_chains, *tv_expected[t])}")
exact_draws = vs[torch.multinomial(p_v_exact, n_gibbs, replacement=True, generator=g)]
tv = 0.5 * float((empirical(exact_draws) - p_v_exact).abs().sum())
print(f"{n_gibbs:,} exact draws: TV of their histogram {expect(tv, *tv_expected['exact draws'])}")
plot_state_distribution(p_v_exact, {"after 1 step": hist[1], "after 30 steps": hist[30]},
                        title="block Gibbs sampling forgets its start and reaches p(v)")
plt.show()

# %% [markdown]
# ## 3. Contrastive divergence
#
# ### The gradient we would like
# For any EBM, $\nabla_\theta \log p(\mathbf v) = -\nabla_\theta F(\mathbf v) + \mathbb E_{p}[\nabla_\theta F]$
# (chapter 1). For the RBM, $-\partial F/\partial W_{ij} = v_i\, \sigma(a_j)$, so averaged over data,
#
# $$\frac{\partial \langle \log p \rangle_{\text{data}}}{\partial W_{ij}}
#   = \big\langle v_i\, p(h_j{=}1\mid\mathbf v) \big\rangle_{\text{data}}
#   - \big\langle v_i\, p(h_j{=}1\mid\mathbf v) \big\rangle_{\text{model}},
#   \qquad \frac{\partial}{\partial b_i}: \langle v_i\rangle_{\text{data}} - \langle v_i\rangle_{\text{model}},
#   \qquad \frac{\partial}{\partial c_j}: \langle \sigma(a_j)\rangle_{\text{data}} - \langle \sigma(a_j)\rangle_{\text{model}}.$$
#
# The positive phase is exact and cheap; the negative (model) phase is an average over $p(\mathbf v)$, which
# needs samples from the model.
#
# ### CD-$k$ (Hinton, 2002)
# Start one Gibbs chain *at each data vector*, run it $k$ steps, and use where it lands as the model sample:
#
# 1. $\mathbf v_0$ = a minibatch of data; $\mathbf p_0 = p(\mathbf h \mid \mathbf v_0)$ (positive phase);
# 2. for $t = 1..k$: $\mathbf h \sim p(\mathbf h \mid \mathbf v_{t-1})$, $\mathbf v_t \sim p(\mathbf v \mid \mathbf h)$;
# 3. $\Delta W = \varepsilon\,(\mathbf v_0^\top \mathbf p_0 - \mathbf v_k^\top p(\mathbf h \mid \mathbf v_k)) / n$,
#    and likewise for $\mathbf b$ and $\mathbf c$.
#
# **Why start at the data?** If the model already equals the data distribution, a chain started at the data
# is already in equilibrium, so the expected update is zero: the right answer is a fixed point, whatever $k$.
# When the model is wrong, a few steps away from the data already show which way it drifts (towards the
# model's own favourite states), and that drift is what the update pushes against. A chain started from noise
# would need many steps before its samples said anything about the model near the data.
#
# **What does it optimise?** Let $p_0$ be the data distribution, $p_k$ the law of $\mathbf v_k$ and $p_\infty$
# the model. Maximum likelihood minimises $\mathrm{KL}(p_0 \,\|\, p_\infty)$. CD-$k$ follows (almost) the
# gradient of
#
# $$\mathrm{CD}_k = \mathrm{KL}(p_0 \,\|\, p_\infty) - \mathrm{KL}(p_k \,\|\, p_\infty) \;\ge\; 0,$$
#
# non-negative because a Markov chain can only move closer to its stationary law, and zero when
# $p_0 = p_\infty$. The "almost" is a third term, from $p_k$ depending on $\theta$, that CD drops. The result
# is **biased**: the points where the expected CD-$k$ update vanishes are in general not the maximum of the
# likelihood (Carreira-Perpiñán and Hinton, 2005). The bias shrinks as $k$ grows (as $k\to\infty$, $p_k \to
# p_\infty$ and the CD update becomes the likelihood gradient), and grows with how slowly the chain mixes.
#
# Here is the package's CD-$k$ gradient; `fit` runs the same computation in a faster loop.

# %%
print(inspect.getsource(BernoulliRBM.cd_gradient).split('"""')[-1])


# %% [markdown]
# ### The bias, made exact
# On a tiny problem we can remove every source of noise. The data are the 14 "bars and stripes" images of
# $3\times3$ pixels (all rows equal, or all columns equal), so the best possible mean log-likelihood is
# $\log(1/14) = -2.639$. An RBM with 6 hidden units has only $2^9 = 512$ visible states, so we can compute the
# *expected* update of each method exactly: the law of $\mathbf v_k$ is $p_k = p_0 T^k$, with
# $T(\mathbf v, \mathbf v') = \sum_{\mathbf h} p(\mathbf h\mid\mathbf v)\, p(\mathbf v'\mid\mathbf h)$ the
# Gibbs transition matrix, and the model law $p_\infty$ comes from the free energy. We then run deterministic
# gradient ascent with the exact likelihood gradient (ML) and with the exact expected CD-1, CD-3 and CD-10
# updates, from the same start. (Plain tensors $W, \mathbf b, \mathbf c$ here: this is analysis, not training
# code, and it needs none of the class's input checks.)

# %%
def bars_and_stripes(rows, cols):
    images = {tuple(torch.tensor(bits, dtype=D)[:, None].expand(rows, cols).flatten().tolist())
              for bits in itertools.product([0, 1], repeat=rows)}
    images |= {tuple(torch.tensor(bits, dtype=D)[None, :].expand(rows, cols).flatten().tolist())
               for bits in itertools.product([0, 1], repeat=cols)}
    return torch.tensor(sorted(images), dtype=D)


bas = bars_and_stripes(3, 3)
vs9, hs6 = all_states(9), all_states(6)
p0 = torch.zeros(len(vs9), dtype=D)
p0[(bas @ 2.0 ** torch.arange(8, -1, -1, dtype=D)).long()] = 1 / len(bas)


def model_law(W, b, c):
    """p_inf(v) = exp(-F(v)) / Z over all 512 visible states."""
    return torch.softmax(vs9 @ b + torch.nn.functional.softplus(vs9 @ W + c).sum(1), 0)


def law_after_k_steps(W, b, c, k):
    """p_k = p_0 T^k, applied as (p A) B with A = p(h | v) (512 x 64) and B = p(v | h) (64 x 512)."""
    A, B = layer_law(vs9 @ W + c, hs6), layer_law(hs6 @ W.T + b, vs9)
    p = p0
    for _ in range(k):
        p = (p @ A) @ B
    return p


def expected_update(W, b, c, p_negative):
    """The positive phase under p_0 minus the negative phase under p_negative, both exact."""
    q, ph = p0 - p_negative, torch.sigmoid(vs9 @ W + c)
    return (vs9 * q[:, None]).T @ ph, q @ vs9, q @ ph


def mean_log_lik(W, b, c):
    return float(p0[p0 > 0] @ torch.log(model_law(W, b, c)[p0 > 0]))


n_iter, lr = 1600 * SCALE, 0.5
W_start = 0.1 * torch.randn(9, 6, generator=make_generator(0), dtype=D)
exact_runs = {}
for name, k in [("ML (exact gradient)", None), ("CD-1", 1), ("CD-3", 3), ("CD-10", 10)]:
    W, b, c = W_start.clone(), torch.zeros(9, dtype=D), torch.zeros(6, dtype=D)
    curve = []
    for it in range(1, n_iter + 1):
        p_neg = model_law(W, b, c) if k is None else law_after_k_steps(W, b, c, k)
        dW, db, dc = expected_update(W, b, c, p_neg)
        W, b, c = W + lr * dW, b + lr * db, c + lr * dc
        if it % 20 == 0:
            curve.append((it, mean_log_lik(W, b, c)))
    exact_runs[name] = ((W, b, c), torch.tensor(curve))
    print(f"{name:20s} mean log-likelihood after {n_iter} steps: {exact(curve[-1][1], '.3f', rel=1e-7)}  "
          "(best possible -2.639)")

# %%
plot_curves({name: (c[:, 0], c[:, 1]) for name, (_, c) in exact_runs.items()}, xlabel="gradient step",
            ylabel="mean log-likelihood (nats)", hline=-math.log(14), hline_label="log(1/14), the optimum",
            title="exact expected updates on bars and stripes: CD-1 settles lower")
plt.ylim(-4, -2.5)
plt.show()
cd1 = exact_runs["CD-1"][0]
p1, pinf = law_after_k_steps(*cd1, 1), model_law(*cd1)
kl0 = -math.log(14) - mean_log_lik(*cd1)  # KL(p0 || p_inf) = -H(p0) - <log p_inf>_p0, H(p0) = log 14
kl1 = float((p1 * (torch.log(p1) - torch.log(pinf))).sum())


def norm(update):
    return math.sqrt(sum(float((t**2).sum()) for t in update))


print(f"at the CD-1 solution: |expected CD-1 update| = {exact(norm(expected_update(*cd1, p1)), '.3f', rel=1e-7)}, "
      f"|likelihood gradient| = {exact(norm(expected_update(*cd1, pinf)), '.3f', rel=1e-7)}")
print(f"CD_1 = KL(p0||p_inf) - KL(p1||p_inf) = {exact(kl0, '.3f', rel=1e-7)} - {exact(kl1, '.3f', rel=1e-7)} "
      f"= {exact(kl0 - kl1, '.3f', rel=1e-7)}")

# %% [markdown]
# The four runs use the same start and no randomness at all, yet CD-1 levels off well below maximum
# likelihood: at its resting point its own expected update is nearly zero while the likelihood gradient is
# not. CD-3 is closer and CD-10 is almost indistinguishable from ML here. The bias is a property of the
# estimator, not of noise, and it shrinks with $k$.
#
# ## 4. An RBM for binarized digits
#
# The 1,797 $8\times 8$ digits of scikit-learn, binarized at half intensity, split 80/20 into training and
# test images. With 16 hidden units $\log Z$ is a sum over $2^{16} = 65{,}536$ terms, so we can track the
# *exact* log-likelihood while training. Two baselines: the uniform distribution over $2^{64}$ images scores
# $-64\log 2 = -44.4$ nats, and independent pixels (each with its training frequency) score as printed below.
# We train with CD-1, minibatches of 20 and a step size annealed linearly from 0.1 to 0.

# %%
x = load_digits(binarize=True, device=device)
x_train, x_test = train_test_split(x, test_fraction=0.2, seed=0)
freq = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
independent_ll = float((x_test * freq.log() + (1 - x_test) * (1 - freq).log()).sum(1).mean())
print(f"{len(x_train)} training and {len(x_test)} test images of {x.shape[1]} pixels, "
      f"{exact(x_train.mean(), '.3f', rel=1e-6)} of the pixels on")
print(f"uniform model: {-64 * math.log(2):.1f} nats; independent pixels: {exact(independent_ll, '.2f', rel=1e-6)} "
      "nats on the test set")
image_grid(x_train[:20], n_cols=20, image_shape=(8, 8), title="binarized training digits")
plt.show()

# %%
n_hidden, batch_size, n_epochs = 16, 20, 40 * SCALE


def anneal(epoch):
    return 0.1 * (1 - (epoch - 1) / n_epochs)


def exact_log_lik(epoch, rbm):
    """The callback fit calls after every epoch: exact train and test log-likelihood, every 4th epoch."""
    if epoch % 4:
        return None
    log_z = rbm.log_partition_exact()
    return {"at": epoch, "train": rbm.log_likelihood_exact(x_train, log_z), "test": rbm.log_likelihood_exact(x_test, log_z)}


rbm = BernoulliRBM(64, n_hidden, device=device, seed=0)
history = rbm.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=1,
                  generator=make_generator(1, device), callback=exact_log_lik)
print(f"CD-1, {n_epochs} epochs: exact log-likelihood train {expect(history['train'][-1], -19.1, 0.5)} nats,")
print(f"                        test {expect(history['test'][-1], -19.4, 0.8)} nats")
plot_curves({"train": (history["at"], history["train"]), "test": (history["at"], history["test"])},
            ylabel="exact log-likelihood (nats)", hline=independent_ll, hline_label="independent pixels (test)",
            title="CD-1 on binarized digits, measured exactly")
plt.show()

# %% [markdown]
# Train and test curves lie close together: 16 hidden units are too few to overfit 1,438 images, and they
# are already far better than independent pixels. What has the model learned? Each hidden unit has a filter,
# the column $W_{:,j}$ that it compares the image with; reconstructions go up to the hidden layer and back.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 2.2), gridspec_kw={"width_ratios": [1, 1.25]})
plot_rbm_filters(rbm.W, n_cols=8, ax=axes[0], title="the 16 filters W[:, j] (red +, blue -)")
recon = rbm.p_v_given_h(rbm.sample_h_given_v(x_test[:10], generator=make_generator(3, device)))
image_grid(torch.cat([x_test[:10], recon]), n_cols=10, image_shape=(8, 8), ax=axes[1],
           title="test digits (top) and p(v | h), h ~ p(h | v) (bottom)")
plt.show()

# %% [markdown]
# Samples from the model come from long Gibbs chains. Below, 20 chains start from uniform noise and run 1,000
# steps (we show $p(\mathbf v\mid\mathbf h)$ at the last step, which is less noisy than a binary sample);
# and one chain started at a test digit is shown at steps 0, 1, 2, 5, ..., 1000, as it wanders away from it.

# %%
g = make_generator(4, device)
noise = (torch.rand(20, 64, generator=g, device=device) < 0.5).float()
v_long = rbm.gibbs(noise, n_steps=1000 * SCALE, generator=g)
image_grid(rbm.p_v_given_h(rbm.sample_h_given_v(v_long, generator=g)), n_cols=20, image_shape=(8, 8),
           title="after 1,000 Gibbs steps from noise")
plt.show()
snapshots, v_chain, done = [], x_test[:1].clone(), 0
for step in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
    v_chain = rbm.gibbs(v_chain, n_steps=step - done, generator=g)
    done = step
    snapshots.append(rbm.p_v_given_h(rbm.sample_h_given_v(v_chain, generator=g)))
image_grid(torch.cat(snapshots), n_cols=11, image_shape=(8, 8),
           title="one chain from a test digit: steps 0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000")
plt.show()
print(f"mean number of pixels on: test digits {exact(x_test.sum(1).mean(), '.1f', rel=1e-6)}, "
      f"long-chain samples {expect(v_long.sum(1).mean(), 19.0, 1.5)}")

# %% [markdown]
# The samples are digit-like strokes, some recognisable, some blends: 16 binary hidden units can describe at
# most $2^{16}$ prototypes, and the chain moves between them, which is what a model with many modes should do.
#
# ## 5. CD-1, CD-5 and CD-10 at equal epochs
#
# Same initial weights, same data order, same annealed step size; only $k$ differs (the CD-1 run is the one
# above). Each Gibbs step costs two matrix products per minibatch, so an epoch of CD-10 takes several times
# as long as one of CD-1 (the positive phase and the update are shared; the timings are printed below).

# %%
runs = {"CD-1": (rbm, history)}
for k in (5, 10):
    model = BernoulliRBM(64, n_hidden, device=device, seed=0)
    runs[f"CD-{k}"] = (model, model.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=k,
                                        generator=make_generator(1, device), callback=exact_log_lik))
cdk_expected = {"CD-1": (-19.4, 0.8), "CD-5": (-19.3, 0.75), "CD-10": (-19.3, 0.75)}  # 8 seeds
for name, (model, h) in runs.items():
    print(f"{name:5s}: exact test log-likelihood {expect(h['test'][-1], *cdk_expected[name])} nats")
plot_curves({name: (h["at"], h["test"]) for name, (_, h) in runs.items()},
            ylabel="exact test log-likelihood (nats)", title="larger k, same number of epochs")
plt.show()

# %% tags=["nbval-ignore-output"]
for name, (model, h) in runs.items():
    print(f"{name:5s}: {h['seconds'][-1]:.2f} s of training for {n_epochs} epochs, "
          f"final test log-likelihood {h['test'][-1]:.3f} nats")

# %% [markdown]
# On these digits the three curves nearly coincide and end within a tenth of a nat of each other (the cell
# above prints three decimals; beyond the first they vary from machine to machine, like the timings). With 16
# hidden units and moderate weights one Gibbs step already moves the chain most of the way, so CD-1's bias is
# small here, and CD-1 costs a fraction of CD-10. The bars-and-stripes example shows the other regime:
# strongly coupled units, slow mixing, and a bias CD-1 cannot hide. How large the bias is depends on how fast
# the model's chain mixes, which is why we measure the likelihood instead of assuming.
#
# ## 6. Scikit-learn's `BernoulliRBM`, and what the proxies miss
#
# Scikit-learn ships an RBM trained by **persistent** contrastive divergence (PCD, Tieleman 2008; chapter 3):
# the negative chains are not restarted at the data but continue from one minibatch to the next, one Gibbs
# step each. It stores $W^\top$ as `components_` ($n_h \times n_v$), $\mathbf b$ as `intercept_visible_` and
# $\mathbf c$ as `intercept_hidden_`, and reports the pseudo-likelihood (estimated from one random pixel per
# image), never the likelihood. We load its weights into our class after every third epoch (its `fit` is a
# loop of `partial_fit` over minibatches, so we run that loop ourselves) and compute three numbers: the exact
# log-likelihood, the exact pseudo-likelihood and the reconstruction error. Next to it: our PCD-1 and our
# CD-1 with the same settings (16 hidden units, step size 0.05, minibatches of 10, 30 epochs, no shuffling,
# as many persistent chains as the minibatch size).
#
# The two numbers often reported instead of the likelihood are:
#
# - the **pseudo-likelihood** $\sum_i \log p(v_i \mid \mathbf v_{-i})$, which needs no $Z$ because each
#   factor is a ratio of two probabilities of the model. It is a different objective: a model can predict
#   every pixel well from the other 63 and still put much of its probability on the wrong images;
# - the **reconstruction error** of one up-down pass $\mathbf v \to p(\mathbf h\mid\mathbf v) \to
#   p(\mathbf v\mid\mathbf h)$ from the data. The model's own samples, the negative phase and $Z$ play no part
#   in it.

# %%
from sklearn.neural_network import BernoulliRBM as SklearnRBM

sk_epochs, sk_batch, sk_step = 30 * SCALE, 10, 0.05
x_np = x_train.cpu().double().numpy()


def three_numbers(rbm):
    log_z = rbm.log_partition_exact()
    return {"log-likelihood": rbm.log_likelihood_exact(x_test, log_z),
            "pseudo-log-likelihood": float(rbm.pseudo_log_likelihood(x_test).mean()),
            "reconstruction error": rbm.reconstruction_error(x_test)}


def every_third_epoch(epoch, rbm):
    return None if epoch % 3 else {"at": epoch, **three_numbers(rbm)}


sk = SklearnRBM(n_components=n_hidden, learning_rate=sk_step, batch_size=sk_batch,
                random_state=torch.initial_seed())  # the seed of the settings cell
tracks = {"sklearn PCD-1": {}}
for epoch in range(1, sk_epochs + 1):
    for start in range(0, len(x_np), sk_batch):
        sk.partial_fit(x_np[start:start + sk_batch])
    sk_rbm = BernoulliRBM.from_arrays(sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_, device=device)
    for key, value in (every_third_epoch(epoch, sk_rbm) or {}).items():
        tracks["sklearn PCD-1"].setdefault(key, []).append(value)
for name, persistent in [("ebm_teach PCD-1", True), ("ebm_teach CD-1", False)]:
    model = BernoulliRBM(64, n_hidden, device=device, seed=0)
    tracks[name] = model.fit(x_train, n_epochs=sk_epochs, batch_size=sk_batch, step_size=sk_step, k=1,
                             persistent=persistent, shuffle=False, generator=make_generator(5, device),
                             callback=every_third_epoch)
sk_expected = {  # (mean, tolerance) over 8 seeds of: log-likelihood, pseudo-log-likelihood, recon. error
    "sklearn PCD-1": ((-20.3, 3.0), (-16.7, 0.9), (3.95, 0.4)),
    "ebm_teach PCD-1": ((-20.0, 3.0), (-16.6, 0.8), (3.94, 0.3)),
    "ebm_teach CD-1": ((-19.0, 0.85), (-16.5, 0.85), (3.85, 0.3))}
for name, t in tracks.items():
    ll, pll, rec = sk_expected[name]
    print(f"{name}, after {sk_epochs} epochs: log-likelihood {expect(t['log-likelihood'][-1], *ll)}")
    print(f"    pseudo-log-likelihood {expect(t['pseudo-log-likelihood'][-1], *pll)}, "
          f"reconstruction error {expect(t['reconstruction error'][-1], *rec)}")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
for ax, key in zip(axes, ["log-likelihood", "pseudo-log-likelihood", "reconstruction error"]):
    plot_curves({name: (t["at"], t[key]) for name, t in tracks.items()}, ax=ax,
                ylabel=key + (" (nats)" if "log" in key else ""), title=key + (" (exact)" if "log" in key else ""))
plt.tight_layout()
plt.show()

# %% [markdown]
# Three things to read off.
#
# - Our PCD-1 and scikit-learn's behave alike, as they should: it is the same algorithm (scikit-learn also
#   scales the last, shorter minibatch's negative phase by the wrong count, a small difference).
# - With a constant step size, PCD's likelihood does not settle: the persistent chains and the weights chase
#   each other, and the exact log-likelihood jumps by about a nat from one check to the next. CD-1 with the
#   same settings climbs steadily and ends higher. (Chapter 3 anneals the step size, and PCD settles.)
# - The pseudo-likelihood and the reconstruction error of the PCD models keep improving smoothly, almost as
#   fast as CD-1's, while their likelihood stalls. Neither proxy sees where the model puts its probability
#   mass, which is exactly what the likelihood measures. When $\log Z$ can be computed, report it.

# %% tags=["nbval-ignore-output"]
import time

start = time.perf_counter()
SklearnRBM(n_components=n_hidden, learning_rate=sk_step, batch_size=sk_batch, n_iter=sk_epochs,
           random_state=0).fit(x_train.cpu().numpy())  # float32, scikit-learn's faster setting
sk_seconds = time.perf_counter() - start
start = time.perf_counter()
BernoulliRBM(64, n_hidden, device=device, seed=0).fit(x_train, n_epochs=sk_epochs, batch_size=sk_batch,
                                                      step_size=sk_step, persistent=True, shuffle=False)
print(f"training time for {sk_epochs} epochs of PCD-1: sklearn {sk_seconds:.2f} s, "
      f"ebm_teach {time.perf_counter() - start:.2f} s (benchmarks/bench_rbm.py compares them carefully)")

# %% [markdown]
# ## Summary
#
# - A Boltzmann machine is an EBM on binary units; the Ising model is one on a lattice. On a bipartite graph
#   (the chessboard, or the two layers of an RBM) a whole colour or layer can be Gibbs-sampled at once.
# - In an RBM, $p(h_j{=}1\mid\mathbf v) = \sigma(c_j + \sum_i v_i W_{ij})$ and
#   $p(v_i{=}1\mid\mathbf h) = \sigma(b_i + \sum_j W_{ij} h_j)$; summing out $\mathbf h$ gives the free
#   energy $F(\mathbf v)$ and $p(\mathbf v) = e^{-F(\mathbf v)}/Z$.
# - $\log Z$ is exact by enumerating the smaller layer: $2^{\min(n_v,n_h)}$ terms.
# - CD-$k$ starts the negative chains at the data and runs $k$ steps. It follows
#   $\mathrm{KL}(p_0\|p_\infty) - \mathrm{KL}(p_k\|p_\infty)$ (almost), and its fixed points are biased away
#   from maximum likelihood, by an amount that depends on mixing and shrinks with $k$.
# - Pseudo-likelihood and reconstruction error are not the likelihood; when $\log Z$ is exact, use it.
#
# **Next:** chapter 3 keeps the negative chains alive between updates (persistent CD) and estimates $\log Z$
# when enumeration is impossible, with annealed importance sampling, checked against the exact values of this
# chapter.
