"""Classifier metrics of chapter 7 (ebm_teach.evaluate): accuracy, ECE with its reliability bins, AUROC.

Every expected value below is worked out by hand in the comment beside it; AUROC is also checked against
the O(n_in n_out) pair count P(s_in > s_out) + 1/2 P(s_in = s_out), an independent computation.
"""
import itertools

import pytest
import torch

from ebm_teach.evaluate import accuracy, auroc, expected_calibration_error, reliability_bins


def _pairwise_auroc(s_in, s_out):
    s_in, s_out = s_in.double(), s_out.double()
    greater = (s_in[:, None] > s_out[None, :]).double().mean()
    ties = (s_in[:, None] == s_out[None, :]).double().mean()
    return float(greater + 0.5 * ties)


# --------------------------------------------------------------------------------------------- accuracy
def test_accuracy_counts_argmax_matches(device):
    probs = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8], [0.9, 0.1]], device=device)
    y = torch.tensor([0, 0, 1, 1], device=device)  # predictions 0, 1, 1, 0: two right of four
    assert accuracy(probs, y) == pytest.approx(0.5, abs=1e-12)


def test_accuracy_same_from_logits_and_probs():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0], [1.0, 1.5, 4.0]])
    y = torch.tensor([0, 2, 2])  # argmax 0, 1, 2 -> 2/3
    assert accuracy(logits, y) == accuracy(torch.softmax(logits, 1), y) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------- ECE
def test_ece_hand_computed_two_bins():
    # M = 2 bins (0, .5], (.5, 1]. Confidences 0.9, 0.8, 0.6 (correct, wrong, correct) all fall in bin 2:
    # conf = 2.3/3, acc = 2/3, gap = 0.3/3 = 0.1; bin 1 holds confidence 0.4 (K = 3, correct): gap 0.6.
    # ECE = 3/4 * 0.1 + 1/4 * 0.6 = 0.225.
    probs = torch.tensor(
        [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3]], dtype=torch.float64
    )
    y = torch.tensor([0, 1, 1, 0])
    assert expected_calibration_error(probs, y, n_bins=2) == pytest.approx(0.225, abs=1e-12)
    bins = reliability_bins(probs, y, n_bins=2)
    assert bins.count.tolist() == [1.0, 3.0]
    assert bins.confidence.tolist() == pytest.approx([0.4, 2.3 / 3])
    assert bins.accuracy.tolist() == pytest.approx([1.0, 2 / 3])
    assert bins.edges.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_ece_bins_are_right_closed():
    # A confidence of exactly 0.5 belongs to bin (0, 0.5], not (0.5, 1]: with 10 bins 0.5 lands in bin 4.
    probs = torch.tensor([[0.5, 0.5], [0.55, 0.45]], dtype=torch.float64)
    bins = reliability_bins(probs, torch.tensor([0, 1]), n_bins=10)
    assert bins.count[4] == 1 and bins.count[5] == 1
    assert torch.isnan(bins.confidence[0]) and torch.isnan(bins.accuracy[9])  # empty bins hold NaN


def test_ece_zero_when_accuracy_matches_confidence_in_every_bin(device):
    # Four predictions at confidence 0.75 of which three are right: perfectly calibrated, ECE = 0.
    probs = torch.tensor([[0.75, 0.25]] * 4, device=device)
    y = torch.tensor([0, 0, 0, 1], device=device)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-7)


def test_ece_one_bin_is_confidence_minus_accuracy():
    # With a single bin ECE = |mean accuracy - mean confidence| = |0.5 - (0.9 + 0.7)/2| = 0.3.
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=torch.float64)
    assert expected_calibration_error(probs, torch.tensor([1, 1]), n_bins=1) == pytest.approx(0.3, abs=1e-12)


def test_ece_overconfident_classifier():
    # Confidence 1.0 everywhere (bin M) with accuracy 0.6: ECE = 0.4.
    probs = torch.tensor([[1.0, 0.0]] * 5)
    assert expected_calibration_error(probs, torch.tensor([0, 0, 0, 1, 1])) == pytest.approx(0.4, abs=1e-7)


def test_ece_rejects_logits_and_bad_labels():
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="one label per example"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([2]))
    with pytest.raises(TypeError, match="integer class labels"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        reliability_bins(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=0)
    with pytest.raises(ValueError, match="shape"):
        accuracy(torch.tensor([0.5, 0.5]), torch.tensor([0]))


# --------------------------------------------------------------------------------------------- AUROC
def test_auroc_hand_computed_with_ties():
    # Pairs (in, out): in = [3, 2, 2], out = [2, 1]. 3 beats both (2 wins); each 2 ties the 2 and beats the 1
    # (1 win + 1 tie each). AUROC = (2 + 2 * 1.5) / 6 = 5/6.
    s_in, s_out = torch.tensor([3.0, 2.0, 2.0]), torch.tensor([2.0, 1.0])
    assert auroc(s_in, s_out) == pytest.approx(5 / 6, abs=1e-12)


def test_auroc_all_tied_is_one_half(device):
    assert auroc(torch.ones(4, device=device), torch.ones(7, device=device)) == pytest.approx(0.5, abs=1e-12)


def test_auroc_perfect_and_reversed():
    s_in, s_out = torch.tensor([5.0, 6.0, 7.0]), torch.tensor([1.0, 2.0])
    assert auroc(s_in, s_out) == 1.0
    assert auroc(s_out, s_in) == 0.0


def test_auroc_is_symmetric_under_swapping_roles():
    # P(a > b) + 1/2 P(a = b) and P(b > a) + 1/2 P(a = b) add up to 1.
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (40,), generator=g).float()
    b = torch.randint(0, 5, (33,), generator=g).float()
    assert auroc(a, b) + auroc(b, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_equals_pair_count_on_heavily_tied_scores(seed):
    g = torch.Generator().manual_seed(seed)
    s_in = torch.randint(0, 6, (57,), generator=g).float()
    s_out = torch.randint(-2, 4, (81,), generator=g).float()
    assert auroc(s_in, s_out) == pytest.approx(_pairwise_auroc(s_in, s_out), abs=1e-12)


def test_auroc_equals_enumeration_of_every_small_case():
    # Every pair of score vectors over {0, 1, 2} with sizes 2 and 2: 81 cases, ties everywhere.
    for a in itertools.product(range(3), repeat=2):
        for b in itertools.product(range(3), repeat=2):
            s_in, s_out = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
            assert auroc(s_in, s_out) == pytest.approx(_pairwise_auroc(s_in, s_out), abs=1e-12)


def test_auroc_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="both sides"):
        auroc(torch.tensor([1.0]), torch.tensor([]))
    with pytest.raises(ValueError, match="NaN/inf"):
        auroc(torch.tensor([1.0, float("nan")]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="shape"):
        auroc(torch.ones(2, 2), torch.ones(3))
