"""Noise-contrastive estimation: the logit, the loss and its gradient, the estimator, its asymptotic covariance.

Known answers: the worked example's boundary +-sqrt(8/3 ln(2 sqrt(2 pi))) = +-2.0734; the loss and its
gradient against the hand-derived form on a 1-D Gaussian; Gutmann & Hyvarinen's Corollaries (p_n = p_d gives
(1 + 1/nu) times the Cramer-Rao bound, nu -> infinity gives the bound); quadrature against closed forms; the
ranking (InfoNCE) loss against an explicit softmax, its blindness to c, and its consistency; the
importance-sampling log Z against the closed form and its standard error against the exact variance of the
weights.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from ebm_teach import make_generator
from ebm_teach.core import DivergenceError
from ebm_teach.energies import GaussianEBM
from ebm_teach.evaluate import grid, log_partition_grid
from ebm_teach.nce import (
    GaussianNoise,
    NCEModel,
    UniformNoise,
    decision_boundary_1d,
    fit_nce,
    importance_log_z,
    nce_asymptotic_covariance,
    nce_logit,
    nce_loss,
    ranking_nce_loss,
    train_nce,
)

D = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")  # thousands of tiny tensor ops: see tests/conftest.py


def gaussian_1d(mu, lam):
    return GaussianEBM(torch.tensor([mu], dtype=D), torch.tensor([[lam]], dtype=D))


def normal_1d(mean, var):
    return GaussianNoise(torch.tensor([mean], dtype=D), torch.tensor([[var]], dtype=D))


# --------------------------------------------------------------------------------------------- decision boundary
def test_worked_example_boundary_is_plus_minus_2_073():
    # E = x^2/2, c = 0, p_n = N(0, 4), nu = 1: exp(-x^2/2) = N(x; 0, 4)  =>  x^2 = 8/3 ln(2 sqrt(2 pi)).
    noise = normal_1d(0.0, 4.0)
    roots = decision_boundary_1d(lambda x: nce_logit(0.5 * x[:, 0] ** 2, 0.0, noise.log_prob(x), 1.0), (-6, 6))
    exact = math.sqrt(8 / 3 * math.log(2 * math.sqrt(2 * math.pi)))
    assert exact == pytest.approx(2.0734, abs=1e-4)
    assert roots.tolist() == pytest.approx([-exact, exact], abs=1e-9)
    assert f"{float(roots[1]):.3f}" == "2.073"


@pytest.mark.parametrize("sigma2, sigma_n2, nu, c", [(1.0, 4.0, 3.0, 0.0), (0.5, 9.0, 1.0, 0.4), (2.0, 3.0, 0.5, -0.2)])
def test_boundary_matches_closed_form_for_gaussian_model_and_noise(sigma2, sigma_n2, nu, c):
    # -x^2/(2 s2) - c = log nu + log N(x; 0, sn2)  =>  x^2 (1/(2 s2) - 1/(2 sn2)) = 1/2 log(2 pi sn2) - log nu - c.
    noise = normal_1d(0.0, sigma_n2)
    roots = decision_boundary_1d(lambda x: nce_logit(x[:, 0] ** 2 / (2 * sigma2), c, noise.log_prob(x), nu), (-20, 20))
    x2 = (0.5 * math.log(2 * math.pi * sigma_n2) - math.log(nu) - c) / (1 / (2 * sigma2) - 1 / (2 * sigma_n2))
    assert roots.tolist() == pytest.approx([-math.sqrt(x2), math.sqrt(x2)], abs=1e-9)


# --------------------------------------------------------------------------------------------- logit and loss
def test_logit_is_log_model_minus_log_nu_noise():
    energy = torch.tensor([0.3, -1.2, 2.0], dtype=D)
    log_pn = torch.tensor([-1.0, -0.5, -4.0], dtype=D)
    delta = nce_logit(energy, 0.7, log_pn, 5.0)
    expected = np.log(np.exp(-energy.numpy() - 0.7) / (5.0 * np.exp(log_pn.numpy())))
    assert delta.numpy() == pytest.approx(expected, abs=1e-12)


def _hand_loss_and_grad(x_data, x_noise, mu, lam, c, noise_var, nu):
    """NumPy, from the formulas: Delta = -lam (x-mu)^2/2 - c - log nu - log N(x; 0, noise_var)."""
    def delta(x):
        log_pn = -0.5 * x**2 / noise_var - 0.5 * np.log(2 * np.pi * noise_var)
        return -0.5 * lam * (x - mu) ** 2 - c - np.log(nu) - log_pn

    def sig(t):
        return 1 / (1 + np.exp(-t))

    dd, dn = delta(x_data), delta(x_noise)
    n = len(x_data) + len(x_noise)
    loss = -(np.log(sig(dd)).sum() + np.log(1 - sig(dn)).sum()) / n
    # dL/dtheta = [-sum_data (1 - sigma) dDelta/dtheta + sum_noise sigma dDelta/dtheta] / n, with
    # dDelta/dmu = lam (x - mu), dDelta/dlam = -(x - mu)^2 / 2, dDelta/dc = -1.
    def grad(d_data, d_noise):
        return (-((1 - sig(dd)) * d_data).sum() + (sig(dn) * d_noise).sum()) / n

    g_mu = grad(lam * (x_data - mu), lam * (x_noise - mu))
    g_lam = grad(-0.5 * (x_data - mu) ** 2, -0.5 * (x_noise - mu) ** 2)
    g_c = grad(-np.ones_like(x_data), -np.ones_like(x_noise))
    j = np.log(sig(dd)).mean() + nu * np.log(1 - sig(dn)).mean()  # Gutmann & Hyvarinen's J
    return loss, (g_mu, g_lam, g_c), j


@pytest.mark.parametrize("nu", [1, 3])
def test_loss_and_gradient_match_hand_derivation_on_1d_gaussian(nu):
    gen = make_generator(0)
    x_data = 0.8 + 0.7 * torch.randn(40, 1, generator=gen, dtype=D)
    noise = normal_1d(0.0, 2.5)
    x_noise = noise.sample(40 * nu, generator=gen)
    mu, lam, c = 0.3, 1.7, 0.4
    model = NCEModel(gaussian_1d(mu, lam), c=c)
    loss = nce_loss(model, x_data, x_noise, noise, nu)
    loss.backward()
    loss = loss.detach()
    hand_loss, (g_mu, g_lam, g_c), j = _hand_loss_and_grad(x_data[:, 0].numpy(), x_noise[:, 0].numpy(), mu, lam, c, 2.5, nu)
    assert float(loss) == pytest.approx(hand_loss, rel=1e-12)
    assert float(loss) == pytest.approx(-j / (1 + nu), rel=1e-12)  # the mean BCE is -J / (1 + nu)
    assert float(model.energy.mu.grad[0]) == pytest.approx(g_mu, rel=1e-10)
    assert float(model.c.grad) == pytest.approx(g_c, rel=1e-10)
    # The model stores log L_11 with Lambda = L_11^2, so dL/dlog L_11 = dL/dLambda * 2 Lambda.
    assert float(model.energy.log_diag.grad[0]) == pytest.approx(g_lam * 2 * lam, rel=1e-10)


def test_loss_is_finite_for_extreme_logits():
    noise = normal_1d(0.0, 1.0)
    model = NCEModel(gaussian_1d(0.0, 1.0), c=-800.0)  # Delta ~ +800 everywhere: log sigma would underflow
    x = torch.tensor([[0.0], [50.0]], dtype=D)
    loss = nce_loss(model, x, x.clone(), noise, 1).detach()
    assert torch.isfinite(loss) and float(loss) > 100


def test_noise_equal_to_model_gives_chance_level_loss_and_zero_gradient():
    # p_theta = p_n = p_d: Delta = -log nu everywhere; the population loss is the binary entropy H(1/(1+nu))
    # for every sample, and its gradient vanishes in expectation. Monte Carlo with 200000 data and 600000 noise
    # points: each gradient entry has a standard error of about 5e-4, so we allow 3e-3 (6 standard errors).
    nu = 3
    gen = make_generator(1)
    noise = normal_1d(0.0, 1.0)
    x_data, x_noise = noise.sample(200_000, generator=gen), noise.sample(600_000, generator=gen)
    model = NCEModel(gaussian_1d(0.0, 1.0), c=0.5 * math.log(2 * math.pi))
    loss = nce_loss(model, x_data, x_noise, noise, nu)
    loss.backward()
    loss = loss.detach()
    p = 1 / (1 + nu)
    assert float(loss) == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-12)
    for par in model.parameters():
        assert float(par.grad.abs().max()) < 3e-3


# --------------------------------------------------------------------------------------------- the estimator
def _gaussian_2d_score(mu, lam):
    """g = grad of -E - c w.r.t. (mu_1, mu_2, Lam_11, Lam_12, Lam_22, c) on x: (n, 2)."""
    def score(x):
        r = x - mu
        g_mu = r @ lam
        return torch.stack([g_mu[:, 0], g_mu[:, 1], -0.5 * r[:, 0] ** 2, -r[:, 0] * r[:, 1], -0.5 * r[:, 1] ** 2,
                            -torch.ones(len(x), dtype=x.dtype)], 1)
    return score


def test_nce_on_2d_gaussian_recovers_mu_lambda_and_log_z():
    mu = torch.tensor([1.0, -0.5], dtype=D)
    lam = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=D)
    truth = GaussianEBM(mu, lam)
    t_d, nu = 3000, 8
    gen = make_generator(2)
    x = truth.sample(t_d, generator=gen)
    noise = GaussianNoise.fit(x, widen=1.5)
    model = NCEModel(GaussianEBM.standard(2))
    fit_nce(model, x, noise.sample(nu * t_d, generator=gen), noise, nu)
    # Tolerance: 4 standard deviations of the estimator, from Gutmann & Hyvarinen's asymptotic covariance.
    sigma = nce_asymptotic_covariance(_gaussian_2d_score(mu, lam), truth.log_prob, noise.log_prob, nu,
                                      [(-6, 8), (-7.5, 6.5)], n_points=300)
    sd = (torch.diagonal(sigma) / t_d).sqrt()
    with torch.no_grad():
        lam_hat = model.energy.precision
        est = torch.stack([*model.energy.mu, lam_hat[0, 0], lam_hat[0, 1], lam_hat[1, 1], model.c])
        true = torch.stack([*mu, lam[0, 0], lam[0, 1], lam[1, 1], truth.log_partition()])
    assert ((est - true).abs() < 4 * sd).all(), f"errors {(est - true).tolist()} vs 4 sd {(4 * sd).tolist()}"
    # Self-normalisation: c equals log Z of the learned energy (closed form), and quadrature agrees with it.
    with torch.no_grad():
        closed = float(model.energy.log_partition())
    quad = log_partition_grid(model.energy, [(-6, 8), (-7.5, 6.5)], 600)
    assert quad == pytest.approx(closed, abs=1e-6)
    # sd of c - log Z(Lambda_hat) by the delta method: d log Z / d Lambda = -Lambda^{-1} / 2 (Lam_12 counted twice).
    cov = torch.linalg.inv(lam)
    a = torch.tensor([0, 0, 0.5 * cov[0, 0], cov[0, 1], 0.5 * cov[1, 1], 1.0], dtype=D)
    sd_gap = float((a @ sigma @ a / t_d).sqrt())
    assert float(model.c.detach()) == pytest.approx(closed, abs=4 * sd_gap)


def test_fit_nce_is_the_exact_minimiser_of_the_sample_objective():
    gen = make_generator(3)
    x = 1.0 + 0.5 * torch.randn(500, 1, generator=gen, dtype=D)
    noise = normal_1d(0.0, 4.0)
    xn = noise.sample(2000, generator=gen)
    model = NCEModel(gaussian_1d(0.0, 1.0))
    fit_nce(model, x, xn, noise, 4)
    loss = nce_loss(model, x, xn, noise, 4)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert max(float(g.abs().max()) for g in grads if g is not None) < 1e-7


def test_asymptotic_covariance_with_noise_equal_to_data_is_one_plus_one_over_nu_cramer_rao():
    lam, nu = 4.0, 3.0
    data = gaussian_1d(1.0, lam)

    def score(x):
        r = x[:, 0] - 1.0
        return torch.stack([lam * r, -0.5 * r**2, -torch.ones_like(r)], 1)

    sigma = nce_asymptotic_covariance(score, data.log_prob, data.log_prob, nu, [(-4, 6)], 20000)
    # Cramer-Rao for (mu, Lambda) and c = log Z(Lambda) = 1/2 log(2 pi / Lambda) by the delta method.
    cr = torch.tensor([[1 / lam, 0, 0], [0, 2 * lam**2, -lam], [0, -lam, 0.5]], dtype=D)
    assert torch.allclose(sigma, (1 + 1 / nu) * cr, atol=1e-8)
    wide = normal_1d(0.0, 9.0)
    sigma_inf = nce_asymptotic_covariance(score, data.log_prob, wide.log_prob, 1e7, [(-4, 6)], 20000)
    assert torch.allclose(sigma_inf, cr, atol=1e-4)


def test_estimator_spread_matches_asymptotic_covariance_by_monte_carlo():
    # 120 independent fits with T_d = 300, nu = 4. The sample variance of 120 draws has relative standard
    # error sqrt(2/119) ~ 13 %, so we accept ratios within [0.6, 1.5] (about 3 standard errors).
    lam, t_d, nu, reps = 4.0, 300, 4, 120
    truth = gaussian_1d(1.0, lam)
    noise = normal_1d(0.0, 4.0)
    gen = make_generator(4)
    est = []
    for _ in range(reps):
        x = truth.sample(t_d, generator=gen)
        model = NCEModel(gaussian_1d(0.0, 1.0))
        fit_nce(model, x, noise.sample(nu * t_d, generator=gen), noise, nu)
        with torch.no_grad():
            est.append([float(model.energy.mu[0]), float(model.energy.precision[0, 0]), float(model.c)])
    var_mc = torch.tensor(est, dtype=D).var(0)

    def score(x):
        r = x[:, 0] - 1.0
        return torch.stack([lam * r, -0.5 * r**2, -torch.ones_like(r)], 1)

    var_theory = torch.diagonal(nce_asymptotic_covariance(score, truth.log_prob, noise.log_prob, nu, [(-10, 10)], 20000)) / t_d
    ratio = var_mc / var_theory
    assert ((ratio > 0.6) & (ratio < 1.5)).all(), f"MC / theory variance ratios {ratio.tolist()}"


def test_train_nce_self_normalises_a_gaussian_model():
    gen = make_generator(5)
    truth = GaussianEBM(torch.tensor([0.5, -1.0], dtype=D), torch.tensor([[1.5, 0.3], [0.3, 0.8]], dtype=D))
    x = truth.sample(4000, generator=gen)
    noise = GaussianNoise.fit(x, widen=1.5)
    model = NCEModel(GaussianEBM.standard(2))
    hist = train_nce(model, x, noise, nu=4, n_steps=600, batch_size=256, lr=0.03, generator=gen)
    assert hist["loss"][-1] < hist["loss"][0] - 0.05
    # Adam at a fixed learning rate hovers around the optimum: over seeds 5-9 |c - log Z| stayed below 0.03
    # (the estimator's own sd is ~0.01 here), so 0.08 leaves room for other CPUs without hiding a wrong c.
    with torch.no_grad():
        assert float(model.c) == pytest.approx(float(model.energy.log_partition()), abs=0.08)
        assert float(model.c) == pytest.approx(float(truth.log_partition()), abs=0.08)


# --------------------------------------------------------------------------------------------- noise
def test_gaussian_noise_log_prob_fit_and_sample():
    gen = make_generator(6)
    x = torch.randn(5000, 2, generator=gen, dtype=D) @ torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=D) + 3.0
    noise = GaussianNoise.fit(x, widen=2.0)
    cov = torch.cov(x.T, correction=0)
    assert torch.allclose(noise.cov, 4 * cov) and torch.allclose(noise.mean, x.mean(0))
    ref = torch.distributions.MultivariateNormal(noise.mean, covariance_matrix=noise.cov)
    assert torch.allclose(noise.log_prob(x[:50]), ref.log_prob(x[:50]), atol=1e-12)
    s = noise.sample(200_000, generator=gen)
    assert torch.allclose(torch.cov(s.T), noise.cov, rtol=0.03, atol=0.05)


def test_uniform_noise_density_integrates_to_one_and_is_zero_outside():
    noise = UniformNoise(torch.tensor([-1.0, 0.0], dtype=D), torch.tensor([3.0, 0.5], dtype=D))
    points, _, cell = grid([(-2, 4), (-1, 1)], 600)  # cell edges fall on the box's edges
    assert float(noise.log_prob(points).exp().sum() * cell) == pytest.approx(1.0, abs=1e-12)
    assert noise.log_prob(torch.tensor([[4.0, 0.2]], dtype=D)).isneginf().all()
    s = noise.sample(1000, generator=make_generator(7))
    assert torch.isfinite(noise.log_prob(s)).all()


# --------------------------------------------------------------------------------------------- contracts
def test_contracts_on_device(device):
    gen = make_generator(8, device)
    x = torch.randn(64, 2, generator=gen, device=device)
    for noise in (GaussianNoise.fit(x, 1.5), UniformNoise(torch.full((2,), -6.0, device=device), torch.full((2,), 6.0, device=device))):
        s = noise.sample(32, generator=gen)
        assert s.shape == (32, 2) and s.device.type == device.type and s.dtype == x.dtype
        assert noise.log_prob(s).shape == (32,)
    model = NCEModel(GaussianEBM.standard(2, dtype=torch.float32, device=device))
    assert model.c.device.type == device.type
    loss = nce_loss(model, x, noise.sample(128, generator=gen), noise, 2)
    assert loss.shape == () and loss.device.type == device.type and torch.isfinite(loss)
    hist = train_nce(model, x, noise, nu=2, n_steps=4, batch_size=16, generator=gen, log_every=2)
    assert hist["step"] == [2, 4] and all(math.isfinite(v) for v in hist["loss"])
    wide = GaussianNoise(torch.zeros(1, dtype=D, device=device), torch.tensor([[4.0]], dtype=D, device=device))
    roots = decision_boundary_1d(lambda x: nce_logit(0.5 * x[:, 0] ** 2, 0.0, wide.log_prob(x), 1.0), (-6, 6), device=device)
    assert roots.tolist() == pytest.approx([-2.0733777, 2.0733777], abs=1e-6)


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("nu", [0, -1.0, float("nan"), float("inf")])
def test_invalid_nu_is_rejected(nu):
    noise = normal_1d(0.0, 1.0)
    model = NCEModel(gaussian_1d(0.0, 1.0))
    x = torch.zeros(4, 1, dtype=D)
    with pytest.raises(ValueError, match="nu must be a finite number > 0"):
        nce_loss(model, x, x, noise, nu)
    with pytest.raises(ValueError, match="nu must be a finite number > 0"):
        train_nce(model, x, noise, nu=nu)


def test_nu_of_the_wrong_type_and_mismatched_noise_count_are_rejected():
    noise = normal_1d(0.0, 1.0)
    model = NCEModel(gaussian_1d(0.0, 1.0))
    x = torch.zeros(4, 1, dtype=D)
    with pytest.raises(TypeError, match="nu must be a positive number"):
        nce_loss(model, x, x, noise, "many")
    with pytest.raises(ValueError, match=r"x_noise has 4 rows but nu \* len\(x_data\) = 3 \* 4 = 12"):
        nce_loss(model, x, x, noise, 3)


class _BadNoise:
    """A noise whose log_prob forgets to sum over coordinates and whose sampler drops the batch axis."""

    def log_prob(self, x):
        return -0.5 * x**2

    def sample(self, n, generator=None):
        return torch.zeros(n, dtype=D)


def test_noise_log_density_and_sampler_of_the_wrong_shape_are_rejected():
    model = NCEModel(gaussian_1d(0.0, 1.0))
    x = torch.zeros(4, 1, dtype=D)
    with pytest.raises(ValueError, match=r"noise.log_prob\(x_data\) must return one log-density per row, shape \(4,\); got \(4, 1\)"):
        nce_loss(model, x, x, _BadNoise(), 1)
    good_log_prob = _BadNoise()
    good_log_prob.log_prob = lambda x: -0.5 * (x**2).sum(1)
    with pytest.raises(ValueError, match=r"noise.sample\(4\) must return a tensor of shape \(4, 1\); got \(4,\)"):
        train_nce(model, x, good_log_prob, nu=1, batch_size=4)
    with pytest.raises(ValueError, match="energy and log_noise must both have shape"):
        nce_logit(torch.zeros(4, dtype=D), 0.0, torch.zeros(4, 1, dtype=D), 1)
    with pytest.raises(ValueError, match=r"x_noise must have shape \(batch, 1\)"):
        nce_loss(model, x, torch.zeros(4, 2, dtype=D), normal_1d(0.0, 1.0), 1)


def test_data_outside_the_noise_support_is_rejected():
    noise = UniformNoise(torch.tensor([-1.0], dtype=D), torch.tensor([1.0], dtype=D))
    x = torch.tensor([[0.0], [2.0], [3.0]], dtype=D)
    with pytest.raises(ValueError, match="2 of 3 data points lie where the noise density is zero"):
        train_nce(NCEModel(gaussian_1d(0.0, 1.0)), x, noise)
    with pytest.raises(ValueError, match="2 of 3 data points lie where the noise density is zero"):
        fit_nce(NCEModel(gaussian_1d(0.0, 1.0)), x, noise.sample(3), noise, 1)


def test_bad_noise_and_model_construction_is_rejected():
    with pytest.raises(ValueError, match="cov must be symmetric positive definite"):
        GaussianNoise(torch.zeros(2, dtype=D), torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=D))
    with pytest.raises(ValueError, match="every high must exceed its low"):
        UniformNoise(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="widen must be a finite number > 0"):
        GaussianNoise.fit(torch.zeros(5, 2), widen=0)
    with pytest.raises(ValueError, match="at least 2 data points"):
        GaussianNoise.fit(torch.zeros(1, 2))
    with pytest.raises(TypeError, match="energy must be a torch.nn.Module"):
        NCEModel(lambda x: x.sum(1))
    with pytest.raises(TypeError, match="model must be an NCEModel"):
        nce_loss(gaussian_1d(0.0, 1.0), torch.zeros(2, 1), torch.zeros(2, 1), normal_1d(0.0, 1.0), 1)
    with pytest.raises(ValueError, match="bounds need low < high"):
        decision_boundary_1d(lambda x: x[:, 0], (1, -1))
    with pytest.raises(ValueError, match=r"score\(x\) must return \(batch, k\)"):
        nce_asymptotic_covariance(lambda x: x[:, 0], lambda x: -x[:, 0] ** 2, lambda x: -x[:, 0] ** 2, 1, [(-3, 3)], 50)


def test_boundary_search_refuses_a_logit_that_is_zero_everywhere():
    # Noise equal to the normalised model with nu = 1: Delta = 0 for every x (chapter 5's practice problem).
    noise = normal_1d(0.0, 1.0)
    with pytest.raises(ValueError, match="classifier is undecided there and there is no boundary"):
        decision_boundary_1d(lambda x: nce_logit(0.5 * x[:, 0] ** 2, 0.5 * math.log(2 * math.pi), noise.log_prob(x), 1.0),
                             (-5, 5))


class _NaNEnergy(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x):
        return self.w * x.sum(1)


def test_divergence_is_reported_not_silent():
    x = torch.randn(32, 2)
    with pytest.raises(DivergenceError, match="the NCE loss became nan"):
        train_nce(NCEModel(_NaNEnergy()), x, GaussianNoise.fit(x), n_steps=10, log_every=5)


# ----------------------------------------------------------------------------- ranking NCE (InfoNCE)
def test_ranking_loss_is_the_softmax_cross_entropy_of_finding_the_datum():
    g = torch.Generator().manual_seed(0)
    model = NCEModel(gaussian_1d(0.3, 2.0), c=0.7)
    noise = normal_1d(0.0, 3.0)
    x = torch.randn(7, 1, generator=g, dtype=D)
    y = 2 * torch.randn(7, 5, 1, generator=g, dtype=D)
    with torch.no_grad():
        # explicit: p(datum is picked) = w(x) / (w(x) + sum_k w(y_k)), w = p_tilde / p_n (c would cancel)
        w = lambda z: torch.exp(-model.energy(z) - noise.log_prob(z))
        p_pick = w(x) / (w(x) + w(y.reshape(-1, 1)).reshape(7, 5).sum(1))
        expected = -torch.log(p_pick).mean()
        got = ranking_nce_loss(model, x, y, noise)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    # K = 1: a logistic regression on the difference of the two scores
    with torch.no_grad():
        s = lambda z: -model.energy(z) - noise.log_prob(z)
        logistic = torch.nn.functional.softplus(s(y[:, 0]) - s(x)).mean()
        assert float(ranking_nce_loss(model, x, y[:, :1], noise)) == pytest.approx(float(logistic), rel=1e-12)


def test_ranking_loss_does_not_see_c():
    g = torch.Generator().manual_seed(1)
    model = NCEModel(gaussian_1d(0.0, 1.0), c=0.0)
    x, y, noise = torch.randn(20, 1, generator=g, dtype=D), torch.randn(20, 3, 1, generator=g, dtype=D), normal_1d(0, 2)
    loss = ranking_nce_loss(model, x, y, noise)
    (grad_c,) = torch.autograd.grad(loss, model.c, allow_unused=True)
    assert grad_c is None or float(grad_c) == 0.0
    with torch.no_grad():
        model.c.fill_(5.0)
        assert float(ranking_nce_loss(model, x, y, noise)) == pytest.approx(float(loss), rel=1e-14)


def test_ranking_nce_recovers_mu_and_lambda_but_leaves_c_alone():
    # T = 5000 data, K = 4: the estimator's sd is about 0.034 / sqrt(10) = 0.011 for mu and 0.30 / sqrt(10)
    # = 0.095 for Lambda (RMSEs measured over 20 fits at T = 500 in chapter 5), so 0.05 and 0.5 are 5 sd.
    g = make_generator(2)
    truth, noise = gaussian_1d(1.0, 4.0), normal_1d(0.0, 4.0)
    x = truth.sample(5000, generator=g)
    model = NCEModel(gaussian_1d(0.0, 1.0), c=0.3)
    fit_nce(model, x, noise.sample(4 * 5000, generator=g), noise, 4, objective="ranking")
    with torch.no_grad():
        assert abs(float(model.energy.mu[0]) - 1.0) < 0.05
        assert abs(float(model.energy.precision[0, 0]) - 4.0) < 0.5
        assert float(model.c) == 0.3  # untouched: the ranking loss has no gradient in c


def test_ranking_nce_rejects_bad_shapes_and_objectives():
    model, noise = NCEModel(gaussian_1d(0.0, 1.0)), normal_1d(0.0, 2.0)
    x = torch.zeros(4, 1, dtype=D)
    with pytest.raises(ValueError, match=r"x_noise must hold K noise samples per datum, shape \(4, K, 1\)"):
        ranking_nce_loss(model, x, torch.zeros(8, 1, dtype=D), noise)
    with pytest.raises(ValueError, match="objective must be 'binary' or 'ranking'"):
        fit_nce(model, x, torch.zeros(8, 1, dtype=D), noise, 2, objective="info")
    with pytest.raises(ValueError, match="ranking NCE needs a whole number K"):
        fit_nce(model, x, torch.zeros(10, 1, dtype=D), noise, 2.5, objective="ranking")
    with pytest.raises(TypeError, match="model must be an NCEModel"):
        ranking_nce_loss(gaussian_1d(0.0, 1.0), x, torch.zeros(4, 2, 1, dtype=D), noise)


# ----------------------------------------------------------------------------- importance-sampling log Z
def _relative_weight_variance(m, s2, t2):
    """var(w) / E[w]^2 for w = N(x; m, s2) / N(x; 0, t2), x ~ N(0, t2): int q^2 / p_n - 1 in closed form,
    t2 / (s sqrt(2 t2 - s2)) exp(m^2 / (2 t2 - s2)) - 1 (finite for 2 t2 > s2)."""
    return t2 / math.sqrt(s2 * (2 * t2 - s2)) * math.exp(m**2 / (2 * t2 - s2)) - 1


def test_importance_log_z_matches_the_closed_form_within_its_standard_error():
    # E = Lambda (x - 1)^2 / 2 with Lambda = 4: Z = sqrt(2 pi / 4); proposal N(0, 4). The weights' relative
    # variance is 2.27 in closed form, so with n = 200000 the standard error of log Z_hat is 0.0034.
    truth, noise = gaussian_1d(1.0, 4.0), normal_1d(0.0, 4.0)
    n = 200_000
    y = noise.sample(n, generator=make_generator(11))
    est = importance_log_z(truth, y, noise)
    rel_var = _relative_weight_variance(1.0, 0.25, 4.0)
    assert rel_var == pytest.approx(2.2695, abs=1e-3)
    se = math.sqrt(rel_var / n)
    assert est.std_err == pytest.approx(se, rel=0.1)  # the sample sd of the weights, within 10 %
    assert est.log_z == pytest.approx(0.5 * math.log(2 * math.pi / 4.0), abs=4 * se)
    assert est.ess == pytest.approx(n / (1 + rel_var), rel=0.1)  # ESS = n / (1 + relative variance)


def test_ranking_nce_then_importance_sampling_with_the_same_noise_normalises_the_model():
    # Ranking NCE leaves c alone; the same noise samples then give log Z of the learned energy.
    g = make_generator(12)
    truth, noise = gaussian_1d(1.0, 4.0), normal_1d(0.0, 4.0)
    x = truth.sample(2000, generator=g)
    y = noise.sample(16 * 2000, generator=g)
    model = NCEModel(gaussian_1d(0.0, 1.0))
    fit_nce(model, x, y, noise, 16, objective="ranking")
    est = importance_log_z(model.energy, y, noise)
    with torch.no_grad():
        closed = float(model.energy.log_partition())
    assert est.log_z == pytest.approx(closed, abs=4 * est.std_err)
    assert est.std_err < 0.02


def test_importance_log_z_rejects_bad_input():
    noise = normal_1d(0.0, 1.0)
    y = noise.sample(10, generator=make_generator(13))
    with pytest.raises(ValueError, match="at least 2 noise samples"):
        importance_log_z(gaussian_1d(0.0, 1.0), y[:1], noise)
    with pytest.raises(ValueError, match=r"energy\(x_noise\) must return one energy per row"):
        importance_log_z(lambda x: x, y, noise)
    box = UniformNoise(torch.tensor([-1.0], dtype=D), torch.tensor([1.0], dtype=D))
    with pytest.raises(ValueError, match="importance weights are not finite"):
        importance_log_z(gaussian_1d(0.0, 1.0), y * 0 + 5.0, box)


def test_c_and_the_last_layer_bias_get_identical_gradients_and_adam_updates():
    # c and the bias b of the network's last layer enter log p = -E - c only as b + c (E = ... + b), so
    # dL/db = dL/dc on every batch, and Adam (zero initial moments) moves them by the same amount.
    from ebm_teach.energies import MLPEnergy

    torch.manual_seed(0)
    x = torch.randn(300, 2, generator=make_generator(14))
    noise = GaussianNoise.fit(x, widen=1.5)
    model = NCEModel(MLPEnergy(2, 16, 2))
    bias = model.energy.net[-1].bias
    loss = nce_loss(model, x[:50], noise.sample(100, generator=make_generator(15)), noise, 2)
    loss.backward()
    assert float(bias.grad) == pytest.approx(float(model.c.grad), rel=1e-6, abs=1e-9)
    b0, c0 = float(bias.detach()), float(model.c.detach())
    train_nce(model, x, noise, nu=2, n_steps=40, batch_size=64, lr=1e-2, generator=make_generator(16))
    moved_b, moved_c = float(bias.detach()) - b0, float(model.c.detach()) - c0
    assert moved_b == pytest.approx(moved_c, abs=1e-5)
    assert abs(moved_c) > 1e-3  # they did move
