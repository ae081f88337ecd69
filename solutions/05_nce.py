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
# # Exercises for Chapter 5: noise-contrastive estimation
#
# Four exercises: three functions that are results of Chapter 5, and one derivation whose answer the
# grader checks numerically against Gutmann & Hyvärinen's theorem. Replace every
# `raise NotImplementedError()` with your code, then run the **self-check** cell below the exercise: it
# tries your function on one case whose answer you can verify by hand. The grader runs further, hidden checks on other inputs:
#
# ```
# python -m ebm_teach.grade 05_nce.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 05_nce
import math

import torch
import torch.nn.functional as F

# %% [markdown]
# ## Exercise 5.1: the NCE logit (3 points)
#
# The model is $\log p_\theta(x) = -E_\theta(x) - c$ with a learned log-normaliser $c$; the noise has the
# known log-density $\log p_n(x)$; there are $\nu$ noise samples per data sample. The classifier's logit is
#
# $$\Delta(x) = -E_\theta(x) - c - \log\big(\nu\, p_n(x)\big).$$
#
# Work with $\log p_n$ directly (never exponentiate it: densities underflow). Raise a `ValueError` when
# $\nu \le 0$, since the logit is then undefined.

# %%
def nce_logit(energy, c, log_noise, nu):
    """The NCE logit Δ = −E − c − log(ν p_n) for a batch.

    energy: (n,) tensor of energies E_θ(x); c: the log-normaliser (number or 0-dim tensor);
    log_noise: (n,) tensor of log p_n(x); nu: the noise ratio ν > 0.
    Returns an (n,) tensor Δ (differentiable in energy and c). Raises ValueError when ν ≤ 0.
    """
    if energy.shape != log_noise.shape:
        raise ValueError(f"energy and log_noise must have the same shape; got {tuple(energy.shape)} and {tuple(log_noise.shape)}.")
    ### BEGIN SOLUTION
    if not nu > 0:
        raise ValueError(f"nu must be > 0 (noise samples per data sample); got {nu}.")
    return -energy - c - math.log(nu) - log_noise
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: E = 0, c = 0, nu = 1 and p_n = 1 (log p_n = 0) give Delta = 0: the classifier is undecided.
delta = nce_logit(torch.zeros(3), 0.0, torch.zeros(3), 1.0)
print("Delta =", delta.tolist(), "(expected [0, 0, 0])")
assert torch.allclose(delta, torch.zeros(3)), "not yet right"
delta = nce_logit(torch.tensor([1.0]), 0.5, torch.tensor([-2.0]), 4.0)
print(f"Delta = {float(delta[0]):.4f} (expected -1 - 0.5 - log 4 + 2 = {-1.5 - math.log(4) + 2:.4f})")
assert abs(float(delta[0]) - (-1.5 - math.log(4) + 2)) < 1e-5, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("05_nce", "5.1", nce_logit)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 5.2: the NCE loss for a batch (4 points)
#
# A batch holds $T_d$ data points (label 1) and $T_n = \nu T_d$ noise points (label 0). The loss is the binary
# cross-entropy averaged over all $T_d + T_n$ points,
#
# $$\mathcal{L} = \frac{1}{T_d + T_n}\Big[-\sum_{\text{data}} \log\sigma(\Delta) - \sum_{\text{noise}}\log\big(1 - \sigma(\Delta)\big)\Big],$$
#
# which is Gutmann & Hyvärinen's objective $J = \mathbb{E}_{\text{data}}[\log\sigma(\Delta)] + \nu\,\mathbb{E}_{\text{noise}}[\log(1-\sigma(\Delta))]$
# times $-1/(1+\nu)$. Use your `nce_logit`, and compute the logs stably: $-\log\sigma(t) = \operatorname{softplus}(-t)$
# and $-\log(1-\sigma(t)) = \operatorname{softplus}(t)$ (`torch.nn.functional.softplus`), so that a confident
# classifier ($|\Delta|$ in the hundreds) gives a finite loss. Raise a `ValueError` when the batch does not
# hold $\nu$ noise points per data point ($T_n \ne \operatorname{round}(\nu T_d)$).

# %%
def nce_loss(energy_data, energy_noise, log_noise_data, log_noise_noise, c, nu):
    """The NCE loss: mean binary cross-entropy of T_d data points against T_n = ν·T_d noise points.

    energy_data: (T_d,) energies at the data; energy_noise: (T_n,) energies at the noise samples;
    log_noise_data, log_noise_noise: log p_n at the same points, (T_d,) and (T_n,); c: the log-normaliser;
    nu: ν > 0. Returns a 0-dim tensor, differentiable in the energies and c.
    Raises ValueError when T_n != round(ν·T_d).
    """
    ### BEGIN SOLUTION
    if len(energy_noise) != round(nu * len(energy_data)):
        raise ValueError(
            f"expected round(nu * T_d) = {round(nu * len(energy_data))} noise points for T_d = {len(energy_data)}; "
            f"got {len(energy_noise)}."
        )
    delta_data = nce_logit(energy_data, c, log_noise_data, nu)
    delta_noise = nce_logit(energy_noise, c, log_noise_noise, nu)
    total = F.softplus(-delta_data).sum() + F.softplus(delta_noise).sum()
    return total / (len(energy_data) + len(energy_noise))
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: when every logit is 0 (E = 0, c = 0, nu = 1, log p_n = 0) each point costs log 2.
zeros = torch.zeros(4)
loss = nce_loss(zeros, zeros, zeros, zeros, 0.0, 1.0)
print(f"loss = {float(loss):.4f} (expected log 2 = {math.log(2):.4f})")
assert abs(float(loss) - math.log(2)) < 1e-5, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("05_nce", "5.2", nce_loss)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 5.3: the decision boundary of a Gaussian model against Gaussian noise (3 points)
#
# The model is $E(x) = x^2/(2\sigma^2)$ with log-normaliser $c$, the noise is $\mathcal{N}(0, \sigma_n^2)$, and there
# are $\nu$ noise samples per data sample. Solve $\Delta(x) = 0$ for $|x|$ by hand: writing out
# $\log p_n(x) = -\tfrac{x^2}{2\sigma_n^2} - \tfrac12\log(2\pi\sigma_n^2)$, the equation is linear in $x^2$.
# The chapter's worked example ($\sigma^2 = 1$, $\sigma_n^2 = 4$, $\nu = 1$, $c = 0$) gives $|x| \approx 2.073$.
#
# When the solution for $x^2$ is negative, or when the equation does not depend on $x$ at all
# ($\sigma_n = \sigma$, the case of section 3), the classifier gives the same answer everywhere and there is no
# boundary: raise a `ValueError`.

# %%
def decision_boundary(sigma2, sigma_n2, nu=1.0, c=0.0):
    """|x| where the NCE classifier for E(x) = x²/(2σ²), log-normaliser c, noise N(0, σ_n²) and ratio ν is undecided.

    sigma2: σ² > 0; sigma_n2: σ_n² > 0; nu: ν > 0; c: a number. Returns a float |x| ≥ 0 with Δ(±|x|) = 0.
    Raises ValueError when Δ never changes sign (no boundary).
    """
    ### BEGIN SOLUTION
    slope = 1 / (2 * sigma2) - 1 / (2 * sigma_n2)  # coefficient of x² in  -Δ(x) + const
    level = 0.5 * math.log(2 * math.pi * sigma_n2) - math.log(nu) - c
    if slope == 0 or level / slope < 0:
        raise ValueError("the logit never changes sign: the classifier gives the same answer for every x.")
    return math.sqrt(level / slope)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: the chapter's worked example.
value = decision_boundary(1.0, 4.0)
print(f"|x| = {value:.4f} (expected sqrt(8/3 ln(2 sqrt(2 pi))) = {math.sqrt(8 / 3 * math.log(2 * math.sqrt(2 * math.pi))):.4f})")
assert abs(value - 2.0734) < 1e-3, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("05_nce", "5.3", decision_boundary)
### END HIDDEN TESTS


# %% [markdown]
# ## Exercise 5.4: NCE as an estimator of $\log Z$ alone, a derivation (2 points)
#
# Gutmann & Hyvärinen's Theorem 3 (chapter 5, section 3) gives NCE's asymptotic covariance,
# $\sqrt{T_d}\,(\hat\theta - \theta^\star) \to \mathcal{N}(0, \Sigma)$ with
#
# $$\Sigma = I_\nu^{-1} - \Big(1 + \frac1\nu\Big) I_\nu^{-1} \mathbf{m}\mathbf{m}^\top I_\nu^{-1},\qquad
#   I_\nu = \int \mathbf{g}\mathbf{g}^\top P_\nu\, p_d,\quad \mathbf{m} = \int \mathbf{g} P_\nu\, p_d,
#   \quad P_\nu = \frac{\nu p_n}{p_d + \nu p_n},$$
#
# where $\mathbf{g}$ is the gradient of $\log p_\theta(x)$ in the parameters at the truth. Take the extreme
# case where the energy is known exactly, $E(x) = -\log p_d(x) - \log Z$, and NCE estimates only the
# log-normaliser $c$ from $T_d$ data points and $\nu T_d$ noise points: the chapter's remark that NCE, used
# this way, is an estimator of $\log Z$ (a bridge-sampling estimator).
#
# 1. With $c$ the only parameter, what is $\mathbf{g}$? Derive $\Sigma_{cc}$, the asymptotic variance of
#    $\sqrt{T_d}\,(\hat c - \log Z)$, as a function of $\nu$ and of the single number
#    $a = \int P_\nu(x)\, p_d(x)\, dx$ (the mean probability, under the data, that the Bayes classifier
#    assigns to "noise").
# 2. Write a function that returns $\Sigma_{cc}$ for data $\mathcal{N}(\mu_d, \sigma_d^2)$ and noise
#    $\mathcal{N}(\mu_n, \sigma_n^2)$ in one dimension, computing $a$ by quadrature. Compute $P_\nu$ from
#    log-densities, $P_\nu = \sigma(\log\nu + \log p_n - \log p_d)$: far in the tails both densities
#    underflow to 0, and $0/0$ is `nan`. Raise a `ValueError` when a variance or $\nu$ is not positive.
#
# Before you run the self-check, predict: what variance does your formula give for noise equal to the data?
# The hidden checks compare your function with the theorem evaluated by quadrature on random Gaussians.

# %%
def nce_log_z_variance(mean_d, var_d, mean_n, var_n, nu):
    """The asymptotic variance of sqrt(T_d) (c_hat - log Z) when NCE estimates only c.

    Data N(mean_d, var_d), noise N(mean_n, var_n), nu noise samples per data sample; the energy is known
    exactly. mean_d, mean_n: numbers; var_d, var_n > 0: variances; nu > 0.
    Returns Sigma_cc as a float >= 0. Raises ValueError when var_d, var_n or nu is not positive.
    """
    ### BEGIN SOLUTION
    # g = d/dc (-E - c) = -1, so I_nu = int P_nu p_d = a and m = -a:
    # Sigma = 1/a - (1 + 1/nu) a^2 / a^2 = 1/a - 1 - 1/nu.
    if not (var_d > 0 and var_n > 0 and nu > 0):
        raise ValueError(f"variances and nu must be > 0; got var_d={var_d}, var_n={var_n}, nu={nu}.")
    half = 15 * math.sqrt(max(var_d, var_n))  # the grid covers both densities
    lo, hi = min(mean_d, mean_n) - half, max(mean_d, mean_n) + half
    x = torch.linspace(lo, hi, 40001, dtype=torch.float64)
    log_pd = -0.5 * (x - mean_d) ** 2 / var_d - 0.5 * math.log(2 * math.pi * var_d)
    log_pn = -0.5 * (x - mean_n) ** 2 / var_n - 0.5 * math.log(2 * math.pi * var_n)
    p_noise = torch.sigmoid(math.log(nu) + log_pn - log_pd)  # P_nu
    a = float(torch.trapezoid(p_noise * log_pd.exp(), x))
    return 1 / a - 1 - 1 / nu
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: data N(0, 1), noise N(0, 4), nu = 1 (the chapter's worked example) gives 0.3809; and your
# prediction for noise equal to the data.
value = nce_log_z_variance(0.0, 1.0, 0.0, 4.0, 1.0)
print(f"Sigma_cc = {value:.4f} (expected 0.3809)")
assert abs(value - 0.3809) < 1e-3, "not yet right"
same = nce_log_z_variance(0.5, 2.0, 0.5, 2.0, 3.0)
print(f"noise equal to the data: Sigma_cc = {same:.2e}")
assert abs(same) < 1e-6, "not yet right: with p_n = p_d, what is P_nu, and so a?"
# Why is it zero? With the energy exact and p_n = p_d, the logit -E - c - log(nu p_n) is the same number
# at every point, so the classifier cannot tell data from noise, and the best c is the one that makes its
# constant output equal the known share of data in the pool, 1 / (1 + nu): c = log Z, whatever the sample.

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("05_nce", "5.4", nce_log_z_variance)
### END HIDDEN TESTS
