"""Tests of ebm_teach.crf against brute-force enumeration of every label sequence (K^T of them) and every
configuration of small grids, autograd of the enumerated log-likelihood, hand-written formulas and Monte Carlo
within stated standard errors."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from ebm_teach.core import DivergenceError
from ebm_teach.crf import (
    LinearChainCRF,
    accuracies,
    bigram_log_probs,
    chain_log_partition,
    chain_marginals,
    chain_sample,
    counting_grammar,
    crf_nll,
    digit_sequences,
    energy_losses,
    fit_crf,
    grid_as_chain,
    grid_gibbs,
    grid_log_partition,
    grid_map_graph_cut,
    grid_pseudo_log_likelihood,
    grid_row_states,
    grid_score,
    loss_augmented_viterbi,
    observed_counts,
    perceptron_loss,
    sequence_score,
    structured_hinge_loss,
    viterbi,
)

D = torch.float64


# --------------------------------------------------------------------------------------------- brute force
def _sequences(T, K):
    """Every label sequence of length T over K labels: (K^T, T)."""
    return torch.tensor(list(itertools.product(range(K), repeat=T)), dtype=torch.long)


def _brute_scores(unary, pairwise, ys):
    """s(y) for every row of ys, written out position by position from the definition (no vectorised gather)."""
    T = unary.shape[0]
    out = []
    for y in ys.tolist():
        s = sum(unary[t, y[t]] for t in range(T)) + sum(pairwise[y[t], y[t + 1]] for t in range(T - 1))
        out.append(s)
    return torch.stack(out) if isinstance(out[0], torch.Tensor) else torch.tensor(out, dtype=unary.dtype)


def _random_chain(T, K, seed, scale=1.0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(T, K, generator=g, dtype=D)).to(device), (scale * torch.randn(K, K, generator=g, dtype=D)).to(device)


SIZES = [(1, 3), (2, 2), (3, 4), (5, 3), (6, 2), (4, 1)]


# --------------------------------------------------------------------------------------------- log Z, marginals
@pytest.mark.parametrize("T, K", SIZES)
def test_log_partition_matches_brute_force(T, K, device):
    for seed in range(3):
        u, P = _random_chain(T, K, seed, scale=1.5, device=device)
        expected = torch.logsumexp(_brute_scores(u.cpu(), P.cpu(), _sequences(T, K)), 0)
        assert abs(float(chain_log_partition(u, P)) - float(expected)) < 1e-12 * max(1, abs(float(expected)))


@pytest.mark.parametrize("scale", [1e3, -1e3])
def test_log_partition_is_stable_for_extreme_scores(scale):
    u, P = _random_chain(5, 3, 7)
    u, P = scale * u.abs(), scale * P.abs()  # every score of size ~1e3: exp() overflows or underflows
    scores = _brute_scores(u, P, _sequences(5, 3))
    assert not torch.isfinite(torch.exp(scores).sum())  or float(torch.exp(scores).sum()) == 0.0  # the naive sum fails
    expected = torch.logsumexp(scores, 0)
    assert abs(float(chain_log_partition(u, P)) - float(expected)) < 1e-12 * abs(float(expected))
    value32 = chain_log_partition(u.float(), P.float())
    assert value32.dtype == torch.float32 and abs(float(value32) - float(expected)) < 1e-5 * abs(float(expected))


def test_float64_on_request():
    u, P = _random_chain(6, 4, 3, scale=3.0)
    expected = torch.logsumexp(_brute_scores(u.float().double(), P.float().double(), _sequences(6, 4)), 0)
    value = chain_log_partition(u.float(), P.float(), dtype=torch.float64)
    assert value.dtype == torch.float64
    assert abs(float(value) - float(expected)) < 1e-12 * abs(float(expected))
    node, edge = chain_marginals(u.float(), P.float(), dtype=torch.float64)
    assert node.dtype == edge.dtype == torch.float64
    labels, score = viterbi(u.float(), P.float(), dtype=torch.float64)
    assert score.dtype == torch.float64


def test_batched_chains_match_one_at_a_time(device):
    us, Ps = zip(*[_random_chain(4, 3, s, device=device) for s in range(5)])
    U, Pb = torch.stack(us), torch.stack(Ps)
    per_chain = torch.stack([chain_log_partition(u, P) for u, P in zip(us, Ps)])
    assert chain_log_partition(U, Pb).shape == (5,)
    assert torch.allclose(chain_log_partition(U, Pb), per_chain, rtol=1e-14)
    shared = torch.stack([chain_log_partition(u, Ps[0]) for u in us])
    assert torch.allclose(chain_log_partition(U, Ps[0]), shared, rtol=1e-14)  # one (K, K) for the whole batch
    assert torch.allclose(chain_log_partition(us[0], Pb), torch.stack([chain_log_partition(us[0], P) for P in Ps]))
    labels, scores = viterbi(U, Pb)
    for i in range(5):
        one_labels, one_score = viterbi(us[i], Ps[i])
        assert torch.equal(labels[i], one_labels) and float(scores[i]) == float(one_score)


@pytest.mark.parametrize("T, K", SIZES)
def test_marginals_match_brute_force(T, K, device):
    u, P = _random_chain(T, K, 11, scale=1.5, device=device)
    ys = _sequences(T, K)
    p = torch.softmax(_brute_scores(u.cpu(), P.cpu(), ys), 0)
    node_bf = torch.stack([(p[:, None] * F.one_hot(ys[:, t], K)).sum(0) for t in range(T)])
    edge_bf = torch.zeros(max(T - 1, 0), K, K, dtype=D)
    for t in range(T - 1):
        edge_bf[t].index_put_((ys[:, t], ys[:, t + 1]), p, accumulate=True)
    node, edge = chain_marginals(u, P)
    assert node.shape == (T, K) and edge.shape == (T - 1, K, K)
    assert torch.allclose(node.cpu(), node_bf, atol=1e-13)
    assert torch.allclose(edge.cpu(), edge_bf, atol=1e-13)


def test_marginals_for_extreme_scores():
    u, P = _random_chain(4, 3, 12, scale=1e3)
    ys = _sequences(4, 3)
    p = torch.softmax(_brute_scores(u, P, ys), 0)
    node_bf = torch.stack([(p[:, None] * F.one_hot(ys[:, t], 3)).sum(0) for t in range(4)])
    node, edge = chain_marginals(u, P)
    assert torch.isfinite(node).all() and torch.isfinite(edge).all()
    assert torch.allclose(node, node_bf, atol=1e-12)
    assert torch.allclose(edge.sum((1, 2)), torch.ones(3, dtype=D), atol=1e-12)


def test_gradient_of_log_partition_is_the_marginals():
    u, P = _random_chain(5, 4, 13)
    u.requires_grad_(True)
    P.requires_grad_(True)
    g_u, g_P = torch.autograd.grad(chain_log_partition(u, P), (u, P))
    node, edge = chain_marginals(u.detach(), P.detach())
    assert torch.allclose(g_u, node, atol=1e-13)
    assert torch.allclose(g_P, edge.sum(0), atol=1e-13)


def test_chain_sample_draws_from_the_enumerated_distribution(device):
    """100,000 exact samples of a 3-position, 3-label chain: each sequence's frequency is within 5 standard
    errors sqrt(p (1 - p) / n) of its enumerated probability (27 sequences: a false alarm has probability < 1e-5)."""
    u, P = _random_chain(3, 3, 14)
    ys = _sequences(3, 3)
    p = torch.softmax(_brute_scores(u, P, ys), 0)
    n = 100_000
    samples = chain_sample(u.to(device), P.to(device), n, generator=torch.Generator(device=device).manual_seed(0))
    assert samples.shape == (n, 3) and samples.dtype == torch.long
    freq = torch.bincount((samples.cpu() * torch.tensor([9, 3, 1])).sum(1), minlength=27).double() / n
    assert bool(((freq - p).abs() < 5 * torch.sqrt(p * (1 - p) / n) + 1e-12).all())
    batch = chain_sample(torch.stack([u, -u]), P, 7, generator=torch.Generator().manual_seed(1))
    assert batch.shape == (2, 7, 3)
    certain = torch.full((4, 3), -50.0, dtype=D)
    certain[torch.arange(4), torch.tensor([2, 0, 1, 1])] = 50.0  # one sequence holds all the mass
    assert chain_sample(certain, torch.zeros(3, 3, dtype=D), 5).tolist() == [[2, 0, 1, 1]] * 5


# --------------------------------------------------------------------------------------------- Viterbi
@pytest.mark.parametrize("T, K", SIZES)
def test_viterbi_matches_brute_force(T, K, device):
    ys = _sequences(T, K)
    for seed in range(3):
        u, P = _random_chain(T, K, 20 + seed, scale=2.0, device=device)
        scores = _brute_scores(u.cpu(), P.cpu(), ys)
        labels, score = viterbi(u, P)
        assert labels.dtype == torch.long and labels.shape == (T,)
        assert torch.equal(labels.cpu(), ys[scores.argmax()])
        assert abs(float(score) - float(scores.max())) < 1e-12 * max(1, abs(float(scores.max())))


def test_viterbi_for_extreme_scores_and_an_asymmetric_transition():
    u, P = _random_chain(5, 3, 21, scale=1e3)
    scores = _brute_scores(u, P, _sequences(5, 3))
    labels, score = viterbi(u, P)
    assert torch.equal(labels, _sequences(5, 3)[scores.argmax()]) and float(score) == pytest.approx(float(scores.max()), rel=1e-14)
    # a chain that must go 0 -> 1 -> 2: only the transposed matrix would allow 2 -> 1 -> 0
    P = torch.full((3, 3), -10.0, dtype=D)
    P[0, 1] = P[1, 2] = 5.0
    assert viterbi(torch.zeros(3, 3, dtype=D), P)[0].tolist() == [0, 1, 2]


# --------------------------------------------------------------------------------------------- scores, losses, gradients
def test_sequence_score_and_observed_counts():
    u, P = _random_chain(5, 3, 30)
    ys = _sequences(5, 3)[::17]
    assert torch.allclose(sequence_score(u.expand(len(ys), 5, 3), P, ys), _brute_scores(u, P, ys), atol=1e-13)
    node, edge = observed_counts(ys, 3)
    assert node.shape == (len(ys), 5, 3) and edge.shape == (len(ys), 4, 3, 3)
    # s(y) is linear in the counts: <unary, node> + <pairwise, sum_t edge>
    linear = (node.double() * u).sum((1, 2)) + (edge.double().sum(1) * P).sum((1, 2))
    assert torch.allclose(linear, _brute_scores(u, P, ys), atol=1e-13)


def test_nll_matches_brute_force_and_its_gradient_is_expected_minus_observed():
    T, K = 5, 3
    u0, P0 = _random_chain(T, K, 31)
    ys = _sequences(T, K)
    y = ys[100]
    u, P = u0.clone().requires_grad_(True), P0.clone().requires_grad_(True)
    nll = crf_nll(u, P, y)
    g_u, g_P = torch.autograd.grad(nll, (u, P))
    # (1) autograd of the brute-force NLL
    ub, Pb = u0.clone().requires_grad_(True), P0.clone().requires_grad_(True)
    scores = _brute_scores(ub, Pb, ys)
    nll_bf = torch.logsumexp(scores, 0) - scores[100]
    b_u, b_P = torch.autograd.grad(nll_bf, (ub, Pb))
    assert abs(float(nll.detach()) - float(nll_bf.detach())) < 1e-12
    assert torch.allclose(g_u, b_u, atol=1e-13) and torch.allclose(g_P, b_P, atol=1e-13)
    # (2) expected minus observed counts
    node, edge = chain_marginals(u0, P0)
    obs_node, obs_edge = observed_counts(y, K)
    assert torch.allclose(g_u, node - obs_node.double(), atol=1e-13)
    assert torch.allclose(g_P, (edge - obs_edge.double()).sum(0), atol=1e-13)


@pytest.mark.parametrize("cost", [0.0, 1.0, 2.5])
def test_structured_hinge_and_loss_augmented_viterbi_match_brute_force(cost):
    T, K = 4, 3
    ys = _sequences(T, K)
    for seed in range(4):
        u, P = _random_chain(T, K, 40 + seed)
        scores = _brute_scores(u, P, ys)
        for i in (0, 31, 80):
            y = ys[i]
            augmented = scores + cost * (ys != y).sum(1)
            expected = float(augmented.max() - scores[i])
            assert float(structured_hinge_loss(u, P, y, cost)) == pytest.approx(expected, abs=1e-12)
            labels, value = loss_augmented_viterbi(u, P, y, cost)
            assert float(value) == pytest.approx(float(augmented.max()), abs=1e-12)
            j = int(((ys == labels).all(1)).nonzero())
            assert float(augmented[j]) == pytest.approx(float(augmented.max()), abs=1e-12)
            assert float(perceptron_loss(u, P, y)) == pytest.approx(float(scores.max() - scores[i]), abs=1e-12)


def test_hinge_is_zero_exactly_when_the_margin_holds_and_its_gradient_is_the_count_difference():
    y = torch.tensor([0, 1, 2, 1])
    u = 3.0 * F.one_hot(y, 3).double()  # the truth beats every wrong label by 3 per position
    P = torch.zeros(3, 3, dtype=D)
    assert float(structured_hinge_loss(u, P, y, cost=2.9)) == 0.0
    assert float(structured_hinge_loss(u, P, y, cost=3.1)) == pytest.approx(4 * 0.1, abs=1e-12)
    assert float(perceptron_loss(u, P, y)) == 0.0
    u = torch.randn(4, 3, dtype=D, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    P = torch.randn(3, 3, dtype=D, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    g_u, g_P = torch.autograd.grad(structured_hinge_loss(u, P, y, 1.0), (u, P))
    worst, _ = loss_augmented_viterbi(u.detach(), P.detach(), y, 1.0)
    (n_w, e_w), (n_y, e_y) = observed_counts(worst, 3), observed_counts(y, 3)
    assert torch.allclose(g_u, (n_w - n_y).double()) and torch.allclose(g_P, (e_w - e_y).sum(0).double())


def test_energy_losses_match_their_formulas():
    E = torch.tensor([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0], [3.0, 0.2, 0.1]], dtype=D)
    y = torch.tensor([2, 0, 0])
    out = energy_losses(E, y, margin=1.0)
    assert torch.allclose(out["energy"], torch.tensor([-1.0, 1.0, 3.0], dtype=D))
    assert torch.allclose(out["perceptron"], torch.tensor([0.0, 0.0, 2.9], dtype=D))
    assert torch.allclose(out["hinge"], torch.tensor([0.0, 1.0, 3.9], dtype=D))
    # LeCun et al.'s log loss: log(1 + exp(E(y) - E(ybar))), ybar the most offending wrong answer (no Z)
    e_bar = torch.tensor([0.5, 1.0, 0.1], dtype=D)
    assert torch.allclose(out["log"], torch.log1p(torch.exp(E[torch.arange(3), y] - e_bar)))
    # their negative log-likelihood loss: E(y) + log sum exp(-E) (with beta = 1)
    assert torch.allclose(out["nll"], E[torch.arange(3), y] + torch.log(torch.exp(-E).sum(1)))
    assert float(out["nll"][1]) == pytest.approx(math.log(3))  # a flat energy costs log K ...
    assert float(out["log"][1]) == pytest.approx(math.log(2))  # ... the log loss log 2, the perceptron 0
    hot = energy_losses(E, y, beta=2.0)["nll"]
    assert torch.allclose(hot, E[torch.arange(3), y] + 0.5 * torch.log(torch.exp(-2 * E).sum(1)))
    two = torch.tensor([[0.3, -0.4], [-1.0, 2.0]], dtype=D)  # two answers: the log loss is the NLL
    out2 = energy_losses(two, torch.tensor([0, 1]))
    assert torch.allclose(out2["log"], out2["nll"]) and float(out2["log"][0]) == pytest.approx(math.log1p(math.exp(0.7)))
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        energy_losses(E, y, beta=0.0)


def test_bigram_log_probs_count_the_steps():
    y = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    counts = torch.zeros(3, 3, dtype=D)
    for row in y.tolist():
        for a, b in zip(row, row[1:]):
            counts[a, b] += 1
    expected = (counts + 0.5) / (counts + 0.5).sum(1, keepdim=True)
    got = bigram_log_probs(y, 3, smoothing=0.5)
    assert torch.allclose(got.double(), expected.log(), atol=1e-6)
    assert torch.allclose(bigram_log_probs(y[0], 3).exp().sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="T >= 2"):
        bigram_log_probs(torch.tensor([[1], [2]]), 3)
    with pytest.raises(ValueError, match=r"labels in 0\.\.2"):
        bigram_log_probs(torch.tensor([0, 3, 1]), 3)
    with pytest.raises(ValueError, match="smoothing must be a finite number > 0"):
        bigram_log_probs(y, 3, smoothing=0.0)


def test_hamming_error_of_the_prediction_is_at_most_the_structured_hinge():
    """Delta(y, y_hat) <= s(y_hat) + Delta(y, y_hat) - s(y) <= hinge, because s(y_hat) >= s(y)."""
    g = torch.Generator().manual_seed(12)
    for _ in range(50):
        u, P = 2 * torch.randn(5, 3, generator=g, dtype=D), 2 * torch.randn(3, 3, generator=g, dtype=D)
        y = torch.randint(0, 3, (5,), generator=g)
        y_hat, _ = viterbi(u, P)
        assert int((y_hat != y).sum()) <= float(structured_hinge_loss(u, P, y)) + 1e-12
    # the perceptron loss bounds nothing: a wrong prediction that wins by 1e-3 costs 1e-3
    u = torch.tensor([[0.0, 1e-3]], dtype=D)
    assert float(perceptron_loss(u, torch.zeros(2, 2, dtype=D), torch.tensor([0]))) == pytest.approx(1e-3)


# --------------------------------------------------------------------------------------------- the model
def test_without_transitions_the_crf_is_a_per_position_classifier():
    g = torch.Generator().manual_seed(0)
    model = LinearChainCRF(5, 4, transitions=False).double()
    with torch.no_grad():
        model.unary.weight.copy_(torch.randn(4, 5, generator=g, dtype=D))
    x = torch.randn(3, 6, 5, generator=g, dtype=D)
    y = torch.randint(0, 4, (3, 6), generator=g)
    ce = F.cross_entropy(model(x).reshape(-1, 4), y.reshape(-1), reduction="sum").detach() / 3
    assert float(model.loss(x, y, "nll").detach()) == pytest.approx(float(ce), rel=1e-12)
    assert torch.equal(model.predict(x), model(x).argmax(-1))
    assert "transitions" not in dict(model.named_parameters())


def test_fit_without_transitions_takes_the_chain_nll_steps_and_set_transitions_are_used():
    """The per-position classifier trains on the summed cross-entropy (no forward algorithm): one full-batch SGD
    step from zero must equal a step on the chain NLL with zero transitions. A model whose transition buffer is
    set (the piecewise baseline) decodes and trains with those transitions."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, 4, generator=g, dtype=D)
    y = torch.randint(0, 3, (6, 5), generator=g)
    model = LinearChainCRF(4, 3, transitions=False).double()
    fit_crf(model, x, y, "nll", n_epochs=1, batch_size=6, lr=0.3, optimizer="sgd")
    W = torch.zeros(3, 4, dtype=D, requires_grad=True)
    c = torch.zeros(3, dtype=D, requires_grad=True)
    g_W, g_c = torch.autograd.grad(crf_nll(x @ W.T + c, torch.zeros(3, 3, dtype=D), y).mean(), (W, c))
    assert torch.allclose(model.unary.weight, -0.3 * g_W, atol=1e-14)
    assert torch.allclose(model.unary.bias, -0.3 * g_c, atol=1e-14)
    A = torch.randn(3, 3, generator=g, dtype=D)
    model.transitions = A  # fixed transitions, e.g. counted ones
    assert "transitions" not in dict(model.named_parameters())
    u = model(x).detach()
    assert torch.equal(model.predict(x), viterbi(u, A)[0])
    h = fit_crf(model, x, y, "nll", n_epochs=1, batch_size=6, lr=1e-12, optimizer="sgd")
    assert h["loss"][0] == pytest.approx(float(crf_nll(u, A, y).mean()), rel=1e-10)  # the chain NLL, not the CE


def test_model_scores_match_the_chain_functions(device):
    g = torch.Generator().manual_seed(1)
    model = LinearChainCRF(5, 3).double().to(device)
    with torch.no_grad():
        model.unary.weight.copy_(torch.randn(3, 5, generator=g, dtype=D))
        model.transitions.copy_(torch.randn(3, 3, generator=g, dtype=D))
    x = torch.randn(2, 4, 5, generator=g, dtype=D).to(device)
    y = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]], device=device)
    u = (x @ model.unary.weight.T + model.unary.bias).detach()
    A = model.transitions.detach()
    for kind, fn in [("nll", crf_nll), ("perceptron", perceptron_loss), ("hinge", structured_hinge_loss)]:
        assert float(model.loss(x, y, kind).detach()) == pytest.approx(float(fn(u, A, y).mean()), rel=1e-12)
    assert torch.allclose(model.log_partition(x), chain_log_partition(u, model.transitions))
    assert torch.equal(model.predict(x), viterbi(u, model.transitions)[0])


def _chapter_data(seed, n_train=200):
    from ebm_teach.data import load_digits, train_test_split

    x, labels = load_digits(return_labels=True)
    x_tr, x_te, l_tr, l_te = train_test_split(x, labels, test_fraction=0.5, seed=0)
    g = torch.Generator().manual_seed(seed)
    grammar = counting_grammar(10)
    return digit_sequences(x_tr, l_tr, n_train, 8, grammar, 0.5, g) + digit_sequences(x_te, l_te, 300, 8, grammar, 0.5, g)


def test_crf_beats_the_per_position_classifier_on_the_chapter_data(one_thread):
    """Digit sequences counting up by 1 or 2 with noise 0.5 (the chapter's data): transitions pin a position
    down where its image does not, whether learned jointly or counted (the piecewise baseline). The margin (0.1 in per-position accuracy) is far below what the chapter
    measures (about 0.2 over several seeds) and far above the seed-to-seed spread (about 0.01)."""
    x_tr, y_tr, x_te, y_te = _chapter_data(0)
    results = {}
    for name, loss, transitions in [("classifier", "nll", False), ("crf", "nll", True), ("svm", "hinge", True),
                                    ("perceptron", "perceptron", True)]:
        model = LinearChainCRF(64, 10, transitions=transitions)
        fit_crf(model, x_tr, y_tr, loss, n_epochs=6, batch_size=20, lr=0.05, weight_decay=1e-3, average=True,
                generator=torch.Generator().manual_seed(1))
        results[name] = accuracies(model.predict(x_te), y_te)
        if name == "classifier":  # the piecewise baseline: the same classifier with counted transitions
            model.transitions = bigram_log_probs(y_tr, 10)
            results["piecewise"] = accuracies(model.predict(x_te), y_te)
    for name in ("crf", "svm", "perceptron", "piecewise"):
        assert results[name][0] > results["classifier"][0] + 0.1, results
        assert results[name][1] > results["classifier"][1] + 0.2, results


def test_fit_records_history_and_stops_on_divergence():
    x_tr, y_tr, _, _ = _chapter_data(1, n_train=40)
    model = LinearChainCRF(64, 10)
    h = fit_crf(model, x_tr, y_tr, "nll", n_epochs=3, batch_size=10, generator=torch.Generator().manual_seed(0),
                callback=lambda epoch, m: {"acc": accuracies(m.predict(x_tr), y_tr)[0]})
    assert h["epoch"] == [1, 2, 3] and len(h["loss"]) == len(h["acc"]) == 3
    assert h["loss"][-1] < h["loss"][0] < math.log(10) * 8 + 1e-4  # starts at log K per position, then falls
    broken = LinearChainCRF(64, 10)
    with torch.no_grad():
        broken.unary.weight[3, 5] = math.nan  # as if an earlier step had overflowed
    with pytest.raises(DivergenceError, match="epoch 1: the nll loss became nan. Lower lr"):
        fit_crf(broken, x_tr, y_tr, "nll", n_epochs=2)


def test_averaged_sgd_perceptron_with_lr_1_is_collins_update():
    """One sequence, batch 1, SGD lr 1 on the perceptron loss: the weights move by counts(y) - counts(y_hat)."""
    x = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([[1, 0, 2, 1]])
    model = LinearChainCRF(3, 3)
    fit_crf(model, x, y, "perceptron", n_epochs=1, batch_size=1, lr=1.0, optimizer="sgd")
    y_hat = torch.zeros(1, 4, dtype=torch.long)  # with zero weights every score ties: Viterbi returns label 0
    (n_y, e_y), (n_h, e_h) = observed_counts(y, 3), observed_counts(y_hat, 3)
    assert torch.allclose(model.transitions, (e_y - e_h).sum((0, 1)))
    assert torch.allclose(model.unary.weight, ((n_y - n_h)[0].T @ x[0]))


# --------------------------------------------------------------------------------------------- the data
def test_counting_grammar_and_digit_sequences_follow_the_chain():
    from ebm_teach.data import load_digits

    P = counting_grammar(10, steps=(1, 2), probs=(0.7, 0.3))
    assert torch.allclose(P.sum(1), torch.ones(10, dtype=D)) and float(P[9, 0]) == 0.7 and float(P[9, 1]) == 0.3
    x, labels = load_digits(return_labels=True)
    xs, ys = digit_sequences(x, labels, 4000, 6, P, 0.0, torch.Generator().manual_seed(0))
    step = (ys[:, 1:] - ys[:, :-1]) % 10
    assert set(step.unique().tolist()) == {1, 2}
    n = step.numel()  # the fraction of +1 steps is a mean of n Bernoulli(0.7): 5 standard errors
    assert abs(float((step == 1).float().mean()) - 0.7) < 5 * math.sqrt(0.21 / n)
    first = torch.bincount(ys[:, 0], minlength=10).double() / 4000
    assert float((first - 0.1).abs().max()) < 5 * math.sqrt(0.09 / 4000)
    # every position shows an image of its own label
    match = torch.cdist(xs[:200].reshape(-1, 64).double(), x.double()) == 0  # (1200 positions, 1797 images)
    assert bool(match.any(1).all())
    assert bool((match.double() @ F.one_hot(labels, 10).double()).gather(1, ys[:200].reshape(-1, 1)).gt(0).all())
    # the same generator with noise: the same images plus N(0, 0.5^2) pixels
    noisy, ys2 = digit_sequences(x, labels, 4000, 6, P, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(ys, ys2)
    residual = noisy - xs
    assert abs(float(residual.std()) - 0.5) < 0.01 and abs(float(residual.mean())) < 0.01


# --------------------------------------------------------------------------------------------- the grid
def _grid_configurations(H, W):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=H * W)), dtype=D).reshape(-1, H, W)


@pytest.mark.parametrize("H, W", [(3, 4), (4, 3), (2, 2), (1, 5)])
def test_grid_as_chain_is_exact(H, W):
    g = torch.Generator().manual_seed(H * 10 + W)
    field, J = torch.randn(H, W, generator=g, dtype=D), 0.7
    ys = _grid_configurations(H, W)
    scores = grid_score(ys, field.expand(len(ys), H, W), J)
    # grid_score itself, from the definition for one configuration
    y0 = ys[5]
    bonds = sum(float(y0[i, j] * y0[i + 1, j]) for i in range(H - 1) for j in range(W)) + \
        sum(float(y0[i, j] * y0[i, j + 1]) for i in range(H) for j in range(W - 1))
    assert float(scores[5]) == pytest.approx(float((field * y0).sum()) + J * bonds, abs=1e-12)
    unary, pairwise = grid_as_chain(field, J)
    assert unary.shape == (H, 2**W) and pairwise.shape == (2**W, 2**W)
    assert float(chain_log_partition(unary, pairwise)) == pytest.approx(float(torch.logsumexp(scores, 0)), abs=1e-11)
    node, _ = chain_marginals(unary, pairwise)
    p = torch.softmax(scores, 0)
    assert torch.allclose(node @ grid_row_states(W), (p[:, None, None] * ys).sum(0), atol=1e-12)
    assert float(grid_log_partition(field, J)) == pytest.approx(float(torch.logsumexp(scores, 0)), abs=1e-11)
    rows, best = viterbi(unary, pairwise)
    assert torch.equal(grid_row_states(W)[rows], ys[scores.argmax()])
    assert float(best) == pytest.approx(float(scores.max()), abs=1e-12)


def test_grid_pseudo_log_likelihood_is_the_sum_of_one_pixel_conditionals():
    H, W = 3, 3
    g = torch.Generator().manual_seed(3)
    field, J = torch.randn(H, W, generator=g, dtype=D), -0.4
    y = torch.where(torch.rand(H, W, generator=g, dtype=D) < 0.5, 1.0, -1.0).to(D)
    expected = 0.0
    for i in range(H):
        for j in range(W):
            flipped = y.clone()
            flipped[i, j] = -flipped[i, j]
            a, b = grid_score(y, field, J), grid_score(flipped, field, J)
            expected += float(a - torch.logaddexp(a, b))
    assert float(grid_pseudo_log_likelihood(y, field, J)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("H, W", [(3, 4), (4, 3), (1, 5)])
def test_graph_cut_map_is_the_best_of_all_configurations(H, W):
    """Greig, Porteous & Seheult (1989): for J >= 0 a minimum cut gives the MAP image exactly; checked against
    every one of the 2^(H W) images, and (wider) against Viterbi over rows."""
    g = torch.Generator().manual_seed(H * 10 + W)
    configs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=H * W)), dtype=D).reshape(-1, H, W)
    for J in (0.0, 0.3, 1.2, float(torch.rand((), generator=g))):
        field = torch.randn(H, W, generator=g, dtype=D)
        best = grid_score(configs, field.expand(len(configs), H, W), J).max()
        cut = grid_map_graph_cut(field, J)
        assert cut.shape == (H, W) and cut.dtype == D
        assert float(grid_score(cut, field, J)) == pytest.approx(float(best), abs=1e-9)
    field = torch.randn(5, 6, 5, generator=g, dtype=D)
    unary, pairwise = grid_as_chain(field, 0.7)
    rows, value = viterbi(unary, pairwise)
    assert torch.allclose(grid_score(grid_map_graph_cut(field, 0.7), field, 0.7), value, atol=1e-9)
    assert torch.equal(grid_map_graph_cut(field, 0.0), torch.where(field > 0, 1.0, -1.0).to(D))  # J = 0: signs
    with pytest.raises(ValueError, match="J must be >= 0 for a minimum cut"):
        grid_map_graph_cut(field, -0.1)


def test_grid_gibbs_reaches_the_exact_marginals(device):
    """4,000 independent chains of one 3x4 grid, 30 sweeps from random spins: the chains' mean of each pixel
    (a mean of 4,000 independent +-1 draws, sd <= 1 / sqrt(4000)) is within 5 standard errors of E[y_i]."""
    H, W, n = 3, 4, 4000
    g = torch.Generator().manual_seed(4)
    field, J = 0.5 * torch.randn(H, W, generator=g, dtype=D), 0.6
    node, _ = chain_marginals(*grid_as_chain(field, J))
    exact = node @ grid_row_states(W)
    gen = torch.Generator(device=device).manual_seed(5)
    out = grid_gibbs(field.to(device).expand(n, H, W), J, n_sweeps=30, burn_in=29, generator=gen)
    assert out.s.shape == (n, H, W) and set(out.s.unique().tolist()) <= {-1.0, 1.0}
    se = torch.sqrt((1 - exact**2) / n)
    assert bool(((out.s.mean(0).cpu() - exact).abs() < 5 * se).all())
    # running means over sweeps: 200 chains x 190 kept sweeps; with an autocorrelation time of a few sweeps
    # that is ~ 10,000 effective draws, sd ~ 0.01, and 0.06 is ~ 5 sd
    runs = grid_gibbs(field.expand(200, H, W), J, n_sweeps=200, burn_in=10, generator=torch.Generator().manual_seed(6))
    assert float((runs.mean.mean(0) - exact).abs().max()) < 0.06


# --------------------------------------------------------------------------------------------- bad input
def test_bad_shapes_are_named():
    u, P = _random_chain(4, 3, 0)
    with pytest.raises(ValueError, match=r"pairwise must be \(3, 3\)"):
        chain_log_partition(u, torch.zeros(3, 4, dtype=D))
    with pytest.raises(ValueError, match=r"pairwise must be \(3, 3\)"):
        viterbi(u, torch.zeros(4, 4, dtype=D))  # e.g. unary passed as (K, T)
    with pytest.raises(ValueError, match=r"unary must be \(T, K\) or \(batch, T, K\)"):
        chain_marginals(u[0], P)
    with pytest.raises(ValueError, match="batch of 2 chains but pairwise of 3"):
        chain_log_partition(u.expand(2, 4, 3), P.expand(3, 3, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        crf_nll(u, P, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must be \(batch, T, 5\)"):
        LinearChainCRF(5, 3)(torch.zeros(2, 4, 6))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(bad):
    u, P = _random_chain(4, 3, 0)
    u[2, 1] = bad
    with pytest.raises(ValueError, match=r"unary contains 1 NaN/inf value\(s\) \(the first at index \(2, 1\)\).*-1e4"):
        chain_log_partition(u, P)
    u, P = _random_chain(4, 3, 0)
    P[0, 0] = bad
    for fn in (chain_marginals, viterbi):
        with pytest.raises(ValueError, match="pairwise contains 1 NaN/inf"):
            fn(u, P)


def test_labels_out_of_range_or_not_integers_are_refused():
    u, P = _random_chain(4, 3, 0)
    for y in (torch.tensor([0, 1, 3, 0]), torch.tensor([0, -1, 2, 0])):
        for fn in (crf_nll, perceptron_loss, structured_hinge_loss, sequence_score, loss_augmented_viterbi):
            with pytest.raises(ValueError, match=r"labels in 0\.\.2 \(there are K = 3 labels\)"):
                fn(u, P, y)
    with pytest.raises(TypeError, match="integer labels"):
        crf_nll(u, P, torch.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"labels in 0\.\.2"):
        energy_losses(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"labels in 0\.\.9"):
        fit_crf(LinearChainCRF(4, 10), torch.zeros(2, 3, 4), torch.full((2, 3), 10))


def test_other_bad_arguments_are_refused():
    u, P = _random_chain(4, 3, 0)
    with pytest.raises(ValueError, match="cost must be a finite number >= 0"):
        structured_hinge_loss(u, P, torch.zeros(4, dtype=torch.long), cost=-1.0)
    with pytest.raises(TypeError, match="floating-point torch dtype"):
        chain_log_partition(u, P, dtype=torch.int64)
    with pytest.raises(ValueError, match="kind must be one of"):
        LinearChainCRF(4, 3).loss(torch.zeros(1, 2, 4), torch.zeros(1, 2, dtype=torch.long), "hamming")
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_crf(LinearChainCRF(4, 3), torch.zeros(1, 2, 4), torch.zeros(1, 2, dtype=torch.long), "svm")
    with pytest.raises(ValueError, match="at least two answers"):
        energy_losses(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="rows sum to 1"):
        digit_sequences(torch.zeros(10, 4), torch.arange(10), 3, 2, torch.ones(10, 10))
    with pytest.raises(ValueError, match=r"labels \[9\] have none"):
        digit_sequences(torch.zeros(9, 4), torch.arange(9), 3, 2, counting_grammar(10))
    with pytest.raises(ValueError, match="MAX_ROW_STATES"):
        grid_as_chain(torch.zeros(3, 13), 0.5)
    with pytest.raises(ValueError, match="spins -1 or \\+1"):
        grid_score(torch.zeros(2, 2), torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="single number"):
        grid_gibbs(torch.zeros(2, 2), torch.ones(2), 3)
    with pytest.raises(ValueError, match=r"probs must give one probability per step and sum to 1"):
        counting_grammar(10, steps=(1, 2), probs=(0.5, 0.6))


# --------------------------------------------------------------------------------------------- exercise checks
def test_chapter9_hidden_checks_reject_typical_mistakes():
    from ebm_teach.grade.checks import ch09_structured_prediction as ch09

    def fails(check, wrong):
        with pytest.raises(AssertionError):
            check(wrong)

    def forward(unary, pairwise, transpose=False, naive=False, transitions=True):
        P = pairwise.T if transpose else pairwise
        if not transitions:
            P = torch.zeros_like(P)
        if naive:
            alpha = torch.exp(unary[0])
            for t in range(1, len(unary)):
                alpha = torch.exp(unary[t]) * (alpha @ torch.exp(P))
            return torch.log(alpha.sum())
        return chain_log_partition(unary, P)

    for check in (ch09.check_forward_brute_force, ch09.check_forward_one_position, ch09.check_forward_extreme_scores):
        check(forward)
    fails(ch09.check_forward_brute_force, lambda u, P: forward(u, P, transpose=True))
    fails(ch09.check_forward_brute_force, lambda u, P: forward(u, P, transitions=False))
    ch09.check_forward_brute_force(lambda u, P: forward(u, P, naive=True))  # right where exp does not overflow ...
    fails(ch09.check_forward_extreme_scores, lambda u, P: forward(u, P, naive=True))  # ... and wrong at 1e3

    def greedy(unary, pairwise):  # the best label at each position, ignoring how they connect
        labels = unary.argmax(1)
        return labels, float(sequence_score(unary, pairwise, labels))

    for check in (ch09.check_viterbi_brute_force, ch09.check_viterbi_edge_cases, ch09.check_viterbi_extreme_scores):
        check(viterbi)
    fails(ch09.check_viterbi_brute_force, greedy)
    fails(ch09.check_viterbi_brute_force, lambda u, P: viterbi(u, P.T))
    fails(ch09.check_viterbi_edge_cases, lambda u, P: viterbi(u, P.T))

    def hinge(unary, pairwise, y, cost, decode, mistake=None):
        aug = unary + cost * (1 - F.one_hot(y, unary.shape[1]).to(unary.dtype))
        if mistake == "no Hamming":
            aug = unary
        if mistake == "augments the truth":
            aug = unary + cost * F.one_hot(y, unary.shape[1]).to(unary.dtype)
        y_star, best = decode(aug, pairwise)  # the grader passes the package's Viterbi (exercise 9.3)
        true = sequence_score(unary, pairwise, y)
        if mistake == "forgets s(y)":
            true = 0.0
        return best - true, y_star

    for check in (ch09.check_hinge_brute_force, ch09.check_hinge_margin):
        check(hinge)
        for mistake in ("no Hamming", "augments the truth", "forgets s(y)"):
            fails(check, lambda u, P, y, c, d: hinge(u, P, y, c, d, mistake))

    def sticky(K, T, c, mistake=None):
        c = torch.tensor(float(c), dtype=D)
        step = torch.logaddexp(c, torch.tensor(math.log(K - 1), dtype=D))
        log_k = 0.0 if mistake == "no log K" else math.log(K)
        if mistake == "naive":
            step = torch.log(torch.exp(c) + K - 1)
        if mistake == "sign":
            step = torch.logaddexp(-c, torch.tensor(math.log(K - 1), dtype=D))
        return log_k + (T - 1) * float(step), (T - 1) * float(torch.exp(c - step))

    for check in (ch09.check_sticky_enumeration, ch09.check_sticky_long_chain, ch09.check_sticky_extreme_c):
        check(sticky)
    fails(ch09.check_sticky_enumeration, lambda K, T, c: sticky(K, T, c, "no log K"))
    fails(ch09.check_sticky_enumeration, lambda K, T, c: sticky(K, T, c, "sign"))
    fails(ch09.check_sticky_long_chain, lambda K, T, c: sticky(K, T, c, "sign"))
    ch09.check_sticky_enumeration(lambda K, T, c: sticky(K, T, c, "naive"))
    fails(ch09.check_sticky_extreme_c, lambda K, T, c: sticky(K, T, c, "naive"))
