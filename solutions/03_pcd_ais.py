# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises for Chapter 3: persistent contrastive divergence and annealed importance sampling
#
# Four functions to write: three pieces of Chapter 3 and one derivation whose result the grader checks against
# an experiment (Exercise 3.3), for an RBM with energy
# $E(\mathbf v, \mathbf h) = -\mathbf v^\top W \mathbf h - \mathbf b^\top \mathbf v - \mathbf c^\top \mathbf h$,
# $W$ of shape $(n_v, n_h)$. Write them with plain torch operations (not with `ebm_teach.rbm` or
# `ebm_teach.evaluate`), in float64 where the inputs are float64. Replace every `raise NotImplementedError()`
# with your code, then run the **self-check** cell below the exercise: it tries your function on one case
# whose answer you can verify by hand. The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 03_pcd_ais.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 03_pcd_ais
import math

import torch
import torch.nn.functional as F

D = torch.float64  # the dtype of every self-check

# %% [markdown]
# ## Exercise 3.1: a PCD-k update with persistent chains (4 points)
#
# PCD keeps $M$ chains (the fantasy particles) from one update to the next. One PCD-$k$ update, with the
# uniform numbers given so that the answer is reproducible:
#
# 1. positive phase at the data $\mathbf v_0$ ($n$ rows): $\mathbf p_0 = \sigma(\mathbf c + \mathbf v_0 W)$;
# 2. negative phase: starting **from the chains** $\mathbf v = $ `v_chains` (not from the data), take $k$
#    block Gibbs steps; step $t$ draws $\mathbf h = [\mathbf u_h[t] < \sigma(\mathbf c + \mathbf v W)]$, then
#    $\mathbf v = [\mathbf u_v[t] < \sigma(\mathbf b + \mathbf h W^\top)]$; after the last step
#    $\mathbf q = \sigma(\mathbf c + \mathbf v W)$;
# 3. gradient ascent with step size $\varepsilon$, means over the rows of each set:
#
# $$W \leftarrow W + \varepsilon\Big(\frac{\mathbf v_0^\top \mathbf p_0}{n} - \frac{\mathbf v^\top \mathbf q}{M}\Big),
#   \quad \mathbf b \leftarrow \mathbf b + \varepsilon\big(\operatorname{mean}\mathbf v_0 - \operatorname{mean}\mathbf v\big),
#   \quad \mathbf c \leftarrow \mathbf c + \varepsilon\big(\operatorname{mean}\mathbf p_0 - \operatorname{mean}\mathbf q\big).$$
#
# Return the new parameters **and the chains' new states**: they are where the next update starts. Return new
# tensors; do not change the arguments in place. Note that $M$ need not equal $n$.

# %%
def pcd_update(W, b, c, v_data, v_chains, u_h, u_v, step_size):
    """One PCD-k update; returns (W_new, b_new, c_new, v_chains_new).

    W: (n_v, n_h); b: (n_v,); c: (n_h,); v_data: (n, n_v) in {0, 1}; v_chains: (M, n_v) in {0, 1}, the
    persistent chains; u_h: (k, M, n_h) and u_v: (k, M, n_v) uniform numbers in [0, 1) for the k Gibbs steps;
    step_size: epsilon > 0. v_chains_new: (M, n_v), the chains after the k steps.
    """
    k, M = u_h.shape[0], v_chains.shape[0]
    if u_h.shape != (k, M, W.shape[1]) or u_v.shape != (k, M, W.shape[0]):
        raise ValueError(f"u_h must be (k, M, n_h) = {(k, M, W.shape[1])} and u_v (k, M, n_v) = "
                         f"{(k, M, W.shape[0])}; got {tuple(u_h.shape)} and {tuple(u_v.shape)}.")
    ### BEGIN SOLUTION
    p0 = torch.sigmoid(v_data @ W + c)
    v = v_chains
    for t in range(k):
        h = (u_h[t] < torch.sigmoid(v @ W + c)).to(W.dtype)
        v = (u_v[t] < torch.sigmoid(h @ W.T + b)).to(W.dtype)
    q = torch.sigmoid(v @ W + c)
    W_new = W + step_size * (v_data.T @ p0 / len(v_data) - v.T @ q / M)
    b_new = b + step_size * (v_data.mean(0) - v.mean(0))
    c_new = c + step_size * (p0.mean(0) - q.mean(0))
    return W_new, b_new, c_new, v
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: W = b = c = 0 and u_v = 1 (no visible unit can turn on): the chains end at 0, p0 = q = 1/2,
# so W gains eps * 1/2 * v0, b gains eps * mean(v0), and c does not move.
W0, b0, c0 = torch.zeros(2, 1, dtype=D), torch.zeros(2, dtype=D), torch.zeros(1, dtype=D)
chains = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D)
W1, b1, c1, chains1 = pcd_update(W0, b0, c0, torch.ones(1, 2, dtype=D), chains, torch.full((1, 2, 1), 0.3, dtype=D),
                                 torch.ones(1, 2, 2, dtype=D), 0.1)
print("W:", W1.tolist(), "(expected [[0.05], [0.05]]); b:", b1.tolist(), "(expected [0.1, 0.1]); c:", c1.tolist(),
      "(expected [0.0]); chains:", chains1.tolist(), "(expected zeros)")
assert torch.allclose(W1, torch.full((2, 1), 0.05, dtype=D)) and torch.allclose(b1, torch.full((2,), 0.1, dtype=D))
assert torch.allclose(c1, c0) and chains1.tolist() == [[0.0, 0.0], [0.0, 0.0]]

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("03_pcd_ais", "3.1", pcd_update)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3.2: one temperature step of the AIS log-weight (3 points)
#
# AIS for an RBM anneals from a base RBM with $W = 0$ and visible biases $\mathbf b_A$ ($\beta = 0$) to the
# RBM $(W, \mathbf b, \mathbf c)$ ($\beta = 1$) through the RBMs with free energy
#
# $$-F_\beta(\mathbf v) = (1-\beta)\,\mathbf b_A^\top\mathbf v + \beta\,\mathbf b^\top\mathbf v
#   + \sum_j \operatorname{softplus}\big(\beta\,(c_j + (\mathbf v^\top W)_j)\big).$$
#
# At each temperature step, each chain's log-weight grows by
# $\log p^*_{\beta_k}(\mathbf v) - \log p^*_{\beta_{k-1}}(\mathbf v) = F_{\beta_{k-1}}(\mathbf v) - F_{\beta_k}(\mathbf v)$.
# Return the updated log-weights. The standard schedule has steps as small as $10^{-5}$ and 14,500 of them,
# so keep everything in float64, and use `F.softplus` (the checks try large weights).

# %%
def ais_log_weight_step(log_w, v, W, b, c, b_A, beta_prev, beta):
    """log_w + F_{beta_prev}(v) - F_beta(v), one chain per row of v.

    log_w: (M,) float64 log-weights so far; v: (M, n_v) in {0, 1}, the chains' states; W: (n_v, n_h);
    b, b_A: (n_v,); c: (n_h,); 0 <= beta_prev < beta <= 1. Returns the new log-weights, (M,) float64.
    """
    ### BEGIN SOLUTION
    def neg_free_energy(beta_):
        return ((1 - beta_) * b_A + beta_ * b) @ v.T + F.softplus(beta_ * (v @ W + c)).sum(1)

    return log_w + neg_free_energy(beta) - neg_free_energy(beta_prev)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: with W = 0, b_A = 0 and c = 0, -F_beta(v) = beta b^T v + n_h log 2, so a step from beta = 0 to
# 0.5 adds 0.5 b^T v: for b = (1, 2) and v = (1, 1) that is 1.5.
value = ais_log_weight_step(torch.zeros(1, dtype=D), torch.ones(1, 2, dtype=D), torch.zeros(2, 3, dtype=D),
                            torch.tensor([1.0, 2.0], dtype=D), torch.zeros(3, dtype=D), torch.zeros(2, dtype=D), 0.0, 0.5)
print(f"log w = {float(value[0]):.6f}, expected 1.5")
assert abs(float(value[0]) - 1.5) < 1e-12, "not yet right: compare with -F_beta above"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("03_pcd_ais", "3.2", ais_log_weight_step)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3.3: how low is log Ẑ on average? A derivation (3 points)
#
# With $M$ chains, $\hat Z = Z_A\,\bar w$ with $\bar w = \frac1M\sum_m w_m$, and the weights are independent
# with mean $\mu = Z/Z_A$ and variance $\sigma^2$. Jensen's inequality says $\mathbb E[\log\hat Z] \le \log Z$;
# how large is the gap?
#
# 1. Expand $\log \bar w$ to second order around $\mu$: $\log\bar w \approx \log\mu + \frac{\bar w - \mu}{\mu}
#    - \frac{(\bar w - \mu)^2}{2\mu^2}$ (the *delta method*).
# 2. Take expectations, using $\mathbb E[\bar w] = \mu$ and $\operatorname{Var}(\bar w) = \sigma^2/M$, to get
#    $\mathbb E[\log \hat Z] - \log Z$ in terms of $\sigma^2/\mu^2$ and $M$.
# 3. Write `log_z_bias(log_w, n_chains)`: estimate $\mu$ and $\sigma^2$ from a sample of log-weights
#    (say, from a long pilot run) and return your approximation of $\mathbb E[\log\hat Z] - \log Z$ for an
#    estimate that averages `n_chains` weights. Use the population variance (divide by the number of
#    log-weights), and compute in a way that does not overflow when the log-weights are in the hundreds
#    (the ratio $\sigma^2/\mu^2$ does not change when every weight is multiplied by the same number).
#
# The grader compares your formula with a Monte Carlo experiment on weights whose distribution it knows.

# %%
def log_z_bias(log_w, n_chains):
    """The delta-method approximation of E[log Z^] - log Z for an AIS estimate averaging n_chains weights.

    log_w: (n,) float64 log-weights, a sample from the weights' distribution; n_chains: M >= 1.
    Returns a float (<= 0).
    """
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1; got {n_chains}.")
    ### BEGIN SOLUTION
    w = torch.exp(log_w - log_w.max())  # the same weights times one constant: sigma^2 / mu^2 unchanged
    return float(-w.var(correction=0) / (2 * n_chains * w.mean() ** 2))
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: weights 1 and 3 have mean 2 and (population) variance 1, so with M = 2 the bias is
# -1 / (2 * 2 * 2²) = -0.0625; equal weights have no bias; and shifting every log-weight by 1000 changes nothing.
log_w = torch.log(torch.tensor([1.0, 3.0], dtype=D))
value = log_z_bias(log_w, 2)
print(f"log_z_bias = {value:.6f}, expected -0.0625; shifted by 1000: {log_z_bias(log_w + 1000, 2):.6f}")
assert abs(value + 0.0625) < 1e-12, "not yet right: -Var(w) / (2 M mean(w)^2)"
assert abs(log_z_bias(log_w + 1000, 2) + 0.0625) < 1e-12, "not yet right: scale the weights before exp"
assert log_z_bias(torch.zeros(5, dtype=D), 3) == 0.0

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("03_pcd_ais", "3.3", log_z_bias)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3.4: AIS from the pieces (4 points)
#
# Put it together: estimate $\log Z$ of the RBM $(W, \mathbf b, \mathbf c)$ with $M$ chains along the
# schedule $0 = \beta_0 < \beta_1 < \dots < \beta_K = 1$ (`betas`, a list of floats).
#
# 1. Start every chain at the base: $v_i \sim$ Bernoulli$(\sigma(b_{A,i}))$ independently; log-weights 0.
# 2. For $k = 1, \dots, K$: add $F_{\beta_{k-1}}(\mathbf v) - F_{\beta_k}(\mathbf v)$ to each log-weight
#    (exercise 3.2); then, unless $k = K$, take one Gibbs step at $\beta_k$, which leaves $p_{\beta_k}$
#    invariant: $h_j \sim \sigma\big(\beta_k(c_j + (\mathbf v^\top W)_j)\big)$, then
#    $v_i \sim \sigma\big((1-\beta_k) b_{A,i} + \beta_k(b_i + (W\mathbf h)_i)\big)$.
# 3. At $\beta = 0$ the visible units are independent and the $n_h$ hidden units are fair coins, so
#    $\log Z_A = \sum_i \operatorname{softplus}(b_{A,i}) + n_h \log 2$, and
#    $\log \hat Z = \log Z_A + \log\frac1M\sum_m e^{\log w_m}$ (`torch.logsumexp(log_w, 0) - math.log(M)`).
#
# Draw every random number with `torch.rand(..., generator=generator)` and compare it with its probability
# ($1$ where $u < p$), as in chapter 2. You may call your function from exercise 3.2.

# %%
def ais_log_z(W, b, c, b_A, betas, n_chains, generator):
    """AIS estimate of log Z of the RBM (W, b, c) from the base RBM (0, b_A, 0); returns (log_z_hat, log_w).

    W: (n_v, n_h); b, b_A: (n_v,); c: (n_h,), all float64; betas: list of floats from 0 to 1, increasing;
    n_chains: M >= 1; generator: a torch.Generator. log_z_hat: a float; log_w: (M,) float64 log-weights.
    """
    if betas[0] != 0 or betas[-1] != 1:
        raise ValueError(f"betas must run from 0 to 1; got {betas[0]} ... {betas[-1]}.")
    ### BEGIN SOLUTION
    n_v, n_h = W.shape
    v = (torch.rand(n_chains, n_v, generator=generator, dtype=W.dtype) < torch.sigmoid(b_A)).to(W.dtype)
    log_w = torch.zeros(n_chains, dtype=W.dtype)
    for k in range(1, len(betas)):
        log_w = ais_log_weight_step(log_w, v, W, b, c, b_A, betas[k - 1], betas[k])
        if k < len(betas) - 1:
            beta = betas[k]
            p_h = torch.sigmoid(beta * (v @ W + c))
            h = (torch.rand(p_h.shape, generator=generator, dtype=W.dtype) < p_h).to(W.dtype)
            p_v = torch.sigmoid((1 - beta) * b_A + beta * (h @ W.T + b))
            v = (torch.rand(p_v.shape, generator=generator, dtype=W.dtype) < p_v).to(W.dtype)
    log_z_base = float(F.softplus(b_A).sum()) + n_h * math.log(2)
    return log_z_base + float(torch.logsumexp(log_w, 0)) - math.log(n_chains), log_w
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check 1: when the RBM is the base (W = 0, b = b_A, c = 0) every weight is 1 and log Z^ is exact,
# sum_i softplus(b_i) + n_h log 2.
b_self = torch.tensor([0.5, -1.0, 2.0], dtype=D)
log_z_hat, log_w = ais_log_z(torch.zeros(3, 2, dtype=D), b_self, torch.zeros(2, dtype=D), b_self,
                             [0.0, 0.5, 1.0], 10, torch.Generator().manual_seed(0))
expected = float(F.softplus(b_self).sum()) + 2 * math.log(2)
print(f"log Z^ = {log_z_hat:.6f}, expected {expected:.6f}")
assert abs(log_z_hat - expected) < 1e-9, "not yet right: check log Z_A and the weights"
# Self-check 2: an 8 x 4 RBM with strong weights, whose log Z we can sum over all 2^8 x 2^4 states. With 200
# temperatures and 100 chains AIS lands within about 0.05 nats; without its Gibbs steps (plain importance
# sampling from the base) it is off by more than half a nat here.
g = torch.Generator().manual_seed(0)
W8, b8, c8 = 2 * torch.randn(8, 4, generator=g, dtype=D), torch.randn(8, generator=g, dtype=D), \
    torch.randn(4, generator=g, dtype=D)
vs = torch.tensor([[(i >> k) & 1 for k in range(8)] for i in range(256)], dtype=D)
exact_log_z = float(torch.logsumexp(vs @ b8 + F.softplus(vs @ W8 + c8).sum(1), 0))  # the hidden units summed
log_z_hat, _ = ais_log_z(W8, b8, c8, torch.zeros(8, dtype=D), [k / 200 for k in range(201)], 100,
                         torch.Generator().manual_seed(0))
print(f"log Z^ = {log_z_hat:.4f}, exact log Z = {exact_log_z:.4f}")
assert abs(log_z_hat - exact_log_z) < 0.15, "not yet right: check the Gibbs step at each beta_k"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("03_pcd_ais", "3.4", ais_log_z)
### END HIDDEN TESTS
