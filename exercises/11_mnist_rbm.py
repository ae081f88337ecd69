# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises for Chapter 11: a published likelihood, bracketed
#
# Three functions to write for an RBM with energy
# $E(\mathbf v, \mathbf h) = -\mathbf v^\top W \mathbf h - \mathbf b^\top \mathbf v - \mathbf c^\top \mathbf h$,
# $W$ of shape $(n_v, n_h)$: exact samples (11.1), the weights of reverse AIS (11.2), and a derivation of what
# the gap between forward and reverse AIS measures (11.3), which the grader checks against the exact answer
# for a small model. Write them with plain torch operations (not with `ebm_teach.rbm` or `ebm_teach.evaluate`),
# in float64. Replace every `raise NotImplementedError()` with your code, then run the **self-check** cell
# below the exercise. The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 11_mnist_rbm.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 11_mnist_rbm
import math

import torch
import torch.nn.functional as F

D = torch.float64  # the dtype of every self-check

# %% [markdown]
# ## Exercise 11.1: exact samples of an RBM with a small hidden layer (3 points)
#
# Summing out the visible units gives the hidden marginal in closed form,
#
# $$p(\mathbf h) = \frac1Z \exp\Big(\mathbf c^\top\mathbf h + \sum_i \operatorname{softplus}\big(b_i + (W\mathbf h)_i\big)\Big),$$
#
# so with $n_h$ small enough to list all $2^{n_h}$ hidden states, an exact sample of $(\mathbf v, \mathbf h)$
# takes two steps: draw $\mathbf h$ from this categorical distribution, then $\mathbf v \sim p(\mathbf v\mid
# \mathbf h)$, each $v_i = 1$ with probability $\sigma(b_i + (W\mathbf h)_i)$. No Markov chain, no burn-in.
# Return `n` independent samples. Use `torch.multinomial(probs, n, replacement=True, generator=generator)` for
# the hidden states and `torch.rand(..., generator=generator) < p` (or `torch.bernoulli(p, generator=...)`)
# for the visible units; compute the log-probabilities in float64 and normalise them with `torch.softmax`.

# %%
def rbm_exact_samples(W, b, c, n, generator):
    """n exact samples (v, h) of the RBM (W, b, c), by enumerating the 2^n_h hidden states.

    W: (n_v, n_h); b: (n_v,); c: (n_h,), float64, n_h <= 16; n >= 1; generator: a torch.Generator.
    Returns v: (n, n_v) and h: (n, n_h), float64 tensors of 0/1.
    """
    n_h = W.shape[1]
    if n_h > 16:
        raise ValueError(f"this enumerates 2^n_h hidden states; n_h = {n_h} is too many (at most 16).")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with W = 0 the layers are independent: h_j is 1 with probability sigma(c_j) and v_i with
# sigma(b_i). Over 20,000 samples the frequencies land within 0.02 of those.
b_self, c_self = torch.tensor([2.0, -1.0, 0.0], dtype=D), torch.tensor([-2.0, 1.0], dtype=D)
v, h = rbm_exact_samples(torch.zeros(3, 2, dtype=D), b_self, c_self, 20_000, torch.Generator().manual_seed(0))
print("v frequencies:", [round(x, 3) for x in v.mean(0).tolist()], "expected",
      [round(x, 3) for x in torch.sigmoid(b_self).tolist()])
print("h frequencies:", [round(x, 3) for x in h.mean(0).tolist()], "expected",
      [round(x, 3) for x in torch.sigmoid(c_self).tolist()])
assert v.shape == (20_000, 3) and h.shape == (20_000, 2)
assert (v.mean(0) - torch.sigmoid(b_self)).abs().max() < 0.02, "not yet right: v ~ sigma(b + W h)"
assert (h.mean(0) - torch.sigmoid(c_self)).abs().max() < 0.02, "not yet right: log p(h) = c^T h + ..."


# %% [markdown]
# ## Exercise 11.2: the weights of reverse AIS (3 points)
#
# AIS anneals from the base RBM ($W = 0$, visible biases $\mathbf b_A$; $\beta = 0$) to the RBM ($\beta = 1$)
# through the RBMs with
#
# $$\log p^*_\beta(\mathbf v) = -F_\beta(\mathbf v) = (1-\beta)\,\mathbf b_A^\top\mathbf v + \beta\,\mathbf b^\top\mathbf v
#   + \sum_j \operatorname{softplus}\big(\beta\,(c_j + (\mathbf v^\top W)_j)\big).$$
#
# Reverse AIS walks the same path the other way. A chain starts at $\mathbf v_K$ (an exact sample of the RBM)
# and, for $k = K, K-1, \dots, 1$:
#
# 1. adds $\log p^*_{\beta_{k-1}}(\mathbf v_k) - \log p^*_{\beta_k}(\mathbf v_k)$ to its log-weight $\log r$;
# 2. unless $k = 1$, moves to $\mathbf v_{k-1}$ by one block Gibbs step **at $\beta_{k-1}$** (the reversal of the
#    forward chain's step $T_{k-1}$; block Gibbs is reversible, so it is the same kind of step):
#    $h_j = [u < \sigma(\beta_{k-1}(c_j + (\mathbf v^\top W)_j))]$, then
#    $v_i = [u < \sigma((1-\beta_{k-1}) b_{A,i} + \beta_{k-1}(b_i + (W\mathbf h)_i))]$.
#
# The chapter shows that then $\mathbb E[r] = Z_A/Z$. The uniform numbers are given, so that your answer is
# reproducible: the $t$-th Gibbs step ($t = 0, 1, \dots, K-2$, i.e. the one that produces $\mathbf v_{K-1-t}$)
# uses `u_h[t]` and `u_v[t]`. Work in float64 with `F.softplus`.

# %%
def reverse_ais_log_weights(W, b, c, b_A, betas, v_K, u_h, u_v):
    """The log-weights log r of reverse AIS chains started at the rows of v_K.

    W: (n_v, n_h); b, b_A: (n_v,); c: (n_h,), float64; betas: list of K + 1 floats, 0 = beta_0 < ... < beta_K = 1;
    v_K: (M, n_v) in {0, 1}; u_h: (K - 1, M, n_h) and u_v: (K - 1, M, n_v) uniform numbers in [0, 1).
    Returns log r: (M,) float64.
    """
    K, M = len(betas) - 1, v_K.shape[0]
    if u_h.shape != (K - 1, M, W.shape[1]) or u_v.shape != (K - 1, M, W.shape[0]):
        raise ValueError(f"u_h must be (K - 1, M, n_h) = {(K - 1, M, W.shape[1])} and u_v (K - 1, M, n_v) = "
                         f"{(K - 1, M, W.shape[0])}; got {tuple(u_h.shape)} and {tuple(u_v.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with W = 0 and b_A = b, log p*_beta(v) = b^T v + sum_j softplus(beta c_j): the visible terms
# cancel at every step, and the increments add up to sum_j [softplus(0) - softplus(c_j)] for every chain,
# whatever the path: n_h log 2 - sum_j softplus(c_j) (here 2 log 2 - softplus(1) - softplus(-3) = 0.0244).
g = torch.Generator().manual_seed(0)
b_self, c_self = torch.tensor([0.5, -1.0, 2.0], dtype=D), torch.tensor([1.0, -3.0], dtype=D)
betas_self = [0.0, 0.3, 0.7, 1.0]
value = reverse_ais_log_weights(torch.zeros(3, 2, dtype=D), b_self, c_self, b_self, betas_self,
                                torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=D),
                                torch.rand(2, 2, 2, generator=g, dtype=D), torch.rand(2, 2, 3, generator=g, dtype=D))
expected = 2 * math.log(2) - float(F.softplus(c_self).sum())
print(f"log r = {value.tolist()}, expected {expected:.6f} for both chains")
assert torch.allclose(value, torch.full((2,), expected, dtype=D), atol=1e-12), \
    "not yet right: add log p*_(k-1)(v_k) - log p*_k(v_k), walking from beta_K = 1 down to beta_0 = 0"


# %% [markdown]
# ## Exercise 11.3: what the gap between the two directions measures (2 points)
#
# Forward AIS proposes whole paths $\mathbf x = (\mathbf v_1, \dots, \mathbf v_K)$ from
# $q(\mathbf x) = p_0(\mathbf v_1) T_1(\mathbf v_1, \mathbf v_2) \cdots T_{K-1}(\mathbf v_{K-1}, \mathbf v_K)$;
# reverse AIS from exact samples proposes them from
# $\pi(\mathbf x) = p_K(\mathbf v_K)\, \tilde T_{K-1}(\mathbf v_K, \mathbf v_{K-1}) \cdots \tilde T_1(\mathbf v_2, \mathbf v_1)$.
# The chapter derived that the forward weight of a path is $w = \frac{Z}{Z_A}\frac{\pi(\mathbf x)}{q(\mathbf x)}$
# and the reverse one $r = \frac{Z_A}{Z}\frac{q(\mathbf x)}{\pi(\mathbf x)}$.
#
# 1. Take logarithms and expectations (the forward weights under $q$, the reverse ones under $\pi$) and show
#    that $\mathbb E_q[\log w] + \mathbb E_\pi[\log r] = -J$, where
#    $J = \mathrm{KL}(q\,\|\,\pi) + \mathrm{KL}(\pi\,\|\,q)$ is the symmetrised KL divergence (Jeffreys
#    divergence) between the two path distributions. No $Z$ is needed.
# 2. Conclude that the expected gap between a one-chain reverse estimate $\log Z_A - \log r$ and a one-chain
#    forward estimate $\log Z_A + \log w$ is exactly $J$: the bracket is wide where the annealing is far from
#    equilibrium (Grosse, Ghahramani & Adams, 2015).
# 3. Write `jeffreys_divergence(log_w, log_r)`: estimate $J$ from the log-weights of independent one-chain
#    forward runs (`log_w`) and of independent one-chain reverse runs from exact samples (`log_r`).
#
# The grader computes $J$ exactly, by listing every path of a small RBM, and compares.

# %%
def jeffreys_divergence(log_w, log_r):
    """Estimate J = KL(q || pi) + KL(pi || q) between the forward and reverse AIS path distributions.

    log_w: (M,) float64 log-weights of forward chains; log_r: (N,) float64 log-weights of reverse chains
    started at exact samples. Returns a float (>= 0 in expectation).
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with no Gibbs step at all (K = 1), a path is one state: q = p_0 and pi = p_1. For one unit that
# is on with probability 0.5 under p_0 and 0.8 under p_1, J = sum over v of (p_0 - p_1) log(p_0 / p_1) =
# 0.3 log(0.5 / 0.2) - 0.3 log(0.5 / 0.8) = 0.4159. The log-weights below come from 200,000 draws each.
g = torch.Generator().manual_seed(1)
log_p0, log_p1 = torch.log(torch.tensor([0.5, 0.5], dtype=D)), torch.log(torch.tensor([0.2, 0.8], dtype=D))
v_fwd = (torch.rand(200_000, generator=g, dtype=D) < 0.5).long()  # v ~ p_0
v_rev = (torch.rand(200_000, generator=g, dtype=D) < 0.8).long()  # v ~ p_1
value = jeffreys_divergence(log_p1[v_fwd] - log_p0[v_fwd] + 0.7, log_p0[v_rev] - log_p1[v_rev] - 0.7)
print(f"J = {value:.4f}, expected 0.4159 (within about 0.01)")  # (+-0.7: a log Z_1 / Z_0 that cancels)
assert abs(value - 0.4159) < 0.01, "not yet right: combine the means of log w and log r"
