"""Hidden checks for chapter 7's exercises (solutions/07_jem.py).

7.1 E(x) = −logsumexp of logits against hand values, a float64 sum of exponentials in plain Python, the
    shift identity E(f + c) = E(f) − c, and huge logits (where exp overflows) against the exact max + log K.
7.2 the JEM loss against a plain-Python computation of its three terms, and its autograd gradient against
    the closed form: −onehot(y)/n for the data logits (the softmax terms cancel) and +softmax/m for the
    negatives' logits.
7.3 ECE against hand-worked cases (including a confidence on a bin edge) and a plain-Python loop over
    examples on random predictions.
7.4 the AUROC of Gaussian scores against a hand-worked case and against P(s_in > s_out) computed here by
    quadrature, integral of phi_in(s) Phi_out(s) ds, on random means and standard deviations.

Random inputs come from check_seed(k), so a secret grading seed changes them; every expected value is
computed from the inputs.
"""
from __future__ import annotations

import math

import torch

from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


def _gen(k: int) -> torch.Generator:
    """The generator for a check's k-th random input (moved by a secret grading seed, if one is set)."""
    return torch.Generator().manual_seed(check_seed(k))


def _random_logits(n, k, seed, scale=3.0):
    return torch.randn(n, k, generator=_gen(seed), dtype=DTYPE) * scale


def _py_logsumexp(row) -> float:
    m = max(row)
    return m + math.log(sum(math.exp(v - m) for v in row))


# ----------------------------------------------------------------------------- 7.1 the energy from logits
def _energy(energy_from_logits, logits, what):
    out = as_float64(energy_from_logits(logits), what)
    assert_shape(out, (logits.shape[0],), f"{what} (one energy per row)")
    return out


def check_energy_hand_values(energy_from_logits):
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0], [-2.0, 5.0]], dtype=DTYPE)
    expected = [-math.log(4.0), -(1.0 + math.log(2.0)), -_py_logsumexp([-2.0, 5.0])]
    assert_close(_energy(energy_from_logits, logits, "energy_from_logits on three rows"), expected,
                 "E(x) for logits (0, ln 3), (1, 1), (−2, 5)", rtol=1e-9, atol=1e-9)


def check_energy_random(energy_from_logits):
    logits = _random_logits(20, 7, seed=0)
    expected = [-_py_logsumexp(row) for row in logits.tolist()]
    assert_close(_energy(energy_from_logits, logits, "energy_from_logits on 20 rows of 7 logits"), expected,
                 "E(x) on random logits (compared with −log Σ exp in plain Python)", rtol=1e-9, atol=1e-9)


def check_energy_shift(energy_from_logits):
    logits = _random_logits(6, 4, seed=1)
    shift = torch.tensor([10.0, -3.0, 0.5, 100.0, -50.0, 2.0], dtype=DTYPE)
    base = _energy(energy_from_logits, logits, "energy_from_logits")
    moved = _energy(energy_from_logits, logits + shift[:, None], "energy_from_logits on shifted logits")
    assert_close(moved, base - shift, "E(f + c) (a shift c of every logit of a row must move E by exactly −c)",
                 rtol=1e-9, atol=1e-8)


def check_energy_no_overflow(energy_from_logits):
    logits = torch.tensor([[1000.0, 1000.0, 1000.0], [-1000.0, -1000.0, -1000.0], [800.0, 0.0, -800.0]], dtype=DTYPE)
    out = _energy(energy_from_logits, logits, "energy_from_logits on logits of size 1000")
    expected = [-(1000.0 + math.log(3.0)), 1000.0 - math.log(3.0), -800.0]
    if not bool(torch.isfinite(out).all()):
        raise AssertionError(
            f"energy_from_logits returned {out.tolist()} for logits of size ±1000: exp(1000) overflows. "
            "Subtract each row's largest logit before exponentiating (and add it back after the log)."
        )
    assert_close(out, expected, "E(x) for logits of size ±1000", rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------------------------- 7.2 the JEM loss
def _py_jem_loss(logits, y, logits_neg) -> float:
    rows, neg_rows = logits.tolist(), logits_neg.tolist()
    ce = sum(_py_logsumexp(r) - r[t] for r, t in zip(rows, y.tolist())) / len(rows)
    e_pos = sum(-_py_logsumexp(r) for r in rows) / len(rows)
    e_neg = sum(-_py_logsumexp(r) for r in neg_rows) / len(neg_rows)
    return ce + e_pos - e_neg


def _loss(jem_loss, logits, y, logits_neg, what):
    out = jem_loss(logits, y, logits_neg)
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what} should return a tensor (autograd needs one); got {type(out).__name__}.")
    assert_shape(out, (), f"{what} (a single number: the batch's loss)")
    return out


def check_loss_hand_value(jem_loss):
    out = _loss(jem_loss, torch.tensor([[0.0, math.log(3.0)]], dtype=DTYPE), torch.tensor([1]),
                torch.tensor([[0.0, 0.0]], dtype=DTYPE), "jem_loss")
    assert_close(out.detach(), -math.log(1.5), "jem_loss for the self-check's batch (−ln(3/4) − ln 4 + ln 2)",
                 rtol=1e-9, atol=1e-9)


def check_loss_random_batches(jem_loss):
    for seed, (n, m, k) in enumerate([(5, 5, 3), (8, 3, 10), (2, 9, 4)]):
        logits, logits_neg = _random_logits(n, k, 10 + seed), _random_logits(m, k, 20 + seed)
        y = torch.randint(0, k, (n,), generator=_gen(30 + seed))
        out = _loss(jem_loss, logits, y, logits_neg, "jem_loss")
        where = (f"jem_loss for {n} data points and {m} negatives with {k} classes (each term is a mean over "
                 "its own batch)")
        assert_close(out.detach(), _py_jem_loss(logits, y, logits_neg), where, rtol=1e-9, atol=1e-9)


def check_loss_gradient(jem_loss):
    n, m, k = 6, 4, 5
    logits = _random_logits(n, k, 40).requires_grad_(True)
    logits_neg = _random_logits(m, k, 41).requires_grad_(True)
    y = torch.randint(0, k, (n,), generator=_gen(42))
    out = _loss(jem_loss, logits, y, logits_neg, "jem_loss")
    if not out.requires_grad:
        raise AssertionError("jem_loss's result does not depend on the logits through autograd; keep it a torch "
                             "computation (no .item(), float() or numpy inside).")
    grad, grad_neg = torch.autograd.grad(out, (logits, logits_neg), allow_unused=True)
    if grad is None or grad_neg is None:
        raise AssertionError("jem_loss should depend on both the data logits and the negatives' logits.")
    # CE + E(x) = −f(x)[y] per example: its gradient is −onehot/n; −E(x−) gives +softmax(f(x−))/m.
    onehot = torch.nn.functional.one_hot(y, k).to(DTYPE)
    assert_close(grad, -onehot / n, "the gradient of jem_loss for the data logits (it should be −onehot(y)/n: "
                 "the softmax of the cross-entropy cancels against E(x))", rtol=1e-8, atol=1e-10)
    assert_close(grad_neg, torch.softmax(logits_neg.detach(), 1) / m,
                 "the gradient of jem_loss for the negatives' logits (softmax/m)", rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- 7.3 ECE
def _py_ece(probs, y, n_bins) -> float:
    sums = [[0, 0.0, 0.0] for _ in range(n_bins)]  # count, confidence, correct
    for row, label in zip(probs.tolist(), y.tolist()):
        conf = max(row)
        pred = row.index(conf)
        b = min(max(math.ceil(conf * n_bins) - 1, 0), n_bins - 1)
        sums[b][0] += 1
        sums[b][1] += conf
        sums[b][2] += float(pred == label)
    n = len(y)
    return sum(c / n * abs(k / c - s / c) for c, s, k in sums if c)


def _ece(expected_calibration_error, probs, y, n_bins, what):
    out = as_float64(expected_calibration_error(probs, y, n_bins), what)
    assert_shape(out, (), f"{what} (a single number)")
    return out


def check_ece_hand_values(expected_calibration_error):
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3]], dtype=DTYPE)
    y = torch.tensor([0, 1, 1, 0])
    assert_close(_ece(expected_calibration_error, probs, y, 2, "expected_calibration_error(..., n_bins=2)"), 0.225,
                 "ECE with 2 bins for confidences 0.9, 0.8, 0.6 (right, wrong, right) and 0.4 (right): "
                 "3/4·|2/3 − 2.3/3| + 1/4·|1 − 0.4|", rtol=1e-9, atol=1e-9)
    assert_close(_ece(expected_calibration_error, torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=DTYPE),
                      torch.tensor([1, 1]), 1, "expected_calibration_error(..., n_bins=1)"), 0.3,
                 "ECE with a single bin: |mean accuracy − mean confidence| = |0.5 − 0.8|", rtol=1e-9, atol=1e-9)


def check_ece_bin_edges(expected_calibration_error):
    # Confidence 0.5 belongs to (0, 0.5] when M = 2: with 0.5 (right) and 0.75 (wrong) in separate bins
    # ECE = 1/2·|1 − 0.5| + 1/2·|0 − 0.75| = 0.625; putting 0.5 in the upper bin would give 0.375.
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=DTYPE)
    got = _ece(expected_calibration_error, probs, torch.tensor([0, 0]), 2, "expected_calibration_error(..., n_bins=2)")
    if abs(float(got) - 0.375) < 1e-9:
        raise AssertionError("a confidence of exactly 0.5 went into the bin (0.5, 1]; bins include their right end, "
                             "so it belongs to (0, 0.5].")
    assert_close(got, 0.625, "ECE with 2 bins for confidences 0.5 (right) and 0.75 (wrong)", rtol=1e-9, atol=1e-9)


def check_ece_random(expected_calibration_error):
    for seed, (n, k, n_bins) in enumerate([(200, 3, 15), (57, 10, 10), (300, 2, 5)]):
        probs = torch.softmax(_random_logits(n, k, 50 + seed, scale=2.0), dim=1)
        y = torch.randint(0, k, (n,), generator=_gen(60 + seed))
        got = _ece(expected_calibration_error, probs, y, n_bins, "expected_calibration_error")
        assert_close(got, _py_ece(probs, y, n_bins), f"ECE of {n} random predictions over {k} classes with "
                     f"{n_bins} bins (compared with a loop over the examples)", rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- 7.4 the AUROC of Gaussian scores
def _quadrature_auroc(mu_in, sd_in, mu_out, sd_out, n=400_001) -> float:
    """P(s_in > s_out) = integral of phi_in(s) * Phi_out(s) ds, by the trapezoid rule over +-12 sd_in."""
    s = torch.linspace(mu_in - 12 * sd_in, mu_in + 12 * sd_in, n, dtype=DTYPE)
    density_in = torch.exp(-0.5 * ((s - mu_in) / sd_in) ** 2) / (sd_in * math.sqrt(2 * math.pi))
    cdf_out = 0.5 * torch.erfc(-(s - mu_out) / (sd_out * math.sqrt(2)))
    return float(torch.trapezoid(density_in * cdf_out, s))


def _gaussian(gaussian_auroc, mu_in, sd_in, mu_out, sd_out):
    what = f"gaussian_auroc({mu_in:g}, {sd_in:g}, {mu_out:g}, {sd_out:g})"
    out = as_float64(gaussian_auroc(mu_in, sd_in, mu_out, sd_out), what)
    assert_shape(out, (), f"{what} (a single number)")
    return float(out), what


def check_gaussian_auroc_hand_value(gaussian_auroc):
    # s_in - s_out ~ N(sqrt 2, 2) when the means differ by sqrt 2 and both sds are 1: AUROC = Phi(1).
    got, what = _gaussian(gaussian_auroc, math.sqrt(2), 1.0, 0.0, 1.0)
    want = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    if abs(got - (1 - want)) < 1e-6:
        raise AssertionError(f"{what} gave 1 - Phi(1) = {got:.6f}: the sign is flipped. A higher in-distribution "
                             "mean must give an AUROC above 0.5.")
    assert_close(got, want, f"{what} (the difference of the scores is N(sqrt 2, 2): Phi(1))", rtol=1e-9, atol=1e-9)


def check_gaussian_auroc_against_quadrature(gaussian_auroc):
    g = _gen(80)
    for _ in range(6):
        mu_in, mu_out = (float(v) for v in torch.randn(2, generator=g, dtype=DTYPE) * 2)
        sd_in, sd_out = (float(v) for v in 0.3 + 2.5 * torch.rand(2, generator=g, dtype=DTYPE))
        want = _quadrature_auroc(mu_in, sd_in, mu_out, sd_out)
        got, what = _gaussian(gaussian_auroc, mu_in, sd_in, mu_out, sd_out)
        if abs(got - want) > 1e-6:
            raise AssertionError(
                f"{what} should be P(s_in > s_out) = {want:.6f} (by quadrature); got {got:.6f}. The difference "
                "s_in - s_out is Gaussian: what are its mean and its variance (both scores vary)?"
            )


EXERCISES = [
    Exercise(
        id="7.1",
        name="energy_from_logits",
        checks=[
            Check("E(x) for three hand-worked rows of logits", check_energy_hand_values, 1),
            Check("matches −log Σ exp on random logits", check_energy_random, 0.5),
            Check("shifting a row's logits by c moves E by −c", check_energy_shift, 0.5),
            Check("stays finite and exact for logits of size 1000", check_energy_no_overflow, 1),
        ],
    ),
    Exercise(
        id="7.2",
        name="jem_loss",
        checks=[
            Check("the self-check's batch, −ln 1.5", check_loss_hand_value, 1),
            Check("matches the three terms on random batches of different sizes", check_loss_random_batches, 1.5),
            Check("its gradient is −onehot/n for the data and softmax/m for the negatives", check_loss_gradient, 1.5),
        ],
    ),
    Exercise(
        id="7.3",
        name="expected_calibration_error",
        checks=[
            Check("two hand-worked cases (2 bins and 1 bin)", check_ece_hand_values, 1.5),
            Check("bins include their right end", check_ece_bin_edges, 1),
            Check("matches a loop over the examples on random predictions", check_ece_random, 1.5),
        ],
    ),
    Exercise(
        id="7.4",
        name="gaussian_auroc",
        checks=[
            Check("the hand-worked case Phi(1)", check_gaussian_auroc_hand_value, 1),
            Check("matches P(s_in > s_out) by quadrature for random means and spreads",
                  check_gaussian_auroc_against_quadrature, 2),
        ],
    ),
]
