"""Tests of annealed importance sampling for RBMs (ebm_teach.evaluate, chapters 3 and 11), forwards and backwards.

Known answers: log Z by enumerating the hidden layer (random RBMs and a trained 784 x 15 MNIST RBM), the
exact unbiasedness E[Z^] = Z of the importance weights for any schedule (Monte Carlo within a few standard
errors), a base equal to the target (every weight the same, log Z exact), and Jensen's inequality (log Z^
is low on average). Reverse AIS from exact samples: E[r] = Z_A / Z, and log Z^ high on average, so that
forward and reverse bracket the enumerated log Z. RAISE: E[p^_ann(v)] = p_ann(v), the annealing model's
probability computed exactly by multiplying its transition matrices, and below the exact log p on data drawn
from the RBM (Gibbs' inequality). Tolerances are set from the estimator's own standard error, stated at each
test.
"""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F_

from ebm_teach.evaluate import (
    AIS_STANDARD_N_BETAS,
    AISResult,
    ais_betas,
    ais_log_likelihood,
    ais_log_partition,
    ais_reference,
    ais_result,
    base_rate_bias,
    log_mean_exp,
    raise_log_likelihood,
    reverse_ais_log_partition,
)
import ebm_teach.evaluate as evaluate
from ebm_teach.rbm import BernoulliRBM

D = torch.float64


def _random_rbm(n_visible, n_hidden, seed, w_scale=5.0, dtype=torch.float32, device="cpu"):
    """W ~ N(0, w_scale^2 / n_v) (so every hidden input has sd ~ w_scale / 2 on random v), b ~ N(-1, 1), c ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    W = w_scale / math.sqrt(n_visible) * torch.randn(n_visible, n_hidden, generator=g, dtype=D)
    b = torch.randn(n_visible, generator=g, dtype=D) - 1.0
    c = torch.randn(n_hidden, generator=g, dtype=D)
    return BernoulliRBM.from_arrays(W, b, c, dtype=dtype, device=device)


def _exact_visible_means(rbm):
    """E_p[v] of the RBM by enumerating the hidden layer: sum_h p(h) sigma(b + W h), with
    log p(h) = c^T h + sum_i softplus(b_i + (W h)_i) - log Z (independent of the code under test)."""
    W, b, c = rbm.W.double().cpu(), rbm.b.double().cpu(), rbm.c.double().cpu()
    n_h = W.shape[1]
    hs = ((torch.arange(2**n_h)[:, None] >> torch.arange(n_h)) & 1).to(D)
    x = hs @ W.T + b
    p_h = torch.softmax(hs @ c + F_.softplus(x).sum(1), 0)
    return p_h @ torch.sigmoid(x)


def _logit(p, eps=1e-3):
    p = p.clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


# --------------------------------------------------------------------------------------------- helpers
def test_ais_betas_is_salakhutdinov_and_murrays_schedule():
    betas = ais_betas()
    steps = betas.diff()
    assert AIS_STANDARD_N_BETAS == 14_500 and betas.shape == (14_501,) and betas.dtype == D
    assert betas[0] == 0.0 and betas[-1] == 1.0
    assert torch.allclose(steps[:500], torch.full((500,), 1e-3, dtype=D), rtol=1e-9)
    assert torch.allclose(steps[500:4_500], torch.full((4_000,), 1e-4, dtype=D), rtol=1e-9)
    assert torch.allclose(steps[4_500:], torch.full((10_000,), 1e-5, dtype=D), rtol=1e-9)


@pytest.mark.parametrize("n_betas", [1, 2, 3, 29, 1_450, 20_000])
def test_ais_betas_for_any_length_rise_from_0_to_1_in_the_same_proportions(n_betas):
    betas = ais_betas(n_betas)
    assert betas.shape == (n_betas + 1,) and betas[0] == 0.0 and betas[-1] == 1.0
    assert bool((betas.diff() > 0).all())
    if n_betas >= 1_450:  # 500 : 4,000 : 10,000 of the steps below 0.5, in [0.5, 0.9) and from 0.9 on
        below_half, below_09 = int((betas < 0.5).sum()), int((betas < 0.9).sum())
        assert abs(below_half / n_betas - 500 / 14_500) < 2 / n_betas
        assert abs(below_09 / n_betas - 4_500 / 14_500) < 2 / n_betas


def test_log_mean_exp_matches_the_direct_formula_and_does_not_overflow():
    x = torch.tensor([[0.3, -1.2, 2.0], [1.0, 1.0, 1.0]], dtype=D)
    direct = torch.log(torch.exp(x).mean(1))
    assert torch.allclose(log_mean_exp(x, dim=1), direct, rtol=0, atol=1e-14)
    assert torch.allclose(log_mean_exp(x, dim=0), torch.log(torch.exp(x).mean(0)), rtol=0, atol=1e-14)
    # exp(1000) overflows float64, exp(-1000) underflows: the result is still 1000 + log((1 + e^-1 + e^-2)/3)
    expected = math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    for shift in (1000.0, -1000.0):
        big = torch.tensor([0.0, -1.0, -2.0], dtype=D) + shift
        assert abs(float(log_mean_exp(big)) - (shift + expected)) < 1e-12
    assert abs(float(log_mean_exp(torch.tensor([0.0, -math.inf]))) - math.log(0.5)) < 1e-7


def test_base_rate_bias_is_the_clipped_logit_of_the_pixel_means():
    v = torch.tensor([[1, 0, 0, 1], [1, 0, 1, 1], [1, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.float32)
    b_A = base_rate_bias(v, eps=0.01)
    expected = torch.tensor([math.log(0.99 / 0.01), math.log(0.01 / 0.99), 0.0, 0.0])
    assert torch.allclose(b_A, expected, atol=1e-5)


# --------------------------------------------------------------------------------------------- known answers
def test_ais_is_exact_when_the_base_is_the_target_rbm():
    """W = 0 and b_A = b: then -F_beta(v) = b^T v + sum_j softplus(beta c_j) for every v, so every chain gets the
    same weight log w = sum_j softplus(c_j) - n_h log 2 and log Z^ = sum softplus(b) + sum softplus(c) exactly."""
    g = torch.Generator().manual_seed(0)
    b, c = torch.randn(12, generator=g, dtype=D), 3 * torch.randn(5, generator=g, dtype=D)
    rbm = BernoulliRBM.from_arrays(torch.zeros(12, 5, dtype=D), b, c)
    result = ais_log_partition(rbm, n_chains=7, n_betas=50, base=b, seed=1)
    exact = float(F_.softplus(b).sum() + F_.softplus(c).sum())
    assert abs(rbm.log_partition_exact() - exact) < 1e-12
    assert abs(result.log_z - exact) < 1e-10
    assert float(result.log_weights.std()) < 1e-12 and result.std_error < 1e-12 and abs(result.ess - 7) < 1e-9
    assert abs(result.log_z_base - (float(F_.softplus(b).sum()) + 5 * math.log(2))) < 1e-12


@pytest.mark.parametrize("base", ["uniform", "base rate"])
@pytest.mark.parametrize("n_betas", [1, 4])
def test_ais_weights_are_unbiased_for_z_with_any_schedule(base, n_betas):
    """E[w] = Z / Z_A exactly, however short the schedule: the mean of M = 200,000 weights must match
    Z / Z_A within 4 standard errors of that mean (the standard error from the weights themselves)."""
    rbm = _random_rbm(8, 4, seed=3, w_scale=3.0, dtype=D)
    b_A = "uniform" if base == "uniform" else _logit(_exact_visible_means(rbm))
    result = ais_log_partition(rbm, n_chains=200_000, n_betas=n_betas, base=b_A, seed=0)
    ratio = torch.exp(result.log_weights + result.log_z_base - rbm.log_partition_exact())  # w Z_A / Z, mean 1
    standard_error = float(ratio.std()) / math.sqrt(len(ratio))
    assert abs(float(ratio.mean()) - 1.0) < 4 * standard_error
    assert standard_error < 0.02  # the check has power: a wrong log Z_A (e.g. n_h log 2 off) is 2.8 nats
    assert abs(result.log_z - (result.log_z_base + float(log_mean_exp(result.log_weights)))) < 1e-12


@pytest.mark.parametrize("n_visible, n_hidden, seed", [(30, 8, 0), (64, 12, 1), (100, 15, 2)])
def test_ais_log_z_is_within_0p1_nats_of_exact_on_random_rbms(n_visible, n_hidden, seed):
    """Base-rate starts (b_A = logit of the exact visible means), 1,000 temperatures, 100 chains.
    The estimator's standard error is asserted below 0.025, so 0.1 nats is a margin of 4 standard errors."""
    rbm = _random_rbm(n_visible, n_hidden, seed)
    b_A = _logit(_exact_visible_means(rbm)).float()
    result = ais_log_partition(rbm, n_chains=100, n_betas=1_000, base=b_A, seed=seed)
    assert result.std_error < 0.025
    assert abs(result.log_z - rbm.log_partition_exact()) < 0.1
    assert result.log_z_lower < rbm.log_partition_exact() < result.log_z_upper


def test_ais_log_z_is_within_0p1_nats_on_a_trained_784x15_mnist_rbm():
    """A realistic size: a 784 x 15 RBM trained on binarized MNIST (exact log Z by enumerating the 2^15 hidden
    states), base rates from the MNIST training set, the standard 14,500 temperatures and 400 chains.
    Its log-weights have sd ~ 0.75 (measured), so the standard error is ~0.04 and 0.1 nats is ~2.7 of them."""
    from ebm_teach.data import load_binarized_mnist, load_mnist_rbm

    params = load_mnist_rbm()
    x_train = load_binarized_mnist("train")
    rbm = BernoulliRBM.from_arrays(params["W"], params["b"], params["c"], dtype=torch.float32)
    result = ais_log_partition(rbm, n_chains=400, base=x_train, seed=0)
    exact = rbm.log_partition_exact()
    assert f"{exact:.4f}" == "215.1384", "the documented exact log Z of the shipped RBM"
    assert result.std_error < 0.05
    assert abs(result.log_z - exact) < 0.1
    # the AIS log-likelihood of test digits differs from the exact one by exactly log Z^ - log Z
    x_test = load_binarized_mnist("test")[:500]
    assert abs(ais_log_likelihood(rbm, x_test, result) - rbm.log_likelihood_exact(x_test, exact) + result.log_z - exact) < 1e-6


@pytest.mark.parametrize("fine_step", [evaluate.AIS_FINE_STEP, 0.0])
@pytest.mark.parametrize("n_betas", [1, 17, 100])
def test_the_chapters_reference_ais_is_the_fast_one_on_the_same_random_stream(n_betas, fine_step, monkeypatch):
    """ais_reference (what the chapter shows) and ais_log_partition (buffers, chunked uniforms, unit-major
    layout, increments without cancellation) read the same uniforms: on a float64 RBM their chains and
    log-weights agree to rounding, with the increments computed either way (AIS_FINE_STEP = 0 forces the
    float64 softplus differences that coarse schedules use)."""
    monkeypatch.setattr(evaluate, "AIS_FINE_STEP", fine_step)
    rbm = _random_rbm(12, 5, 3, dtype=D)
    b_A = 0.5 * torch.randn(12, generator=torch.Generator().manual_seed(4), dtype=D)
    betas = ais_betas(n_betas)
    fast = ais_log_partition(rbm, n_chains=9, betas=betas, base=b_A, generator=torch.Generator().manual_seed(6))
    log_z, log_w = ais_reference(rbm, betas.tolist(), b_A, 9, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(fast.log_weights, log_w, rtol=0, atol=1e-9)
    assert math.isclose(fast.log_z, log_z, abs_tol=1e-9)


def test_softplus_steps_are_accurate_in_float32_where_a_plain_difference_is_not():
    """The increment softplus(beta_k a) - softplus(beta_(k-1) a) for steps of 1e-5, as _softplus_steps computes
    it in float32, against float64: relative error below 1e-5, while the difference of two float32 softplus
    values is off by whole percents (it cancels ~6 significant digits)."""
    a = torch.linspace(-40, 40, 2001, dtype=torch.float32)[:, None]
    beta_prev, d_beta = 0.95, 1e-5
    x = a * (beta_prev + d_beta)
    work = [torch.empty_like(a) for _ in range(3)]
    fast = evaluate._softplus_steps(a, x, beta_prev, d_beta, work).double()
    a64 = a.double()
    exact = F_.softplus((beta_prev + d_beta) * a64) - F_.softplus(beta_prev * a64)
    scale = exact.abs().clamp(min=1e-12)
    assert float(((fast - exact).abs() / scale).max()) < 1e-5
    plain = (F_.softplus(x) - F_.softplus(a * beta_prev)).double()
    assert float(((plain - exact).abs() / scale).max()) > 1e-2


def test_ais_reference_rejects_bad_input():
    rbm = _random_rbm(6, 3, seed=8, dtype=D)
    with pytest.raises(ValueError, match="betas must increase strictly from 0 to 1"):
        ais_reference(rbm, [0.0, 0.7, 0.5, 1.0], torch.zeros(6, dtype=D), 5)
    with pytest.raises(ValueError, match="b_A"):
        ais_reference(rbm, [0.0, 1.0], torch.zeros(5, dtype=D), 5)
    with pytest.raises(ValueError, match="n_chains must be >= 1"):
        ais_reference(rbm, [0.0, 1.0], torch.zeros(6, dtype=D), 0)


def test_log_z_hat_is_low_on_average_although_z_hat_is_unbiased():
    """Jensen: E[log Z^] <= log E[Z^] = log Z. With 10 temperatures and 5 chains per run, 4,000 independent runs
    (one vectorised call, the weights split into runs) give a mean log Z^ clearly below log Z, while the mean of
    Z^ / Z stays within 4 standard errors of 1."""
    rbm = _random_rbm(20, 6, seed=4, w_scale=6.0, dtype=D)
    runs, per_run = 4_000, 5
    result = ais_log_partition(rbm, n_chains=runs * per_run, n_betas=10, base="uniform", seed=0)
    log_z_hat = result.log_z_base + log_mean_exp(result.log_weights.view(runs, per_run), dim=1)
    error = log_z_hat - rbm.log_partition_exact()
    se_log = float(error.std()) / math.sqrt(runs)
    assert float(error.mean()) < -5 * se_log
    ratio = torch.exp(error)
    assert abs(float(ratio.mean()) - 1.0) < 4 * float(ratio.std()) / math.sqrt(runs)


def test_ais_log_likelihood_is_mean_negative_free_energy_minus_log_z():
    rbm = _random_rbm(10, 4, seed=5)
    v = (torch.rand(30, 10, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    exact_log_z = rbm.log_partition_exact()
    assert abs(ais_log_likelihood(rbm, v, exact_log_z) - rbm.log_likelihood_exact(v)) < 1e-9
    result = ais_log_partition(rbm, n_chains=50, n_betas=200, base=v, seed=0)
    by_result = ais_log_likelihood(rbm, v, result)
    assert abs(by_result - (rbm.log_likelihood_exact(v) + exact_log_z - result.log_z)) < 1e-9
    # without log_z it runs AIS itself with the given arguments: the same seed gives the same number
    assert ais_log_likelihood(rbm, v, n_chains=50, n_betas=200, base=v, seed=0) == by_result


# --------------------------------------------------------------------------------------------- reverse AIS, RAISE
def _states(n):
    return ((torch.arange(2**n)[:, None] >> torch.arange(n)) & 1).to(D)


def _gibbs_matrix(rbm, b_A, beta):
    """T_beta(v, v') = sum_h p_beta(h | v) p_beta(v' | h) over every visible and hidden state (float64), for the
    RBM p_beta with couplings beta W, visible biases (1 - beta) b_A + beta b and hidden biases beta c."""
    W, b, c = rbm.W.double(), rbm.b.double(), rbm.c.double()
    vs, hs = _states(W.shape[0]), _states(W.shape[1])
    p_h = torch.sigmoid(beta * (vs @ W + c))  # (V, n_h)
    p_h_given_v = torch.exp(hs @ torch.log(p_h).T + (1 - hs) @ torch.log1p(-p_h).T).T  # (V, H)
    p_v = torch.sigmoid((1 - beta) * b_A + beta * (hs @ W.T + b))  # (H, n_v)
    p_v_given_h = torch.exp(vs @ torch.log(p_v).T + (1 - vs) @ torch.log1p(-p_v).T).T  # (H, V)
    return p_h_given_v @ p_v_given_h


def _annealing_model(rbm, b_A, betas):
    """p_ann(v): the law of AIS's last state, p_0 T_1 ... T_(K-1) with p_0 the base's independent pixels."""
    vs = _states(rbm.n_visible)
    p_0 = torch.sigmoid(b_A.double())
    p = torch.exp(vs @ torch.log(p_0) + (1 - vs) @ torch.log1p(-p_0))
    for beta in betas[1:-1]:
        p = p @ _gibbs_matrix(rbm, b_A.double(), beta)
    return p


def _reverse_by_hand(rbm, v, betas, b_A, generator):
    """Reverse AIS written out step by step from the states v (M, n_v) (rows), drawing uniforms as the fast
    version stores them: log r += log p*_(k-1)(v_k) - log p*_k(v_k), then a Gibbs step at beta_(k-1)."""
    W, b, c = rbm.W, rbm.b, rbm.c

    def log_p_star(x, beta):
        return x @ ((1 - beta) * b_A + beta * b) + F_.softplus(beta * (x @ W + c)).sum(1)

    def bernoulli(p):
        return (torch.rand(p.shape[::-1], generator=generator, dtype=p.dtype).T < p).to(p.dtype)

    log_r = torch.zeros(len(v), dtype=D)
    for k in range(len(betas) - 1, 0, -1):
        log_r += log_p_star(v, betas[k - 1]) - log_p_star(v, betas[k])
        if k > 1:
            h = bernoulli(torch.sigmoid(betas[k - 1] * (v @ W + c)))
            v = bernoulli(torch.sigmoid((1 - betas[k - 1]) * b_A + betas[k - 1] * (h @ W.T + b)))
    return log_r


@pytest.mark.parametrize("n_betas", [1, 3, 40])
def test_reverse_ais_is_the_forward_loop_walked_from_the_rbm_down_to_the_base(n_betas):
    """The fast reverse AIS against a written-out loop on the same uniforms (float64: equal to rounding)."""
    rbm = _random_rbm(10, 4, seed=2, dtype=D)
    b_A = 0.3 * torch.randn(10, generator=torch.Generator().manual_seed(1), dtype=D)
    v, _ = rbm.sample_exact(7, generator=torch.Generator().manual_seed(5))
    betas = ais_betas(n_betas).tolist()
    fast = reverse_ais_log_partition(rbm, v, betas=betas, base=b_A, generator=torch.Generator().manual_seed(9))
    by_hand = _reverse_by_hand(rbm, v, betas, b_A, torch.Generator().manual_seed(9))
    assert torch.allclose(fast.log_weights, by_hand, rtol=0, atol=1e-9)
    again, _ = rbm.sample_exact(7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(v, again), "the samples passed in are left alone (the chains run on a copy)"
    expected = fast.log_z_base - float(log_mean_exp(by_hand))
    assert math.isclose(fast.log_z, expected, abs_tol=1e-9)


@pytest.mark.parametrize("n_betas", [1, 4])
def test_reverse_weights_from_exact_samples_are_unbiased_for_z_a_over_z(n_betas):
    """E[r] = Z_A / Z exactly when the chains start at exact samples, however short the schedule: the mean of
    r Z / Z_A over 200,000 chains must be 1 within 4 of its standard errors."""
    rbm = _random_rbm(8, 4, seed=3, w_scale=3.0, dtype=D)
    v, _ = rbm.sample_exact(200_000, generator=torch.Generator().manual_seed(1))
    result = reverse_ais_log_partition(rbm, v, n_betas=n_betas, base="uniform", seed=0)
    ratio = torch.exp(result.log_weights - result.log_z_base + rbm.log_partition_exact())  # r Z / Z_A, mean 1
    standard_error = float(ratio.std()) / math.sqrt(len(ratio))
    assert abs(float(ratio.mean()) - 1.0) < 4 * standard_error
    assert standard_error < 0.02  # power: a wrong log Z_A (n_h log 2) or a flipped increment is far off
    assert abs(result.log_z - (result.log_z_base - float(log_mean_exp(result.log_weights)))) < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_and_reverse_ais_bracket_the_exact_log_z(seed):
    """Bidirectional Monte Carlo on three random RBMs (20 x 8, strong weights). With a coarse path (10
    temperatures), 2,000 runs of 5 chains each: AIS is low on average and reverse AIS from exact samples high,
    both by more than 5 standard errors of the mean over runs (measured: about -2 and +2 nats, standard errors
    0.05). With a fine path (2,000 temperatures, 100 chains) one run of each brackets log Z within 3 of its
    own standard errors, and the two are within 0.1 nats of each other."""
    rbm = _random_rbm(20, 8, seed=seed, w_scale=6.0, dtype=D)
    exact = rbm.log_partition_exact()
    runs, per_run = 2_000, 5
    fwd = ais_log_partition(rbm, n_chains=runs * per_run, n_betas=10, seed=seed)
    v, _ = rbm.sample_exact(runs * per_run, generator=torch.Generator().manual_seed(100 + seed))
    rev = reverse_ais_log_partition(rbm, v, n_betas=10, seed=200 + seed)
    low = fwd.log_z_base + log_mean_exp(fwd.log_weights.view(runs, per_run), dim=1) - exact
    high = rev.log_z_base - log_mean_exp(rev.log_weights.view(runs, per_run), dim=1) - exact
    assert float(low.mean()) < -5 * float(low.std()) / math.sqrt(runs)
    assert float(high.mean()) > 5 * float(high.std()) / math.sqrt(runs)
    fine_fwd = ais_log_partition(rbm, n_chains=100, n_betas=2_000, seed=seed)
    fine_rev = reverse_ais_log_partition(rbm, v[:100], n_betas=2_000, seed=seed)
    assert fine_fwd.log_z - 3 * fine_fwd.std_error <= exact <= fine_rev.log_z + 3 * fine_rev.std_error
    assert abs(fine_rev.log_z - fine_fwd.log_z) < 0.1
    assert fine_rev.log_z_lower < fine_rev.log_z < fine_rev.log_z_upper


def test_raise_is_an_unbiased_estimate_of_the_annealing_models_probability():
    """p_ann(v) computed exactly (the base's independent pixels times the K - 1 Gibbs transition matrices,
    enumerated) for a 5 x 3 RBM and 3 temperatures; the RAISE estimates p^_ann(v) of 20,000 chains per state,
    averaged, must equal it within 4 standard errors for every one of the 32 states. A wrong sign of the
    increments or a missing p_A(v_1) fails by orders of magnitude."""
    rbm = _random_rbm(5, 3, seed=6, w_scale=3.0, dtype=D)
    b_A = torch.tensor([0.5, -1.0, 0.0, 1.5, -0.3], dtype=D)
    betas = [0.0, 0.4, 0.8, 1.0]
    p_ann = _annealing_model(rbm, b_A, betas)
    assert abs(float(p_ann.sum()) - 1.0) < 1e-12
    vs = _states(5)
    result = raise_log_likelihood(rbm, vs, n_chains=20_000, betas=betas, base=b_A, seed=0)
    neg_free_energy = -rbm.free_energy(vs).double()
    p_hat = torch.exp(neg_free_energy[:, None] - result.log_z_base + result.log_weights)  # (32, 20,000)
    standard_error = p_hat.std(1) / math.sqrt(p_hat.shape[1])
    assert bool(((p_hat.mean(1) - p_ann).abs() < 4 * standard_error).all())
    assert bool((standard_error < 0.05 * p_ann).all())  # power: 5 % of each probability
    assert torch.allclose(result.log_p, neg_free_energy - result.log_z_base + log_mean_exp(result.log_weights, 1))
    # and it is a different model from the RBM (3 temperatures): its log-likelihood of the states differs
    log_p = neg_free_energy - rbm.log_partition_exact()
    assert float((torch.log(p_ann) - log_p).abs().max()) > 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_raise_is_below_the_exact_log_likelihood_of_data_from_the_rbm(seed):
    """For data drawn from the RBM itself, E[log p^_ann(v)] <= E[log p_ann(v)] <= E[log p(v)] (Jensen, then
    Gibbs' inequality: no other model has a higher expected log-likelihood). 2,000 exact samples of a random
    20 x 8 RBM, one chain each: with 20 temperatures the mean RAISE estimate is several nats low (measured
    about -3), with 2,000 temperatures within 0.15 nats and still not above the exact mean log p by more than
    4 standard errors of the paired differences (the Monte Carlo tolerance, about 0.035 nats)."""
    rbm = _random_rbm(20, 8, seed=seed, w_scale=6.0, dtype=D)
    data, _ = rbm.sample_exact(2_000, generator=torch.Generator().manual_seed(5))
    exact_log_p = -rbm.free_energy(data).double() - rbm.log_partition_exact()
    for n_betas, lowest in [(20, -10.0), (2_000, -0.15)]:
        result = raise_log_likelihood(rbm, data, n_betas=n_betas, seed=6)
        diff = result.log_p - exact_log_p
        tolerance = 4 * float(diff.std()) / math.sqrt(len(diff))
        assert lowest < float(diff.mean()) < tolerance
    assert float(diff.mean()) > -0.15 and abs(result.log_likelihood - float(result.log_p.mean())) < 1e-12
    assert result.std_error == pytest.approx(float(result.log_p.std()) / math.sqrt(len(data)))
    coarse = raise_log_likelihood(rbm, data[:200], n_betas=20, seed=7)
    assert coarse.log_likelihood < float(exact_log_p[:200].mean()) - 1.0


def test_raise_batches_and_chains_per_example_give_the_same_estimates():
    """batch_size only changes memory: the same generator gives the same estimates in any batching, and the M
    chains of an example are its own (log_weights (n, M))."""
    rbm = _random_rbm(12, 5, seed=1)
    data = (torch.rand(9, 12, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    whole = raise_log_likelihood(rbm, data, n_chains=3, n_betas=30, seed=4)
    batched = raise_log_likelihood(rbm, data, n_chains=3, n_betas=30, seed=4, batch_size=9)
    assert torch.equal(whole.log_p, batched.log_p) and whole.log_weights.shape == (9, 3)


def test_ais_result_of_reverse_weights_bounds_log_z_from_the_other_side():
    """Forward: log Z^ = log Z_A + log mean(w); reverse: log Z_A - log mean(r), its interval mirrored."""
    log_r = torch.log(torch.tensor([0.5, 1.0, 1.5], dtype=D))  # mean 1, sd 0.5
    forward, reverse = ais_result(log_r, 2.0), ais_result(log_r, 2.0, reverse=True)
    assert math.isclose(forward.log_z, 2.0, abs_tol=1e-12) and math.isclose(reverse.log_z, 2.0, abs_tol=1e-12)
    se = 0.5 / math.sqrt(3)  # std(r) / (mean(r) sqrt(M))
    assert math.isclose(reverse.std_error, se, rel_tol=1e-12)
    assert math.isclose(reverse.log_z_lower, 2.0 - math.log1p(3 * se), rel_tol=1e-12)
    assert math.isclose(reverse.log_z_upper, 2.0 - math.log1p(-3 * se), rel_tol=1e-12)
    assert math.isclose(forward.log_z_upper, 2.0 + math.log1p(3 * se), rel_tol=1e-12)
    assert math.isclose(forward.log_z_lower, 2.0 + math.log1p(-3 * se), rel_tol=1e-12)
    wide = ais_result(torch.log(torch.tensor([0.1, 1.0, 1.9], dtype=D)), 2.0, reverse=True)  # 3 se > mean
    assert wide.log_z_upper == math.inf and math.isfinite(wide.log_z_lower)


def test_the_background_random_numbers_change_nothing(monkeypatch):
    """AIS_BACKGROUND_RNG draws the next block of uniforms on a second thread: the same numbers, in the same
    order, so the same chains and log-weights, forwards and backwards."""
    rbm = _random_rbm(30, 6, seed=4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the worker thread is used only where torch may use more than one
    try:
        runs = {}
        for background in (False, True):
            monkeypatch.setattr(evaluate, "AIS_BACKGROUND_RNG", background)
            fwd = ais_log_partition(rbm, n_chains=50, n_betas=300, seed=1)
            rev = reverse_ais_log_partition(rbm, torch.ones(50, 30), n_betas=300, seed=2)
            runs[background] = (fwd.log_weights, rev.log_weights)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(runs[False], runs[True]))


def test_the_old_private_names_still_work():
    """ebm_teach.dbm imported these helpers under private names; they stay as aliases of the public ones."""
    assert evaluate._ais_result is evaluate.ais_result
    assert evaluate._ais_base_bias is evaluate.ais_base_bias
    assert evaluate._ais_betas_list is evaluate.ais_schedule
    assert evaluate.ais_schedule(None, [0.0, 0.5, 1.0]) == [0.0, 0.5, 1.0]
    assert evaluate.ais_schedule(4) == ais_betas(4).tolist()


# --------------------------------------------------------------------------------------------- contracts
def test_ais_contracts_on_device(device):
    rbm = _random_rbm(16, 5, seed=6, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    result = ais_log_partition(rbm, n_chains=20, n_betas=30, base=torch.zeros(16, device=device), generator=g)
    assert isinstance(result, AISResult)
    assert result.log_weights.shape == (20,) and result.log_weights.dtype == D
    assert result.log_weights.device.type == torch.device(device).type
    assert bool(torch.isfinite(result.log_weights).all())
    assert all(isinstance(x, float) for x in result[:6])
    assert result.log_z_lower <= result.log_z <= result.log_z_upper and 1.0 <= result.ess <= 20.0
    # the same seed gives the same run, the base "uniform" is b_A = 0, and a betas tensor equals n_betas
    again = ais_log_partition(rbm, n_chains=20, betas=ais_betas(30), base="uniform",
                              generator=torch.Generator(device=device).manual_seed(0))
    assert torch.equal(again.log_weights, result.log_weights)


def test_reverse_ais_and_raise_contracts_on_device(device):
    """Shapes, dtypes and devices of reverse AIS, RAISE and exact samples on every available device; the same
    generator seed gives the same numbers."""
    rbm = _random_rbm(16, 5, seed=6, device=device)
    v, h = rbm.sample_exact(12, generator=torch.Generator(device=device).manual_seed(0))
    assert v.device.type == h.device.type == torch.device(device).type and v.shape == (12, 16)
    rev = reverse_ais_log_partition(rbm, v, n_betas=30, base="uniform",
                                    generator=torch.Generator(device=device).manual_seed(1))
    assert rev.log_weights.shape == (12,) and rev.log_weights.dtype == D
    assert rev.log_weights.device.type == torch.device(device).type
    assert rev.log_z_lower <= rev.log_z <= rev.log_z_upper and 1.0 <= rev.ess <= 12.0
    est = raise_log_likelihood(rbm, v[:5], n_chains=2, n_betas=30,
                               generator=torch.Generator(device=device).manual_seed(2))
    assert est.log_p.shape == (5,) and est.log_weights.shape == (5, 2) and isinstance(est.log_likelihood, float)
    again = raise_log_likelihood(rbm, v[:5], n_chains=2, n_betas=30,
                                 generator=torch.Generator(device=device).manual_seed(2))
    assert torch.equal(est.log_p, again.log_p)


def test_ais_leaves_the_rbm_the_thread_count_and_autograd_alone():
    rbm = _random_rbm(12, 4, seed=7)
    theta = rbm.theta.clone()
    threads = torch.get_num_threads()
    ais_log_partition(rbm, n_chains=10, n_betas=20, seed=0)
    assert torch.equal(rbm.theta, theta) and torch.get_num_threads() == threads
    assert not rbm.theta.requires_grad


def test_bad_input_is_rejected_with_advice():
    rbm = _random_rbm(6, 3, seed=8)
    with pytest.raises(TypeError, match="BernoulliRBM"):
        ais_log_partition(object())
    with pytest.raises(ValueError, match="n_chains must be >= 1"):
        ais_log_partition(rbm, n_chains=0)
    with pytest.raises(ValueError, match="n_betas must be >= 1"):
        ais_log_partition(rbm, n_betas=0)
    for betas in ([0.0, 0.5], [0.1, 1.0], [0.0, 0.6, 0.4, 1.0], [0.0]):
        with pytest.raises(ValueError, match="betas must increase strictly from 0 to 1"):
            ais_log_partition(rbm, betas=betas)
    with pytest.raises(ValueError, match="base must be 'uniform'"):
        ais_log_partition(rbm, base="base-rate")
    with pytest.raises(ValueError, match="base must be a vector of 6"):
        ais_log_partition(rbm, base=torch.zeros(5))
    with pytest.raises(ValueError, match="base data must have 6 columns"):
        ais_log_partition(rbm, base=torch.zeros(4, 5))
    with pytest.raises(ValueError, match="binary"):
        ais_log_partition(rbm, base=torch.full((4, 6), 0.5))
    with pytest.raises(ValueError, match="either generator or seed"):
        ais_log_partition(rbm, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="at least one entry"):
        log_mean_exp(torch.empty(0))
    with pytest.raises(ValueError, match="eps must be < 0.5"):
        base_rate_bias(torch.ones(3, 2), eps=0.5)
    with pytest.raises(ValueError, match="v is empty"):
        base_rate_bias(torch.ones(0, 2))
    with pytest.raises(ValueError, match="binary"):
        ais_log_likelihood(rbm, torch.full((2, 6), 0.3), 1.0)
    with pytest.raises(ValueError, match=r"shape \(batch, 6\)"):
        ais_log_likelihood(rbm, torch.ones(2, 5), 1.0)
    with pytest.raises(ValueError, match="either log_z or arguments"):
        ais_log_likelihood(rbm, torch.ones(2, 6), 1.0, n_chains=5)
    with pytest.raises(ValueError, match="log_z must be finite"):
        ais_log_likelihood(rbm, torch.ones(2, 6), float("nan"))


def test_reverse_ais_and_raise_reject_bad_input_with_advice():
    rbm = _random_rbm(6, 3, seed=8)
    with pytest.raises(ValueError, match=r"v_samples must have shape \(batch, 6\)"):
        reverse_ais_log_partition(rbm, torch.ones(4, 5))
    with pytest.raises(ValueError, match="v_samples must be binary"):
        reverse_ais_log_partition(rbm, torch.full((4, 6), 0.5))
    with pytest.raises(ValueError, match="v_samples must be binary"):
        reverse_ais_log_partition(rbm, torch.full((4, 6), float("nan")))
    with pytest.raises(ValueError, match="v_samples is empty"):
        reverse_ais_log_partition(rbm, torch.ones(0, 6))
    with pytest.raises(ValueError, match="betas must increase strictly from 0 to 1"):
        reverse_ais_log_partition(rbm, torch.ones(2, 6), betas=[1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="either generator or seed"):
        reverse_ais_log_partition(rbm, torch.ones(2, 6), seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="v must be binary"):
        raise_log_likelihood(rbm, torch.full((2, 6), 0.3))
    with pytest.raises(ValueError, match="v is empty"):
        raise_log_likelihood(rbm, torch.ones(0, 6))
    with pytest.raises(ValueError, match="n_chains must be >= 1"):
        raise_log_likelihood(rbm, torch.ones(2, 6), n_chains=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        raise_log_likelihood(rbm, torch.ones(2, 6), batch_size=0)
    with pytest.raises(ValueError, match="base must be 'uniform'"):
        raise_log_likelihood(rbm, torch.ones(2, 6), base="rates")
    with pytest.raises(TypeError, match="BernoulliRBM"):
        raise_log_likelihood(object(), torch.ones(2, 6))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to mismatch the generator with")
def test_a_generator_on_another_device_is_rejected():
    rbm = _random_rbm(6, 3, seed=8)
    with pytest.raises(ValueError, match="the generator lives on"):
        ais_log_partition(rbm, generator=torch.Generator(device="cuda"))


# --------------------------------------------------------------------------------------------- exercise checks
def _solution_functions():
    import jupytext

    namespace = {}
    path = Path(__file__).resolve().parents[1] / "solutions" / "03_pcd_ais.py"
    for cell in jupytext.read(path, fmt="py:percent").cells:
        if cell.cell_type == "code" and not {"self-check", "hidden-test"} & set(cell.metadata.get("tags", ())):
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


def _fails(check, fn):
    with pytest.raises(AssertionError):
        check(fn)


def test_ch03_exercise_checks_reject_typical_mistakes():
    from ebm_teach.grade.checks import ch03_pcd_ais as ch03

    sol = _solution_functions()
    pcd, step, bias, ais = sol["pcd_update"], sol["ais_log_weight_step"], sol["log_z_bias"], sol["ais_log_z"]

    def pcd_restarting_at_the_data(W, b, c, v_data, v_chains, u_h, u_v, eps):  # CD, not PCD
        return pcd(W, b, c, v_data, v_data.repeat(len(v_chains), 1)[:len(v_chains)], u_h, u_v, eps)

    def pcd_returning_the_old_chains(*args):
        return (*pcd(*args)[:3], args[4])

    def pcd_in_place(W, *rest):
        out = pcd(W, *rest)
        W.copy_(out[0])
        return out

    _fails(ch03.check_pcd_against_loops, pcd_restarting_at_the_data)
    _fails(ch03.check_pcd_expectation, pcd_restarting_at_the_data)
    _fails(ch03.check_pcd_chains_persist, pcd_returning_the_old_chains)
    _fails(ch03.check_pcd_leaves_arguments_alone, pcd_in_place)

    def step_in_float32(log_w, v, W, b, c, b_A, beta_prev, beta):
        return step(*(t.float() for t in (log_w, v, W, b, c, b_A)), beta_prev, beta).double()

    def step_with_beta_outside_the_softplus(log_w, v, W, b, c, b_A, beta_prev, beta):
        def neg_f(x):
            return ((1 - x) * b_A + x * b) @ v.T + x * F_.softplus(v @ W + c).sum(1)
        return log_w + neg_f(beta) - neg_f(beta_prev)

    def step_with_log_one_plus_exp(log_w, v, W, b, c, b_A, beta_prev, beta):
        def neg_f(x):
            return ((1 - x) * b_A + x * b) @ v.T + torch.log(1 + torch.exp(x * (v @ W + c))).sum(1)
        return log_w + neg_f(beta) - neg_f(beta_prev)

    _fails(ch03.check_step_small_steps_in_float64, step_in_float32)
    _fails(ch03.check_step_enumeration, step_with_beta_outside_the_softplus)
    _fails(ch03.check_step_large_weights, step_with_log_one_plus_exp)
    for check in (ch03.check_bias_formula, ch03.check_bias_large_log_weights, ch03.check_bias_against_monte_carlo):
        check(bias)
    _fails(ch03.check_bias_formula, lambda log_w, M: -bias(log_w, M))  # Jensen's gap has a sign
    _fails(ch03.check_bias_against_monte_carlo, lambda log_w, M: bias(log_w, 1))  # the 1/M forgotten
    _fails(ch03.check_bias_against_monte_carlo, lambda log_w, M: 2 * bias(log_w, M))  # the 1/2 forgotten
    _fails(ch03.check_bias_large_log_weights,
           lambda log_w, M: float(-torch.exp(log_w).var(correction=0) / (2 * M * torch.exp(log_w).mean() ** 2)))

    def ais_without_the_hidden_units_in_log_z_base(*args):
        log_z, log_w = ais(*args)
        return log_z - args[0].shape[1] * math.log(2), log_w

    def ais_with_gibbs_at_the_previous_beta(W, b, c, b_A, betas, n_chains, generator):
        v = (torch.rand(n_chains, len(b), generator=generator, dtype=D) < torch.sigmoid(b_A)).to(D)
        log_w = torch.zeros(n_chains, dtype=D)
        for k in range(1, len(betas)):
            log_w = step(log_w, v, W, b, c, b_A, betas[k - 1], betas[k])
            beta = betas[k - 1]
            h = (torch.rand(n_chains, len(c), generator=generator, dtype=D) < torch.sigmoid(beta * (v @ W + c))).to(D)
            p_v = torch.sigmoid((1 - beta) * b_A + beta * (h @ W.T + b))
            v = (torch.rand(p_v.shape, generator=generator, dtype=D) < p_v).to(D)
        return float(F_.softplus(b_A).sum()) + W.shape[1] * math.log(2) + float(log_mean_exp(log_w)), log_w

    def ais_without_gibbs_steps(W, b, c, b_A, betas, n_chains, generator):  # plain importance sampling
        v = (torch.rand(n_chains, len(b), generator=generator, dtype=D) < torch.sigmoid(b_A)).to(D)
        log_w = torch.zeros(n_chains, dtype=D)
        for k in range(1, len(betas)):
            log_w = step(log_w, v, W, b, c, b_A, betas[k - 1], betas[k])
        return float(F_.softplus(b_A).sum()) + W.shape[1] * math.log(2) + float(log_mean_exp(log_w)), log_w

    _fails(ch03.check_ais_accuracy, ais_without_the_hidden_units_in_log_z_base)
    _fails(ch03.check_ais_unbiased, ais_with_gibbs_at_the_previous_beta)
    _fails(ch03.check_ais_accuracy, ais_without_gibbs_steps)


def test_ch03_self_check_of_ais_fails_without_the_gibbs_step():
    """The learner's own check of 3.4 (the self-check cell) rejects the solution with its Gibbs step deleted."""
    import jupytext

    path = Path(__file__).resolve().parents[1] / "solutions" / "03_pcd_ais.py"
    cells = jupytext.read(path, fmt="py:percent").cells
    definition = next(c for c in cells if c.cell_type == "code" and "def ais_log_z(" in c.source)
    self_check = cells[cells.index(definition) + 1]
    assert "self-check" in self_check.metadata.get("tags", ())
    namespace = _solution_functions()
    exec(compile(self_check.source, "<self-check>", "exec"), dict(namespace))  # the solution passes
    broken = definition.source.replace("        if k < len(betas) - 1:", "        if False:")
    assert broken != definition.source
    exec(compile(broken, "<broken>", "exec"), namespace)
    with pytest.raises(AssertionError, match="Gibbs step"):
        exec(compile(self_check.source, "<self-check>", "exec"), dict(namespace))
