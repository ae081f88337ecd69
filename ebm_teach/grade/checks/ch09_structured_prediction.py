"""Hidden checks for chapter 9's exercises (solutions/09_structured_prediction.py).

9.1 the forward algorithm against a brute-force log-sum-exp over every label sequence (asymmetric transitions,
    so that pairwise[j, i] for pairwise[i, j] fails; a one-position chain), and for scores of size 1000.
9.2 Viterbi against the best enumerated sequence and its score, for random and extreme scores, one position,
    and transitions that force a path (which the transposed matrix would reverse).
9.3 the structured hinge loss against the enumerated max of s(y') + cost * Hamming(y, y') - s(y), the returned
    sequence attaining that max, the loss being 0 exactly when the margin holds, and cost 0 giving the
    perceptron loss. Its `decode` argument gets ebm_teach.crf.viterbi (passed by reference), so a wrong 9.2
    cannot fail 9.3, and the file need not import the package's `viterbi` (the grader flags that for 9.2).
9.4 the sticky chain's closed forms against enumeration for small chains, against the forward algorithm and
    forward-backward (ebm_teach.crf) for a chain of 50^200 sequences, and for c = +-800.
"""
from __future__ import annotations

import itertools
import math

import torch

from ebm_teach.crf import viterbi as package_viterbi
from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


def _chain(T: int, K: int, k: int, scale: float = 1.5):
    """Random unary (T, K) and pairwise (K, K) scores from the k-th check seed."""
    g = torch.Generator().manual_seed(check_seed(k))
    return scale * torch.randn(T, K, generator=g, dtype=DTYPE), scale * torch.randn(K, K, generator=g, dtype=DTYPE)


def _enumerate(unary, pairwise):
    """Every sequence (K^T, T) and its score, written out position by position."""
    T, K = unary.shape
    ys = torch.tensor(list(itertools.product(range(K), repeat=T)), dtype=torch.long)
    scores = sum(unary[t, ys[:, t]] for t in range(T))
    for t in range(T - 1):
        scores = scores + pairwise[ys[:, t], ys[:, t + 1]]
    return ys, scores


def _scalar(value, what):
    out = as_float64(value, what)
    if out.numel() != 1:
        raise AssertionError(f"{what} should be a single number; got shape {tuple(out.shape)}.")
    return out.reshape(())


# ----------------------------------------------------------------------------- 9.1 the forward algorithm
def _call_log_z(fn, unary, pairwise, what):
    return _scalar(fn(unary.clone(), pairwise.clone()), what)


def check_forward_brute_force(chain_log_partition):
    for k, (T, K) in enumerate([(3, 3), (5, 2), (4, 4), (2, 5)]):
        unary, pairwise = _chain(T, K, k)
        _, scores = _enumerate(unary, pairwise)
        expected = torch.logsumexp(scores, 0)
        what = f"chain_log_partition for a chain of T = {T} positions and K = {K} labels"
        got = _call_log_z(chain_log_partition, unary, pairwise, what)
        _, transposed = _enumerate(unary, pairwise.T)
        if abs(float(got) - float(torch.logsumexp(transposed, 0))) < 1e-9 and abs(float(got) - float(expected)) > 1e-6:
            raise AssertionError(f"{what} gave {float(got):.6f}, the value for the transposed transitions: pairwise[i, j] "
                                 "scores the step FROM label i TO label j, so sum over the first index (the previous label).")
        assert_close(got, expected, what + " (compared with a sum over all K^T sequences)", rtol=1e-10, atol=1e-10)


def check_forward_one_position(chain_log_partition):
    unary, pairwise = _chain(1, 4, 10)
    what = "chain_log_partition for a chain of one position (no transitions at all)"
    assert_close(_call_log_z(chain_log_partition, unary, pairwise, what), torch.logsumexp(unary[0], 0), what,
                 rtol=1e-12, atol=1e-12)


def check_forward_extreme_scores(chain_log_partition):
    for k, sign in [(11, 1.0), (12, -1.0)]:
        unary, pairwise = _chain(5, 3, k, scale=1000.0)
        unary, pairwise = sign * unary.abs(), sign * pairwise.abs()
        _, scores = _enumerate(unary, pairwise)
        what = f"chain_log_partition with scores of size 1000 (all {'positive' if sign > 0 else 'negative'})"
        got = _call_log_z(chain_log_partition, unary, pairwise, what)
        if not bool(torch.isfinite(got)):
            raise AssertionError(f"{what} returned {float(got)}: exp overflows or underflows at this size. Stay in log "
                                 "space: combine log alpha and the scores with torch.logsumexp, never with exp/log.")
        assert_close(got, torch.logsumexp(scores, 0), what, rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------------------------- 9.2 Viterbi
def _call_viterbi(viterbi, unary, pairwise, what):
    out = viterbi(unary.clone(), pairwise.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"viterbi should return a pair (labels, score); got {type(out).__name__}.")
    labels = torch.as_tensor(out[0])
    if labels.dtype.is_floating_point:
        raise AssertionError(f"{what}: labels should be integers (torch.long); got dtype {labels.dtype}.")
    assert_shape(labels, (unary.shape[0],), what + ": labels (one per position)")
    return labels.long().cpu(), _scalar(out[1], what + ": score")


def check_viterbi_brute_force(viterbi):
    for k, (T, K) in enumerate([(4, 3), (6, 2), (3, 5), (5, 4)], start=20):
        unary, pairwise = _chain(T, K, k, scale=2.0)
        ys, scores = _enumerate(unary, pairwise)
        what = f"viterbi for a chain of T = {T} positions and K = {K} labels"
        labels, score = _call_viterbi(viterbi, unary, pairwise, what)
        best = ys[scores.argmax()]
        if not torch.equal(labels, best):
            raise AssertionError(f"{what} returned {labels.tolist()}, but the best of all {len(ys)} sequences is "
                                 f"{best.tolist()} (score {float(scores.max()):.4f}). Check the back-pointers: at each step "
                                 "store, for every label j, the previous label i that maximised delta(i) + pairwise[i, j].")
        assert_close(score, scores.max(), what + ": score of the best sequence", rtol=1e-10, atol=1e-10)


def check_viterbi_edge_cases(viterbi):
    unary, pairwise = _chain(1, 4, 30)
    labels, score = _call_viterbi(viterbi, unary, pairwise, "viterbi for a chain of one position")
    assert labels.tolist() == [int(unary[0].argmax())], "with one position, Viterbi picks the label with the best unary score."
    assert_close(score, unary[0].max(), "viterbi's score for one position", rtol=1e-12, atol=1e-12)
    pairwise = torch.full((4, 4), -5.0, dtype=DTYPE)  # only 0 -> 1 -> 2 -> 3 -> 0 ... is allowed
    for i in range(4):
        pairwise[i, (i + 1) % 4] = 1.0
    unary = torch.zeros(6, 4, dtype=DTYPE)
    unary[0, 2] = 0.5  # start at 2
    labels, _ = _call_viterbi(viterbi, unary, pairwise, "viterbi with transitions that allow only i -> i + 1")
    if labels.tolist() != [2, 3, 0, 1, 2, 3]:
        raise AssertionError(f"with pairwise[i, i + 1] = 1 (all else -5) and a start at 2, the best path is [2, 3, 0, 1, 2, 3]; "
                             f"got {labels.tolist()}. pairwise[i, j] scores the step from i to j.")


def check_viterbi_extreme_scores(viterbi):
    unary, pairwise = _chain(5, 3, 31, scale=1000.0)
    ys, scores = _enumerate(unary, pairwise)
    labels, score = _call_viterbi(viterbi, unary, pairwise, "viterbi with scores of size 1000")
    assert torch.equal(labels, ys[scores.argmax()]), (
        f"with scores of size 1000 viterbi returned {labels.tolist()}; the best sequence is {ys[scores.argmax()].tolist()}.")
    assert_close(score, scores.max(), "viterbi's score with scores of size 1000", rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------------------------- 9.3 the structured hinge loss
def _call_hinge(fn, unary, pairwise, y, cost, what):
    out = fn(unary.clone(), pairwise.clone(), y.clone(), cost, package_viterbi)  # the package's Viterbi as `decode`
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"structured_hinge_loss should return a pair (loss, y_star); got {type(out).__name__}.")
    y_star = torch.as_tensor(out[1])
    if y_star.dtype.is_floating_point:
        raise AssertionError(f"{what}: y_star should hold integer labels; got dtype {y_star.dtype}.")
    assert_shape(y_star, tuple(y.shape), what + ": y_star")
    return _scalar(out[0], what + ": loss"), y_star.long().cpu()


def check_hinge_brute_force(structured_hinge_loss):
    for k, (T, K, cost) in enumerate([(4, 3, 1.0), (5, 2, 0.5), (3, 4, 2.0), (4, 3, 1.7)], start=40):
        unary, pairwise = _chain(T, K, k)
        ys, scores = _enumerate(unary, pairwise)
        g = torch.Generator().manual_seed(check_seed(k + 100))
        i = int(torch.randint(0, len(ys), (1,), generator=g))
        y = ys[i]
        augmented = scores + cost * (ys != y).sum(1).to(DTYPE)
        expected = augmented.max() - scores[i]
        what = f"structured_hinge_loss for T = {T}, K = {K}, cost = {cost}"
        loss, y_star = _call_hinge(structured_hinge_loss, unary, pairwise, y, cost, what)
        if abs(float(loss) - float(scores.max() - scores[i])) < 1e-9 and abs(float(loss) - float(expected)) > 1e-6:
            raise AssertionError(f"{what} equals the perceptron loss max s(y') - s(y): the Hamming term is missing. Add "
                                 "cost to every unary score except the true label's before running Viterbi, and add "
                                 "cost * Hamming(y, y_star) to the loss.")
        assert_close(loss, expected, what + " (compared with the max over all sequences)", rtol=1e-10, atol=1e-10)
        if bool((y_star < 0).any()) or bool((y_star >= K).any()):
            raise AssertionError(f"{what}: y_star = {y_star.tolist()} holds labels outside 0..{K - 1}.")
        j = int((ys == y_star).all(1).nonzero()[0])
        if abs(float(augmented[j] - augmented.max())) > 1e-9:
            raise AssertionError(f"{what}: y_star = {y_star.tolist()} has s(y') + cost * Hamming = {float(augmented[j]):.4f}, "
                                 f"but the most violating sequence reaches {float(augmented.max()):.4f}.")


def check_hinge_margin(structured_hinge_loss):
    g = torch.Generator().manual_seed(check_seed(50))
    y = torch.randint(0, 4, (5,), generator=g)
    gap = 1.0 + float(torch.rand((), generator=g, dtype=DTYPE))  # the truth wins every position by `gap`
    unary = gap * torch.nn.functional.one_hot(y, 4).to(DTYPE)
    pairwise = torch.zeros(4, 4, dtype=DTYPE)
    loss, y_star = _call_hinge(structured_hinge_loss, unary, pairwise, y, gap - 0.05, "structured_hinge_loss when the margin holds")
    assert abs(float(loss)) < 1e-9 and torch.equal(y_star, y), (
        f"each true label beats every other by {gap:.3f} > cost {gap - 0.05:.3f}: the loss must be 0 and y_star = y; got "
        f"{float(loss):.4f} and {y_star.tolist()}.")
    loss, _ = _call_hinge(structured_hinge_loss, unary, pairwise, y, gap + 0.1, "structured_hinge_loss when the margin fails")
    assert abs(float(loss) - 0.5) < 1e-9, (
        f"with cost = gap + 0.1 every one of the 5 labels is worth flipping, for 0.1 each: the loss is 0.5; got {float(loss):.4f}.")
    unary, pairwise = _chain(4, 3, 51)
    ys, scores = _enumerate(unary, pairwise)
    loss, _ = _call_hinge(structured_hinge_loss, unary, pairwise, ys[7], 0.0, "structured_hinge_loss with cost 0")
    assert_close(loss, scores.max() - scores[7], "with cost 0 the hinge loss is the perceptron loss max s(y') - s(y)",
                 rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- 9.4 the sticky chain
def _call_sticky(sticky_chain, K, T, c, what):
    out = sticky_chain(K, T, c)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"sticky_chain should return a pair (log_Z, expected_repeats); got {type(out).__name__}.")
    return _scalar(out[0], what + ": log_Z"), _scalar(out[1], what + ": expected_repeats")


def check_sticky_enumeration(sticky_chain):
    g = torch.Generator().manual_seed(check_seed(60))
    for K, T in [(2, 3), (3, 4), (4, 5), (5, 1), (2, 7)]:
        c = float(4 * torch.rand((), generator=g, dtype=DTYPE) - 2)
        ys = torch.tensor(list(itertools.product(range(K), repeat=T)))
        repeats = (ys[:, 1:] == ys[:, :-1]).sum(1).to(DTYPE)
        what = f"sticky_chain(K={K}, T={T}, c={c:.4f})"
        log_z, mean = _call_sticky(sticky_chain, K, T, c, what)
        assert_close(log_z, torch.logsumexp(c * repeats, 0), what + ": log Z (compared with an enumeration)",
                     rtol=1e-10, atol=1e-10)
        assert_close(mean, (torch.softmax(c * repeats, 0) * repeats).sum(), what + ": expected repeats (enumeration)",
                     rtol=1e-10, atol=1e-10)


def check_sticky_long_chain(sticky_chain):
    from ebm_teach.crf import chain_log_partition, chain_marginals

    g = torch.Generator().manual_seed(check_seed(61))
    K, T = 50, 200
    c = float(6 * torch.rand((), generator=g, dtype=DTYPE) - 3)
    unary, pairwise = torch.zeros(T, K, dtype=DTYPE), c * torch.eye(K, dtype=DTYPE)
    _, edge = chain_marginals(unary, pairwise)
    what = f"sticky_chain(K={K}, T={T}, c={c:.4f}) (50^200 sequences: compared with the forward algorithm)"
    log_z, mean = _call_sticky(sticky_chain, K, T, c, what)
    assert_close(log_z, chain_log_partition(unary, pairwise), what + ": log Z", rtol=1e-10, atol=1e-9)
    assert_close(mean, torch.diagonal(edge, dim1=1, dim2=2).sum(), what + ": expected repeats", rtol=1e-9, atol=1e-9)


def check_sticky_extreme_c(sticky_chain):
    K, T = 3, 10
    for c in (800.0, -800.0):
        what = f"sticky_chain(K={K}, T={T}, c={c})"
        log_z, mean = _call_sticky(sticky_chain, K, T, c, what)
        if not (bool(torch.isfinite(log_z)) and bool(torch.isfinite(mean))):
            raise AssertionError(f"{what} returned log Z = {float(log_z)}, expected repeats = {float(mean)}: exp(800) "
                                 "overflows. Write log(e^c + K - 1) with torch.logaddexp.")
        # log(e^c + K - 1) = max(c, log(K - 1)) + log1p(exp(-|c - log(K - 1)|)), computed here term by term
        a, b = c, math.log(K - 1)
        step = max(a, b) + math.log1p(math.exp(-abs(a - b)))
        assert_close(log_z, math.log(K) + (T - 1) * step, what + ": log Z", rtol=1e-12, atol=1e-9)
        assert_close(mean, (T - 1) / (1 + (K - 1) * math.exp(-c)) if c > 0 else (T - 1) * math.exp(c - step),
                     what + ": expected repeats", rtol=1e-9, atol=1e-12)


EXERCISES = [
    Exercise(
        id="9.1",
        name="chain_log_partition",
        checks=[
            Check("matches a sum over all K^T sequences for four chains", check_forward_brute_force, 2),
            Check("handles a chain of one position", check_forward_one_position, 0.5),
            Check("stays finite and right for scores of size 1000", check_forward_extreme_scores, 0.5),
        ],
    ),
    Exercise(
        id="9.2",
        name="viterbi",
        checks=[
            Check("returns the best enumerated sequence and its score for four chains", check_viterbi_brute_force, 2),
            Check("one position, and transitions that force a path", check_viterbi_edge_cases, 0.5),
            Check("stays right for scores of size 1000", check_viterbi_extreme_scores, 0.5),
        ],
    ),
    Exercise(
        id="9.3",
        name="structured_hinge_loss",
        checks=[
            Check("matches the enumerated max of s(y') + cost * Hamming - s(y); y_star attains it", check_hinge_brute_force, 3),
            Check("is 0 exactly when the margin holds, and the perceptron loss at cost 0", check_hinge_margin, 1),
        ],
    ),
    Exercise(
        id="9.4",
        name="sticky_chain",
        checks=[
            Check("log Z and the expected repeats match an enumeration for five small chains", check_sticky_enumeration, 1.5),
            Check("holds for a chain of 50^200 sequences (forward algorithm, forward-backward)", check_sticky_long_chain, 1),
            Check("stays finite and right for c = +-800", check_sticky_extreme_c, 0.5),
        ],
    ),
]
