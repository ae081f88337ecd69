"""Hidden checks for chapter 11's exercises (solutions/11_mnist_rbm.py).

11.1 exact samples: the counts of 60,000 joint states (v, h) of a 4 x 3 RBM against the enumerated p(v, h)
     (a chi-square test at p = 1e-6), the mean of v and h of a 12 x 6 RBM with strong weights against their
     enumerated expectations (5 standard errors), and reproducibility from the generator.
11.2 reverse AIS: against a unit-by-unit computation in Python floats from the same uniforms; the weights of
     40,000 chains started at exact samples (drawn here by enumeration) average to Z_A / Z (5 standard errors);
     finite and right for weights in the hundreds.
11.3 the Jeffreys divergence between the forward and reverse path distributions: against its exact value from
     every path of a 4 x 2 RBM (three temperatures, and one), estimated from 100,000 forward and reverse
     chains of the package's AIS (5 standard errors).
Random inputs come from check_seed(k), so a secret grading seed changes them.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


def _states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=DTYPE)


def _rbm(n_v: int, n_h: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(check_seed(seed))
    return (scale * torch.randn(n_v, n_h, generator=g, dtype=DTYPE), torch.randn(n_v, generator=g, dtype=DTYPE),
            torch.randn(n_h, generator=g, dtype=DTYPE))


def _log_joint(W, b, c):
    """log p(v, h) for every pair, (2^n_v, 2^n_h), from the energy, normalised over both layers."""
    vs, hs = _states(W.shape[0]), _states(W.shape[1])
    neg_e = vs @ W @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]
    return neg_e - torch.logsumexp(neg_e.reshape(-1), 0)


def _index(x: torch.Tensor) -> torch.Tensor:
    """Row index of each binary row in _states order (first unit most significant)."""
    n = x.shape[1]
    return (x @ (2.0 ** torch.arange(n - 1, -1, -1, dtype=DTYPE))).long()


def _chi_square_critical(df: int, z: float = 4.75) -> float:
    """The chi-square quantile at 1 - 1e-6 (z = 4.75), by the Wilson-Hilferty approximation."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _samples(fn, W, b, c, n, seed):
    out = fn(W, b, c, n, torch.Generator().manual_seed(seed))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError("rbm_exact_samples should return a pair (v, h).")
    v, h = as_float64(out[0], "v"), as_float64(out[1], "h")
    assert_shape(v, (n, W.shape[0]), "v")
    assert_shape(h, (n, W.shape[1]), "h")
    if not bool(((v == 0) | (v == 1)).all() and ((h == 0) | (h == 1)).all()):
        raise AssertionError("v and h should hold only 0 and 1.")
    return v, h


# ----------------------------------------------------------------------------- 11.1 exact samples
def check_samples_joint(rbm_exact_samples):
    W, b, c = _rbm(4, 3, 1, scale=1.5)
    n = 60_000
    v, h = _samples(rbm_exact_samples, W, b, c, n, check_seed(2))
    p = torch.exp(_log_joint(W, b, c)).reshape(-1)
    counts = torch.bincount(_index(v) * 8 + _index(h), minlength=len(p)).to(DTYPE)
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    critical = _chi_square_critical(len(p) - 1)
    if chi2 > critical:
        worst = int(((counts - n * p).abs() / (n * p).sqrt()).argmax())
        raise AssertionError(
            f"the frequencies of the {len(p)} joint states (v, h) do not follow p(v, h) of a 4 x 3 RBM: chi-square "
            f"{chi2:.0f}, above the 1e-6 critical value {critical:.0f}. The worst state is seen {int(counts[worst])} "
            f"times where {float(n * p[worst]):.0f} are expected. Check log p(h) = c^T h + sum_i softplus(b_i + (W h)_i) "
            "and v ~ sigma(b + W h).")


def check_samples_means(rbm_exact_samples):
    W, b, c = _rbm(12, 6, 3, scale=2.0)
    n = 40_000
    v, h = _samples(rbm_exact_samples, W, b, c, n, check_seed(4))
    log_joint = _log_joint(W, b, c)
    p_v, p_h = torch.exp(torch.logsumexp(log_joint, 1)), torch.exp(torch.logsumexp(log_joint, 0))
    for name, x, states, p in [("v", v, _states(12), p_v), ("h", h, _states(6), p_h)]:
        mean = p @ states
        se = (mean * (1 - mean) / n).sqrt().clamp(min=1e-4)
        bad = ((x.mean(0) - mean).abs() > 5 * se).nonzero()
        if len(bad):
            i = int(bad[0])
            raise AssertionError(
                f"on a 12 x 6 RBM with strong weights, unit {name}_{i} is on in {float(x.mean(0)[i]):.4f} of "
                f"{n} samples; its exact probability is {float(mean[i]):.4f} (5 standard errors: "
                f"{5 * float(se[i]):.4f}).")


def check_samples_use_the_generator(rbm_exact_samples):
    W, b, c = _rbm(6, 4, 5)
    first = _samples(rbm_exact_samples, W, b, c, 50, check_seed(6))
    again = _samples(rbm_exact_samples, W, b, c, 50, check_seed(6))
    if not (torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])):
        raise AssertionError("two calls with generators seeded alike gave different samples: draw every random "
                             "number with generator=generator.")


# ----------------------------------------------------------------------------- 11.2 reverse AIS
def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _reverse_by_loops(W, b, c, b_A, betas, v_K, u_h, u_v):
    """Reverse AIS written unit by unit in Python floats."""
    n_v, n_h = W.shape
    Wl, bl, cl, bAl = W.tolist(), b.tolist(), c.tolist(), b_A.tolist()
    K = len(betas) - 1

    def log_p_star(v, beta):
        out = sum(((1 - beta) * bAl[i] + beta * bl[i]) * v[i] for i in range(n_v))
        return out + sum(_softplus(beta * (cl[j] + sum(v[i] * Wl[i][j] for i in range(n_v)))) for j in range(n_h))

    result = []
    for m, v in enumerate(v_K.tolist()):
        log_r = 0.0
        for k in range(K, 0, -1):
            log_r += log_p_star(v, betas[k - 1]) - log_p_star(v, betas[k])
            if k > 1:
                beta, t = betas[k - 1], K - k
                h = [1.0 if float(u_h[t, m, j]) < _sigmoid(beta * (cl[j] + sum(v[i] * Wl[i][j] for i in range(n_v))))
                     else 0.0 for j in range(n_h)]
                v = [1.0 if float(u_v[t, m, i]) < _sigmoid((1 - beta) * bAl[i] + beta * (bl[i] + sum(
                    Wl[i][j] * h[j] for j in range(n_h)))) else 0.0 for i in range(n_v)]
        result.append(log_r)
    return torch.tensor(result, dtype=DTYPE)


def _inputs(n_v, n_h, M, K, seed, scale=1.0):
    W, b, c = _rbm(n_v, n_h, seed, scale)
    g = torch.Generator().manual_seed(check_seed(seed + 1))
    b_A = 0.5 * torch.randn(n_v, generator=g, dtype=DTYPE)
    v_K = (torch.rand(M, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    betas = sorted(torch.rand(K - 1, generator=g, dtype=DTYPE).tolist())
    betas = [0.0] + betas + [1.0]
    u_h = torch.rand(K - 1, M, n_h, generator=g, dtype=DTYPE)
    u_v = torch.rand(K - 1, M, n_v, generator=g, dtype=DTYPE)
    return W, b, c, b_A, betas, v_K, u_h, u_v


def check_reverse_against_loops(reverse_ais_log_weights):
    for n_v, n_h, M, K, seed in [(4, 3, 5, 4, 10), (6, 2, 3, 2, 11)]:
        args = _inputs(n_v, n_h, M, K, seed, scale=1.5)
        expected = _reverse_by_loops(*args)
        got = reverse_ais_log_weights(*(x.clone() if isinstance(x, torch.Tensor) else list(x) for x in args))
        assert_close(got, expected, f"reverse_ais_log_weights on a {n_v} x {n_h} RBM, {M} chains, K = {K}",
                     rtol=1e-9, atol=1e-9)


def check_reverse_unbiased(reverse_ais_log_weights):
    W, b, c = _rbm(5, 3, 12, scale=1.5)
    g = torch.Generator().manual_seed(check_seed(13))
    b_A = 0.5 * torch.randn(5, generator=g, dtype=DTYPE)
    betas = [0.0, 0.4, 0.8, 1.0]
    M = 40_000
    log_joint = _log_joint(W, b, c)
    p_v = torch.exp(torch.logsumexp(log_joint, 1))
    v_K = _states(5)[torch.multinomial(p_v, M, replacement=True, generator=g)]  # exact samples of the RBM
    u_h, u_v = torch.rand(2, M, 3, generator=g, dtype=DTYPE), torch.rand(2, M, 5, generator=g, dtype=DTYPE)
    log_r = as_float64(reverse_ais_log_weights(W, b, c, b_A, betas, v_K, u_h, u_v), "log r")
    assert_shape(log_r, (M,), "log r")
    vs, hs = _states(5), _states(3)
    log_z = float(torch.logsumexp((vs @ W @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]).reshape(-1), 0))
    log_z_A = float(F.softplus(b_A).sum()) + 3 * math.log(2)
    ratio = torch.exp(log_r + log_z - log_z_A)  # r Z / Z_A: mean 1 when r is unbiased for Z_A / Z
    se = float(ratio.std()) / math.sqrt(M)
    if not abs(float(ratio.mean()) - 1.0) < 5 * se + 1e-12:
        raise AssertionError(
            f"started at 40,000 exact samples of a 5 x 3 RBM, the weights r should average to Z_A / Z: their mean "
            f"times Z / Z_A is {float(ratio.mean()):.4f}, not 1 (5 standard errors: {5 * se:.4f}). Check the sign "
            "of the increments and that the Gibbs step from v_k uses beta_(k-1).")


def check_reverse_large_weights(reverse_ais_log_weights):
    args = list(_inputs(5, 3, 4, 3, 14, scale=150.0))
    got = as_float64(reverse_ais_log_weights(*args), "log r for weights of size ~150")
    expected = _reverse_by_loops(*args)
    if not bool(torch.isfinite(got).all()):
        raise AssertionError(f"with weights of size ~150 some log-weights are NaN/inf: {got.tolist()}. Use "
                             "F.softplus instead of log(1 + exp(...)).")
    assert_close(got, expected, "log r for weights of size ~150", rtol=1e-9, atol=1e-6)


# ----------------------------------------------------------------------------- 11.3 the Jeffreys divergence
def _gibbs_matrix(W, b, c, b_A, beta):
    """T_beta(v, v') = sum_h p_beta(h | v) p_beta(v' | h), enumerated."""
    vs, hs = _states(W.shape[0]), _states(W.shape[1])
    p_h = torch.sigmoid(beta * (vs @ W + c))
    p_h_given_v = torch.exp(torch.log(p_h) @ hs.T + torch.log1p(-p_h) @ (1 - hs).T)
    p_v = torch.sigmoid((1 - beta) * b_A + beta * (hs @ W.T + b))
    p_v_given_h = torch.exp(torch.log(p_v) @ vs.T + torch.log1p(-p_v) @ (1 - vs).T)
    return p_h_given_v @ p_v_given_h


def _exact_jeffreys(W, b, c, b_A, betas) -> float:
    """J = sum over every path (v_1..v_K) of (q - pi) log(q / pi), with q the forward and pi the reverse chain."""
    vs = _states(W.shape[0])
    p_0 = torch.exp(vs @ F.logsigmoid(b_A) + (1 - vs) @ F.logsigmoid(-b_A))
    p_K = torch.exp(torch.logsumexp(_log_joint(W, b, c), 1))
    T = [_gibbs_matrix(W, b, c, b_A, beta) for beta in betas[1:-1]]
    q, pi = p_0, torch.ones_like(p_0)
    for T_k in T:  # paths grow one state at a time: q (.., v_k, v_(k+1)), pi's reversed steps alike
        q = q[..., None] * T_k
        pi = pi[..., None] * T_k.T
    pi = pi * p_K  # p_K(v_K) on the last axis
    return float(((q - pi) * (torch.log(q) - torch.log(pi))).sum())


def _jeffreys_case(jeffreys_divergence, betas, seed, scale):
    from ebm_teach.evaluate import ais_log_partition, reverse_ais_log_partition
    from ebm_teach.rbm import BernoulliRBM

    W, b, c = _rbm(4, 2, seed, scale)
    g = torch.Generator().manual_seed(check_seed(seed + 1))
    b_A = 0.5 * torch.randn(4, generator=g, dtype=DTYPE)
    exact = _exact_jeffreys(W, b, c, b_A, betas)
    rbm = BernoulliRBM.from_arrays(W, b, c)
    n = 100_000
    log_w = ais_log_partition(rbm, n_chains=n, betas=betas, base=b_A, generator=g).log_weights
    p_v = torch.exp(torch.logsumexp(_log_joint(W, b, c), 1))
    v = _states(4)[torch.multinomial(p_v, n, replacement=True, generator=g)]
    log_r = reverse_ais_log_partition(rbm, v, betas=betas, base=b_A, generator=g).log_weights
    se = math.sqrt(float(log_w.var()) / n + float(log_r.var()) / n)
    got = as_float64(jeffreys_divergence(log_w.clone(), log_r.clone()), "jeffreys_divergence(log_w, log_r)")
    assert_shape(got, (), "jeffreys_divergence(log_w, log_r)")
    if not abs(float(got) - exact) < 5 * se + 1e-9:
        raise AssertionError(
            f"for a 4 x 2 RBM with {len(betas)} temperatures the path distributions, listed in full, have "
            f"J = {exact:.4f}; from 100,000 chains each way your estimate is {float(got):.4f} (5 standard errors: "
            f"{5 * se:.4f}). Take expectations of log w under q and of log r under pi.")


def check_jeffreys_three_temperatures(jeffreys_divergence):
    _jeffreys_case(jeffreys_divergence, [0.0, 0.5, 1.0], 20, 2.0)


def check_jeffreys_plain_importance_sampling(jeffreys_divergence):
    _jeffreys_case(jeffreys_divergence, [0.0, 1.0], 22, 1.5)


EXERCISES = [
    Exercise(
        id="11.1",
        name="rbm_exact_samples",
        checks=[
            Check("draws the joint states (v, h) of a 4 x 3 RBM with their probabilities", check_samples_joint, 1.5),
            Check("matches the exact unit means of a 12 x 6 RBM with strong weights", check_samples_means, 1),
            Check("draws its random numbers from the generator", check_samples_use_the_generator, 0.5),
        ],
    ),
    Exercise(
        id="11.2",
        name="reverse_ais_log_weights",
        checks=[
            Check("matches a unit-by-unit computation from the same uniforms", check_reverse_against_loops, 1.5),
            Check("its weights from exact samples are unbiased for Z_A / Z", check_reverse_unbiased, 1),
            Check("stays finite and right for weights of size ~150", check_reverse_large_weights, 0.5),
        ],
    ),
    Exercise(
        id="11.3",
        name="jeffreys_divergence",
        checks=[
            Check("equals J of a 4 x 2 RBM's paths, listed in full (3 temperatures)", check_jeffreys_three_temperatures, 1),
            Check("equals J with no Gibbs step (plain importance sampling both ways)", check_jeffreys_plain_importance_sampling, 1),
        ],
    ),
]
