"""Score matching (ebm_teach.score): objectives against closed forms, samplers against known moments and weights."""
import math

import pytest
import torch

from ebm_teach.core import DivergenceError
from ebm_teach.data import GaussianMixture
from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.score import (
    AnnealedLangevinInfo,
    EnergyScore,
    NoiseConditionalScoreNet,
    annealed_langevin,
    annealed_variance_ratio,
    choose_step_size,
    denoising_score_matching_loss,
    dsm_target,
    ema_update,
    exact_score_matching_loss,
    fisher_divergence,
    geometric_sigmas,
    mixture_noisy_score,
    noise_conditional_dsm_loss,
    sigma_max_rule,
    sigma_ratio_rule,
    sliced_score_matching_loss,
    train_score_model,
    tweedie_denoise,
)

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensor ops: see tests/conftest.py


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def standardised_sample(n, mean, std, seed=0):
    """n points in 1-D whose sample mean and (biased) variance are exactly mean and std^2: every sample
    average of a quadratic then equals its expectation under N(mean, std^2), so objectives are exact."""
    z = torch.randn(n, 1, generator=gen(seed), dtype=D64)
    z = (z - z.mean()) / z.std(unbiased=False)
    return mean + std * z


# --------------------------------------------------------------------------------------------- exact SM
@pytest.mark.parametrize("mu, var", [(0.0, 1.0), (1.5, 0.5), (-0.7, 3.0)])
def test_exact_sm_is_fisher_divergence_minus_half_fisher_information_1d(mu, var):
    m, s = 0.3, 1.7  # data N(m, s^2)
    x = standardised_sample(1000, m, s)
    model = GaussianEBM(torch.tensor([mu], dtype=D64), torch.tensor([[1 / var]], dtype=D64))
    data = GaussianEBM(torch.tensor([m], dtype=D64), torch.tensor([[1 / s**2]], dtype=D64))
    j = exact_score_matching_loss(model.score, x).detach()
    f = fisher_divergence(model.score, data.score, x).detach()
    # J = F - 1/2 E|d/dx log p|^2 = F - 1/(2 s^2) for N(m, s^2); closed forms with exact sample moments.
    assert float(j) == pytest.approx(float(f) - 1 / (2 * s**2), abs=1e-10)
    assert float(j) == pytest.approx(-1 / var + ((m - mu) ** 2 + s**2) / (2 * var**2), abs=1e-10)
    assert float(f) == pytest.approx(0.5 * (1 / s**2 - 2 / var + s**2 / var**2 + (mu - m) ** 2 / var**2), abs=1e-10)


def test_exact_sm_trace_term_matches_gaussian_closed_form():
    # s(x) = -Lambda (x - mu): tr grad s = -tr Lambda, so J = -tr Lambda + 1/2 mean |Lambda (x - mu)|^2.
    a = torch.tensor([[2.0, 0.4, 0.1], [0.4, 1.0, -0.3], [0.1, -0.3, 0.7]], dtype=D64)
    model = GaussianEBM(torch.tensor([0.2, -1.0, 0.5], dtype=D64), a)
    x = torch.randn(50, 3, generator=gen(1), dtype=D64)
    want = (-torch.trace(a) + 0.5 * ((x - model.mu) @ a).pow(2).sum(1).mean()).detach()
    assert float(exact_score_matching_loss(model.score, x).detach()) == pytest.approx(float(want), abs=1e-10)
    # the same through an energy network wrapper (double backward): s = -grad_x E
    assert float(exact_score_matching_loss(EnergyScore(model), x).detach()) == pytest.approx(float(want), abs=1e-10)


def test_exact_sm_is_stationary_at_sample_mean_and_inverse_sample_covariance():
    # For a Gaussian model the empirical SM objective is minimised by mu = mean, Lambda = S^{-1} (Hyvarinen 2005).
    x = torch.randn(400, 2, generator=gen(2), dtype=D64) @ torch.tensor([[1.0, 0.5], [0.0, 0.8]], dtype=D64) + 2.0
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / len(x)
    model = GaussianEBM.from_moments(mean, cov)
    loss = exact_score_matching_loss(model.score, x)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert max(float(g.abs().max()) for g in grads) < 1e-10
    shifted = GaussianEBM.from_moments(mean + 0.1, cov)
    assert float(exact_score_matching_loss(shifted.score, x).detach()) > float(loss.detach())


# --------------------------------------------------------------------------------------------- sliced SM
def test_sliced_sm_with_fixed_directions_matches_hand_computation():
    a = torch.tensor([[-1.0, 0.3], [0.2, -2.0]], dtype=D64)
    b = torch.tensor([0.5, -0.1], dtype=D64)

    def score(x):  # linear score, Jacobian = a
        return x @ a.T + b

    x = torch.randn(7, 2, generator=gen(3), dtype=D64)
    v = torch.randn(3, 7, 2, generator=gen(4), dtype=D64)
    s = score(x)[None]
    vs = (v * s).sum(-1)
    want = (torch.einsum("pbi,ij,pbj->pb", v, a, v) + 0.5 * vs**2).mean()
    assert float(sliced_score_matching_loss(score, x, v=v).detach()) == pytest.approx(float(want), abs=1e-12)
    want_vr = (torch.einsum("pbi,ij,pbj->pb", v, a, v) + 0.5 * (s**2).sum(-1)).mean()
    got_vr = sliced_score_matching_loss(score, x, v=v, variance_reduction=True)
    assert float(got_vr.detach()) == pytest.approx(float(want_vr), abs=1e-12)


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
def test_sliced_and_exact_sm_gradients_agree_in_expectation(projection):
    torch.manual_seed(0)
    energy = MLPEnergy(dim=3, hidden=16, n_layers=2).to(D64)
    score = EnergyScore(energy)
    params = list(energy.net[:-1].parameters()) + [energy.net[-1].weight]  # the output bias does not move s
    x = torch.randn(32, 3, generator=gen(5), dtype=D64)

    def flat_grad(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    exact = flat_grad(exact_score_matching_loss(score, x))
    g = gen(6)
    k = 200  # independent estimates, each with 8 directions per point
    draws = torch.stack(
        [flat_grad(sliced_score_matching_loss(score, x, n_projections=8, generator=g, projection=projection)) for _ in range(k)]
    )
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(k)
    z = (mean - exact).abs() / (se + 1e-12)
    # the sliced gradient is unbiased: every coordinate within 4.5 standard errors (about 400 coordinates)
    assert float(z.max()) < 4.5, f"largest z-score {float(z.max()):.2f}"
    assert float((mean - exact).norm() / exact.norm()) < 0.1


# --------------------------------------------------------------------------------------------- DSM
def test_dsm_target_is_minus_noise_over_sigma():
    x = torch.randn(5, 2, generator=gen(7))
    z = torch.randn(5, 2, generator=gen(8))
    sigma = 0.3
    torch.testing.assert_close(dsm_target(x, x + sigma * z, sigma), -z / sigma)
    sig = torch.tensor([0.1, 0.2, 0.5, 1.0, 2.0])
    torch.testing.assert_close(dsm_target(x, x + sig[:, None] * z, sig), -z / sig[:, None])


def test_dsm_loss_with_fixed_noise_matches_hand_computation():
    x = torch.randn(6, 2, generator=gen(9), dtype=D64)
    z = torch.randn(6, 2, generator=gen(10), dtype=D64)

    def score(y):
        return -2.0 * y + 1.0

    sigma = 0.7
    want = 0.5 * ((score(x + sigma * z) + z / sigma) ** 2).sum(1).mean()
    assert float(denoising_score_matching_loss(score, x, sigma, z=z)) == pytest.approx(float(want), abs=1e-12)


def test_dsm_loss_of_the_optimal_score_has_its_closed_form():
    # data N(0, s^2 I_d), model = exact noisy score -x~/(s^2 + sigma^2):
    # E 1/2 |s(x~) + z/sigma|^2 = d s^2 / (2 sigma^2 (s^2 + sigma^2)).
    s, sigma, d, n = 1.3, 0.6, 2, 200_000
    x = s * torch.randn(n, d, generator=gen(11), dtype=D64)
    z = torch.randn(n, d, generator=gen(12), dtype=D64)
    x_tilde = x + sigma * z
    per_example = 0.5 * ((-x_tilde / (s**2 + sigma**2) + z / sigma) ** 2).sum(1)
    loss = denoising_score_matching_loss(lambda y: -y / (s**2 + sigma**2), x, sigma, z=z)
    want = d * s**2 / (2 * sigma**2 * (s**2 + sigma**2))
    assert abs(float(loss) - want) < 4 * float(per_example.std()) / math.sqrt(n)


def test_dsm_least_squares_minimiser_is_the_convolved_data_score():
    # The best linear score under DSM, found by least squares on (x~, target), is -(C + sigma^2 I)^{-1}(x - m).
    m = torch.tensor([1.0, -2.0], dtype=D64)
    chol = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=D64)
    cov = chol @ chol.T
    sigma, n = 0.8, 400_000
    x = m + torch.randn(n, 2, generator=gen(13), dtype=D64) @ chol.T
    x_tilde = x + sigma * torch.randn(n, 2, generator=gen(14), dtype=D64)
    design = torch.cat([x_tilde, torch.ones(n, 1, dtype=D64)], 1)
    coef = torch.linalg.lstsq(design, dsm_target(x, x_tilde, sigma)).solution  # (3, 2)
    precision = torch.linalg.inv(cov + sigma**2 * torch.eye(2, dtype=D64))
    torch.testing.assert_close(coef[:2].T, -precision, atol=0.02, rtol=0)  # MC error ~ 1/sqrt(n) ~ 0.002
    torch.testing.assert_close(coef[2], precision @ m, atol=0.03, rtol=0)


def test_trained_score_net_approaches_the_noisy_data_score():
    torch.manual_seed(0)
    gm = GaussianMixture(torch.tensor([[1.0, -1.0]]), torch.tensor([[[1.0, 0.5], [0.5, 0.8]]]), torch.tensor([1.0]))
    exact = mixture_noisy_score(gm)
    sigma = 0.5
    data = gm.sample(4000, generator=gen(15)).float()
    net = NoiseConditionalScoreNet(dim=2, hidden=32, n_layers=2)
    x_test = gm.sample(4000, generator=gen(16)).float() + sigma * torch.randn(4000, 2, generator=gen(17))

    def rel_error():
        with torch.no_grad():
            return float(fisher_divergence(lambda y: net(y, sigma), lambda y: exact(y, sigma), x_test)) / float(
                0.5 * (exact(x_test, sigma) ** 2).sum(1).mean()
            )

    before = rel_error()
    train_score_model(
        net, data, lambda m_, x, g: denoising_score_matching_loss(lambda y: m_(y, sigma), x, sigma, generator=g),
        n_steps=600, batch_size=256, lr=3e-3, generator=gen(18),
    )
    # relative Fisher divergence to the closed-form noisy score: from ~1 down to a few percent
    assert before > 0.3
    assert rel_error() < 0.05


# --------------------------------------------------------------------------------------------- noise-conditional DSM
def test_geometric_sigmas_are_geometric_and_decreasing():
    sig = geometric_sigmas(10.0, 0.1, 5, dtype=D64)
    torch.testing.assert_close(sig, torch.tensor([10.0, 10 / 10**0.5, 1.0, 10**-0.5, 0.1], dtype=D64))
    assert geometric_sigmas(2.0, 0.5, 1).tolist() == [2.0]


def test_noise_conditional_loss_of_the_exact_score_has_its_closed_form():
    # data N(0, s^2 I_d): sigma^2 * E 1/2 |s(x~, sigma) + z/sigma|^2 = d s^2 / (2 (s^2 + sigma^2)), averaged over levels.
    s, d, n = 1.0, 2, 100_000
    gm = GaussianMixture.isotropic(torch.zeros(1, d, dtype=D64), s)
    sigmas = geometric_sigmas(4.0, 0.25, 5, dtype=D64)
    x = gm.sample(n, generator=gen(19))
    loss = noise_conditional_dsm_loss(mixture_noisy_score(gm), x, sigmas, generator=gen(20))
    want = float((d * s**2 / (2 * (s**2 + sigmas**2))).mean())
    # per-example terms are 1/2 sigma^2 |.|^2 <= O(1): their std is below 1.5, so 4 SE is below 0.02
    assert abs(float(loss) - want) < 0.02


def test_mixture_noisy_score_matches_the_convolved_mixture():
    gm = GaussianMixture(
        torch.tensor([[5.0, 5.0], [-5.0, -5.0], [0.0, 3.0]], dtype=D64),
        torch.tensor([[[1.0, 0.3], [0.3, 2.0]], [[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.0], [0.0, 0.2]]], dtype=D64),
        torch.tensor([0.5, 0.3, 0.2], dtype=D64),
    )
    score = mixture_noisy_score(gm)
    x = 4 * torch.randn(100, 2, generator=gen(21), dtype=D64)
    for sigma in (0.1, 1.3, 7.0):
        torch.testing.assert_close(score(x, sigma), gm.convolve(sigma).score(x))
    per_example = torch.tensor([0.5, 2.0]).repeat(50).to(D64)
    want = torch.where(per_example[:, None] == 0.5, gm.convolve(0.5).score(x), gm.convolve(2.0).score(x))
    torch.testing.assert_close(score(x, per_example), want)


# --------------------------------------------------------------------------------------------- annealed Langevin
def _near_first_mode(x):
    return float((x.sum(1) > 0).to(torch.float64).mean())  # the diagonal x1 + x2 = 0 separates the two modes


def test_annealed_langevin_recovers_mode_weights_where_plain_langevin_does_not():
    gm = GaussianMixture.isotropic(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]), 1.0, [0.8, 0.2])
    score = mixture_noisy_score(gm)
    x0 = torch.rand(2000, 2, generator=gen(22)) * 16 - 8  # uniform on [-8, 8]^2
    sigmas = geometric_sigmas(10.0, 1.0, 10)
    x, info = annealed_langevin(score, x0, sigmas, step_size=0.2, n_steps_each=100, generator=gen(23))
    assert abs(_near_first_mode(x) - 0.8) < 0.05  # binomial SE with n = 2000 is 0.009
    # plain Langevin on the same (least noisy) score, as many steps: keeps the start's 50/50 basins
    x_plain, _ = annealed_langevin(score, x0, sigmas[-1:], step_size=0.2, n_steps_each=1000, generator=gen(24))
    assert abs(_near_first_mode(x_plain) - 0.5) < 0.06
    assert abs(_near_first_mode(x0) - 0.5) < 0.05


def test_annealed_langevin_matches_the_ar1_variance_recursion_on_a_gaussian():
    # Data N(0, s^2 I) with its exact noisy score -x / (s^2 + sigma^2): one step is the AR(1)
    # x' = (1 - a/(2v)) x + sqrt(a) z, so Var' = (1 - a/(2v))^2 Var + a, mean' = (1 - a/(2v)) mean.
    s, n = 0.8, 20_000
    sigmas = geometric_sigmas(3.0, 0.3, 4, dtype=D64)
    eps, t = 0.01, 7
    x0 = 2.0 + torch.randn(n, 2, generator=gen(25), dtype=D64)

    calls = []

    def score(x, sigma):
        calls.append(sigma)
        return -x / (s**2 + sigma**2)

    x, info = annealed_langevin(score, x0, sigmas, eps, t, generator=gen(26))
    var, mean = 1.0, 2.0
    for sigma in sigmas.tolist():
        a = eps * sigma**2 / sigmas[-1].item() ** 2
        rho = 1 - a / (2 * (s**2 + sigma**2))
        for _ in range(t):
            var, mean = rho**2 * var + a, rho * mean
    assert calls == [sig for sig in sigmas.tolist() for _ in range(t)]
    torch.testing.assert_close(info.x_levels[-1], x)
    assert info.x_levels.shape == (4, n, 2) and info.score_norm.shape == (4,)
    assert abs(float(x.mean()) - mean) < 4 * math.sqrt(var / (2 * n))
    assert abs(float(x.var()) / var - 1) < 4 * math.sqrt(2 / (2 * n))


def test_energy_score_is_minus_grad_energy_and_sampling_leaves_no_parameter_grads(device):
    torch.manual_seed(0)
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]], device=device)
    model = GaussianEBM(torch.tensor([1.0, -1.0], device=device), a)
    x = torch.randn(10, 2, generator=gen(27, device), device=device)
    torch.testing.assert_close(EnergyScore(model)(x), model.score(x))
    energy = MLPEnergy(dim=2, hidden=16).to(device)
    sampled, info = annealed_langevin(
        EnergyScore(energy), x, torch.tensor([1.0, 0.5]), 0.01, 3, generator=gen(28, device)
    )
    assert all(p.grad is None for p in energy.parameters())
    assert not sampled.requires_grad and sampled.device.type == device.type
    assert isinstance(info, AnnealedLangevinInfo) and bool(torch.isfinite(info.score_norm).all())


# --------------------------------------------------------------------------------------------- contracts
def test_noise_conditional_net_contract(device):
    torch.manual_seed(0)
    net = NoiseConditionalScoreNet(dim=2, hidden=8, n_layers=2).to(device)
    x = torch.randn(5, 2, device=device)
    out = net(x, 0.5)
    assert out.shape == (5, 2) and out.dtype == x.dtype and out.device.type == device.type
    torch.testing.assert_close(out, net(x, torch.full((5,), 0.5, device=device)))
    # s(x, sigma) = f(x, log sigma) / sigma, so sigma * s is the network's raw output
    torch.testing.assert_close(0.5 * out, net.net(torch.cat([x, torch.full((5, 1), math.log(0.5), device=device)], 1)))
    loss = noise_conditional_dsm_loss(net, x, torch.tensor([1.0, 0.1], device=device), generator=gen(29, device))
    assert loss.dim() == 0 and bool(torch.isfinite(loss))


def test_losses_run_on_device_and_keep_the_graph(device):
    torch.manual_seed(0)
    energy = MLPEnergy(dim=2, hidden=8).to(device)
    score = EnergyScore(energy)
    x = torch.randn(16, 2, device=device)
    g = gen(30, device)
    for loss in (
        exact_score_matching_loss(score, x),
        sliced_score_matching_loss(score, x, generator=g),
        denoising_score_matching_loss(score, x, 0.1, generator=g),
    ):
        assert loss.dim() == 0 and loss.device.type == device.type and loss.requires_grad
    with torch.no_grad():  # evaluating on test data: the objectives switch autograd on for the derivatives they need
        e1 = exact_score_matching_loss(score, x)
        e2 = sliced_score_matching_loss(score, x, generator=g)
    assert bool(torch.isfinite(e1)) and bool(torch.isfinite(e2))


def test_training_raises_divergence_error_on_nan_loss():
    net = NoiseConditionalScoreNet(dim=2, hidden=4, n_layers=1)

    def bad_objective(model, x, g):
        return model(x, 1.0).sum() * float("nan")

    with pytest.raises(DivergenceError, match="lower lr"):
        train_score_model(net, torch.randn(10, 2), bad_objective, n_steps=5, log_every=5)


def test_annealed_langevin_raises_divergence_error_on_exploding_samples():
    with pytest.raises(DivergenceError, match="lower step_size"):
        annealed_langevin(lambda x, sigma: 1e30 * x, torch.ones(4, 2), [1.0], 1.0, 20)


# --------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_have_helpful_messages():
    x = torch.randn(8, 2)
    score = lambda y, sigma=None: -y  # noqa: E731
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(score, x, [0.1, 1.0], 0.1, 1)
    with pytest.raises(ValueError, match="> 0"):
        annealed_langevin(score, x, [1.0, -0.1], 0.1, 1)
    with pytest.raises(ValueError, match="step_size"):
        annealed_langevin(score, x, [1.0], 0.0, 1)
    with pytest.raises(ValueError, match="n_steps_each"):
        annealed_langevin(score, x, [1.0], 0.1, 0)
    with pytest.raises(ValueError, match="shaped like its input"):
        exact_score_matching_loss(lambda y: y.sum(1), x)
    with pytest.raises(ValueError, match="batch"):
        denoising_score_matching_loss(score, torch.randn(2), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_loss(score, x, -1.0)
    with pytest.raises(ValueError, match="projection"):
        sliced_score_matching_loss(score, x, projection="uniform")
    with pytest.raises(ValueError, match="n_projections"):
        sliced_score_matching_loss(score, x, v=torch.randn(8, 2))
    with pytest.raises(ValueError, match="flat data"):
        exact_score_matching_loss(score, torch.randn(4, 2, 2))
    with pytest.raises(ValueError, match="sigma_max > sigma_min"):
        geometric_sigmas(0.1, 1.0, 5)
    with pytest.raises(ValueError, match="shape"):
        dsm_target(x, torch.randn(8, 3), 0.5)
    with pytest.raises(ValueError, match="noise level"):
        dsm_target(x, x, torch.tensor([1.0, -1.0] * 4))
    with pytest.raises(TypeError, match="GaussianMixture"):
        mixture_noisy_score("not a mixture")
    with pytest.raises(ValueError, match=r"shape \(batch, 2\)"):
        NoiseConditionalScoreNet(dim=2)(torch.randn(4, 3), 1.0)
    with pytest.raises(ValueError, match="sigma must be a float"):
        NoiseConditionalScoreNet(dim=2)(x, torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        noise_conditional_dsm_loss(NoiseConditionalScoreNet(dim=2), torch.full((4, 2), float("nan")), [1.0])


# --------------------------------------------------------------------------------------------- hidden checks are honest
from ebm_teach.grade.checks import ch06_score_matching as ch06  # noqa: E402


def _fails(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def _dsm(sign=1.0, power=2, at_clean=False, reduce="sum", half=0.5, detach=False):
    """A family of dsm_loss answers, right by default, with one mistake switched on at a time."""
    def dsm_loss(score, x, sigma, z):
        x_tilde = x + sigma * z
        target = sign * (x - x_tilde) / sigma**power
        sq = (score(x if at_clean else x_tilde) - target) ** 2
        out = half * (sq.sum(1) if reduce == "sum" else sq.mean(1)).mean()
        return out.detach() if detach else out
    return dsm_loss


def test_ch06_dsm_checks_accept_the_answer_and_reject_typical_mistakes():
    for check in (ch06.check_dsm_against_noise_form, ch06.check_dsm_closed_form, ch06.check_dsm_keeps_graph):
        check(_dsm())
    _fails(ch06.check_dsm_against_noise_form, _dsm(sign=-1.0))  # target (x~ - x)/sigma^2
    _fails(ch06.check_dsm_against_noise_form, _dsm(power=1))  # divides by sigma, not sigma^2
    _fails(ch06.check_dsm_against_noise_form, _dsm(at_clean=True))  # score at the clean point
    _fails(ch06.check_dsm_against_noise_form, _dsm(reduce="mean"))  # averages the coordinates
    _fails(ch06.check_dsm_against_noise_form, _dsm(half=1.0))  # no factor 1/2
    _fails(ch06.check_dsm_closed_form, _dsm(power=1))
    _fails(ch06.check_dsm_keeps_graph, _dsm(detach=True))


def _ssm(create_graph=True, half=0.5, order="repeat", vr=False):
    def sliced_sm_loss(score, x, v):
        p = v.shape[0]
        x_rep = (x.repeat(p, 1) if order == "repeat" else x.repeat_interleave(p, 0)).detach().requires_grad_(True)
        vf = v.reshape(x_rep.shape)
        s = score(x_rep)
        vs = (vf * s).sum(1)
        (gv,) = torch.autograd.grad(vs.sum(), x_rep, create_graph=create_graph)
        second = 0.5 * (s**2).sum(1) if vr else half * vs**2
        return ((vf * gv).sum(1) + second).mean()
    return sliced_sm_loss


def test_ch06_sliced_checks_accept_the_answer_and_reject_typical_mistakes():
    for check in (ch06.check_ssm_linear, ch06.check_ssm_nonlinear_against_jacobian, ch06.check_ssm_differentiable,
                  ch06.check_ssm_unbiased):
        check(_ssm())
    _fails(ch06.check_ssm_differentiable, _ssm(create_graph=False))  # cannot train the model
    _fails(ch06.check_ssm_linear, _ssm(half=1.0))  # (v^T s)^2 without the 1/2
    _fails(ch06.check_ssm_unbiased, _ssm(half=1.0))
    _fails(ch06.check_ssm_linear, _ssm(order="interleave"))  # points and directions mismatched
    _fails(ch06.check_ssm_linear, _ssm(vr=True))  # a different (variance-reduced) estimator: not the one asked for


def _sweep(scale_power=2, half=0.5, sqrt_noise=True, reverse=False):
    def annealed_langevin_sweep(score, x, sigmas, step_size, n_steps_each, generator):
        sigmas = [float(s) for s in sigmas]
        levels = sigmas[::-1] if reverse else sigmas
        for sigma in levels:
            alpha = step_size * (sigma / sigmas[-1]) ** scale_power
            for _ in range(n_steps_each):
                s = score(x, sigma)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
                x = x + half * alpha * s + (math.sqrt(alpha) if sqrt_noise else alpha) * z
        return x
    return annealed_langevin_sweep


def test_ch06_sweep_checks_accept_the_answer_and_reject_typical_mistakes():
    for check in (ch06.check_sweep_order_of_levels, ch06.check_sweep_one_step_by_hand, ch06.check_sweep_gaussian_moments):
        check(_sweep())
    _fails(ch06.check_sweep_gaussian_moments, _sweep(scale_power=0))  # no annealing of the step
    _fails(ch06.check_sweep_gaussian_moments, _sweep(scale_power=1))  # alpha proportional to sigma, not sigma^2
    _fails(ch06.check_sweep_gaussian_moments, _sweep(half=1.0))  # x + alpha s: the wrong drift
    _fails(ch06.check_sweep_one_step_by_hand, _sweep(half=1.0))
    _fails(ch06.check_sweep_order_of_levels, _sweep(reverse=True))  # smallest sigma first
    _fails(ch06.check_sweep_one_step_by_hand, _sweep(sqrt_noise=False))  # noise alpha z instead of sqrt(alpha) z
    _fails(ch06.check_sweep_gaussian_moments, _sweep(sqrt_noise=False))


def _prediction(kind):
    def predicted_fraction(a, b):
        w = b - a
        if kind == "true weight":  # believes Langevin finds the weights
            return 0.8
        if kind == "half":  # the chapter's number, whatever the square
            return 0.5
        if kind == "flipped":  # the fraction on the other side
            return 1 - _prediction("right")(a, b)
        if kind == "weighted":  # the start's split times the weights, renormalised
            f = _prediction("right")(a, b)
            return 0.8 * f / (0.8 * f + 0.2 * (1 - f))
        if a >= 0 or b <= 0:
            return 1.0 if a >= 0 else 0.0
        return 1 - 2 * a**2 / w**2 if a + b >= 0 else 2 * b**2 / w**2
    return predicted_fraction


def test_ch06_prediction_checks_accept_the_answer_and_reject_typical_mistakes():
    for check in (ch06.check_prediction_on_the_chapters_square, ch06.check_prediction_on_random_squares):
        check(_prediction("right"))
    _fails(ch06.check_prediction_on_the_chapters_square, _prediction("true weight"))
    _fails(ch06.check_prediction_on_random_squares, _prediction("half"))
    _fails(ch06.check_prediction_on_random_squares, _prediction("flipped"))
    _fails(ch06.check_prediction_on_random_squares, _prediction("weighted"))


def test_ch06_prediction_reference_is_the_area_fraction_by_monte_carlo():
    g = gen(40)
    for a, b in [(-6.0, 2.0), (-1.0, 9.0), (-3.0, 3.5)]:
        u = a + (b - a) * torch.rand(400_000, 2, generator=g, dtype=D64)
        assert ch06._fraction_on_the_first_side(a, b) == pytest.approx(float((u.sum(1) > 0).double().mean()), abs=0.004)


# --------------------------------------------------------------------------------------------- Tweedie, EMA, settings
def test_tweedie_denoise_is_the_gaussian_posterior_mean():
    # p = N(m, s^2 I): E[x | x~] = m + s^2/(s^2 + sigma^2) (x~ - m), and the exact noisy score is
    # -(x~ - m)/(s^2 + sigma^2).
    m, s, sigma = torch.tensor([1.0, -2.0], dtype=D64), 1.5, 0.7
    x_tilde = torch.randn(50, 2, generator=gen(30), dtype=D64) * 2
    got = tweedie_denoise(lambda y, sig: -(y - m) / (s**2 + sig**2), x_tilde, sigma)
    want = m + s**2 / (s**2 + sigma**2) * (x_tilde - m)
    assert torch.allclose(got, want, atol=1e-12)


def test_tweedie_denoise_with_a_mixture_score_is_the_mixture_posterior_mean():
    # Independent formula: E[x | x~] = sum_k r_k(x~) [m_k + C_k (C_k + sigma^2 I)^{-1} (x~ - m_k)].
    means = torch.tensor([[2.0, 0.0], [-1.0, 1.5]], dtype=D64)
    covs = torch.stack([torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=D64), 0.4 * torch.eye(2, dtype=D64)])
    mix = GaussianMixture(means, covs, torch.tensor([0.3, 0.7], dtype=D64))
    sigma = 0.8
    x_tilde = torch.randn(40, 2, generator=gen(31), dtype=D64) * 2
    got = tweedie_denoise(mixture_noisy_score(mix), x_tilde, sigma)
    noisy = covs + sigma**2 * torch.eye(2, dtype=D64)
    log_r = torch.stack([torch.distributions.MultivariateNormal(means[k], noisy[k]).log_prob(x_tilde)
                         for k in range(2)], 1) + mix.weights.log()
    r = torch.softmax(log_r, 1)
    post = torch.stack([means[k] + (x_tilde - means[k]) @ torch.linalg.solve(noisy[k], covs[k]) for k in range(2)], 1)
    assert torch.allclose(got, (r[:, :, None] * post).sum(1), atol=1e-10)


def test_ema_update_has_the_geometric_closed_form():
    model, ema = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        start = [p.clone() for p in ema.parameters()]
    for _ in range(7):
        ema_update(ema, model, 0.9)
    for p_ema, p0, p in zip(ema.parameters(), start, model.parameters()):
        # theta_ema after n steps towards a fixed theta: theta + m^n (theta_0 - theta)
        assert torch.allclose(p_ema, p + 0.9**7 * (p0 - p), atol=1e-12)
        assert p_ema.grad is None


def test_train_score_model_ema_is_the_moving_average_of_the_trajectory():
    import copy

    torch.manual_seed(0)
    model = NoiseConditionalScoreNet(dim=2, hidden=8, n_layers=1).double()
    ema = copy.deepcopy(model)
    trajectory = []
    x = torch.randn(64, 2, generator=gen(32), dtype=D64)
    objective = lambda mdl, xb, g: denoising_score_matching_loss(lambda y: mdl(y, 0.5), xb, 0.5, generator=g)
    train_score_model(model, x, objective, n_steps=20, batch_size=16, lr=1e-2, generator=gen(33), log_every=1,
                      ema=ema, ema_decay=0.8,
                      callback=lambda step, mdl: trajectory.append([p.detach().clone() for p in mdl.parameters()]))
    assert len(trajectory) == 20
    torch.manual_seed(0)  # the same initial weights as the model had
    average = [p.detach().double().clone() for p in NoiseConditionalScoreNet(dim=2, hidden=8, n_layers=1).parameters()]
    for params in trajectory:
        average = [0.8 * a + 0.2 * p for a, p in zip(average, params)]
    for a, p_ema in zip(average, ema.parameters()):
        assert torch.allclose(p_ema, a, atol=1e-10)


def test_sigma_max_rule_is_the_largest_pairwise_distance():
    x = torch.randn(700, 3, generator=gen(34), dtype=D64)
    assert sigma_max_rule(x) == pytest.approx(float(torch.pdist(x).max()), rel=1e-12)
    line = torch.tensor([[0.0], [3.0], [-4.5], [1.0]], dtype=D64)
    assert sigma_max_rule(line) == pytest.approx(7.5)


def test_sigma_ratio_rule_makes_adjacent_levels_overlap_by_half():
    d = 1000
    gamma = sigma_ratio_rule(d)
    assert 1.0 < gamma < 1.2
    # Monte Carlo of what the rule approximates: a sample of N(0, I) (level i) lands within 3 standard
    # deviations (3 gamma / sqrt 2) of level i-1's typical norm gamma sqrt(d) about half of the time.
    norms = torch.randn(20_000, d, generator=gen(35)).norm(dim=1).double()
    inside = ((norms - gamma * math.sqrt(d)).abs() <= 3 * gamma / math.sqrt(2)).double().mean()
    assert float(inside) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="does not constrain gamma"):
        sigma_ratio_rule(2)


def test_annealed_variance_ratio_matches_a_simulation_of_annealed_langevin():
    # Data at the point 0: q_sigma = N(0, sigma^2). Level 1 of annealed Langevin starts from level 0's
    # distribution N(0, (gamma sigma_1)^2); after T steps its variance / sigma_1^2 is the closed form.
    sigma_l, gamma, eps, t = 0.5, 1.6, 0.02, 15
    sigmas = [gamma * sigma_l, sigma_l]
    x0 = gamma * sigmas[0] * torch.randn(200_000, 1, generator=gen(36), dtype=D64)
    _, info = annealed_langevin(lambda y, sig: -y / sig**2, x0, sigmas, eps, t, generator=gen(37))
    ratio = float(info.x_levels[0].var()) / sigmas[0] ** 2
    want = annealed_variance_ratio(eps, t, gamma, sigma_l)
    assert ratio == pytest.approx(want, abs=5 * want * math.sqrt(2 / 200_000))
    # Long chains forget the start: the ratio tends to ULA's bias 1 / (1 - eps / (4 sigma_L^2)).
    assert annealed_variance_ratio(eps, 100_000, gamma, sigma_l) == pytest.approx(1 / (1 - eps / (4 * sigma_l**2)))


def test_choose_step_size_minimises_the_distance_of_the_ratio_to_one():
    gamma, sigma_l, t = 1.39, 0.5, 100
    best = choose_step_size(t, gamma, sigma_l)
    gap = abs(annealed_variance_ratio(best, t, gamma, sigma_l) - 1)
    for eps in torch.logspace(-5, math.log10(0.49), 300).tolist():
        assert gap <= abs(annealed_variance_ratio(eps, t, gamma, sigma_l) - 1) + 1e-9
    with pytest.raises(ValueError, match="unstable"):
        annealed_variance_ratio(1.0, 10, gamma, sigma_l)


def test_ema_and_callback_reject_bad_input():
    model = NoiseConditionalScoreNet(dim=2, hidden=8, n_layers=1)
    x = torch.randn(16, 2)
    obj = lambda mdl, xb, g: noise_conditional_dsm_loss(mdl, xb, [1.0, 0.5], generator=g)
    with pytest.raises(TypeError, match="separate copy"):
        train_score_model(model, x, obj, n_steps=1, ema=model)
    with pytest.raises(ValueError, match="same shapes"):
        train_score_model(model, x, obj, n_steps=1, ema=NoiseConditionalScoreNet(dim=2, hidden=4, n_layers=1))
    with pytest.raises(ValueError, match="ema_decay"):
        ema_update(NoiseConditionalScoreNet(dim=2, hidden=8, n_layers=1), model, 1.0)
    with pytest.raises(TypeError, match="callback"):
        train_score_model(model, x, obj, n_steps=1, callback=3)
    with pytest.raises(ValueError, match="x_tilde"):
        tweedie_denoise(lambda y, s: y, torch.zeros(3), 1.0)


def test_plot_density_pair_shares_one_colour_scale_up_to_the_largest_density():
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.contour import ContourSet

    from ebm_teach.plotting import plot_density_pair

    def gaussian(s):
        return lambda y: (y**2).sum(1) / (2 * s**2)

    fig, axes = plot_density_pair({"wide": gaussian(1.0), "narrow": gaussian(0.5)}, bounds=((-5, 5), (-5, 5)),
                                  n_points=201)
    levels = [next(c for c in ax.collections if isinstance(c, ContourSet)).levels for ax in axes]
    assert list(levels[0]) == list(levels[1])  # one scale for both panels
    # the top level is the narrow Gaussian's peak density 1 / (2 pi s^2), normalised on the grid
    assert levels[0][-1] == pytest.approx(1 / (2 * math.pi * 0.25), rel=0.02)
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        plot_density_pair({})
