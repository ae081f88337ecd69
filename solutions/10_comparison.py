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
# # Exercises for Chapter 10: every method on the same data
#
# Three exercises: a measure, a budget, and a prediction. Replace every `raise NotImplementedError()` with
# your code (or your answer), then run the **self-check** cell below the exercise. The grader runs further,
# hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 10_comparison.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 10_comparison
import math

import torch

# %% [markdown]
# ## Exercise 10.1: the unbiased MMD² with a Gaussian kernel (3 points)
#
# For samples $x_1, \dots, x_m$ and $y_1, \dots, y_n$ (rows of two tensors with the same number of columns) and the
# kernel $k(a, b) = \exp\!\big(-\|a - b\|^2 / (2h^2)\big)$, the unbiased estimate of the squared maximum mean
# discrepancy is
#
# $$\widehat{\mathrm{MMD}}{}^2_u = \frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j) + \frac{1}{n(n-1)}\sum_{i\ne j} k(y_i, y_j)
#   - \frac{2}{mn}\sum_{i=1}^m\sum_{j=1}^n k(x_i, y_j).$$
#
# Leaving out the $i = j$ terms (each equal to $k(x_i, x_i) = 1$) is what removes the bias: keep them and
# divide by $m^2$, $n^2$, and the estimate is never negative (it is $\ge 0$, zero only when the two samples are
# identical), so it sits above zero on average even for two samples of one law. Compute in
# float64 (`torch.cdist` gives all pairwise distances at once). Raise a `ValueError` when a sample has fewer
# than 2 points (there is no pair $i \ne j$) or when the two samples have different dimensions.

# %%
def mmd2_unbiased(x, y, bandwidth):
    """The unbiased MMD² between samples x: (m, d) and y: (n, d) with a Gaussian kernel of width h = bandwidth.

    Returns a Python float (it may be slightly negative). Raises ValueError when m < 2 or n < 2, or when the
    dimensions differ.
    """
    ### BEGIN SOLUTION
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (m, d) and (n, d) with the same d; got {tuple(x.shape)} and {tuple(y.shape)}.")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"each sample needs at least 2 points; got {m} and {n}.")
    x, y = x.double(), y.double()

    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth**2))

    kxx, kyy = k(x, x), k(y, y)
    same_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    same_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(same_x + same_y - 2 * k(x, y).mean())
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: x = two copies of a, y = two copies of b. Every within-sample pair has k = 1, so the estimate
# is 1 + 1 - 2 k(a, b).
a, b, h = torch.tensor([[0.0, 1.0]] * 2), torch.tensor([[2.0, -1.0]] * 2), 1.5
expected = 2 - 2 * math.exp(-8 / (2 * h * h))
value = mmd2_unbiased(a, b, h)
print(f"MMD² = {value:.6f} (expected {expected:.6f})")
assert abs(value - expected) < 1e-9, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("10_comparison", "10.1", mmd2_unbiased)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 10.2: count the budget of a recipe (3 points)
#
# Chapter 10 counts compute in *energy-gradient evaluations*: one each time a gradient flows back through
# the energy at one point. Write the count for `n_steps` training steps of a recipe, given as a dictionary
# with a `"method"` and a `"batch_size"` $B$ (the data points per step), plus the method's own setting:
#
# | `"method"` | extra key | what one step does |
# |---|---|---|
# | `"CD"`, `"short-run"`, `"replay"` | `"k"` | $k$ Langevin steps on $B$ chains, then the loss's gradient at $B$ data points and $B$ negatives |
# | `"NCE"` | `"nu"` | the loss's gradient at $B$ data points and $\operatorname{round}(\nu B)$ noise points |
# | `"sliced SM"` | `"n_projections"` | the score $-\nabla_x E$ at $B$ points, once per projection |
# | `"DSM"` | none | the score at $B$ noisy points |
# | `"RBM CD"`, `"RBM PCD"` | `"k"` | $k$ Gibbs sweeps on $B$ chains (one evaluation per chain and sweep), then the free energy's gradient at $B$ data points and $B$ negatives |
# | `"pseudo-likelihood"` | none | counted as 2 per data point (chapter 10, section 3) |
#
# The second differentiation that score matching does for the parameter update is *not* counted (the chapter
# says why). Raise a `ValueError` for an unknown method. The hidden checks run each recipe through the
# chapter's counter, `ebm_teach.compare.CountedEnergy`.

# %%
def count_evaluations(recipe, n_steps):
    """The energy-gradient evaluations of n_steps training steps of ``recipe`` (a dict, see the table); an int."""
    ### BEGIN SOLUTION
    method, B = recipe["method"], recipe["batch_size"]
    if method in ("CD", "short-run", "replay", "RBM CD", "RBM PCD"):
        per_step = (recipe["k"] + 2) * B
    elif method == "NCE":
        per_step = B + round(recipe["nu"] * B)
    elif method == "sliced SM":
        per_step = recipe["n_projections"] * B
    elif method == "DSM":
        per_step = B
    elif method == "pseudo-likelihood":
        per_step = 2 * B
    else:
        raise ValueError(f"unknown method {method!r}.")
    return n_steps * per_step
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: CD-10 with batches of 256 costs (10 + 2) * 256 = 3072 per step; DSM 256.
print(count_evaluations({"method": "CD", "k": 10, "batch_size": 256}, 3), "(expected 9216)")
assert count_evaluations({"method": "CD", "k": 10, "batch_size": 256}, 3) == 9216, "not yet right"
assert count_evaluations({"method": "DSM", "batch_size": 256}, 4) == 1024, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("10_comparison", "10.2", count_evaluations)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 10.3: predict, then run (2 points)
#
# A new target, not in the chapter: two Gaussians with standard deviation 0.5 at $(-2.5, 0)$ and $(2.5, 0)$,
# with weights **0.85 and 0.15**, so that the modes are ten standard deviations apart. Two methods train the
# chapter's energy network on 2000 samples with $2^{17}$ energy-gradient evaluations each, both with Adam at
# learning rate $10^{-2}$: **CD-1** (one Langevin step from the data) and **NCE** (Gaussian noise fitted to the
# data, $\nu = 4$).
#
# *Before running anything*, predict the **mass each trained model puts on the light mode** (the one at
# $(2.5, 0)$, whose true weight is 0.15), as a number between 0 and 1. Use what section 1 of the chapter found:
# what do CD-$k$'s negatives compare, and what does the mass of each mode come out as when nothing compares the
# modes with each other? What does NCE's noise cover?
#
# Return a dict `{"CD-1": m_cd, "NCE": m_nce}`. The hidden check trains both methods on three seeds (a few
# seconds) and accepts each prediction within 0.15 of the mean mass over the seeds (1 point each).
#
# Afterwards, run the experiment yourself with `ebm_teach.compare.fit_2d` (the `"masses"` of a run's last record
# give the mass of each mode), and add **DSM** ($\sigma = 0.3$). Score matching sees the density only through its
# score near the data, and the score of two isolated modes says nothing about their weights (Wenliang &
# Kanagawa, 2020): where does DSM put the light mode's mass, and does it agree from seed to seed?

# %%
def predict_light_mass():
    """Your prediction: {"CD-1": mass, "NCE": mass}, the mass each trained model puts on the light mode."""
    ### BEGIN SOLUTION
    # CD-1's negatives are one small step from the data, in the data's own proportions, so its gradient never
    # compares one mode with the other: on the chapter's mixture CD-1 and CD-10 ended with about equal masses on
    # every mode. Two modes of the same shape: about half each. NCE weighs both modes against the same noise,
    # so it learns the true weight, 0.15. (DSM, run afterwards, puts almost all the mass on the heavy mode here:
    # the score cannot tell, and the outcome is whatever the network's fit between the modes makes of it.)
    return {"CD-1": 0.5, "NCE": 0.15}
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: only the format (the hidden check runs the experiment).
answer = predict_light_mass()
print("your prediction:", answer)
assert isinstance(answer, dict) and sorted(answer) == ["CD-1", "NCE"], 'return {"CD-1": mass, "NCE": mass}'
assert all(0 <= float(v) <= 1 for v in answer.values()), "a mass lies between 0 and 1"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("10_comparison", "10.3", predict_light_mass)
### END HIDDEN TESTS
