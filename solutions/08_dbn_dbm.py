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
# # Exercises for Chapter 8: deep belief networks and deep Boltzmann machines
#
# Three functions for a deep Boltzmann machine (DBM): two to implement (8.1, 8.2) and one to derive first (8.3).
# The DBM has binary layers $\mathbf v$, $\mathbf h^1$, $\mathbf h^2$ and energy
#
# $$E(\mathbf v, \mathbf h^1, \mathbf h^2) = -\mathbf v^\top W_1 \mathbf h^1 - {\mathbf h^1}^\top W_2 \mathbf h^2
#   - \mathbf b^\top \mathbf v - \mathbf c_1^\top \mathbf h^1 - \mathbf c_2^\top \mathbf h^2,$$
#
# $W_1$ of shape $(n_v, n_1)$ and $W_2$ of shape $(n_1, n_2)$. Write them with plain torch operations (not with
# `ebm_teach.dbm`), in float64. Replace every `raise NotImplementedError()` with your code, then run the
# **self-check** cell below the exercise: it tries your function on cases whose answers you can verify by
# hand. The grader runs further, hidden checks on other inputs, against brute-force sums over every state:
#
# ```
# python -m ebm_teach.grade 08_dbn_dbm.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 08_dbn_dbm
import itertools
import math

import torch
import torch.nn.functional as F

D = torch.float64  # the dtype of every self-check

# %% [markdown]
# ## Exercise 8.1: the mean-field fixed point (4 points)
#
# The posterior $p(\mathbf h^1, \mathbf h^2 \mid \mathbf v)$ of a DBM does not factorise. Mean field replaces it
# by $q(\mathbf h^1, \mathbf h^2) = \prod_j q(h^1_j) \prod_k q(h^2_k)$ with $q(h^1_j = 1) = \mu_{1j}$ and
# $q(h^2_k = 1) = \mu_{2k}$, and maximises the mean-field bound $L(\mathbf v; \boldsymbol\mu) =
# \mathbb E_q[-E] + H(q)$ (chapter 8, section 3) one layer at a time. With $\boldsymbol\mu_2$ held fixed, the best
# $\boldsymbol\mu_1$ is $\sigma(\mathbf c_1 + \mathbf v W_1 + \boldsymbol\mu_2 W_2^\top)$, and with $\boldsymbol\mu_1$
# fixed the best $\boldsymbol\mu_2$ is $\sigma(\mathbf c_2 + \boldsymbol\mu_1 W_2)$. **Notation:** here, as in the
# code, vectors are rows, one example per row: the chapter's $W_1^\top\mathbf v$ is $\mathbf v W_1$ (`v @ W1`) and
# its $W_2\boldsymbol\mu_2$ is $\boldsymbol\mu_2 W_2^\top$ (`mu2 @ W2.T`). Implement, for each row of $\mathbf v$:
#
# 1. **start** (Salakhutdinov & Hinton, 2012): $\boldsymbol\mu_1 = \sigma(\mathbf c_1 + 2\,\mathbf v W_1)$, the
#    bottom-up input doubled in place of the top-down input that is not known yet; then
#    $\boldsymbol\mu_2 = \sigma(\mathbf c_2 + \boldsymbol\mu_1 W_2)$;
# 2. **`n_iter` rounds**, each: $\boldsymbol\mu_1 \leftarrow \sigma(\mathbf c_1 + \mathbf v W_1 + \boldsymbol\mu_2 W_2^\top)$,
#    *then* $\boldsymbol\mu_2 \leftarrow \sigma(\mathbf c_2 + \boldsymbol\mu_1 W_2)$ with the new $\boldsymbol\mu_1$.
#
# Return $(\boldsymbol\mu_1, \boldsymbol\mu_2)$. The checks compare your answer with the exact posterior when
# $W_2 = 0$ (then it factorises and mean field is exact), verify the fixed-point equations after many rounds, and
# follow the start and the first rounds unit by unit.

# %%
def mean_field(v, W1, W2, c1, c2, n_iter):
    """Mean-field means (mu1, mu2) of q(h1, h2) ~ p(h1, h2 | v), one row per row of v.

    v: (batch, n_v) in {0, 1}; W1: (n_v, n1); W2: (n1, n2); c1: (n1,); c2: (n2,); n_iter: rounds >= 0.
    Returns mu1: (batch, n1) and mu2: (batch, n2), probabilities in (0, 1).
    """
    if v.dim() != 2 or W1.shape != (v.shape[1], c1.shape[0]) or W2.shape != (c1.shape[0], c2.shape[0]):
        raise ValueError(f"need v (batch, n_v), W1 (n_v, n1), W2 (n1, n2), c1 (n1,), c2 (n2,); got {tuple(v.shape)}, "
                         f"{tuple(W1.shape)}, {tuple(W2.shape)}, {tuple(c1.shape)}, {tuple(c2.shape)}.")
    if not bool(((v == 0) | (v == 1)).all()):
        raise ValueError("v must be binary (0/1): binarize first, e.g. (v > 0.5).double().")
    ### BEGIN SOLUTION
    bottom_up = c1 + v @ W1
    mu1 = torch.sigmoid(bottom_up + v @ W1)
    mu2 = torch.sigmoid(c2 + mu1 @ W2)
    for _ in range(n_iter):
        mu1 = torch.sigmoid(bottom_up + mu2 @ W2.T)
        mu2 = torch.sigmoid(c2 + mu1 @ W2)
    return mu1, mu2
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check 1: with W1 = W2 = 0 no unit hears another, so mu1 = sigmoid(c1) and mu2 = sigmoid(c2) after any rounds.
c1, c2 = torch.tensor([0.0, 2.0], dtype=D), torch.tensor([-1.0], dtype=D)
mu1, mu2 = mean_field(torch.tensor([[1.0, 0.0, 1.0]], dtype=D), torch.zeros(3, 2, dtype=D), torch.zeros(2, 1, dtype=D),
                      c1, c2, n_iter=5)
print("mu1 =", mu1.tolist(), "expected", torch.sigmoid(c1).tolist(), "; mu2 =", mu2.tolist(), "expected",
      torch.sigmoid(c2).tolist())
assert torch.allclose(mu1, torch.sigmoid(c1)[None]) and torch.allclose(mu2, torch.sigmoid(c2)[None]), "not yet right"

# Self-check 2: one unit per layer, v = 1, W1 = 1, W2 = 2, c1 = -1, c2 = 0.5, one round, by hand:
#   start:   mu1 = sigmoid(-1 + 2 * 1) = sigmoid(1),  mu2 = sigmoid(0.5 + 2 * mu1)
#   round 1: mu1 = sigmoid(-1 + 1 + 2 * mu2),          mu2 = sigmoid(0.5 + 2 * mu1)  (with the new mu1)
m1 = 1 / (1 + math.exp(-1.0))
m2 = 1 / (1 + math.exp(-(0.5 + 2 * m1)))
m1 = 1 / (1 + math.exp(-(0.0 + 2 * m2)))
m2 = 1 / (1 + math.exp(-(0.5 + 2 * m1)))
mu1, mu2 = mean_field(torch.ones(1, 1, dtype=D), torch.ones(1, 1, dtype=D), torch.full((1, 1), 2.0, dtype=D),
                      torch.full((1,), -1.0, dtype=D), torch.full((1,), 0.5, dtype=D), n_iter=1)
print(f"mu1 = {float(mu1):.6f} (by hand {m1:.6f}), mu2 = {float(mu2):.6f} (by hand {m2:.6f})")
assert abs(float(mu1) - m1) < 1e-12 and abs(float(mu2) - m2) < 1e-12, "not yet right: check the start and the order"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("08_dbn_dbm", "8.1", mean_field)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 8.2: exact log Z by summing out alternate layers (4 points)
#
# Given $\mathbf h^1$, the units of $\mathbf v$ and of $\mathbf h^2$ are all independent, so the sums over
# $\mathbf v$ and over $\mathbf h^2$ factorise unit by unit, exactly like the sum over one layer of an RBM:
#
# $$Z = \sum_{\mathbf h^1} e^{\mathbf c_1^\top \mathbf h^1}\prod_i \big(1 + e^{b_i + (W_1\mathbf h^1)_i}\big)
#   \prod_k \big(1 + e^{c_{2k} + (W_2^\top\mathbf h^1)_k}\big),$$
#
# a sum of $2^{n_1}$ terms however wide $\mathbf v$ and $\mathbf h^2$ are. Compute $\log Z$ with this formula:
# enumerate $\mathbf h^1$ (`itertools.product([0.0, 1.0], repeat=n)` lists all binary vectors), use `F.softplus`
# for $\log(1 + e^a)$ and `torch.logsumexp` for the sum, in float64: the checks try weights of size 300, and a DBM
# with 24 visible and 24 top units, whose $2^{56}$ joint states no brute force can list.

# %%
def log_partition_dbm(W1, W2, b, c1, c2):
    """log Z of the DBM (W1, W2, b, c1, c2) by enumerating h1 and summing v and h2 out in closed form.

    W1: (n_v, n1); W2: (n1, n2); b: (n_v,); c1: (n1,); c2: (n2,); n1 <= 20. Returns log Z as a float.
    """
    W1, W2, b, c1, c2 = W1.double(), W2.double(), b.double(), c1.double(), c2.double()
    if W1.shape != (b.shape[0], c1.shape[0]) or W2.shape != (c1.shape[0], c2.shape[0]):
        raise ValueError(f"need W1 (n_v, n1), W2 (n1, n2), b (n_v,), c1 (n1,), c2 (n2,); got {tuple(W1.shape)}, "
                         f"{tuple(W2.shape)}, {tuple(b.shape)}, {tuple(c1.shape)}, {tuple(c2.shape)}.")
    if W1.shape[1] > 20:
        raise ValueError(f"h1 has {W1.shape[1]} units: 2^{W1.shape[1]} states is more than the limit of 2^20 to "
                         "enumerate here; estimate log Z by annealed importance sampling instead.")
    ### BEGIN SOLUTION
    h1 = torch.tensor(list(itertools.product([0.0, 1.0], repeat=W1.shape[1])), dtype=torch.float64)
    terms = h1 @ c1 + F.softplus(h1 @ W1.T + b).sum(1) + F.softplus(h1 @ W2 + c2).sum(1)
    return float(torch.logsumexp(terms, dim=0))
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: one unit per layer and every parameter 0: eight states of energy 0, so Z = 8.
value = log_partition_dbm(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1), torch.zeros(1))
print(f"log Z = {value:.6f}, expected log 8 = {math.log(8):.6f}")
assert abs(value - math.log(8)) < 1e-9, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("08_dbn_dbm", "8.2", log_partition_dbm)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 8.3: derive the mean-field bound and its gradient (3 points)
#
# For any distribution $q$ over the hidden layers, Jensen's inequality gives
#
# $$\log p^*(\mathbf v) = \log \sum_{\mathbf h} e^{-E(\mathbf v, \mathbf h)}
#   \;\ge\; L = \mathbb E_q[-E(\mathbf v, \mathbf h^1, \mathbf h^2)] + H(q)
#   = \log p^*(\mathbf v) - \mathrm{KL}\big(q \,\|\, p(\mathbf h^1, \mathbf h^2 \mid \mathbf v)\big).$$
#
# The chapter uses $L$ for the factorial $q$ of exercise 8.1 (means $\boldsymbol\mu_1$, $\boldsymbol\mu_2$) without
# writing it out. **Derive on paper**, then code:
#
# 1. $L(\mathbf v; \boldsymbol\mu_1, \boldsymbol\mu_2)$ in closed form. Two steps to work out: what
#    $\mathbb E_q[{\mathbf h^1}^\top W_2 \mathbf h^2]$ is when $q$ makes $\mathbf h^1$ and $\mathbf h^2$ independent, and the
#    entropy of independent Bernoulli units.
# 2. Its gradient, $\partial L / \partial \boldsymbol\mu_1$ and $\partial L / \partial \boldsymbol\mu_2$, for means strictly
#    between 0 and 1. Setting the first to zero should give exercise 8.1's update for $\boldsymbol\mu_1$: check that
#    yours does.
#
# Return `(L, dL_dmu1, dL_dmu2)`, of shapes (batch,), (batch, $n_1$) and (batch, $n_2$), in the row convention of
# exercise 8.1. Your formulas must not enumerate states: the checks try $30 + 30$ hidden units ($2^{60}$ states),
# compare the gradient with the derivative of the bound summed over every state (and with zero at a mean-field fixed
# point), and try $q(h = 1)$ of exactly 0 or 1 for $L$ alone, where $0 \log 0 = 0$ (`torch.special.xlogy(x, x)`
# computes $x \log x$ with that convention; the gradient is not checked there, where it is infinite).

# %%
def mean_field_bound(v, mu1, mu2, W1, W2, b, c1, c2):
    """L = E_q[-E(v, h1, h2)] + H(q) for the factorial q with q(h1_j = 1) = mu1_j, q(h2_k = 1) = mu2_k, per row,
    and its gradient in mu1 and mu2.

    v: (batch, n_v) in {0, 1}; mu1: (batch, n1) and mu2: (batch, n2) in [0, 1]; W1: (n_v, n1); W2: (n1, n2);
    b: (n_v,); c1: (n1,); c2: (n2,). Returns (L: (batch,), dL_dmu1: (batch, n1), dL_dmu2: (batch, n2)), float64.
    """
    ### BEGIN SOLUTION
    def entropy(mu):
        return -(torch.special.xlogy(mu, mu) + torch.special.xlogy(1 - mu, 1 - mu)).sum(1)

    expected_neg_energy = (v @ b + (mu1 * (c1 + v @ W1)).sum(1) + ((mu1 @ W2) * mu2).sum(1) + mu2 @ c2)
    bound = expected_neg_energy + entropy(mu1) + entropy(mu2)
    dL_dmu1 = c1 + v @ W1 + mu2 @ W2.T - torch.logit(mu1)  # d/dmu [-mu log mu - (1 - mu) log(1 - mu)] = -logit(mu)
    dL_dmu2 = c2 + mu1 @ W2 - torch.logit(mu2)
    return bound, dL_dmu1, dL_dmu2
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: with every parameter 0 the energy is 0 everywhere, and q with all means 1/2 is the uniform posterior:
# the bound is its entropy, (n1 + n2) log 2, it equals log p*(v) = log 2^(n1 + n2), and it is a maximum (gradient 0).
value, g1, g2 = mean_field_bound(torch.ones(1, 3, dtype=D), torch.full((1, 2), 0.5, dtype=D),
                                 torch.full((1, 4), 0.5, dtype=D), torch.zeros(3, 2, dtype=D),
                                 torch.zeros(2, 4, dtype=D), torch.zeros(3, dtype=D), torch.zeros(2, dtype=D),
                                 torch.zeros(4, dtype=D))
print(f"bound = {float(value[0]):.6f}, expected 6 log 2 = {6 * math.log(2):.6f}; "
      f"largest |gradient| {float(torch.cat([g1, g2], 1).abs().max()):.2e}, expected 0")
assert abs(float(value[0]) - 6 * math.log(2)) < 1e-9, "not yet right: what is the entropy of a fair coin?"
assert float(torch.cat([g1, g2], 1).abs().max()) < 1e-12, "not yet right: the gradient should vanish here"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("08_dbn_dbm", "8.3", mean_field_bound)
### END HIDDEN TESTS
