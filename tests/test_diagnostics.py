"""Known answers for the MCMC diagnostics: AR(1) autocorrelation times, direct O(n^2) autocorrelation,
ESS and R-hat on independent vs stuck chains, the energy gap."""
import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from ebm_teach.diagnostics import (
    EnergyGapTracker,
    autocorrelation,
    autocovariance,
    bulk_tail_ess,
    effective_sample_size,
    energy_gap,
    integrated_autocorr_time,
    rank_normalize,
    rank_normalized_rhat,
    regularized_gap,
    split_rhat,
)


def ar1(rho: float, n_chains: int, n_steps: int, seed: int) -> np.ndarray:
    """Stationary AR(1) chains x_t = rho x_{t-1} + e_t, e_t ~ N(0, 1), started from N(0, 1/(1-rho^2))."""
    e = np.random.default_rng(seed).standard_normal((n_chains, n_steps))
    e[:, 0] /= math.sqrt(1 - rho**2)
    return lfilter([1.0], [1.0, -rho], e, axis=1)


# ----------------------------------------------------------------------------- autocorrelation
def test_autocovariance_matches_direct_sum():
    x = np.random.default_rng(0).standard_normal(301).cumsum() * 0.1
    xc = x - x.mean()
    n = len(x)
    direct = np.array([np.dot(xc[: n - t], xc[t:]) / n for t in range(n)])
    np.testing.assert_allclose(autocovariance(torch.from_numpy(x)).numpy(), direct, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(autocorrelation(x).numpy(), direct / direct[0], rtol=1e-10, atol=1e-12)


def test_autocorrelation_of_ar1_is_rho_to_the_t():
    # 20 chains x 20 000 steps: the standard error of rho_hat(t) is ~ sqrt((1+rho^2)/(1-rho^2) / N) ~ 0.005
    # for rho = 0.8 (Bartlett), so 0.03 is > 5 standard errors.
    x = ar1(0.8, 20, 20_000, seed=1)
    rho = autocorrelation(x)[:10].numpy()
    np.testing.assert_allclose(rho, 0.8 ** np.arange(10), atol=0.03)


# ----------------------------------------------------------------------------- integrated autocorrelation time
@pytest.mark.parametrize("method", ["sokal", "geyer"])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_tau_of_ar1_within_5_percent(rho, method):
    # tau = (1 + rho) / (1 - rho). Sokal's variance of the windowed estimator is 2(2M+1)/N tau^2 with window
    # M ~ 5 tau: for rho = 0.9 (M ~ 95) and N = 4e6 draws the relative standard error is 1.0 %, so 5 % is a
    # 5-sigma margin; rho = 0, 0.5 use N = 1e6 (relative SE <= 0.8 %).
    n_chains = 40 if rho == 0.9 else 10
    x = ar1(rho, n_chains, 100_000, seed=int(10 * rho))
    tau = integrated_autocorr_time(x, method=method)
    exact = (1 + rho) / (1 - rho)
    assert abs(tau - exact) < 0.05 * exact, (tau, exact)


def test_tau_of_one_chain_and_the_short_chain_warning():
    # One chain of 2e5 steps with rho = 0.5: relative SE sqrt(2*31/2e5) = 1.8 %, 10 % is > 5 SE.
    x = ar1(0.5, 1, 200_000, seed=3)[0]
    assert abs(integrated_autocorr_time(x) - 3.0) < 0.3
    with pytest.warns(RuntimeWarning, match="shorter than 50 tau"):
        integrated_autocorr_time(ar1(0.95, 1, 500, seed=4)[0])


# ----------------------------------------------------------------------------- ESS and R-hat
def test_ess_of_independent_and_correlated_chains():
    # iid draws: ESS = N (tau = 1); AR(1) with rho = 0.5: ESS = N / 3. Relative SE of tau_hat is < 2 %
    # at these sizes, so 10 % is a wide margin.
    iid = np.random.default_rng(5).standard_normal((4, 25_000))
    assert abs(effective_sample_size(iid) / iid.size - 1.0) < 0.1
    x = ar1(0.5, 4, 25_000, seed=6)
    assert abs(effective_sample_size(x) / (x.size / 3.0) - 1.0) < 0.1


def test_stuck_chains_have_large_rhat_and_tiny_ess():
    # Four chains, each stuck in its own mode of a mixture with means 0, 6, 12, 18: R-hat ~ 9 >> 1.01, and the
    # 20 000 draws are worth a handful of independent ones; independent chains give R-hat ~ 1 + O(1/n).
    rng = np.random.default_rng(7)
    stuck = rng.standard_normal((4, 5000)) + 6.0 * np.arange(4)[:, None]
    mixed = rng.standard_normal((4, 5000))
    assert split_rhat(stuck) > 5.0
    assert effective_sample_size(stuck) < 10.0
    assert abs(split_rhat(mixed) - 1.0) < 0.01
    assert effective_sample_size(mixed) > 0.9 * mixed.size


@pytest.mark.parametrize("signs", [[-1, -1, -1, 1], [-1, -1, 1, 1], [-1] * 6 + [1] * 2, [-1] * 4 + [1] * 4])
def test_chains_stuck_in_two_modes_are_worth_half_a_draw_per_chain(signs):
    # m chains that never leave their modes (+-4, sd 0.6): the combined autocorrelation sits at the plateau
    # P = 1 - W / var_plus at every lag >= 1, Geyer's sum runs over all n/2 pairs, tau ~ 2 P n and
    # ESS ~ m / (2 P), about m / 2 whatever the modes' split (the number of modes does not enter).
    m, n = len(signs), 5000
    x = np.array(signs, dtype=float)[:, None] * 4 + 0.6 * np.random.default_rng(30 + m).standard_normal((m, n))
    W = x.var(axis=1, ddof=1).mean()
    var_plus = (n - 1) / n * W + x.mean(axis=1).var(ddof=1)
    expected = m / (2 * (1 - W / var_plus))
    assert effective_sample_size(x) == pytest.approx(expected, rel=0.02)
    assert 0.45 * m < effective_sample_size(x) < 0.55 * m


def _tail_tau_of_gaussian_ar1(rho: float, q: float) -> float:
    """tau of the indicator I(x <= q-quantile) of a stationary Gaussian AR(1): its lag-t covariance is the
    bivariate normal orthant probability Phi_2(z, z; rho^t) - p^2 (an independent, exact computation)."""
    from scipy.stats import multivariate_normal, norm

    z = norm.ppf(q)
    total, t = 1.0, 1
    while rho**t > 1e-6:
        joint = multivariate_normal(mean=[0, 0], cov=[[1, rho**t], [rho**t, 1]]).cdf([z, z])
        total += 2 * (joint - q * q) / (q * (1 - q))
        t += 1
    return total


def test_bulk_and_tail_ess_of_iid_and_ar1_chains():
    # iid: both ESS equal the number of draws. Gaussian AR(1), rho = 0.5: rank normalisation is monotone, so the
    # bulk ESS is N (1 - rho) / (1 + rho) = N / 3; the tail ESS is N / tau of the 5 % / 95 % indicators, tau
    # from the bivariate normal (both tails agree by symmetry; tau = 1.69 < 3: rare events decorrelate faster
    # than the bulk). With N = 2e5 draws the estimates scatter by about 1 % (6 seeds: all within 1.6 %),
    # so 5 % is a wide margin; the 25 % quantile's indicator (tau = 2.18) would be 29 % off.
    iid = np.random.default_rng(31).standard_normal((4, 50_000))
    ess = bulk_tail_ess(iid)
    assert abs(ess["bulk"] / iid.size - 1) < 0.05 and abs(ess["tail"] / iid.size - 1) < 0.05
    x = ar1(0.5, 4, 50_000, seed=32)
    ess = bulk_tail_ess(x)
    assert ess["bulk"] == pytest.approx(x.size / 3, rel=0.05)
    assert ess["tail"] == pytest.approx(x.size / _tail_tau_of_gaussian_ar1(0.5, 0.05), rel=0.05)


def test_split_rhat_matches_the_formula_and_catches_a_drifting_chain():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 10))
    halves = np.concatenate([x[:, :5], x[:, 5:]])
    n = 5
    W = halves.var(axis=1, ddof=1).mean()
    B = n * halves.mean(axis=1).var(ddof=1)
    expected = math.sqrt(((n - 1) / n * W + B / n) / W)
    assert split_rhat(x) == pytest.approx(expected, rel=1e-12)
    drift = np.linspace(0, 10, 2000) + rng.standard_normal(2000)
    assert split_rhat(drift[None, :]) > 1.5


# ----------------------------------------------------------------------------- rank-normalised R-hat
def _classic_rhat_numpy(halves: np.ndarray) -> float:
    n = halves.shape[1]
    W = halves.var(axis=1, ddof=1).mean()
    B = n * halves.mean(axis=1).var(ddof=1)
    return math.sqrt(((n - 1) / n * W + B / n) / W)


def _rank_rhat_numpy(x: np.ndarray) -> float:
    """Vehtari et al. (2021) written independently with scipy: split, rank (average ties), Blom, fold."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    half = x.shape[1] // 2
    halves = np.concatenate([x[:, :half], x[:, -half:]])
    z = lambda a: ndtri((rankdata(a.ravel()) - 3 / 8) / (a.size - 2 * 3 / 8 + 1)).reshape(a.shape)
    bulk = _classic_rhat_numpy(z(halves))
    tail = _classic_rhat_numpy(z(np.abs(halves - np.median(halves))))
    return max(bulk, tail)


def test_rank_normalize_matches_scipy_ranks_with_ties():
    from scipy.special import ndtri
    from scipy.stats import rankdata

    x = np.random.default_rng(20).standard_normal((3, 401))
    x[1] = np.round(x[1], 1)  # many ties
    expected = ndtri((rankdata(x.ravel()) - 0.375) / (x.size + 0.25)).reshape(x.shape)
    np.testing.assert_allclose(rank_normalize(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    one = rank_normalize(x[0])
    assert one.shape == (401,) and abs(float(one.mean())) < 1e-12  # ranks are symmetric about the middle


def test_rank_normalized_rhat_matches_an_independent_computation():
    rng = np.random.default_rng(21)
    for x in (rng.standard_normal((4, 1001)), rng.standard_cauchy((3, 600)) + np.arange(3)[:, None],
              np.round(rng.standard_normal((4, 300)), 1)):
        assert rank_normalized_rhat(x) == pytest.approx(_rank_rhat_numpy(x), rel=1e-12)


def test_rank_normalized_rhat_catches_what_classic_split_rhat_misses():
    rng = np.random.default_rng(22)
    # Equal means, unequal spreads (sd 1 and 3): the classic R-hat compares means and stays below 1.01; the
    # folded (tail) R-hat sees the spreads. With 4 x 20 000 draws the sampling noise of either is ~1e-4.
    spread = rng.standard_normal((4, 20_000)) * np.array([1.0, 1.0, 3.0, 3.0])[:, None]
    assert split_rhat(spread) < 1.01 < 1.05 < rank_normalized_rhat(spread)
    # Cauchy draws: independent chains have R-hat ~ 1 whatever the tails; a shift of 1 (the scale) is caught.
    cauchy = rng.standard_cauchy((4, 20_000))
    assert rank_normalized_rhat(cauchy) < 1.005
    cauchy[0] += 1.0
    assert rank_normalized_rhat(cauchy) > 1.02
    # Stuck chains, as in the chapter: both R-hats are far above 1.
    stuck = rng.standard_normal((4, 5000)) + 6.0 * np.array([0, 0, 0, 1])[:, None]
    assert rank_normalized_rhat(stuck) > 1.5 and split_rhat(stuck) > 1.5


# ----------------------------------------------------------------------------- energy gap
def test_energy_gap_and_tracker(device):
    e_data = torch.tensor([1.0, 2.0, 3.0], device=device)
    e_model = torch.tensor([4.0, 6.0], device=device)
    gap = energy_gap(e_data, e_model)
    assert gap.device.type == device.type and float(gap) == pytest.approx(-3.0)
    tracker = EnergyGapTracker()
    tracker.update(e_data, e_model)
    tracker.update(e_model, e_data, step=10)
    np.testing.assert_allclose(tracker.gaps(), [-3.0, 3.0])
    assert tracker.steps == [0, 10] and len(tracker) == 2


def test_regularized_gap_is_where_training_settles():
    # The formula on numbers: -2 alpha (mean E+^2 + mean E-^2) = -2 * 0.1 * (14/3 + 26) = -6.1333...
    got = regularized_gap(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 6.0]), 0.1)
    assert float(got) == pytest.approx(-0.2 * (14 / 3 + 26.0), rel=1e-12)
    # The claim behind it: at a stationary point of L = mean E+ - mean E- + alpha (mean E+^2 + mean E-^2)
    # in the last layer's weights w and bias b, E(x) = w . h(x) + b, the gap equals that value, whatever the
    # hidden layers. L is a convex quadratic in (w, b): minimise it in (w, b) to a vanishing gradient, on a
    # random float64 network with fixed positives and negatives, and compare.
    from ebm_teach.energies import MLPEnergy
    from ebm_teach.training import ml_loss

    torch.manual_seed(0)
    net = MLPEnergy(2, 8, 2).double()
    last = net.net[-1]
    for p in net.parameters():
        p.requires_grad_(False)
    last.weight.requires_grad_(True)
    last.bias.requires_grad_(True)
    x_pos = torch.randn(64, 2, dtype=torch.float64) * 0.5
    x_neg = torch.rand(64, 2, dtype=torch.float64) * 6 - 3
    alpha = 0.1
    opt = torch.optim.LBFGS([last.weight, last.bias], max_iter=500, tolerance_grad=1e-12, tolerance_change=0.0,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ml_loss(net(x_pos), net(x_neg), alpha)
        loss.backward()
        return loss

    opt.step(closure)
    closure()
    assert max(float(last.weight.grad.abs().max()), float(last.bias.grad.abs().max())) < 1e-9
    e_pos, e_neg = net(x_pos).detach(), net(x_neg).detach()
    assert float(energy_gap(e_pos, e_neg)) == pytest.approx(float(regularized_gap(e_pos, e_neg, alpha)), abs=1e-8)
    assert float(energy_gap(e_pos, e_neg)) < -0.1  # and it is clearly below 0, not "near 0"


# ----------------------------------------------------------------------------- bad input
def test_bad_input_messages():
    with pytest.raises(ValueError, match="method must be one of"):
        integrated_autocorr_time(np.zeros(100), method="fft")
    with pytest.raises(ValueError, match="one chain .* or several"):
        split_rhat(np.zeros((2, 3, 10)))
    with pytest.raises(ValueError, match="at least 4 steps"):
        split_rhat(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="constant"):
        autocorrelation(np.ones(50))
    with pytest.raises(ValueError, match="NaN/inf"):
        integrated_autocorr_time(np.array([0.0, 1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(ValueError, match="e_data must have 1 dimension"):
        energy_gap(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        regularized_gap(torch.zeros(2), torch.zeros(2), -0.1)
    with pytest.raises(ValueError, match="at least 4 steps"):
        rank_normalized_rhat(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 8 steps"):
        bulk_tail_ess(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="constant"):
        bulk_tail_ess(np.ones((2, 50)))
