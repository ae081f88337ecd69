"""Joint energy models (ebm_teach.jem): energies from logits, the JEM loss, sampling, OOD scores, training.

Known answers: E(x) and E(x, y) of hand-picked logits; p(y | x) = exp(E(x) - E(x, y)) = softmax(f(x));
the gradient of the JEM loss with respect to the logits (the softmax terms cancel, leaving a one-hot);
SGLD on a "classifier" with quadratic class energies, whose modes (also after composing a constraint)
are known in closed form. A seeded JEM run on two moons is checked against the plain classifier.
"""
import math

import pytest
import torch
from torch import nn

from ebm_teach import make_generator
from ebm_teach.core import DivergenceError
from ebm_teach.data import toy_data_labelled
from ebm_teach.evaluate import accuracy, auroc
from ebm_teach.jem import (
    brier_score,
    fit_temperature,
    JEM,
    MLPClassifier,
    class_energy_from_logits,
    energy_from_logits,
    jem_buffer,
    jem_loss,
    ood_score,
    sample_class,
    sample_negatives,
    train_jem,
)


class QuadraticClasses(nn.Module):
    """f(x)[y] = -|x - mu_y|^2 / 2: class energies E(x, y) = |x - mu_y|^2 / 2 with known minima mu_y."""

    def __init__(self, mu):
        super().__init__()
        self.mu = nn.Parameter(torch.as_tensor(mu, dtype=torch.float64))

    def forward(self, x):
        return -0.5 * ((x[:, None, :] - self.mu[None]) ** 2).sum(-1)


# --------------------------------------------------------------------------------------------- energies
def test_energy_from_logits_hand_computed(device):
    # logsumexp(0, ln 3) = ln(1 + 3) = ln 4; logsumexp(1, 1, 1) = 1 + ln 3.
    logits = torch.tensor([[0.0, math.log(3.0), -math.inf], [1.0, 1.0, 1.0]], dtype=torch.float64, device=device)
    e = energy_from_logits(logits)
    assert e.device.type == device.type and e.shape == (2,)
    assert e.tolist() == pytest.approx([-math.log(4.0), -(1 + math.log(3.0))], abs=1e-12)


def test_energy_from_logits_does_not_overflow():
    e = energy_from_logits(torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype=torch.float64))
    assert e.tolist() == pytest.approx([-(1000 + math.log(2)), 1000 - math.log(2)], abs=1e-9)


def test_class_energy_is_minus_the_logit(device):
    logits = torch.tensor([[0.5, -2.0, 3.0], [1.0, 4.0, 0.0]], device=device)
    e = class_energy_from_logits(logits, torch.tensor([2, 0], device=device))
    assert e.tolist() == pytest.approx([-3.0, -1.0])


def test_p_y_given_x_equals_softmax_and_the_energy_ratio(device):
    g = torch.Generator().manual_seed(0)
    f = MLPClassifier(5, 4, hidden=16).double().to(device)
    model = JEM(f)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64).to(device)
    softmax = torch.softmax(f(x), dim=1)
    assert torch.allclose(model.predict_proba(x), softmax, atol=1e-14)
    assert torch.allclose(model.log_p_y_given_x(x).exp(), softmax, atol=1e-14)
    # p(y | x) = p(x, y) / p(x) = exp(-E(x, y)) / exp(-E(x)): Z cancels.
    ratio = torch.stack([torch.exp(model.energy(x) - model.class_energy(x, torch.full((7,), k, device=device))) for k in range(4)], 1)
    assert torch.allclose(ratio, softmax, atol=1e-12)


def test_shifting_logits_moves_the_energy_but_not_p_y_given_x():
    logits = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    shift = torch.tensor([[5.0], [-7.5]], dtype=torch.float64)  # a different constant for each x
    assert torch.allclose(torch.softmax(logits + shift, 1), torch.softmax(logits, 1), atol=1e-15)
    assert torch.allclose(energy_from_logits(logits + shift), energy_from_logits(logits) - shift[:, 0], atol=1e-12)


# --------------------------------------------------------------------------------------------- loss
def test_jem_loss_hand_computed():
    # Data: logits (0, ln 3), label 1: CE = -ln(3/4), E(x) = -ln 4. Negative: logits (0, 0), E(x-) = -ln 2.
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    logits_neg = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    ce, e_pos, e_neg = -math.log(0.75), -math.log(4.0), -math.log(2.0)
    assert float(jem_loss(logits, y)) == pytest.approx(ce, abs=1e-12)
    assert float(jem_loss(logits, y, logits_neg)) == pytest.approx(ce + e_pos - e_neg, abs=1e-12)
    assert float(jem_loss(logits, y, logits_neg, p_x_weight=0.5, alpha=0.1)) == pytest.approx(
        ce + 0.5 * (e_pos - e_neg) + 0.1 * (e_pos**2 + e_neg**2), abs=1e-12
    )


def test_jem_loss_gradient_is_log_p_x_y_gradient():
    # CE + E(x) = -log p(y|x) - logsumexp f = -f(x)[y]: its gradient in the data logits is -onehot(y) / n
    # (the softmax terms cancel); the negatives' term -E(x-) contributes +softmax(f(x-)) / n-.
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    logits_neg = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,), generator=g)
    jem_loss(logits, y, logits_neg).backward()
    assert torch.allclose(logits.grad, -nn.functional.one_hot(y, 4).double() / 6, atol=1e-12)
    assert torch.allclose(logits_neg.grad, torch.softmax(logits_neg.detach(), 1) / 5, atol=1e-12)


def test_jem_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="2 dimension"):
        jem_loss(torch.zeros(3), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="one label per row"):
        jem_loss(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        jem_loss(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="logits_neg has 3 classes"):
        jem_loss(torch.zeros(2, 2), torch.tensor([0, 1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        jem_loss(torch.zeros(2, 2), torch.tensor([0, 1]), torch.zeros(2, 2), alpha=-1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        JEM(lambda x: x)


# --------------------------------------------------------------------------------------------- sampling
def test_sample_class_finds_the_class_mode_and_the_composed_mode(device):
    # E(x, y) = |x - mu_y|^2 / 2. Noiseless-limit SGLD (a = 0.1, sigma = 1e-6) is gradient descent with
    # contraction 0.9 per step: after 300 steps the error is 0.9^300 ~ 2e-14 of the start. Adding the
    # constraint E_c(x) = |x - c|^2 / 2 moves the mode to (mu_y + c) / 2 (a product of Gaussians).
    mu = torch.tensor([[2.0, 0.0], [-1.0, 3.0]], dtype=torch.float64)
    model = JEM(QuadraticClasses(mu)).to(device)
    g = make_generator(0, device)
    x0 = torch.zeros(4, 2, dtype=torch.float64, device=device)
    y = torch.tensor([0, 1, 1, 0], device=device)
    x = sample_class(model, x0, y, n_steps=300, step_size=0.1, noise_std=1e-6, generator=g)
    assert torch.allclose(x, mu.to(device)[y], atol=1e-4)
    c = torch.tensor([0.0, -1.0], dtype=torch.float64, device=device)
    x = sample_class(model, x0, y, 300, 0.1, 1e-6, extra_energy=lambda z: 0.5 * ((z - c) ** 2).sum(1), generator=g)
    assert torch.allclose(x, (mu.to(device)[y] + c) / 2, atol=1e-4)
    assert all(p.grad is None for p in model.parameters())  # sampling never writes parameter gradients


def test_sample_negatives_pushes_to_the_buffer_and_leaves_grads_alone(device):
    model = JEM(MLPClassifier(3, 2, hidden=8)).to(device)
    g = make_generator(0, device)
    buffer = jem_buffer(50, (3,), device=device, generator=g)
    assert len(buffer) == 50 and float(buffer.samples().abs().max()) <= 1.0
    x = sample_negatives(model, buffer, 10, n_steps=5, clamp=(-1, 1), generator=g)
    assert x.shape == (10, 3) and x.device.type == device.type and not x.requires_grad
    assert torch.equal(buffer.samples()[:10], x)  # the ring overwrote its oldest 10 entries
    assert all(p.grad is None for p in model.parameters())


def test_sample_class_rejects_bad_input():
    model = JEM(MLPClassifier(2, 2, hidden=4))
    with pytest.raises(ValueError, match="shape"):
        sample_class(model, torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="extra_energy"):
        sample_class(model, torch.zeros(2, 2), torch.tensor([0, 1]), extra_energy=3.0)


# --------------------------------------------------------------------------------------------- OOD scores
def test_ood_scores_known_answers(device):
    # One class with f(x) = -|x - mu|^2 / 2: log p(x) + log Z = -|x - mu|^2 / 2, p(y|x) = 1, and
    # grad_x log p = -(x - mu), so the gradient-norm score is -|x - mu|.
    mu = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    model = JEM(QuadraticClasses(mu)).to(device)
    x = torch.tensor([[1.0, -2.0], [4.0, 2.0], [0.0, 0.0]], dtype=torch.float64, device=device)
    dist = torch.tensor([0.0, 5.0, math.sqrt(5.0)], dtype=torch.float64)
    assert ood_score(model, x, "log_px").cpu().tolist() == pytest.approx((-0.5 * dist**2).tolist(), abs=1e-12)
    assert ood_score(model, x, "max_prob").cpu().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert ood_score(model, x, "grad_norm").cpu().tolist() == pytest.approx((-dist).tolist(), abs=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_ood_score_max_prob_matches_softmax():
    f = MLPClassifier(4, 3, hidden=8)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.softmax(f(x), 1).max(1).values
    assert torch.allclose(ood_score(f, x, "max_prob"), expected)  # a plain classifier works too


def test_ood_score_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        ood_score(MLPClassifier(2, 2), torch.zeros(3, 2), "entropy")


# --------------------------------------------------------------------------------------------- training
def test_train_jem_contract(device, one_thread):
    g = make_generator(0, device)
    x, y = toy_data_labelled("mixture", 64, seed=0, device=device)
    model = JEM(MLPClassifier(2, 3, hidden=16)).to(device)
    buffer = jem_buffer(100, (2,), -4, 4, device=device, generator=g)
    hist = train_jem(model, x, y, 5, buffer=buffer, batch_size=16, n_steps=3, clamp=(-4, 4), generator=g)
    assert set(hist) == {"loss", "ce", "e_pos", "e_neg", "neg_abs_max"}
    assert all(v.shape == (5,) and bool(torch.isfinite(v).all()) for v in hist.values())
    plain = train_jem(JEM(MLPClassifier(2, 3, hidden=16)).to(device), x, y, 5, p_x_weight=0, batch_size=16, generator=g)
    assert bool(torch.isnan(plain["e_pos"]).all()) and bool(torch.isfinite(plain["ce"]).all())


def test_train_jem_guard_stops_runaway_energies(one_thread):
    # max_abs below any energy the network starts with: the guard must stop the first step with advice.
    x, y = toy_data_labelled("moons", 64, seed=0)
    model = JEM(MLPClassifier(2, 2, hidden=8))
    buffer = jem_buffer(64, (2,), -3, 3, generator=make_generator(0))
    with pytest.raises(DivergenceError, match="step 0: .*alpha > 0") as info:
        train_jem(model, x, y, 3, buffer=buffer, batch_size=16, n_steps=2, max_abs=1e-6, generator=make_generator(0))
    assert [len(v) for v in info.value.history.values()] == [1] * 5  # the history up to the failing step


def test_train_jem_rejects_bad_input():
    x, y = toy_data_labelled("moons", 32, seed=0)
    model = JEM(MLPClassifier(2, 2, hidden=8))
    with pytest.raises(ValueError, match="needs SGLD negatives"):
        train_jem(model, x, y, 1, batch_size=16)
    with pytest.raises(ValueError, match="buffer holds samples of shape"):
        train_jem(model, x, y, 1, buffer=jem_buffer(8, (3,)), batch_size=16)
    with pytest.raises(TypeError, match="wrap your classifier"):
        train_jem(MLPClassifier(2, 2), x, y, 1, p_x_weight=0, batch_size=16)
    with pytest.raises(ValueError, match="batch_size must be <= 32"):
        train_jem(model, x, y, 1, p_x_weight=0, batch_size=64)


def test_seeded_jem_on_moons_classifies_like_the_plain_classifier_and_detects_ood(one_thread):
    # Two moons (1000 points, 500 Adam steps of 64) with a correct Langevin sampler (sigma^2 = 2a): both models
    # end near 100 % accurate, so "within a few points" is asserted as a gap of at most 5 points. OOD: uniform
    # points on [-4, 4]^2, the box the buffer starts in and the chains explore; the moons cover a small part
    # of it, so a density concentrated on them ranks moon points above most box points (AUROC ~ 0.9; the
    # plain classifier's accidental density scores ~ 0.3), while chance is 0.5. We assert > 0.75.
    x, y = toy_data_labelled("moons", 1000, seed=0)
    x_test, y_test = toy_data_labelled("moons", 2000, seed=1)
    x_ood = (torch.rand(2000, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1) * 4.0
    models = {}
    for kind in ("plain", "jem"):
        torch.manual_seed(0)
        g = make_generator(0)
        model = JEM(MLPClassifier(2, 2, hidden=64))
        if kind == "plain":
            train_jem(model, x, y, 500, lr=3e-3, p_x_weight=0, data_noise=0.0, generator=g)
        else:
            buffer = jem_buffer(1000, (2,), -4.0, 4.0, generator=g)
            train_jem(model, x, y, 500, buffer=buffer, lr=3e-3, alpha=0.1, data_noise=0.0, clamp=(-4, 4),
                      step_size=0.05, noise_std=0.1**0.5, generator=g)
        models[kind] = model
    with torch.no_grad():
        acc = {k: accuracy(m(x_test), y_test) for k, m in models.items()}
    assert acc["plain"] > 0.95
    assert acc["jem"] >= acc["plain"] - 0.05, acc
    jem = models["jem"]
    assert auroc(ood_score(jem, x_test, "log_px"), ood_score(jem, x_ood, "log_px")) > 0.75


# --------------------------------------------------------------------------------------------- exercise checks
def test_chapter7_hidden_checks_reject_typical_mistakes():
    from ebm_teach.grade.checks import ch07_jem as ch07

    def fails(check, wrong):
        with pytest.raises(AssertionError):
            check(wrong)

    naive_energy = lambda f: -torch.log(torch.exp(f).sum(1))  # overflows at logits ~ 1000
    fails(ch07.check_energy_no_overflow, naive_energy)
    ch07.check_energy_random(naive_energy)  # right where exp does not overflow
    fails(ch07.check_energy_hand_values, lambda f: torch.logsumexp(f, 1))  # sign
    fails(ch07.check_energy_random, lambda f: -f.max(1).values)  # max instead of logsumexp

    def summed_loss(f, y, fn):
        return nn.functional.cross_entropy(f, y, reduction="sum") - torch.logsumexp(f, 1).sum() + torch.logsumexp(fn, 1).sum()

    def flipped_loss(f, y, fn):
        return nn.functional.cross_entropy(f, y) + torch.logsumexp(f, 1).mean() - torch.logsumexp(fn, 1).mean()

    fails(ch07.check_loss_random_batches, summed_loss)
    fails(ch07.check_loss_hand_value, flipped_loss)
    fails(ch07.check_loss_gradient, lambda f, y, fn: jem_loss(f, y, fn).detach())  # no gradient
    ch07.check_loss_gradient(lambda f, y, fn: jem_loss(f, y, fn))

    def left_closed_ece(probs, y, n_bins=15):
        conf, pred = probs.max(1)
        m = (conf * n_bins).floor().clamp(max=n_bins - 1).long()
        return sum(float((m == b).sum()) / len(y) * abs(float((pred == y)[m == b].double().mean() - conf[m == b].mean()))
                   for b in range(n_bins) if bool((m == b).any()))

    fails(ch07.check_ece_bin_edges, left_closed_ece)
    fails(ch07.check_ece_hand_values, lambda p, y, n_bins=15: float((p.max(1).values - (p.argmax(1) == y).double()).abs().mean()))
    from ebm_teach.evaluate import expected_calibration_error
    for check in (ch07.check_ece_hand_values, ch07.check_ece_bin_edges, ch07.check_ece_random):
        check(expected_calibration_error)

    def gaussian(sign=1.0, var_out=True, sqrt=True):
        def gaussian_auroc(mu_in, sd_in, mu_out, sd_out):
            var = sd_in**2 + (sd_out**2 if var_out else 0.0)
            t = sign * (mu_in - mu_out) / (math.sqrt(var) if sqrt else var)
            return 0.5 * (1 + math.erf(t / math.sqrt(2)))
        return gaussian_auroc

    for check in (ch07.check_gaussian_auroc_hand_value, ch07.check_gaussian_auroc_against_quadrature):
        check(gaussian())
    fails(ch07.check_gaussian_auroc_hand_value, gaussian(sign=-1.0))  # in and out swapped
    fails(ch07.check_gaussian_auroc_against_quadrature, gaussian(var_out=False))  # forgets that s_out varies
    fails(ch07.check_gaussian_auroc_against_quadrature, gaussian(sqrt=False))  # variance for standard deviation


def test_chapter7_gaussian_auroc_reference_matches_the_pair_count_on_samples():
    from ebm_teach.grade.checks import ch07_jem as ch07

    g = torch.Generator().manual_seed(13)
    for mu_in, sd_in, mu_out, sd_out in [(1.0, 0.5, -0.5, 1.5), (0.0, 2.0, 0.3, 0.4)]:
        s_in = mu_in + sd_in * torch.randn(3000, generator=g, dtype=torch.float64)
        s_out = mu_out + sd_out * torch.randn(3000, generator=g, dtype=torch.float64)
        assert ch07._quadrature_auroc(mu_in, sd_in, mu_out, sd_out) == pytest.approx(auroc(s_in, s_out), abs=0.015)


# --------------------------------------------------------------------------------------------- temperature scaling
def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    # Labels drawn from softmax(f / T0): the maximum-likelihood temperature converges to T0.
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(200_000, 5, generator=g, dtype=torch.float64) * 2
    for t0 in (0.5, 2.0):
        y = torch.multinomial(torch.softmax(logits / t0, 1), 1, generator=g).squeeze(1)
        assert fit_temperature(logits, y) == pytest.approx(t0, rel=0.02)


def test_fit_temperature_is_a_stationary_point_of_the_cross_entropy():
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(500, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 4, (500,), generator=g)
    t = fit_temperature(logits, y)
    beta = torch.tensor(1 / t, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits * beta, y), beta)
    assert abs(float(grad)) < 1e-6  # golden section locates a flat minimum to ~sqrt(machine epsilon)
    # and a minimum: the cross-entropy is higher a little on either side
    ce = lambda b: float(torch.nn.functional.cross_entropy(logits * b, y))
    assert ce(1 / t) < min(ce(1.05 / t), ce(0.95 / t))


def test_fit_temperature_rejects_bad_input():
    logits = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="t_min < t_max"):
        fit_temperature(logits, torch.tensor([0, 1, 0]), t_min=2.0, t_max=1.0)
    with pytest.raises(TypeError, match="integer class labels"):
        fit_temperature(logits, torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="one label per row"):
        fit_temperature(logits, torch.tensor([0, 1]))


def test_brier_score_closed_forms_and_an_independent_sum():
    k = 5
    y = torch.tensor([0, 3, 4, 1])
    onehot = torch.nn.functional.one_hot(y, k).double()
    assert brier_score(onehot, y) == 0.0  # confident and right
    wrong = torch.nn.functional.one_hot((y + 1) % k, k).double()
    assert brier_score(wrong, y) == pytest.approx(2.0, abs=1e-12)  # confident and wrong
    uniform = torch.full((4, k), 1.0 / k)
    assert brier_score(uniform, y) == pytest.approx((k - 1) / k, abs=1e-6)  # (K-1)/K
    g = make_generator(3)
    probs = torch.softmax(torch.randn(6, k, generator=g, dtype=torch.float64), 1)
    labels = torch.randint(0, k, (6,), generator=g)
    by_hand = sum(sum((float(probs[i, j]) - (1.0 if j == int(labels[i]) else 0.0)) ** 2
                      for j in range(k)) for i in range(6)) / 6
    assert brier_score(probs, labels) == pytest.approx(by_hand, rel=1e-12)


def test_brier_score_rejects_logits_and_bad_labels():
    with pytest.raises(ValueError, match="softmax"):
        brier_score(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="labels in"):
        brier_score(torch.tensor([[0.5, 0.5]]), torch.tensor([2]))
    with pytest.raises(TypeError):
        brier_score(torch.tensor([[0.5, 0.5]]), torch.tensor([0.0]))
