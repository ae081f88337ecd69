import math

import pytest
import torch

from ebm_teach.energies import SILU_LIPSCHITZ, GaussianEBM, MLPEnergy, product_of_experts, quadratic_energy
from ebm_teach.evaluate import log_partition_grid

D = torch.float64


def _model(device):
    return GaussianEBM(
        torch.tensor([0.5, -1.0], dtype=D), torch.tensor([[1.5, -0.4], [-0.4, 0.8]], dtype=D)
    ).to(device)


def test_log_partition_matches_quadrature_1d_and_2d(device):
    m1 = GaussianEBM(torch.tensor([0.3], dtype=D), torch.tensor([[4.0]], dtype=D)).to(device)
    assert abs(m1.log_partition().item() - 0.5 * math.log(2 * math.pi / 4.0)) < 1e-12
    assert abs(m1.log_partition().item() - log_partition_grid(m1.energy, [(-5, 5)], 2000, device=device)) < 1e-9
    m2 = _model(device)
    quad = log_partition_grid(m2.energy, [(-9, 10), (-11, 9)], 600, device=device)
    assert abs(m2.log_partition().item() - quad) < 1e-8


def test_log_prob_and_score_against_closed_forms(device):
    m = _model(device)
    x = torch.randn(7, 2, dtype=D, generator=torch.Generator().manual_seed(1)).to(device)
    mvn = torch.distributions.MultivariateNormal(m.mu.detach(), precision_matrix=m.precision.detach())
    assert torch.allclose(m.log_prob(x), mvn.log_prob(x), atol=1e-12)
    assert torch.allclose(m.score(x), -(x - m.mu) @ m.precision, atol=1e-12)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.energy(xr).sum(), xr)
    assert torch.allclose(m.score(x), -g, atol=1e-12)


def test_sampling_moments_within_monte_carlo_error(device):
    m = _model(device)
    n = 200_000
    x = m.sample(n, generator=torch.Generator(device=device).manual_seed(0))
    sigma = m.covariance.detach()
    se_mean = torch.sqrt(torch.diagonal(sigma) / n)
    assert bool(((x.mean(0) - m.mu.detach()).abs() < 4 * se_mean).all())
    # Var of the sample covariance entry (i, j) for a Gaussian: (S_ii S_jj + S_ij^2) / n.
    cov = torch.cov(x.T)
    se_cov = torch.sqrt((torch.outer(torch.diagonal(sigma), torch.diagonal(sigma)) + sigma**2) / n)
    assert bool(((cov - sigma).abs() < 4 * se_cov).all())


def test_log_likelihood_gradient_identity_for_mu_and_lambda():
    """grad log p = -grad E(x) + E_p[grad E]: exact for mu (E_p = 0) and Lambda (E_p = Sigma / 2)."""
    mu = torch.tensor([0.2, -0.3], dtype=D, requires_grad=True)
    lam = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=D, requires_grad=True)
    x = torch.tensor([[1.0, 0.4]], dtype=D)
    log_p = -quadratic_energy(x, mu, lam) - (math.log(2 * math.pi) - 0.5 * torch.logdet(lam))
    g_mu, g_lam = torch.autograd.grad(log_p.sum(), (mu, lam))
    d = (x[0] - mu).detach()
    assert torch.allclose(g_mu, lam.detach() @ d, atol=1e-12)
    assert torch.allclose(g_lam, -0.5 * torch.outer(d, d) + 0.5 * torch.linalg.inv(lam.detach()), atol=1e-12)


def test_cd1_worked_example():
    """E = theta x^2, x_data = 1, eps = 0.1, theta = 1, no noise: x1 = 0.9, gradient 1 - 0.81 = 0.19."""
    theta, x0, eps = 1.0, 1.0, 0.1
    x1 = x0 - 0.5 * eps * 2 * theta * x0
    assert x1 == pytest.approx(0.9, abs=1e-15)
    assert x0**2 - x1**2 == pytest.approx(0.19, abs=1e-15)


def test_product_of_experts_is_the_normalised_sum_of_energies():
    e1 = GaussianEBM(torch.tensor([-1.0, 0.0], dtype=D), torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=D))
    e2 = GaussianEBM(torch.tensor([1.5, 1.0], dtype=D), torch.tensor([[3.0, -1.0], [-1.0, 1.0]], dtype=D))
    poe = product_of_experts(e1, e2)
    x = torch.randn(50, 2, dtype=D, generator=torch.Generator().manual_seed(0))
    diff = (e1.energy(x) + e2.energy(x) - poe.energy(x)).detach()  # a constant
    assert float(diff.max() - diff.min()) < 1e-10
    log_z_sum = log_partition_grid(lambda y: e1.energy(y) + e2.energy(y), [(-6, 6), (-6, 6)], 600)
    assert abs(log_z_sum - (poe.log_partition().item() - float(diff[0]))) < 1e-8


def test_precision_stays_positive_definite_after_a_wild_step():
    m = GaussianEBM.standard(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=torch.Generator().manual_seed(2)) * 5)
    assert float(torch.linalg.eigvalsh(m.precision.detach()).min()) > 0


def test_from_moments_inverts_the_covariance():
    cov = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=D)
    m = GaussianEBM.from_moments(torch.zeros(2, dtype=D), cov)
    assert torch.allclose(m.covariance, cov, atol=1e-12)


def test_bad_inputs_are_rejected_clearly():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianEBM(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianEBM(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"precision must have shape \(2, 2\)"):
        GaussianEBM(torch.zeros(2), torch.eye(3))
    m = GaussianEBM.standard(2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\); got \(5, 3\)"):
        m.energy(torch.zeros(5, 3, dtype=D))
    with pytest.raises(ValueError, match="NaN/inf"):
        m.log_prob(torch.tensor([[0.0, float("nan")]], dtype=D))
    with pytest.raises(ValueError, match="share a dimension"):
        product_of_experts(GaussianEBM.standard(2), GaussianEBM.standard(3))


def test_mlp_energy_contract(device):
    torch.manual_seed(0)
    for sn in (False, True):
        e = MLPEnergy(2, hidden=16, n_layers=2, spectral_norm=sn).to(device)
        x = torch.randn(9, 2, device=device)
        out = e(x)
        assert out.shape == (9,) and out.device.type == device.type and bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        e(torch.zeros(3, 5, device=device))


def test_spectral_norm_bounds_the_lipschitz_constant():
    """With every layer's spectral norm ~1 (power iteration converged) and SiLU (Lipschitz ~1.1),
    |E(x) - E(y)| <= 1.1^L |x - y|."""
    torch.manual_seed(0)
    e = MLPEnergy(2, hidden=32, n_layers=3, spectral_norm=True)
    e.eval()
    for _ in range(5):  # let power iteration converge
        e.train()(torch.zeros(1, 2))
    e.eval()
    x, y = torch.randn(2000, 2) * 3, torch.randn(2000, 2) * 3
    with torch.no_grad():
        ratio = (e(x) - e(y)).abs() / (x - y).norm(dim=1)
    assert float(ratio.max()) <= 1.1**3 * 1.05


def test_one_power_iteration_underestimates_sigma_so_normalised_layers_have_norm_at_least_one():
    # torch's spectral norm takes one power-iteration step per training-mode forward pass: u <- W v / |W v|,
    # v <- W^T u / |W^T u|, sigma_hat = u^T W v = |W^T u| <= sigma_max(W). So W / sigma_hat has norm >= 1, and
    # above 1 until the iteration has converged: after a weight change the bound exceeds SILU_LIPSCHITZ^n.
    torch.manual_seed(2)
    e = MLPEnergy(2, hidden=32, n_layers=3, spectral_norm=True).double()
    e.train()(torch.zeros(1, 2, dtype=D))  # one power-iteration step from the random start
    layers = [m for m in e.net if hasattr(m, "parametrizations")]
    with torch.no_grad():
        for m in layers:  # a weight change the estimate has not seen yet
            m.parametrizations.weight.original.add_(0.3 * torch.randn_like(m.parametrizations.weight.original))
    e.train()(torch.zeros(1, 2, dtype=D))  # one more step: the estimate lags behind the new weights
    e.eval()
    norms = [float(torch.linalg.svdvals(m.weight.detach()).max()) for m in layers]
    assert min(norms) >= 1 - 1e-12
    assert max(norms) > 1.001
    assert e.lipschitz_bound() > SILU_LIPSCHITZ**3 * 1.001


def test_silu_lipschitz_constant_is_its_largest_slope():
    t = torch.linspace(-20, 20, 4_000_001, dtype=D)
    s = torch.sigmoid(t)
    slope = s * (1 + t * (1 - s))  # d/dt [t sigmoid(t)]
    assert float(slope.abs().max()) == pytest.approx(SILU_LIPSCHITZ, abs=1e-9)


def test_lipschitz_bound_bounds_every_gradient_and_is_about_one_per_layer_under_spectral_norm():
    torch.manual_seed(1)
    x = torch.randn(5000, 2, dtype=D) * 4
    for sn in (False, True):
        e = MLPEnergy(2, hidden=32, n_layers=3, spectral_norm=sn).double()
        for _ in range(20):  # converge the power iteration of spectral normalisation
            e.train()(torch.zeros(1, 2, dtype=D))
        e.eval()
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(e(xr).sum(), xr)
        largest = float(grad.norm(dim=1).max())  # a lower bound on the true Lipschitz constant
        bound = e.lipschitz_bound()
        assert largest <= bound
        if sn:
            assert bound == pytest.approx(SILU_LIPSCHITZ**3, rel=1e-3)
    # without normalisation the bound is the product of the layers' spectral norms, checked by SVD
    e = MLPEnergy(2, hidden=8, n_layers=2).double()
    norms = [torch.linalg.svdvals(m.weight.detach()).max() for m in e.net if isinstance(m, torch.nn.Linear)]
    assert e.lipschitz_bound() == pytest.approx(float(torch.stack(norms).prod()) * SILU_LIPSCHITZ**2, rel=1e-12)
