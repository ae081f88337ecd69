"""Maximum-likelihood training with Langevin negatives: the loss and its gradient, the divergence guard on a
run that provably diverges, and moment matching (the Gaussian MLE) with an exact sampler."""
import functools

import pytest
import torch
from torch import nn

from ebm_teach.core import DivergenceError
from ebm_teach.energies import GaussianEBM, MLPEnergy
from ebm_teach.samplers import ReplayBuffer, mala, ula, uniform_noise
from ebm_teach.training import divergence_guard, ml_loss, ml_step, train_ebm

DTYPE = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensor ops: see tests/conftest.py


class Quadratic(nn.Module):
    """E(x) = 1/2 |(x - mu) A|^2, a Gaussian energy with precision A A^T and no input checks (fast)."""

    def __init__(self, d=2):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(d, dtype=DTYPE))
        self.A = nn.Parameter(torch.eye(d, dtype=DTYPE))

    def forward(self, x):
        y = (x - self.mu) @ self.A
        return 0.5 * (y * y).sum(1)


def normal_noise(n, generator=None):
    return torch.randn(n, 2, generator=generator, dtype=DTYPE)


# ----------------------------------------------------------------------------- the guard
def test_guard_fires_on_nan_inf_and_runaway_energies(device):
    ok = torch.tensor([0.5, -2.0], device=device)
    divergence_guard(0, e_pos=ok, e_neg=ok)  # healthy: silent
    with pytest.raises(DivergenceError, match=r"step 7: e_neg has 1 NaN/inf .* step size"):
        divergence_guard(7, e_pos=ok, e_neg=torch.tensor([1.0, float("nan")], device=device))
    with pytest.raises(DivergenceError, match="e_pos has 1 NaN/inf"):
        divergence_guard(1, e_pos=torch.tensor([float("inf"), 0.0], device=device), e_neg=ok)
    with pytest.raises(DivergenceError, match=r"\|e_neg\| reached 2e\+04 > max_abs = 1e\+04.*alpha > 0"):
        divergence_guard(3, e_pos=ok, e_neg=torch.tensor([2e4, 0.0], device=device))
    divergence_guard(3, max_abs=1e5, e_neg=torch.tensor([2e4, 0.0], device=device))


def test_guard_checks_only_every_check_every_steps():
    bad = torch.tensor(float("nan"))
    divergence_guard(5, check_every=10, loss=bad)  # skipped: 5 is not a multiple of 10
    with pytest.raises(DivergenceError):
        divergence_guard(10, check_every=10, loss=bad)


def test_guard_bad_input():
    with pytest.raises(ValueError, match="pass the tensors to watch by name"):
        divergence_guard(0)
    with pytest.raises(TypeError, match="e_pos must be a tensor"):
        divergence_guard(0, e_pos=1.0)
    with pytest.raises(ValueError, match="max_abs must be a finite number > 0"):
        divergence_guard(0, max_abs=0, e_pos=torch.zeros(1))


def test_guard_stops_a_run_whose_langevin_step_is_unstable():
    # ULA on E = |x|^2/2 multiplies x by (1 - eps/2) per step: with eps = 10 that is -4, so 30 steps from
    # U(-1, 1) reach |x| ~ 4^30 ~ 1e18 and E ~ 1e36, whatever the seed: the guard must stop iteration 0.
    model = GaussianEBM.standard(2, dtype=torch.float32)
    data = torch.randn(256, 2)
    sampler = functools.partial(ula, n_steps=30, step_size=10.0)
    with pytest.raises(DivergenceError, match=r"step 0: \|e_neg\| reached .* running away") as info:
        train_ebm(model, data, 5, sampler, uniform_noise((2,)), batch_size=64, generator=torch.Generator().manual_seed(0))
    assert len(info.value.history["e_neg"]) == 1 and float(info.value.history["e_neg"][0]) > 1e4
    # the diagnosis says what a runaway looks like (both energies may rise), and what to change
    assert "E(samples) up faster than E(data)" in str(info.value) and "alpha > 0" in str(info.value)


# ----------------------------------------------------------------------------- the loss and one step
def test_ml_loss_value():
    e_pos, e_neg = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0, 4.0])
    # 2 - 1 + 0.5 * (5 + 17/3)
    assert float(ml_loss(e_pos, e_neg, alpha=0.5)) == pytest.approx(1.0 + 0.5 * (5.0 + 17.0 / 3.0))


def test_ml_step_follows_the_contrastive_gradient_and_leaves_negatives_alone():
    # For E = 1/2 (x - mu)^T Lambda (x - mu): dL/dmu = Lambda (mean x- - mean x+) + alpha * (chain rule terms);
    # with alpha = 0 and SGD(lr), one step moves mu by lr * Lambda (mean x+ - mean x-).
    model = Quadratic()
    with torch.no_grad():
        model.A.copy_(torch.tensor([[1.5, 0.0], [0.5, 1.0]], dtype=DTYPE))
    prec = (model.A @ model.A.T).detach()
    x_pos = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=DTYPE) + 1.0
    x_neg = torch.randn(40, 2, generator=torch.Generator().manual_seed(2), dtype=DTYPE).requires_grad_(True)
    mu0 = model.mu.detach().clone()
    stats = ml_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x_pos, x_neg, alpha=0.0)
    torch.testing.assert_close(model.mu.detach() - mu0, 0.1 * prec @ (x_pos.mean(0) - x_neg.detach().mean(0)))
    assert x_neg.grad is None, "no gradient may flow into the negatives"
    assert set(stats) == {"e_pos", "e_neg", "loss"} and all(v.dim() == 0 and not v.requires_grad for v in stats.values())


# ----------------------------------------------------------------------------- the loop
def test_train_ebm_with_exact_sampler_matches_gaussian_moments():
    # At the fixed point of maximum likelihood for a Gaussian energy, the model's mean and covariance equal the
    # data's. Negatives from persistent MALA chains (exact for any step size); parameters averaged over the
    # last 200 of 400 Adam steps to remove the optimiser's jitter. Across seeds the error is <= 0.035; 0.1
    # leaves a 3x margin.
    mean = torch.tensor([1.0, -1.0], dtype=DTYPE)
    cov = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=DTYPE)
    data = GaussianEBM.from_moments(mean, cov).sample(20_000, torch.Generator().manual_seed(0)).detach()
    model = Quadratic()
    kept = []

    def record(it, energy, x_neg):
        if it >= 200:
            kept.append((energy.mu.detach().clone(), torch.linalg.inv(energy.A @ energy.A.T).detach()))

    history = train_ebm(
        model, data, 400, lambda x, e, generator: mala(x, e, 5, 0.5, generator)[0], normal_noise,
        batch_size=1000, lr=0.02, alpha=0.0, buffer=ReplayBuffer(4000, normal_noise, reinit_fraction=0.0),
        generator=torch.Generator().manual_seed(1), callback=record, callback_every=1,
    )
    mu = torch.stack([k[0] for k in kept]).mean(0)
    sigma = torch.stack([k[1] for k in kept]).mean(0)
    assert float((mu - data.mean(0)).abs().max()) < 0.1
    assert float((sigma - torch.cov(data.T)).abs().max()) < 0.1
    assert set(history) == {"e_pos", "e_neg", "loss", "gap"} and history["gap"].shape == (400,)


def test_train_ebm_contract(device):
    model = MLPEnergy(2, 16, 2).to(device)
    data = torch.randn(100, 2, device=device)
    buf = ReplayBuffer(64, uniform_noise((2,), -3, 3, device=device))
    seen = []
    history = train_ebm(
        model, data, 3, functools.partial(ula, n_steps=2, step_size=0.1), uniform_noise((2,), -3, 3, device=device),
        batch_size=16, buffer=buf, generator=torch.Generator(device=device).manual_seed(0),
        callback=lambda it, e, x: seen.append(it), callback_every=2,
    )
    assert history["loss"].shape == (3,) and bool(torch.isfinite(history["loss"]).all())
    assert len(buf) == 48 and buf.storage.device.type == device.type
    assert seen == [0, 2]


def test_train_ebm_bad_input():
    model = MLPEnergy(2, 8, 1)
    data = torch.randn(10, 2)
    sampler = functools.partial(ula, n_steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="batch_size must be <= 10"):
        train_ebm(model, data, 1, sampler, uniform_noise((2,)), batch_size=11)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        train_ebm(model, data, 1, sampler, uniform_noise((2,)), batch_size=4, alpha=-1.0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        train_ebm(model, data, 1, sampler, uniform_noise((2,)), batch_size=4, lr=0.0)


def test_train_ebm_rejects_non_callables():
    with pytest.raises(TypeError, match="sampler must be a callable"):
        train_ebm(MLPEnergy(2, 8, 1), torch.randn(10, 2), 1, None, uniform_noise((2,)), batch_size=4)


# ----------------------------------------------------------------------------- the digits energy it trains
def test_conv_energy_contract(device):
    from ebm_teach.energies import ConvEnergy

    for sn in (False, True):
        # eval(): in training mode spectral normalisation runs a power-iteration step on every call,
        # so two calls would see (slightly) different weights.
        model = ConvEnergy(channels=4, spectral_norm=sn).to(device).eval()
        x = torch.rand(5, 64, device=device)
        e = model(x)
        assert e.shape == (5,) and e.device.type == device.type
        torch.testing.assert_close(model(x.reshape(5, 1, 8, 8)), e)  # flat rows and images are the same input
        out = ula(x, model, 2, 1e-3, torch.Generator(device=device).manual_seed(0), clamp=(0.0, 1.0))
        assert out.shape == (5, 64) and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 64\) or \(batch, 1, 8, 8\)"):
        ConvEnergy()(torch.rand(3, 63))
