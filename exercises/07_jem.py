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
# # Exercises for Chapter 7: joint energy models
#
# Three functions to write, each one a piece of Chapter 7 (the energy a classifier defines, the JEM loss of
# a batch, the expected calibration error), and one result to derive (the AUROC of Gaussian scores).
# Replace every `raise NotImplementedError()` with your code, then run the **self-check** cell below the
# exercise: it tries your function on one case whose answer you can verify by hand. The grader runs further,
# hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 07_jem.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to. Do not call `ebm_teach.jem` or `ebm_teach.evaluate`:
# the point is to write these yourself.

# %%
# ebm-teach exercises: 07_jem
import math

import torch

# %% [markdown]
# ## Exercise 7.1: the energy of a classifier (3 points)
#
# A classifier with logits $f(\mathbf{x})[1], \dots, f(\mathbf{x})[K]$ defines $p(\mathbf{x}) \propto \sum_y e^{f(\mathbf{x})[y]}$,
# that is the energy
#
# $$E(\mathbf{x}) = -\log \sum_{y=1}^{K} e^{f(\mathbf{x})[y]}.$$
#
# Compute it for a batch of logits so that it stays finite for logits in the thousands (where
# $e^{1000}$ overflows): subtract the largest logit of each row first, or use `torch.logsumexp`.

# %%
def energy_from_logits(logits):
    """E(x) = −log Σ_y exp(f(x)[y]) for every row of logits, computed without overflow.

    logits: (batch, K) tensor of f(x). Returns a (batch,) tensor in the logits' dtype.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: logits (0, ln 3) give Σ exp = 1 + 3 = 4, so E = −ln 4.
value = energy_from_logits(torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64))
print(f"E = {float(value[0]):.6f}, expected −ln 4 = {-math.log(4.0):.6f}")
assert abs(float(value[0]) + math.log(4.0)) < 1e-9, "not yet right: E(x) is minus the log of the sum of exp(logits)"


# %% [markdown]
# ## Exercise 7.2: the JEM loss of a batch (4 points)
#
# JEM maximises $\log p(y\mid\mathbf{x}) + \log p(\mathbf{x})$. For a batch of $n$ labelled data points with logits
# $f(\mathbf{x}_i)$ and $m$ negatives $\mathbf{x}^-_j$ (SGLD samples of the model) with logits $f(\mathbf{x}^-_j)$, the
# loss whose gradient is the JEM update is
#
# $$L = \frac1n \sum_{i=1}^n -\log \operatorname{softmax}(f(\mathbf{x}_i))[y_i]
#     \;+\; \frac1n \sum_{i=1}^n E(\mathbf{x}_i) \;-\; \frac1m \sum_{j=1}^m E(\mathbf{x}^-_j),$$
#
# the cross-entropy plus the contrastive estimate of $-\log p(\mathbf{x})$, with $E(\mathbf{x}) = -\operatorname{logsumexp}_y f(\mathbf{x})[y]$.
# The result must be differentiable: the grader takes its gradient with autograd.

# %%
def jem_loss(logits, y, logits_neg):
    """The JEM loss: mean cross-entropy + mean E(data) − mean E(negatives), as a 0-dim tensor.

    logits: (n, K) logits of the data; y: (n,) integer labels in [0, K); logits_neg: (m, K) logits of
    the negatives (m may differ from n). Keep it differentiable (no .item(), no numpy).
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: data logits (0, ln 3) with label 1: cross-entropy −ln(3/4), E = −ln 4; negative logits (0, 0):
# E = −ln 2. L = −ln(3/4) − ln 4 + ln 2 = −ln 1.5.
value = jem_loss(torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64), torch.tensor([1]),
                 torch.tensor([[0.0, 0.0]], dtype=torch.float64))
print(f"L = {float(value):.6f}, expected −ln 1.5 = {-math.log(1.5):.6f}")
assert abs(float(value) + math.log(1.5)) < 1e-9, "not yet right: check each of the three terms and its sign"


# %% [markdown]
# ## Exercise 7.3: expected calibration error (4 points)
#
# With confidences $c_i = \max_k p_{ik}$ and predictions $\hat y_i = \arg\max_k p_{ik}$, split $[0, 1]$ into $M$
# equal bins $B_m = \left(\frac{m-1}{M}, \frac{m}{M}\right]$ (right end included; a confidence of exactly 0 goes
# to the first bin) and compute
#
# $$\mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n} \left| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \right|,$$
#
# where $\mathrm{acc}(B_m)$ is the fraction of correct predictions among the examples in bin $m$ and
# $\mathrm{conf}(B_m)$ their mean confidence. Empty bins add nothing.

# %%
def expected_calibration_error(probs, y, n_bins=15):
    """ECE of class probabilities probs (n, K) against integer labels y (n,), with n_bins equal bins.

    Bins are ((m−1)/M, m/M] for m = 1..M. Returns a Python float (or a 0-dim tensor) in [0, 1].
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: four predictions at confidence 0.75, three of them right: accuracy equals confidence, ECE = 0.
# Then five at confidence 1.0 with three right: ECE = |0.6 − 1.0| = 0.4.
calibrated = expected_calibration_error(torch.tensor([[0.75, 0.25]] * 4), torch.tensor([0, 0, 0, 1]))
overconfident = expected_calibration_error(torch.tensor([[1.0, 0.0]] * 5), torch.tensor([0, 0, 0, 1, 1]))
print(f"ECE = {float(calibrated):.4f} (expected 0) and {float(overconfident):.4f} (expected 0.4)")
assert abs(float(calibrated)) < 1e-6 and abs(float(overconfident) - 0.4) < 1e-6, "not yet right"


# %% [markdown]
# ## Exercise 7.4: the AUROC of Gaussian scores, derived (3 points)
#
# An out-of-distribution score should be higher for in-distribution inputs. Its AUROC is the probability
# that a random in-distribution score beats a random out-of-distribution one (a tie counting one half):
#
# $$\mathrm{AUROC} = P(s_\text{in} > s_\text{out}) + \tfrac12 P(s_\text{in} = s_\text{out}).$$
#
# The JEM's histograms of $\log p(\mathbf{x})$ in the chapter look roughly bell-shaped (the plain
# classifier's do not all). Suppose the scores are exactly Gaussian and independent: $s_\text{in} \sim \mathcal N(\mu_\text{in}, \sigma_\text{in}^2)$ and
# $s_\text{out} \sim \mathcal N(\mu_\text{out}, \sigma_\text{out}^2)$. **Derive** the AUROC as a closed form in the four
# parameters, using the standard normal CDF $\Phi(t) = \tfrac12\bigl(1 + \operatorname{erf}(t/\sqrt2)\bigr)$, and
# return it (no sampling: `math.erf` is all you need). *Hint:* what is the distribution of
# $s_\text{in} - s_\text{out}$, and how likely is a tie?

# %%
def gaussian_auroc(mu_in, sd_in, mu_out, sd_out):
    """AUROC of a score distributed N(mu_in, sd_in^2) in distribution and N(mu_out, sd_out^2) out of it.

    All four are floats (sd_in, sd_out > 0). Returns a float in [0, 1] from your closed form.
    """
    if sd_in <= 0 or sd_out <= 0:
        raise ValueError(f"the standard deviations must be > 0; got {sd_in} and {sd_out}.")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["self-check"]
# Self-check: equal distributions give 0.5. Then a Monte Carlo estimate: all pairs of 2000 sampled scores.
value = float(gaussian_auroc(1.0, 2.0, 1.0, 2.0))
print(f"AUROC for identical distributions = {value:.6f}, expected 0.5")
assert abs(value - 0.5) < 1e-9, "not yet right: identical score distributions cannot be told apart"
g = torch.Generator().manual_seed(0)
s_in = 1.0 + 0.5 * torch.randn(2000, generator=g, dtype=torch.float64)
s_out = -0.5 + 1.5 * torch.randn(2000, generator=g, dtype=torch.float64)
estimate = float((s_in[:, None] > s_out[None, :]).double().mean())
value = float(gaussian_auroc(1.0, 0.5, -0.5, 1.5))
print(f"AUROC: your formula {value:.4f}, Monte Carlo over all pairs {estimate:.4f}")
assert abs(value - estimate) < 0.015, "not yet right: what is the distribution of s_in - s_out?"
