"""Samplers: the update's convention, ULA's closed-form stationary law, MALA's exactness, parallel
tempering's exactness on a target with known tempered marginals, the replay buffer.

Monte Carlo tolerances are stated in standard errors of independent chains (each test runs many chains in
parallel and uses their final states, which are independent draws).
"""
import math

import pytest
import torch

from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.samplers import (
    MALAInfo,
    PTState,
    ReplayBuffer,
    energy_and_grad,
    langevin_step,
    mala,
    mala_init,
    mala_kernel,
    mala_log_acceptance,
    mala_step,
    parallel_tempering,
    pt_init,
    pt_kernel,
    replica_swap_log_acceptance,
    run_chain,
    sgld,
    ula,
    uniform_noise,
)

DTYPE = torch.float64
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=DTYPE)  # eigenvalues 1.51 and 0.29
MEAN = torch.tensor([1.0, -2.0], dtype=DTYPE)
PREC = torch.linalg.inv(COV)  # Lambda, eigenvalues 0.66 and 3.42


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensor ops: see tests/conftest.py


def gaussian(mean=MEAN, prec=PREC):
    """E(x) = 1/2 (x - m)^T Lambda (x - m), the target N(m, Lambda^{-1})."""
    return lambda x: 0.5 * (((x - mean) @ prec) * (x - mean)).sum(1)


def quadratic(s: float = 1.0):
    """E(x) = |x|^2 / (2 s^2), summed over the event axes."""
    return lambda x: (x**2).reshape(len(x), -1).sum(1) / (2 * s**2)


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def cov_se(cov: torch.Tensor, n: int) -> torch.Tensor:
    """Standard errors of the entries of a sample covariance of n Gaussian draws: sqrt((S_ii S_jj + S_ij^2) / n)."""
    d = torch.diagonal(cov)
    return torch.sqrt((d[:, None] * d[None, :] + cov**2) / n)


# ----------------------------------------------------------------------------- contracts on every device
def test_langevin_step_contract(device):
    model = MLPEnergy(dim=2, hidden=16).to(device)
    x = torch.randn(7, 2, device=device)
    x_new, e = langevin_step(x, model, 0.1, generator=gen(0, device))
    assert x_new.shape == (7, 2) and e.shape == (7,)
    assert x_new.device.type == device.type and x_new.dtype == x.dtype
    assert not x_new.requires_grad and not e.requires_grad
    assert bool(torch.isfinite(x_new).all())
    assert all(p.grad is None for p in model.parameters()), "sampling must not write into parameter .grad"


def test_samplers_leave_parameter_grads_alone_and_work_under_no_grad(device):
    model = MLPEnergy(dim=2, hidden=16).to(device)
    x = torch.randn(5, 2, device=device)
    g = gen(1, device)
    with torch.no_grad():
        outs = [
            ula(x, model, 3, 0.1, g),
            sgld(x, model, 3, 1.0, 0.01, g),
            mala(x, model, 3, 0.1, g)[0],
            mala_step(x, model, 0.1, g)[0],
            run_chain(lambda y: langevin_step(y, model, 0.1, g)[0], x, 4, thin=2)[-1],
        ]
    for out in outs:
        assert out.shape == (5, 2) and out.device.type == device.type and not out.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_samplers_accept_image_shaped_batches(device):
    x = torch.rand(4, 1, 8, 8, device=device)
    out = ula(x, quadratic(), 2, 0.01, gen(2, device), clamp=(0.0, 1.0))
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


# ----------------------------------------------------------------------------- the update itself
def test_langevin_step_is_the_stated_convention():
    # x' = x - (eps/2) grad E + sqrt(eps) z with z from the same generator state; grad E(x) = x^3 for sum x^4/4.
    energy = lambda x: (x**4).sum(1) / 4
    x = torch.randn(6, 3, generator=gen(3), dtype=DTYPE)
    eps = 0.3
    x_new, e = langevin_step(x, energy, eps, generator=gen(4))
    z = torch.randn(6, 3, generator=gen(4), dtype=DTYPE)
    torch.testing.assert_close(x_new, x - 0.5 * eps * x**3 + math.sqrt(eps) * z)
    torch.testing.assert_close(e, (x**4).sum(1) / 4)
    # the seeds' other convention with eps' = eps / 2 is the same update
    eps_prime = eps / 2
    torch.testing.assert_close(x_new, x - eps_prime * x**3 + math.sqrt(2 * eps_prime) * z)


def test_grad_clip_and_clamp():
    energy = lambda x: 100.0 * x.sum(1)  # grad = 100 everywhere
    x = torch.zeros(4, 2, dtype=DTYPE)
    x_new, _ = langevin_step(x, energy, 0.5, generator=gen(5), grad_clip=0.1)
    z = torch.randn(4, 2, generator=gen(5), dtype=DTYPE)
    torch.testing.assert_close(x_new, -0.25 * 0.1 + math.sqrt(0.5) * z)
    x_new, _ = langevin_step(x, energy, 0.5, generator=gen(5), clamp=(-0.2, 0.3))
    torch.testing.assert_close(x_new, (-25.0 + math.sqrt(0.5) * z).clamp(-0.2, 0.3))


def test_energy_and_grad_against_closed_form():
    model = GaussianEBM.from_moments(MEAN, COV)
    x = torch.randn(5, 2, generator=gen(6), dtype=DTYPE)
    e, grad = energy_and_grad(model, x)
    torch.testing.assert_close(grad, -model.score(x).detach())
    torch.testing.assert_close(e, model.energy(x).detach())


# ----------------------------------------------------------------------------- ULA: known stationary laws
def test_ula_small_step_matches_gaussian_mean_and_covariance():
    # 10 000 independent chains from 0, 1000 steps with eps = 0.02: the slowest direction contracts by
    # (1 - eps lambda_min / 2)^1000 ~ e^-6.6 (a mean error ~ 0.003 against a standard error of 0.01), and
    # ULA's covariance bias (~ eps/4 = 0.005) is a third of a standard error. Tolerance: 4 SE per entry.
    n = 10_000
    x = ula(torch.zeros(n, 2, dtype=DTYPE), gaussian(), 1000, 0.02, gen(7))
    se_mean = torch.sqrt(torch.diagonal(COV) / n)
    assert bool(((x.mean(0) - MEAN).abs() < 4 * se_mean).all()), x.mean(0)
    assert bool(((torch.cov(x.T) - COV).abs() < 4 * cov_se(COV, n)).all()), torch.cov(x.T)


def test_ula_stationary_covariance_closed_form_at_finite_step():
    # x' = m + A (x - m) + sqrt(eps) z with A = I - (eps/2) Lambda (symmetric) has stationary covariance
    # Sigma_eps = eps (I - A^2)^{-1}, which differs from Lambda^{-1} at this large eps (stable while
    # eps < 4 / lambda_max = 1.17). A's eigenvalues are 0.15 and 0.83, so 200 steps forget the start.
    eps = 0.5
    A = torch.eye(2, dtype=DTYPE) - 0.5 * eps * PREC
    sigma_eps = eps * torch.linalg.inv(torch.eye(2, dtype=DTYPE) - A @ A)
    n = 10_000
    x = ula(torch.zeros(n, 2, dtype=DTYPE), gaussian(), 200, eps, gen(8))
    assert bool(((torch.cov(x.T) - sigma_eps).abs() < 4 * cov_se(sigma_eps, n)).all()), (torch.cov(x.T), sigma_eps)
    assert float((sigma_eps - COV).abs().max()) > 8 * float(cov_se(sigma_eps, n).max()), "the bias must be visible"


def test_mala_is_exact_where_ula_is_biased():
    # E = x^2 / (2 s^2), s = 1, eps = 1.5: ULA's stationary variance is eps / (1 - (1 - eps/2)^2) = 1.6, MALA's is
    # exactly 1. 10 000 chains, 300 steps from a far start; SE of a sample variance of n draws is v sqrt(2/n).
    n, eps = 10_000, 1.5
    x0 = torch.full((n, 1), 3.0, dtype=DTYPE)
    x_ula = ula(x0, quadratic(), 300, eps, gen(9))
    x_mala, acc = mala(x0, quadratic(), 300, eps, gen(10))
    v_ula_exact = eps / (1 - (1 - eps / 2) ** 2)
    se = math.sqrt(2 / n)
    assert abs(float(x_ula.var()) - v_ula_exact) < 4 * v_ula_exact * se
    assert abs(float(x_mala.var()) - 1.0) < 4 * se
    assert abs(float(x_mala.mean())) < 4 * math.sqrt(1 / n)
    assert v_ula_exact - 1.0 > 20 * se, "ULA's bias must be visible at this step size"
    assert 0.3 < float(acc) < 1.0


def test_mala_stationary_on_correlated_gaussian():
    # At eps = 0.8 ULA's stationary variance along Lambda's stiff eigenvector would be 0.92 instead of 0.29
    # (eps / (1 - (1 - eps lambda / 2)^2)); MALA's accept/reject step keeps N(m, Sigma) exact.
    n = 10_000
    x, acc = mala(torch.zeros(n, 2, dtype=DTYPE), gaussian(), 300, 0.8, gen(11))
    assert bool(((torch.cov(x.T) - COV).abs() < 4 * cov_se(COV, n)).all()), torch.cov(x.T)
    assert bool(((x.mean(0) - MEAN).abs() < 4 * torch.sqrt(torch.diagonal(COV) / n)).all())


def test_sgld_targets_temperature_when_noise_matches():
    # sigma^2 = 2 a T makes SGLD the ULA chain on E/T: for E = x^2/2, x' = (1 - a) x + sigma z has stationary
    # variance sigma^2 / (1 - (1 - a)^2) (-> T as a -> 0).
    a, T = 0.05, 2.0
    sigma = math.sqrt(2 * a * T)
    n = 10_000
    x = sgld(torch.zeros(n, 1, dtype=DTYPE), quadratic(), 300, a, sigma, gen(12))
    v = sigma**2 / (1 - (1 - a) ** 2)
    assert abs(float(x.var()) - v) < 4 * v * math.sqrt(2 / n)


# ----------------------------------------------------------------------------- MALA's acceptance
def test_mala_log_acceptance_against_gaussian_densities():
    # log alpha = log p(x') + log q(x | x') - log p(x) - log q(x' | x) with q from torch.distributions.
    model = GaussianEBM.from_moments(MEAN, COV)
    eps = 0.7
    x = torch.randn(9, 2, generator=gen(13), dtype=DTYPE)
    x_prop = torch.randn(9, 2, generator=gen(14), dtype=DTYPE)
    e_x, g_x = energy_and_grad(model, x)
    e_p, g_p = energy_and_grad(model, x_prop)
    q = lambda to, frm, g: torch.distributions.Normal(frm - 0.5 * eps * g, math.sqrt(eps)).log_prob(to).sum(1)
    expected = (-e_p + q(x, x_prop, g_p)) - (-e_x + q(x_prop, x, g_x))
    torch.testing.assert_close(mala_log_acceptance(x, x_prop, e_x, e_p, g_x, g_p, eps), expected)


def test_mala_kernel_and_step_agree_and_report_acceptance():
    model = GaussianEBM.from_moments(MEAN, COV)
    x = torch.randn(50, 2, generator=gen(15), dtype=DTYPE)
    x1, info = mala_step(x, model, 0.5, gen(16))
    state, info2 = mala_kernel(mala_init(x, model), model, 0.5, gen(16))
    assert isinstance(info, MALAInfo)
    torch.testing.assert_close(x1, state.x)
    assert torch.equal(info.accepted, info2.accepted)
    assert info.acceptance_prob.shape == (50,) and bool(((info.acceptance_prob >= 0) & (info.acceptance_prob <= 1)).all())
    # rejected chains stay, accepted ones move; energies and gradients are cached for the new state
    torch.testing.assert_close(x1[~info.accepted], x[~info.accepted])
    e, g = energy_and_grad(model, state.x)
    torch.testing.assert_close(state.energy, e)
    torch.testing.assert_close(state.grad, g)
    # tiny steps are almost always accepted (alpha -> 1 as eps -> 0)
    _, acc = mala(x, model, 20, 1e-4, gen(17))
    assert float(acc) > 0.99


# ----------------------------------------------------------------------------- replay buffer
def test_replay_buffer_reinit_fraction_within_binomial_error():
    # 40 000 rows: the fresh fraction's SE is sqrt(f(1-f)/n) (1.1e-3 for f = 0.05); tolerance 4 SE.
    for f in (0.05, 0.3):
        buf = ReplayBuffer(500, lambda n, g: torch.full((n, 2), -1e3, dtype=DTYPE), reinit_fraction=f)
        buf.push(torch.arange(1000, dtype=DTYPE).reshape(500, 2))
        n = 40_000
        x, fresh = buf.sample(n, gen(18))
        assert abs(float(fresh.double().mean()) - f) < 4 * math.sqrt(f * (1 - f) / n)
        assert bool((x[fresh] == -1e3).all())
        assert bool((x[~fresh] >= 0).all()) and bool((x[~fresh, 1] - x[~fresh, 0] == 1).all()), "whole stored rows"


def test_replay_buffer_draws_stored_rows_uniformly():
    # 50 stored rows, 50 000 draws with no re-initialisation: chi-square with 49 degrees of freedom has mean 49,
    # sd 9.9; 49 + 5 sd ~ 99.
    buf = ReplayBuffer(50, uniform_noise((1,), dtype=DTYPE), reinit_fraction=0.0)
    buf.push(torch.arange(50, dtype=DTYPE)[:, None])
    x, fresh = buf.sample(50_000, gen(19))
    assert not bool(fresh.any())
    counts = torch.bincount(x[:, 0].long(), minlength=50).double()
    chi2 = float(((counts - 1000.0) ** 2 / 1000.0).sum())
    assert chi2 < 99.0, chi2


def test_replay_buffer_capacity_and_ring_order():
    buf = ReplayBuffer(100, uniform_noise((1,)), reinit_fraction=0.05)
    x, fresh = buf.sample(8)
    assert bool(fresh.all()) and len(buf) == 0, "an empty buffer gives all-fresh rows"
    for start in range(0, 250, 50):
        buf.push(torch.arange(start, start + 50, dtype=torch.float32)[:, None])
    assert len(buf) == 100 and buf.storage.shape == (100, 1)
    assert sorted(buf.samples()[:, 0].tolist()) == list(range(150, 250)), "the oldest entries are overwritten"
    buf.push(torch.arange(1000, 1300, dtype=torch.float32)[:, None])  # more than the capacity at once
    assert sorted(buf.samples()[:, 0].tolist()) == list(range(1200, 1300))


def test_replay_buffer_newest_are_the_last_pushed_in_push_order():
    # Capacity 100, pushes of 64: after 3 pushes (192 rows) the ring has wrapped and writes next at row 92,
    # so the last 30 rows of samples() are not the newest; newest(30) must be pushes 162..191 in order.
    buf = ReplayBuffer(100, uniform_noise((1,)))
    for start in range(0, 192, 64):
        buf.push(torch.arange(start, start + 64, dtype=torch.float32)[:, None])
    assert buf.newest(30)[:, 0].tolist() == list(range(162, 192))
    assert buf.samples()[-30:, 0].tolist() != list(range(162, 192))
    assert buf.newest(100)[:, 0].tolist() == list(range(92, 192))
    buf.push(torch.tensor([[-1.0]]))
    assert buf.newest(2)[:, 0].tolist() == [191.0, -1.0]
    part = ReplayBuffer(100, uniform_noise((1,)))
    part.push(torch.arange(5, dtype=torch.float32)[:, None])  # not yet full
    assert part.newest(3)[:, 0].tolist() == [2.0, 3.0, 4.0]


def test_replay_buffer_lives_on_the_device(device):
    buf = ReplayBuffer(64, uniform_noise((2,), device=device), reinit_fraction=0.5)
    x, fresh = buf.sample(16, gen(20, device))
    assert x.device.type == device.type and fresh.device.type == device.type and bool(fresh.all())
    buf.push(x)
    x, fresh = buf.sample(16, gen(21, device))
    assert buf.storage.device.type == device.type and x.shape == (16, 2)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_messages():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        langevin_step(x, quadratic(), 0.0)
    with pytest.raises(TypeError, match="energy must be a callable"):
        ula(x, "not a function", 3, 0.1)
    with pytest.raises(ValueError, match=r"one energy per sample, shape \(3,\)"):
        langevin_step(x, lambda y: y**2, 0.1)
    with pytest.raises(ValueError, match="must have a batch axis"):
        langevin_step(torch.zeros(3), quadratic(), 0.1)
    with pytest.raises(ValueError, match="clamp must satisfy low < high"):
        ula(x, quadratic(), 3, 0.1, clamp=(1.0, 0.0))
    with pytest.raises(ValueError, match="grad_clip must be a finite number > 0"):
        sgld(x, quadratic(), 3, 1.0, 0.01, grad_clip=-1.0)
    with pytest.raises(ValueError, match="NaN/inf"):
        ula(torch.tensor([[0.0, float("nan")]]), quadratic(), 3, 0.1)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        mala(x, quadratic(), 0, 0.1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mala_step(x, quadratic(), 0.1, generator=0)
    with pytest.raises(ValueError, match="reinit_fraction must lie in"):
        ReplayBuffer(10, uniform_noise((2,)), reinit_fraction=1.5)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        ReplayBuffer(0, uniform_noise((2,)))
    with pytest.raises(TypeError, match="noise_fn must be a callable"):
        ReplayBuffer(10, None)
    buf = ReplayBuffer(10, uniform_noise((2,)))
    buf.push(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="buffer holds"):
        buf.push(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"must return a tensor of shape \(5, ...\)"):
        ReplayBuffer(10, lambda n, g: torch.zeros(2, 2)).sample(5)
    with pytest.raises(ValueError, match="n must be <= 4"):
        buf.newest(5)
    with pytest.raises(ValueError, match="push a batch before asking for the newest"):
        ReplayBuffer(10, uniform_noise((2,))).newest(1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_generator_on_the_wrong_device_is_explained():
    with pytest.raises(ValueError, match="create it on the same device"):
        langevin_step(torch.zeros(3, 2, device="cuda"), quadratic(), 0.1, generator=gen(0, "cpu"))


def test_run_chain_stacks_every_thin_th_state_and_uniform_noise_range():
    traj = run_chain(lambda x: x + 1.0, torch.zeros(3, 2), 10, thin=3)
    assert traj.shape == (3, 3, 2)
    torch.testing.assert_close(traj[:, 0, 0], torch.tensor([3.0, 6.0, 9.0]))
    u = uniform_noise((4,), -2.0, 3.0)(10_000, gen(22))
    assert u.shape == (10_000, 4) and float(u.min()) >= -2.0 and float(u.max()) <= 3.0
    # mean of U(-2, 3) is 0.5 with standard error 5 / sqrt(12 * 40 000) = 0.0072; 4 SE
    assert abs(float(u.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="thin must be <= 10"):
        run_chain(lambda x: x, torch.zeros(3, 2), 10, thin=11)


# ----------------------------------------------------------------------------- parallel tempering
W2, M2, S2 = torch.tensor([0.3, 0.7], dtype=DTYPE), torch.tensor([-3.0, 3.0], dtype=DTYPE), 0.5


def two_modes(x):
    """E = -log p for p = 0.3 N(-3, 0.5^2) + 0.7 N(3, 0.5^2), x: (batch, 1): a barrier of ~18 nats."""
    comp = -0.5 * ((x - M2) / S2) ** 2 - math.log(S2 * math.sqrt(2 * math.pi)) + W2.log()
    return -torch.logsumexp(comp, dim=1)


def tempered_right_mass(beta: float) -> float:
    """P(x > 0) under p^beta / Z_beta, by quadrature on a fine grid (the exact marginal of replica beta)."""
    xs = torch.linspace(-60, 60, 240_001, dtype=DTYPE)[:, None]
    p = torch.softmax(-beta * two_modes(xs), 0)
    return float(p[xs[:, 0] > 0].sum())


def test_replica_swap_acceptance_is_the_ratio_of_joint_densities():
    # Exchanging x_k and x_next: the ratio of prod exp(-beta E) after and before, computed directly.
    g = torch.Generator().manual_seed(0)
    e_k, e_next = torch.randn(50, generator=g, dtype=DTYPE) * 3, torch.randn(50, generator=g, dtype=DTYPE) * 3
    beta_k, beta_next = 1.0, 0.37
    before = -beta_k * e_k - beta_next * e_next
    after = -beta_k * e_next - beta_next * e_k
    torch.testing.assert_close(replica_swap_log_acceptance(e_k, e_next, beta_k, beta_next), after - before)
    # the colder replica receiving the lower energy is always accepted; equal temperatures always swap
    assert bool((replica_swap_log_acceptance(e_k, e_next, beta_k, beta_next)[e_next < e_k] > 0).all())
    assert bool((replica_swap_log_acceptance(e_k, e_next, 0.5, 0.5) == 0).all())


def test_pt_kernel_swap_probabilities_and_exchanges():
    # Three temperatures, chains at fixed points; step sizes so small that the local moves barely move.
    betas = torch.tensor([1.0, 0.5, 0.25], dtype=DTYPE)
    x = torch.tensor([[-3.0], [2.5], [0.0]], dtype=DTYPE)  # one system: rows are the temperatures
    state = PTState(x[:, None, :].clone(), two_modes(x)[:, None], energy_and_grad(two_modes, x)[1][:, None, :])
    new, info = pt_kernel(state, two_modes, betas, torch.full((3,), 1e-12, dtype=DTYPE),
                          torch.Generator().manual_seed(1), parity=0)
    assert info.swap_attempted.tolist() == [True, False]
    e = two_modes(x)
    expected = min(1.0, math.exp((1.0 - 0.5) * float(e[0] - e[1])))
    assert float(info.swap_prob[0, 0]) == pytest.approx(expected, rel=1e-6)  # the local moves changed E by ~1e-6
    assert float(info.swap_prob[1, 0]) == 0.0
    if bool(info.swap_accepted[0, 0]):
        torch.testing.assert_close(new.x[0, 0], x[1], atol=1e-5, rtol=0)
    # E(-3) > E(2.5) here (the right mode is heavier), so the swap must be accepted: colder gets lower energy
    assert expected == 1.0 and bool(info.swap_accepted[0, 0])
    torch.testing.assert_close(new.x[:, 0], x[[1, 0, 2]], atol=1e-5, rtol=0)
    torch.testing.assert_close(new.energy, two_modes(new.x.reshape(-1, 1)).reshape(3, 1))


def test_parallel_tempering_samples_every_temperature_exactly_from_one_wrong_mode():
    # 600 independent systems all start in the light left mode; a lone MALA chain would stay there (the
    # barrier is ~18 nats). After 300 steps every replica's fraction in the right mode must match
    # P(x > 0) under p^beta, by quadrature: the binomial SE is <= sqrt(.25/600) = 0.02, so 0.08 is 4 SE.
    betas = torch.tensor([1.0, 0.5, 0.25, 0.12, 0.06], dtype=DTYPE)
    g = torch.Generator().manual_seed(2)
    state = pt_init(torch.full((600, 1), -3.0, dtype=DTYPE), two_modes, len(betas))
    eps = 0.5 / betas
    for t in range(300):
        state, info = pt_kernel(state, two_modes, betas, eps, g, parity=t % 2)
    for k, beta in enumerate(betas.tolist()):
        measured = float((state.x[k, :, 0] > 0).double().mean())
        assert abs(measured - tempered_right_mass(beta)) < 0.08, (beta, measured, tempered_right_mass(beta))
    lone, _ = mala(torch.full((600, 1), -3.0, dtype=DTYPE), two_modes, 300, 0.5, torch.Generator().manual_seed(3))
    assert float((lone[:, 0] > 0).double().mean()) < 0.01  # without the ladder nothing crosses


def test_parallel_tempering_trajectory_and_rates():
    betas = [1.0, 0.4, 0.16]
    x0 = torch.zeros(20, 2, dtype=DTYPE)
    traj, rates = parallel_tempering(x0, gaussian(), betas, 40, [0.3, 0.75, 1.9], torch.Generator().manual_seed(4), thin=4)
    assert traj.shape == (10, 20, 2)
    assert rates["acceptance"].shape == (3,) and rates["swap"].shape == (2,)
    assert bool(((rates["acceptance"] > 0) & (rates["acceptance"] <= 1)).all())
    assert bool(((rates["swap"] > 0) & (rates["swap"] <= 1)).all())
    # one temperature is plain MALA: the trajectories agree draw for draw on the same random stream
    single, _ = parallel_tempering(x0, gaussian(), [1.0], 5, 0.3, torch.Generator().manual_seed(5))
    state = mala_init(x0, gaussian())
    g = torch.Generator().manual_seed(5)
    for t in range(5):
        state, _ = mala_kernel(state, gaussian(), 0.3, g)
    torch.testing.assert_close(single[-1], state.x)


def test_parallel_tempering_rejects_bad_ladders():
    x0 = torch.zeros(4, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match="betas must decrease"):
        parallel_tempering(x0, gaussian(), [0.5, 1.0], 5, 0.1)
    with pytest.raises(ValueError, match="betas must be finite and > 0"):
        parallel_tempering(x0, gaussian(), [1.0, 0.0], 5, 0.1)
    with pytest.raises(ValueError, match="step_sizes must be one number > 0 or one per temperature"):
        parallel_tempering(x0, gaussian(), [1.0, 0.5], 5, [0.1, 0.2, 0.3])
