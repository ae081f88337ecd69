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
# # Exercises for Chapter 2: restricted Boltzmann machines and contrastive divergence
#
# Four functions to write: a derivation whose result the grader checks by enumeration (Exercise 2.2, the
# triangular Ising model as a Boltzmann machine) and three results of Chapter 2 for an RBM with energy
# $E(\mathbf v, \mathbf h) = -\mathbf v^\top W \mathbf h - \mathbf b^\top \mathbf v - \mathbf c^\top \mathbf h$,
# $W$ of shape $(n_v, n_h)$. Write them with plain torch operations (not with `ebm_teach.rbm`). Replace every
# `raise NotImplementedError()` with your code, then run the **self-check** cell below the exercise: it
# tries your function on one case whose answer you can verify by hand. The grader runs further, hidden
# checks on other inputs:
#
# ```
# python -m ebm_teach.grade 02_rbm_cd.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 02_rbm_cd
import itertools
import math

import torch
import torch.nn.functional as F

# %% [markdown]
# ## Exercise 2.1: the free energy (3 points)
#
# Summing $e^{-E(\mathbf v, \mathbf h)}$ over the hidden states factorises unit by unit, which gives
#
# $$F(\mathbf v) = -\log \sum_{\mathbf h} e^{-E(\mathbf v, \mathbf h)}
#   = -\mathbf b^\top \mathbf v - \sum_j \operatorname{softplus}\Big(c_j + \sum_i v_i W_{ij}\Big),
#   \qquad \operatorname{softplus}(a) = \log(1 + e^a).$$
#
# Compute it for a batch. Use `F.softplus` rather than `torch.log(1 + torch.exp(a))`: the latter overflows
# to `inf` once $a$ exceeds about 710 in float64 (88 in float32), and the hidden checks try large weights.

# %%
def free_energy(v, W, b, c):
    """F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j) for each row of v.

    v: (batch, n_v) of 0/1 values; W: (n_v, n_h); b: (n_v,); c: (n_h,). Returns a (batch,) tensor.
    """
    if v.dim() != 2 or W.shape != (v.shape[1], c.shape[0]) or b.shape != (v.shape[1],):
        raise ValueError(f"need v (batch, n_v), W (n_v, n_h), b (n_v,), c (n_h,); got {tuple(v.shape)}, "
                         f"{tuple(W.shape)}, {tuple(b.shape)}, {tuple(c.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: with W = 0 the units are independent, so F(v) = -b^T v - sum_j softplus(c_j).
v = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
c = torch.tensor([0.0, 1.0], dtype=torch.float64)
value = float(free_energy(v, torch.zeros(3, 2, dtype=torch.float64), b, c)[0])
expected = -(0.5 + 2.0) - (math.log(2) + math.log(1 + math.e))
print(f"F(v) = {value:.6f}, expected {expected:.6f}")
assert abs(value - expected) < 1e-9, "not yet right: compare with the formula above"


# %% [markdown]
# ## Exercise 2.2: the triangular Ising model as a Boltzmann machine, constant included (3 points)
#
# The chapter wrote the square-lattice Ising model as a Boltzmann machine and dropped a constant, which
# does not change $p$. Here the lattice is *triangular*: on an $L\times L$ grid with periodic edges, site
# $(r, c)$ is joined to six neighbours, $(r, c\pm1)$, $(r\pm1, c)$, $(r-1, c+1)$ and $(r+1, c-1)$, so there
# are $3L^2$ bonds (take $L \ge 3$, so that no bond is counted twice). With spins $s_i \in \{-1, +1\}$,
#
# $$E(\mathbf s) = -J\sum_{\langle ij\rangle} s_i s_j - H \sum_i s_i, \qquad p(\mathbf s) \propto e^{-\beta E(\mathbf s)} .$$
#
# With units $x_i = (s_i + 1)/2 \in \{0, 1\}$, find the Boltzmann machine
# $E_{\text{BM}}(\mathbf x) = -J'\sum_{\langle ij\rangle} x_i x_j - b' \sum_i x_i$ (one coupling $J'$ on every
# bond, one bias $b'$ on every unit) **and the constant** $K$ with
#
# $$\beta E(\mathbf s) = E_{\text{BM}}(\mathbf x) + K \quad\text{for every state},$$
#
# so that $\log Z_{\text{Ising}} = \log Z_{\text{BM}} - K$: the constant is what you need to turn the Boltzmann
# machine's partition function into the physical one (and from it the free energy per spin). Substitute
# $s_i = 2x_i - 1$, count how many bonds each site belongs to and how many bonds and sites there are. The
# grader checks all three numbers by listing every state of small lattices.

# %%
def triangular_ising_as_boltzmann_machine(beta, J, H, L):
    """J', b' and K with beta E_Ising(s) = E_BM(x) + K on the periodic L x L triangular lattice (L >= 3).

    beta: inverse temperature 1/T; J: the coupling on each bond; H: the external field (numbers); L: the side.
    Returns (J_prime, b_prime, K) as numbers, where E_BM(x) = -J' (sum over bonds of x_i x_j) - b' sum_i x_i.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: on a 4 x 4 triangular lattice, beta E_Ising - E_BM must be your K for random states, with both
# energies summed bond by bond.
beta, J, H, L = 0.7, 1.3, -0.4, 4
J_prime, b_prime, K = triangular_ising_as_boltzmann_machine(beta, J, H, L)
bonds = [(r * L + c, ((r + dr) % L) * L + (c + dc) % L)  # each site to three of its six neighbours
         for r in range(L) for c in range(L) for dr, dc in [(0, 1), (1, 0), (1, -1)]]
g = torch.Generator().manual_seed(0)
for x in (torch.rand(5, L * L, generator=g) < 0.5).double():
    s = 2 * x - 1
    e_ising = -J * sum(s[i] * s[j] for i, j in bonds) - H * s.sum()
    e_bm = -J_prime * sum(x[i] * x[j] for i, j in bonds) - b_prime * x.sum()
    print(f"beta E_Ising - E_BM = {float(beta * e_ising - e_bm):.6f}, your K = {K:.6f}")
    assert abs(float(beta * e_ising - e_bm) - K) < 1e-9, "not yet right: the difference must be K in every state"


# %% [markdown]
# ## Exercise 2.3: the CD-1 gradient (4 points)
#
# One step of CD-1 from a minibatch $\mathbf v_0$ (rows are examples), with the uniform numbers given so that
# the answer is reproducible:
#
# 1. $\mathbf p_0 = \sigma(\mathbf c + \mathbf v_0 W)$, and $\mathbf h_0 = [\mathbf u_h < \mathbf p_0]$;
# 2. $\mathbf v_1 = [\mathbf u_v < \sigma(\mathbf b + \mathbf h_0 W^\top)]$, and
#    $\mathbf p_1 = \sigma(\mathbf c + \mathbf v_1 W)$;
# 3. with $n$ rows, the estimate of the log-likelihood gradient is
#
# $$\Delta W = \frac{\mathbf v_0^\top \mathbf p_0 - \mathbf v_1^\top \mathbf p_1}{n}, \qquad
#   \Delta \mathbf b = \operatorname{mean}(\mathbf v_0 - \mathbf v_1), \qquad
#   \Delta \mathbf c = \operatorname{mean}(\mathbf p_0 - \mathbf p_1),$$
#
# means over the rows. The hidden statistics use the probabilities $\mathbf p$, not the samples: same
# expectation, less noise. $[\cdot]$ is 1 where the comparison holds and 0 elsewhere.

# %%
def cd1_gradient(v0, W, b, c, u_h, u_v):
    """The CD-1 estimate (dW, db, dc) of the gradient of the mean log-likelihood, from one Gibbs step.

    v0: (n, n_v) data in {0, 1}; W: (n_v, n_h); b: (n_v,); c: (n_h,); u_h: (n, n_h) and u_v: (n, n_v)
    uniform numbers in [0, 1) for sampling h_0 and v_1. Returns dW (n_v, n_h), db (n_v,), dc (n_h,).
    """
    n, n_v = v0.shape
    if u_h.shape != (n, W.shape[1]) or u_v.shape != (n, n_v):
        raise ValueError(f"u_h must be {(n, W.shape[1])} and u_v {(n, n_v)}; got {tuple(u_h.shape)}, {tuple(u_v.shape)}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: one visible unit on, one hidden unit, W = [[ln 3], [0]], b = c = 0. Then p0 = sigma(ln 3) = 3/4;
# u_h = 0.5 < 3/4 gives h0 = 1; u_v = 1 turns no visible unit on, so v1 = 0 and p1 = sigma(0) = 1/2.
# Hence dW = [[3/4 - 0], [0 - 0]], db = [1 - 0, 0 - 0] and dc = [3/4 - 1/2] = [1/4].
D = torch.float64
v0 = torch.tensor([[1.0, 0.0]], dtype=D)
W, b, c = torch.tensor([[math.log(3.0)], [0.0]], dtype=D), torch.zeros(2, dtype=D), torch.zeros(1, dtype=D)
dW, db, dc = cd1_gradient(v0, W, b, c, torch.full((1, 1), 0.5, dtype=D), torch.ones(1, 2, dtype=D))
print("dW =", dW.tolist(), "(expected [[0.75], [0.0]]), db =", db.tolist(), "(expected [1.0, 0.0]), dc =",
      dc.tolist(), "(expected [0.25])")
assert torch.allclose(dW, torch.tensor([[0.75], [0.0]], dtype=D)), "not yet right: dW"
assert torch.allclose(db, torch.tensor([1.0, 0.0], dtype=D)), "not yet right: db"
assert torch.allclose(dc, torch.tensor([0.25], dtype=D)), "not yet right: dc (uses p0 and p1, not samples)"


# %% [markdown]
# ## Exercise 2.4: exact log Z of a small RBM (4 points)
#
# Summing over $\mathbf v$ first gives $Z = \sum_{\mathbf h} e^{\mathbf c^\top \mathbf h} \prod_i
# \big(1 + e^{b_i + (W\mathbf h)_i}\big)$, so
#
# $$\log Z = \operatorname*{logsumexp}_{\mathbf h \in \{0,1\}^{n_h}}
#   \Big[\mathbf c^\top \mathbf h + \sum_i \operatorname{softplus}\big(b_i + (W\mathbf h)_i\big)\Big],$$
#
# a sum over $2^{n_h}$ terms; summing over $\mathbf h$ first instead gives a sum over $2^{n_v}$ terms of
# $-F(\mathbf v)$. Enumerate the **smaller** layer (the checks include an RBM with 30 visible and 10 hidden
# units: $2^{10}$ terms one way, $2^{30}$ the other), in float64, with `torch.logsumexp` so that large terms
# do not overflow. `itertools.product([0.0, 1.0], repeat=n)` lists all binary vectors of length $n$.

# %%
def log_partition_exact(W, b, c):
    """log Z of the RBM (W, b, c) by enumerating every state of its smaller layer, in float64.

    W: (n_v, n_h); b: (n_v,); c: (n_h,), with min(n_v, n_h) <= 20. Returns log Z as a float.
    """
    W, b, c = W.double(), b.double(), c.double()
    if W.shape != (b.shape[0], c.shape[0]):
        raise ValueError(f"W must be (n_v, n_h) = {(b.shape[0], c.shape[0])}; got {tuple(W.shape)}.")
    if min(W.shape) > 20:
        raise ValueError(f"both layers have more than 20 units {tuple(W.shape)}: too many states to enumerate.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: one visible and one hidden unit with W = b = c = 0: four states of energy 0, so Z = 4.
value = log_partition_exact(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1))
print(f"log Z = {value:.6f}, expected log 4 = {math.log(4):.6f}")
assert abs(value - math.log(4)) < 1e-9, "not yet right"
