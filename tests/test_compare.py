"""Chapter 10's comparison: the budget counter, MMD, the targets and measures, and the chapter's own claims.

Known answers: the counter against a hand count of each recipe; MMD^2 against a literal double sum and a
closed form; the autograd CD/PCD gradient through the free energy against ``BernoulliRBM.cd_gradient`` on
the same random stream; the pseudo-likelihood of an independent model (W = 0) against its exact likelihood;
the true density's quadrature log-likelihood and mode weights; Kendall's tau against scipy. The claims are
run at small scale over three seeds with stated margins.
"""
import math

import pytest
import torch

from ebm_teach import make_generator
from ebm_teach.compare import (
    BINARY_METHODS,
    CONTINUOUS_METHODS,
    DSM,
    NCE,
    BernoulliNoise,
    CountedEnergy,
    GibbsML,
    LangevinML,
    NoiseConditionalDSM,
    NoiseConditionalEnergy,
    PseudoLikelihood,
    RBMEnergy,
    SlicedSM,
    Target,
    binary_method,
    blurred_test_ll,
    choose_learning_rates,
    continuous_method,
    digits_split,
    evaluate_2d,
    fit_2d,
    fit_rbm,
    kendall_tau,
    langevin_diagnostics,
    make_target,
    mass_outside_box,
    mean_spread,
    median_bandwidth,
    mixture_target,
    mmd2,
    mmd2_permutation,
    mode_error_floor,
    mode_weight_error,
    moons_log_prob,
    noise_conditional_score,
    rbm_measures,
    read_results,
    sample_mode_error,
    target_law,
    train,
    tuned_rows,
)
from ebm_teach.compare import _toy_mixture
from ebm_teach.data import GaussianMixture, load_digits, toy_data_labelled, train_test_split
from ebm_teach.energies import MLPEnergy
from ebm_teach.evaluate import log_partition_grid
from ebm_teach.rbm import BernoulliRBM

BOX = ((-5.0, 5.0), (-5.0, 5.0))


@pytest.fixture(scope="module")
def mixture():
    return make_target("mixture")


@pytest.fixture(scope="module")
def digits():
    return train_test_split(load_digits(binarize=True), seed=0)


def small_data(n=64, seed=0):
    return torch.randn(n, 2, generator=make_generator(seed))


def mlp(seed=0):
    torch.manual_seed(seed)
    return MLPEnergy(2, 8, 1)


# --------------------------------------------------------------------------------------------- the counter
@pytest.mark.parametrize("method, per_step", [
    (LangevinML(3, 0.05, "data", BOX), (3 + 2) * 16),
    (LangevinML(2, 0.05, "noise", BOX), (2 + 2) * 16),
    (LangevinML(4, 0.05, "buffer", BOX), (4 + 2) * 16),
    (NCE(2.5), 16 + 40),  # round(2.5 * 16) = 40 noise points
    (SlicedSM(3), 3 * 16),
    (DSM(0.3), 16),
    (NoiseConditionalDSM(), 16),
])
def test_counter_equals_the_hand_count_of_each_continuous_recipe(method, per_step, one_thread):
    energy = NoiseConditionalEnergy(2, 8, 1) if isinstance(method, NoiseConditionalDSM) else mlp()
    history = train(method, energy, small_data(), max_steps=5, batch_size=16, generator=make_generator(1))
    assert history["steps"] == 5
    assert history["evaluations"] == 5 * per_step


@pytest.mark.parametrize("method, per_step", [
    (GibbsML(4), 4 * 8 + 2 * 8),
    (GibbsML(2, persistent=True), 2 * 8 + 2 * 8),
    (PseudoLikelihood(), 2 * 8),
    (NCE(3, fit_noise=BernoulliNoise.fit), 8 + 24),
])
def test_counter_equals_the_hand_count_of_each_rbm_recipe(method, per_step, digits, one_thread):
    energy = RBMEnergy(BernoulliRBM(64, 6, seed=0))
    history = train(method, energy, digits[0], max_steps=4, batch_size=8, generator=make_generator(1))
    assert history["evaluations"] == 4 * per_step


def test_counter_counts_each_backward_pass_and_nothing_else():
    counted = CountedEnergy(mlp())
    x = small_data(10)
    with torch.no_grad():
        counted(x)  # evaluation: free
    counted(x)  # a graph that is never differentiated: free
    assert counted.n_evaluations == 0
    xr = x.clone().requires_grad_(True)
    e = counted(xr)
    torch.autograd.grad(e.sum(), xr, retain_graph=True)
    e.mean().backward()  # a second pass through the same evaluation: counted again
    assert counted.n_evaluations == 20
    counted.add(7)
    assert counted.n_evaluations == 27


def test_training_stops_at_the_first_step_that_reaches_the_budget(one_thread):
    per_step = (2 + 2) * 16
    history = train(LangevinML(2, 0.05, "data", BOX), mlp(), small_data(), budget=1000, batch_size=16)
    assert history["evaluations"] == math.ceil(1000 / per_step) * per_step
    assert history["evaluations"] - per_step < 1000 <= history["evaluations"]


def test_checkpoints_are_recorded_once_each_at_the_first_step_past_them(one_thread):
    seen = []
    history = train(DSM(0.3), mlp(), small_data(), budget=160, batch_size=16, checkpoints=[40, 41, 100],
                    on_checkpoint=lambda e, m: seen.append(1) or {"tag": len(seen)})
    assert [r["evaluations"] for r in history["records"]] == [48, 48, 112, 160]
    assert [r["tag"] for r in history["records"]] == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------------- the gradients
@pytest.mark.parametrize("persistent", [False, True])
def test_autograd_cd_gradient_equals_rbm_cd_gradient_on_the_same_stream(persistent):
    rbm = BernoulliRBM(10, 4, seed=3, dtype=torch.float64, init_std=0.5)
    rbm.b = torch.linspace(-1, 1, 10, dtype=torch.float64)
    v = (torch.rand(12, 10, generator=make_generator(4), dtype=torch.float64) < 0.4).double()
    start = (torch.rand(12, 10, generator=make_generator(5), dtype=torch.float64) < 0.5).double()
    energy = CountedEnergy(RBMEnergy(rbm))
    method = GibbsML(3, persistent=persistent)
    method.reset(energy, v)
    method.chains = start if persistent else None
    x_neg = method.negatives(energy, v, make_generator(6))
    method.loss(energy, v, x_neg).backward()
    grad, vk = rbm.cd_gradient(v, k=3, v_negative_start=start if persistent else None, generator=make_generator(6))
    theta_grad = energy.energy.theta.grad
    assert torch.equal(vk, x_neg)
    torch.testing.assert_close(-theta_grad[:-1, :-1], grad.W, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(-theta_grad[:-1, -1], grad.b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(-theta_grad[-1, :-1], grad.c, rtol=1e-12, atol=1e-12)


def test_rbm_energy_and_its_sampler_share_the_parameters():
    energy = RBMEnergy(BernoulliRBM(5, 3, seed=0))
    with torch.no_grad():
        energy.theta[0, 0] += 1.0
    assert float(energy.sampler.W[0, 0]) == float(energy.theta.detach()[0, 0])
    v = torch.tensor([[1.0, 0, 1, 1, 0]])
    torch.testing.assert_close(energy(v), energy.sampler.free_energy(v))


# --------------------------------------------------------------------------------------------- MMD
def _mmd2_double_sum(x, y, h, biased):
    k = lambda a, b: math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b)) / (2 * h * h))  # noqa: E731
    x, y = x.tolist(), y.tolist()
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if biased or i != j)
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if biased or i != j)
    kxy = sum(k(a, b) for a in x for b in y)
    if biased:
        return kxx / m**2 + kyy / n**2 - 2 * kxy / (m * n)
    return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)


@pytest.mark.parametrize("biased", [False, True])
def test_mmd2_matches_the_double_sum(biased):
    g = make_generator(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    assert mmd2(x, y, 1.3, biased=biased) == pytest.approx(_mmd2_double_sum(x, y, 1.3, biased), rel=1e-12)
    assert mmd2(y, x, 1.3, biased=biased) == pytest.approx(mmd2(x, y, 1.3, biased=biased), rel=1e-12)


def test_mmd2_closed_form_for_two_repeated_points():
    # x = (a, a), y = (b, b): the unbiased estimate is 1 + 1 - 2 k(a, b); the biased one the same here.
    a, b, h = torch.tensor([[0.0, 1.0]] * 2), torch.tensor([[2.0, -1.0]] * 2), 1.5
    expected = 2 - 2 * math.exp(-8 / (2 * h * h))
    assert mmd2(a, b, h) == pytest.approx(expected, rel=1e-12)
    assert mmd2(a, b, h, biased=True) == pytest.approx(expected, rel=1e-12)


def test_unbiased_mmd2_averages_to_zero_for_equal_laws():
    # 200 pairs of samples of 20 points from one law: the mean of MMD^2_u lies within 4 standard errors of 0,
    # while the biased estimate is positive.
    g = make_generator(1)
    u = torch.tensor([mmd2(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g), 1.0) for _ in range(200)])
    assert abs(float(u.mean())) < 4 * float(u.std()) / 200**0.5
    v = mmd2(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g), 1.0, biased=True)
    assert v > 0


def test_mmd2_permutation_statistic_null_and_p_value():
    g = make_generator(2)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    r = mmd2_permutation(x, y, 1.0, n_permutations=300, generator=make_generator(3))
    assert r["mmd2"] == pytest.approx(mmd2(x, y, 1.0), rel=1e-12)
    # one law: the unbiased statistic has mean 0 under every relabelling, so the p-value is not tiny
    assert r["p_value"] > 0.01
    far = mmd2_permutation(x, y + 3.0, 1.0, n_permutations=99, generator=make_generator(3))
    assert far["p_value"] == pytest.approx(1 / 100)  # no relabelling comes near the true split
    assert far["mmd2"] > 20 * far["null_sd"]


def test_mmd2_permutation_null_is_centred_at_zero():
    # Under relabelling, E[MMD^2_u] = 0 exactly; 2000 relabellings of 40 points: the null's mean lies within
    # 4 standard errors of 0.
    g = make_generator(4)
    x, y = torch.randn(25, 2, generator=g), torch.randn(15, 2, generator=g) + 0.5
    null_sd = mmd2_permutation(x, y, 1.0, n_permutations=2000, generator=make_generator(5))["null_sd"]
    z = torch.cat([x, y])
    gen = make_generator(6)
    stats = []
    for _ in range(400):
        perm = torch.randperm(40, generator=gen)
        stats.append(mmd2(z[perm[:25]], z[perm[25:]], 1.0))
    stats = torch.tensor(stats)
    assert abs(float(stats.mean())) < 4 * float(stats.std()) / 400**0.5
    assert float(stats.std()) == pytest.approx(null_sd, rel=0.15)  # 400 draws: the sd is known to ~4 %


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    y = torch.tensor([[0.0, 4.0]])
    assert median_bandwidth(x, y) == pytest.approx(4.0)  # distances 3, 4, 5


# --------------------------------------------------------------------------------------------- targets and measures
def test_toy_mixture_law_is_what_toy_data_samples():
    x, y = toy_data_labelled("mixture", 500, seed=7)
    xs, ys = _toy_mixture().sample(500, generator=make_generator(7), return_labels=True)
    assert torch.equal(x, xs.float()) and torch.equal(y, ys)


def test_moons_log_prob_integrates_to_one_and_matches_a_finer_arc_rule():
    z = log_partition_grid(lambda x: -moons_log_prob(x), [(-5, 5), (-4, 4)], 200)
    assert abs(z) < 1e-4
    x = toy_data_labelled("moons", 300, seed=2)[0].double()
    torch.testing.assert_close(moons_log_prob(x), moons_log_prob(x, n_arc=8000), rtol=0, atol=1e-4)


def test_the_true_density_scores_the_true_test_ll_and_zero_mode_error(mixture):
    law = _toy_mixture()
    r = evaluate_2d(lambda x: -law.log_prob(x.double()), mixture)
    assert r["ll"] == pytest.approx(mixture.true_test_ll, abs=2e-3)  # the mass outside the box is < 1e-3
    assert r["mode_error"] < 1e-9  # the same grid (in float32) as the truth's masses
    torch.testing.assert_close(mixture.true_masses, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=2e-3, rtol=0)


def test_mode_error_floor_one_sample_closed_form():
    # One draw lands in mode j with probability m_j, and then the error is 1 - m_j: E = 1 - sum m_j^2.
    m = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    assert mode_error_floor(m, 1) == pytest.approx(1 - float((m**2).sum()), abs=1e-12)
    m5 = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1], dtype=torch.float64)  # K > 3: Monte Carlo, 20000 draws
    assert mode_error_floor(m5, 1, generator=make_generator(0)) == pytest.approx(1 - float((m5**2).sum()), abs=0.01)


def test_mode_error_floor_exact_sum_matches_simulation():
    m = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    exact = mode_error_floor(m, 32)
    g = make_generator(1)
    draws = torch.multinomial(m.float(), 32 * 20000, replacement=True, generator=g).reshape(20000, 32)
    counts = torch.zeros(20000, 3, dtype=torch.float64).scatter_add_(1, draws, torch.ones(20000, 32, dtype=torch.float64))
    tv = 0.5 * (counts / 32 - m).abs().sum(1)
    assert abs(exact - float(tv.mean())) < 4 * float(tv.std()) / 20000**0.5
    assert mode_error_floor(m, 1000) < exact / 4  # it falls like 1 / sqrt(n)
    two = mode_error_floor(torch.tensor([0.85, 0.15], dtype=torch.float64), 1)
    assert two == pytest.approx(1 - 0.85**2 - 0.15**2, abs=1e-12)


def test_mass_outside_box_of_a_gaussian():
    # E = |x|^2 / 2 on the box [-2, 2]^2, wide box [-4, 4]^2: the share outside is 1 - (P(|z| <= 2) / P(|z| <= 4))^2.
    law = GaussianMixture.isotropic(torch.zeros(1, 2, dtype=torch.float64), 1.0)
    x = torch.zeros(4, 2)
    t = Target("g", x, x, ((-2.0, 2.0), (-2.0, 2.0)), law.log_prob, lambda p: torch.zeros(len(p), dtype=torch.long), 1)
    inside = (math.erf(2 / 2**0.5) / math.erf(4 / 2**0.5)) ** 2
    share = mass_outside_box(lambda p: 0.5 * (p.double() ** 2).sum(1), t, factor=2.0, n_grid=400)
    assert share == pytest.approx(1 - inside, rel=2e-3)  # midpoint rule, cell 0.02


def test_sample_mode_error_counts_regions(mixture):
    x = torch.tensor([[-2.0, -2.0]] * 5 + [[2.0, 2.0]] * 3 + [[2.0, -2.0]] * 2)
    assert sample_mode_error(x, mixture) == pytest.approx(0.5 * float((mixture.true_masses - torch.tensor(
        [0.5, 0.3, 0.2], dtype=torch.float64)).abs().sum()), abs=1e-12)


def test_blurred_targets():
    # The blurred mixture is the mixture with every covariance widened; the blurred moons integrate to one.
    t = make_target("mixture", n_train=2, n_val=2)
    want = float(_toy_mixture().convolve(0.3).log_prob(t.test.double()).mean())
    assert blurred_test_ll("mixture", 0.3) == pytest.approx(want, rel=1e-12)
    z = log_partition_grid(lambda x: -moons_log_prob(x, blur=0.3), [(-6, 6), (-5, 5)], 200)
    assert abs(z) < 1e-4
    assert blurred_test_ll("moons", 0.3) < make_target("moons", n_train=2, n_val=2, n_grid=40).true_test_ll
    torch.testing.assert_close(target_law("ring8")(t.test), make_target("ring8", n_train=2, n_val=2).log_prob(t.test))


def test_unequal_ring_masses_and_validation_split():
    t = make_target("ring8-unequal", n_train=50, n_test=60, n_val=70)
    torch.testing.assert_close(t.true_masses, torch.tensor([3 / 16, 1 / 16] * 4, dtype=torch.float64), atol=2e-3, rtol=0)
    assert (t.train.shape, t.test.shape, t.val.shape) == ((50, 2), (60, 2), (70, 2))
    assert not torch.equal(t.test[:50], t.train) and not torch.equal(t.val[:60], t.test)
    r = evaluate_2d(lambda x: -t.log_prob(x).float(), t)
    assert r["val_ll"] == pytest.approx(float(t.log_prob(t.val).mean()), abs=2e-3)


def test_digits_split_is_disjoint_and_covers_the_data():
    x_train, x_val, x_test = digits_split()
    assert (len(x_train), len(x_val), len(x_test)) == (1150, 288, 359)

    def codes(x):  # each binary image as one integer, sorted: the multiset of images
        return sorted(int("".join(str(int(v)) for v in row.tolist()), 2) for row in x)

    assert codes(torch.cat([x_train, x_val, x_test])) == codes(load_digits(binarize=True))
    assert torch.equal(x_test, train_test_split(load_digits(binarize=True), seed=0)[1])  # the chapters' test split


def test_choose_learning_rates_picks_the_best_mean_validation_score():
    # A: mean validation score 2.5 at lr 0.1 against 2.25 at 0.01 (though 0.01 has the better test score); B: 0.01.
    rows = [{"method": "A", "lr": lr, "seed": s, "val_ll": v, "ll": 10 * lr - v}
            for lr, vals in ((0.1, (2.0, 3.0)), (0.01, (2.5, 2.0))) for s, v in enumerate(vals)]
    rows += [{"method": "B", "lr": 0.1, "seed": 0, "val_ll": -5.0}, {"method": "B", "lr": 0.01, "seed": 0, "val_ll": -4.0}]
    assert choose_learning_rates(rows, group=("method",)) == {("A",): 0.1, ("B",): 0.01}
    assert {(r["method"], r["lr"]) for r in tuned_rows(rows, group=("method",))} == {("A", 0.1), ("B", 0.01)}


def test_mode_weight_error_is_total_variation():
    assert mode_weight_error(torch.tensor([0.6, 0.2, 0.2]), torch.tensor([0.5, 0.3, 0.2])) == pytest.approx(0.1)


def test_rbm_measures_of_an_independent_model_are_exact(digits):
    # W = 0: p(v) = prod_i sigma(b_i)^v_i (1 - sigma(b_i))^(1 - v_i), and p(v_i | v_-i) = p(v_i), so the
    # pseudo-likelihood equals the likelihood.
    b = torch.linspace(-2, 1, 64, dtype=torch.float64)
    rbm = BernoulliRBM.from_arrays(torch.zeros(64, 3, dtype=torch.float64), b, torch.zeros(3, dtype=torch.float64),
                                   generator=make_generator(0))
    v = digits[1].double()
    exact = float((v * torch.nn.functional.logsigmoid(b) + (1 - v) * torch.nn.functional.logsigmoid(-b)).sum(1).mean())
    m = rbm_measures(rbm, v, n_samples=50, n_sweeps=2)
    assert m["ll"] == pytest.approx(exact, abs=1e-9)
    assert m["pl"] == pytest.approx(exact, abs=1e-9)


def test_kendall_tau_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    a = torch.randn(9, generator=make_generator(0))
    b = a + 0.8 * torch.randn(9, generator=make_generator(1))
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a.numpy(), b.numpy())[0], abs=1e-12)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)


def test_mean_spread():
    assert mean_spread([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_spread([4.0]) == (4.0, 0.0)


def test_rhat_separates_one_mode_from_two_far_apart(one_thread):
    def target(law, bounds):
        x = law.sample(200, generator=make_generator(0)).float()
        means = law.means.float()
        return Target("t", x, x, bounds, law.log_prob, lambda p: torch.cdist(p.float(), means).argmin(1), len(means),
                      law.weights)
    one = GaussianMixture.isotropic(torch.tensor([[0.0, 0.0]]), 1.0)
    two = GaussianMixture.isotropic(torch.tensor([[-4.0, 0.0], [4.0, 0.0]]), 0.5, [0.9, 0.1])
    energy = lambda law: (lambda x: -law.log_prob(x.double()).float())  # noqa: E731
    # N(0, I) with step 0.1 relaxes in ~20 steps, so 500 kept steps of 64 chains give R-hat ~ 1.01; chains on
    # modes 8 apart (16 standard deviations) never cross, so R-hat stays far above 1. The modes' weights differ
    # (0.9/0.1) so that their energies differ by log 9: R-hat of the energy cannot see chains stuck in two
    # modes of equal weight and shape, whose energy traces look alike.
    r1 = langevin_diagnostics(energy(one), target(one, ((-4, 4), (-4, 4))), n_chains=64, n_steps=1000, step_size=0.1,
                              generator=make_generator(1))
    r2 = langevin_diagnostics(energy(two), target(two, ((-6, 6), (-3, 3))), n_chains=64, n_steps=1000, step_size=0.1,
                              generator=make_generator(1))
    assert r1["rhat"] < 1.05 < 1.25 < r2["rhat"]  # r2: about sqrt(1 + var(chain means) / W) = 1.4
    assert r1["crossed"] == 0.0  # one region: nothing to cross into
    assert r2["crossed"] == 0.0  # a barrier of 16 standard deviations: no chain changes mode
    # uniform starts on the box fall into either basin about half the time, whatever the weights 0.9/0.1: the
    # samples' error is that of the basins (about 0.4), far above the floor of 64 perfect samples (about 0.03)
    assert r2["sample_mode_error"] > 0.25 > 5 * mode_error_floor(two.weights, 64)


# --------------------------------------------------------------------------------------------- the chapter's claims
def test_data_started_cd_keeps_equal_weights_and_nce_learns_them(mixture, one_thread):
    # Chapter 10, section 1, at its SCALE = 1 budget and tuned rate (3e-2 for both): CD-10's chains start at the
    # data, so nothing compares the modes and its masses stay near 1/3 each: the seed means of the heavy mode
    # (true 0.5) and of the light one (true 0.2) are nearer 1/3 than the truth (the chapter's claim, which held
    # on 11 seed shifts; single seeds stray further, up to about 0.43). NCE's mean error over three seeds is
    # below CD-10's by more than 0.03 (the chapter's shifted seeds: NCE about 0.07, CD-10 about 0.13-0.17).
    cd, nce, masses = [], [], []
    for seed in range(3):
        rec = fit_2d("CD-10", mixture, seed, 2**17, lr=3e-2, n_checkpoints=1)["records"][-1]
        masses.append(rec["masses"])
        cd.append(rec["mode_error"])
        nce.append(fit_2d("NCE", mixture, seed, 2**17, lr=3e-2, n_checkpoints=1)["records"][-1]["mode_error"])
    heavy, light = (sum(m[k] for m in masses) / 3 for k in (0, 2))
    assert heavy < (0.5 + 1 / 3) / 2 and light > (0.2 + 1 / 3) / 2, masses
    assert sum(nce) / 3 + 0.03 < sum(cd) / 3, (nce, cd)


def test_nce_with_noise_fitted_to_the_data_recovers_log_z(mixture, digits, one_thread):
    # The learned c against log Z by quadrature (2-D) and by enumeration (RBM), at learning rate 1e-2 and 2^17
    # evaluations: within 0.4 nats (2-D) and 0.3 nats (RBM) on each of three seeds. Over 12 shifted seeds the
    # sd of c - log Z was about 0.1 in both; at larger rates c settles less well (chapter 10, section 3).
    for seed in range(3):
        run = fit_2d("NCE", mixture, seed, 2**17, lr=1e-2, n_checkpoints=1)
        with torch.no_grad():
            log_z = log_partition_grid(run["energy"], mixture.bounds, 150, dtype=torch.float32)
        assert abs(float(run["method"].model.c.detach()) - log_z) < 0.4, seed
        rbm_run = fit_rbm("NCE", digits[0], seed, 2**17, lr=1e-2)
        assert abs(rbm_run["c"] - rbm_run["rbm"].log_partition_exact()) < 0.3, seed


def test_pseudo_likelihood_beats_cd10_by_exact_likelihood_at_a_small_budget(digits, one_thread):
    # Chapter 10, section 3, at the tuned rates (PL 3e-2, CD-10 1e-1): at 2^17 evaluations PL reached about
    # -18.4 nats and CD-10 about -21.3; the test asks for 2 nats on each of two seeds.
    for seed in range(2):
        pl = fit_rbm("pseudo-likelihood", digits[0], seed, 2**17, lr=3e-2)["rbm"].log_likelihood_exact(digits[1])
        cd = fit_rbm("CD-10", digits[0], seed, 2**17, lr=1e-1)["rbm"].log_likelihood_exact(digits[1])
        assert pl > cd + 2.0, (seed, pl, cd)


# --------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_message(mixture):
    with pytest.raises(ValueError, match="same dimension"):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(torch.zeros(1, 2), torch.zeros(3, 2), 1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="budget"):
        train(DSM(), mlp(), small_data())
    with pytest.raises(TypeError, match="Method"):
        train("CD-1", mlp(), small_data(), 100)
    with pytest.raises(ValueError, match="start must be"):
        LangevinML(1, 0.1, "chains")
    with pytest.raises(ValueError, match="nu"):
        NCE(0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        BernoulliNoise(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="unknown target"):
        make_target("spiral")
    with pytest.raises(ValueError, match="unknown continuous method"):
        continuous_method("CD-3", BOX)
    with pytest.raises(ValueError, match="unknown binary method"):
        binary_method("PT")
    with pytest.raises(ValueError, match="shape"):
        kendall_tau([1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match="nn.Module"):
        CountedEnergy(lambda x: x.sum(1))
    with pytest.raises(ValueError, match="binary"):
        train(GibbsML(1), RBMEnergy(BernoulliRBM(2, 2)), torch.full((4, 2), 0.5), 10, batch_size=2)
    with pytest.raises(TypeError, match="NoiseConditionalEnergy"):
        train(NoiseConditionalDSM(), mlp(), small_data(), 10)
    with pytest.raises(TypeError, match="Target"):
        evaluate_2d(mlp(), "mixture")
    with pytest.raises(ValueError, match="box"):
        LangevinML(1, 0.1, "data", box=((1, 0), (0, 1)))
    with pytest.raises(TypeError, match="GaussianMixture"):
        mixture_target("t", "a mixture", BOX, small_data(), small_data())
    with pytest.raises(TypeError, match="callable"):
        noise_conditional_score(3.0)
    with pytest.raises(FileNotFoundError, match="experiments/comparison.py"):
        read_results("/nonexistent/comparison_2d.csv")
    with pytest.raises(TypeError, match="BernoulliRBM"):
        rbm_measures(mlp(), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="Target"):
        langevin_diagnostics(mlp(), "mixture")
    with pytest.raises(ValueError, match="at least 2 models"):
        kendall_tau([1.0], [1.0])
    with pytest.raises(ValueError, match="summing to 1"):
        mode_error_floor(torch.tensor([0.5, 0.6]), 10)
    with pytest.raises(ValueError, match="factor must be > 1"):
        mass_outside_box(mlp(), mixture, factor=1.0)
    with pytest.raises(TypeError, match="Target"):
        sample_mode_error(torch.zeros(3, 2), "mixture")
    with pytest.raises(ValueError, match="same dimension"):
        mmd2_permutation(torch.zeros(3, 2), torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match="val_ll"):
        choose_learning_rates([{"lr": 0.1, "method": "A"}])
    with pytest.raises(ValueError, match="unknown target"):
        target_law("spiral")
    with pytest.raises(ValueError, match="blur"):
        target_law("ring8", blur=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        blurred_test_ll("ring8", 0.0)


def test_the_line_ups_build():
    assert [continuous_method(n, BOX).name for n in CONTINUOUS_METHODS] == list(CONTINUOUS_METHODS)
    assert [binary_method(n).name for n in BINARY_METHODS] == list(BINARY_METHODS)
