"""Hidden checks for chapter 3's exercises (solutions/03_pcd_ais.py).

3.1 the PCD-k update against a unit-by-unit float64 computation from the same uniforms (M != n, k = 1 and 3),
    the chains continuing across two updates, the arguments left unchanged, and the update averaged over
    20,000 chains against its exact expectation (the k-step law of the chains by enumeration).
3.2 the AIS log-weight step against F_beta computed as -log sum_h exp(-E_beta(v, h)) over every hidden
    state, steps of 1e-5 near beta = 1 to float64 accuracy, and weights large enough to overflow exp.
3.3 the delta-method bias of log Z^ (a derivation): against -Var(w) / (2 M mean(w)^2) computed from the same
    log-weights in Python floats, unchanged when every log-weight is shifted by hundreds, and against a Monte
    Carlo experiment (log-normal weights, the mean of log Z^ over 200,000 estimates).
3.4 AIS as a whole against the enumerated log Z of an RBM with strong weights (within 0.12 nats, where its
    standard error is ~0.02 and plain importance sampling, AIS without the Gibbs steps, is off by far more),
    and the unbiasedness E[Z^] = Z for a two-step schedule (mean of 40,000 weights within 5 standard errors).
Random inputs come from check_seed(k), so a secret grading seed changes them.
"""
from __future__ import annotations

import itertools
import math

import torch

from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


def _states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=DTYPE)


def _rbm(n_v: int, n_h: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(check_seed(seed))
    return (scale * torch.randn(n_v, n_h, generator=g, dtype=DTYPE), scale * torch.randn(n_v, generator=g, dtype=DTYPE),
            scale * torch.randn(n_h, generator=g, dtype=DTYPE))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# ----------------------------------------------------------------------------- 3.1 the PCD update
def _pcd_by_loops(W, b, c, v_data, v_chains, u_h, u_v, eps):
    """The PCD-k update written unit by unit in Python floats."""
    n_v, n_h = W.shape
    Wl, bl, cl = W.tolist(), b.tolist(), c.tolist()
    data, chains = v_data.tolist(), v_chains.tolist()

    def p_h(v):
        return [_sigmoid(cl[j] + sum(v[i] * Wl[i][j] for i in range(n_v))) for j in range(n_h)]

    for t in range(u_h.shape[0]):
        for m, v in enumerate(chains):
            ph = p_h(v)
            h = [1.0 if u_h[t, m, j].item() < ph[j] else 0.0 for j in range(n_h)]
            chains[m] = [1.0 if u_v[t, m, i].item() < _sigmoid(bl[i] + sum(Wl[i][j] * h[j] for j in range(n_h)))
                         else 0.0 for i in range(n_v)]
    p0 = [p_h(v) for v in data]
    q = [p_h(v) for v in chains]
    n, M = len(data), len(chains)
    W_new = [[Wl[i][j] + eps * (sum(data[r][i] * p0[r][j] for r in range(n)) / n
                                - sum(chains[m][i] * q[m][j] for m in range(M)) / M) for j in range(n_h)]
             for i in range(n_v)]
    b_new = [bl[i] + eps * (sum(v[i] for v in data) / n - sum(v[i] for v in chains) / M) for i in range(n_v)]
    c_new = [cl[j] + eps * (sum(p[j] for p in p0) / n - sum(p[j] for p in q) / M) for j in range(n_h)]
    return (torch.tensor(W_new, dtype=DTYPE), torch.tensor(b_new, dtype=DTYPE), torch.tensor(c_new, dtype=DTYPE),
            torch.tensor(chains, dtype=DTYPE))


def _call_pcd(pcd_update, W, b, c, v_data, v_chains, u_h, u_v, eps):
    out = pcd_update(W.clone(), b.clone(), c.clone(), v_data.clone(), v_chains.clone(), u_h.clone(), u_v.clone(), eps)
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise AssertionError(
            f"pcd_update should return four things (W_new, b_new, c_new, v_chains_new); got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "") + "."
        )
    got = []
    for t, like, name in zip(out, (W, b, c, v_chains), ("W", "b", "c", "v_chains")):
        t = as_float64(t, f"{name}_new from pcd_update")
        assert_shape(t, tuple(like.shape), f"{name}_new (the shape of {name})")
        got.append(t)
    return got


def _pcd_case(n, M, n_v, n_h, k, seed):
    W, b, c = _rbm(n_v, n_h, seed, scale=1.2)
    g = torch.Generator().manual_seed(check_seed(seed + 100))
    v_data = (torch.rand(n, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    v_chains = (torch.rand(M, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    u_h, u_v = torch.rand(k, M, n_h, generator=g, dtype=DTYPE), torch.rand(k, M, n_v, generator=g, dtype=DTYPE)
    return W, b, c, v_data, v_chains, u_h, u_v


def check_pcd_against_loops(pcd_update):
    for n, M, n_v, n_h, k, seed in [(5, 7, 4, 3, 1, 30), (3, 2, 5, 2, 3, 31), (6, 6, 3, 4, 2, 32)]:
        case = _pcd_case(n, M, n_v, n_h, k, seed)
        got = _call_pcd(pcd_update, *case, 0.05)
        ref = _pcd_by_loops(*case, 0.05)
        where = (f"for {n} data rows, M = {M} chains, {n_v} visible and {n_h} hidden units and k = {k} "
                 "(compared unit by unit)")
        for name, a, e in zip(("v_chains_new", "W_new", "b_new", "c_new"), [got[3]] + got[:3], [ref[3]] + list(ref[:3])):
            if name == "v_chains_new" and not torch.equal(a, e):
                raise AssertionError(
                    f"v_chains_new {where} differs in {int((a != e).sum())} entries. The chains must start from "
                    "v_chains (not the data) and take k steps: h = [u_h[t] < sigma(c + v W)], then "
                    "v = [u_v[t] < sigma(b + h W^T)]."
                )
            assert_close(a, e, f"{name} {where}", rtol=1e-9, atol=1e-12)


def check_pcd_chains_persist(pcd_update):
    """Two updates in a row, the second starting from the chains the first returned, against the same by loops."""
    W, b, c, v_data, v_chains, u_h, u_v = _pcd_case(4, 5, 4, 3, 1, 33)
    g = torch.Generator().manual_seed(check_seed(34))
    u_h2, u_v2 = torch.rand(1, 5, 3, generator=g, dtype=DTYPE), torch.rand(1, 5, 4, generator=g, dtype=DTYPE)
    W1, b1, c1, ch1 = _call_pcd(pcd_update, W, b, c, v_data, v_chains, u_h, u_v, 0.1)
    got = _call_pcd(pcd_update, W1, b1, c1, v_data, ch1, u_h2, u_v2, 0.1)
    W1_ref, b1_ref, c1_ref, ch1_ref = _pcd_by_loops(W, b, c, v_data, v_chains, u_h, u_v, 0.1)
    ref = _pcd_by_loops(W1_ref, b1_ref, c1_ref, v_data, ch1_ref, u_h2, u_v2, 0.1)
    assert_close(got[3], ref[3], "the chains after two PCD updates (the second continuing the first's chains)")
    assert_close(got[0], ref[0], "W after two PCD updates", rtol=1e-9, atol=1e-12)


def check_pcd_leaves_arguments_alone(pcd_update):
    case = _pcd_case(3, 4, 4, 2, 2, 35)
    copies = [t.clone() for t in case]
    pcd_update(*case, 0.1)
    for name, before, after in zip(("W", "b", "c", "v_data", "v_chains", "u_h", "u_v"), copies, case):
        if not torch.equal(before, after):
            raise AssertionError(f"pcd_update changed its argument {name} in place; compute new tensors instead "
                                 "(e.g. W_new = W + step_size * dW, not W += ...).")


def check_pcd_expectation(pcd_update):
    # The update averaged over the uniforms: eps (positive - E[v q^T]), where the chains' law after k = 2 steps
    # is the start law times the enumerated 2-step transition matrix. Each chain's v_i q_j lies in [0, 1]
    # (sd <= 1/2), so 5 sd / sqrt(M) / ... bounds the Monte Carlo error of the mean over M chains.
    W, b, c = _rbm(3, 2, 36, scale=1.5)
    vs, hs = _states(3), _states(2)
    ph = torch.sigmoid(vs @ W + c)
    law_h = torch.exp(torch.log(ph) @ hs.T + torch.log1p(-ph) @ (1 - hs).T)  # p(h | v): (8 v, 4 h)
    pv = torch.sigmoid(hs @ W.T + b)
    law_v = torch.exp(torch.log(pv) @ vs.T + torch.log1p(-pv) @ (1 - vs).T)  # p(v' | h): (4 h, 8 v)
    T = law_h @ law_v  # one Gibbs step v -> v'
    start = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=DTYPE)
    M, k, eps = 20_000, 2, 1.0
    v_chains = start.repeat_interleave(M // 2, 0)
    idx = [int(round(sum(x * 2 ** (2 - i) for i, x in enumerate(row)))) for row in start.tolist()]
    law = (T @ T)[idx].mean(0)  # the chains' law after two steps, averaged over the two starts
    v_data = torch.tensor([[1.0, 1.0, 0.0]], dtype=DTYPE)
    g = torch.Generator().manual_seed(check_seed(37))
    got = _call_pcd(pcd_update, W, b, c, v_data, v_chains, torch.rand(k, M, 2, generator=g, dtype=DTYPE),
                    torch.rand(k, M, 3, generator=g, dtype=DTYPE), eps)
    p0 = torch.sigmoid(v_data @ W + c)
    q = torch.sigmoid(vs @ W + c)
    expected = (W + eps * (v_data.T @ p0 - (vs * law[:, None]).T @ q), b + eps * (v_data[0] - law @ vs),
                c + eps * (p0[0] - law @ q))
    tol = 5 * 0.5 / math.sqrt(M)
    for name, a, e in zip(("W_new", "b_new", "c_new"), got[:3], expected):
        if bool(((a - e).abs() > tol).any()):
            raise AssertionError(
                f"with {M} chains, {name} = {[round(x, 3) for x in a.flatten().tolist()]} but its exact expectation "
                f"is {[round(x, 3) for x in e.flatten().tolist()]} (tolerance {tol:.3f}). Check that the chains start "
                "at v_chains and take k Gibbs steps, and that the negative statistics average over the M chains."
            )


# ----------------------------------------------------------------------------- 3.2 the log-weight step
def _neg_free_energy_enumerated(v, W, b, c, b_A, beta):
    """-F_beta(v) = log sum_h exp((1 - beta) b_A^T v + beta (v^T W h + b^T v + c^T h)), over every h: (M,)."""
    hs = _states(W.shape[1])
    neg_energy = (((1 - beta) * b_A + beta * b) @ v.T)[:, None] + beta * (v @ W @ hs.T + (hs @ c)[None, :])
    return torch.logsumexp(neg_energy, 1)


def _call_step(step, log_w, v, W, b, c, b_A, beta_prev, beta, what):
    out = as_float64(step(log_w.clone(), v.clone(), W.clone(), b.clone(), c.clone(), b_A.clone(), beta_prev, beta), what)
    assert_shape(out, (v.shape[0],), what + " (one log-weight per chain)")
    return out


def check_step_enumeration(ais_log_weight_step):
    for n_v, n_h, seed, (beta_prev, beta) in [(4, 3, 40, (0.0, 0.1)), (5, 2, 41, (0.3, 0.7)), (3, 4, 42, (0.9, 1.0))]:
        W, b, c = _rbm(n_v, n_h, seed, scale=1.5)
        b_A = torch.randn(n_v, generator=torch.Generator().manual_seed(check_seed(seed + 100)), dtype=DTYPE)
        v = _states(n_v)
        log_w = torch.linspace(-1.0, 2.0, len(v), dtype=DTYPE)
        expected = (log_w + _neg_free_energy_enumerated(v, W, b, c, b_A, beta)
                    - _neg_free_energy_enumerated(v, W, b, c, b_A, beta_prev))
        what = f"ais_log_weight_step from beta = {beta_prev} to {beta} for every v of a {n_v} x {n_h} RBM"
        assert_close(_call_step(ais_log_weight_step, log_w, v, W, b, c, b_A, beta_prev, beta, what), expected,
                     what + " (compared with F_beta summed over every hidden state)", rtol=1e-10, atol=1e-10)


def check_step_small_steps_in_float64(ais_log_weight_step):
    # A step of 1e-5 changes -F by ~1e-4: float32 arithmetic would lose it to rounding (~1e-5 at F ~ 100).
    W, b, c = _rbm(20, 6, 43, scale=2.0)
    b_A = torch.zeros(20, dtype=DTYPE)
    v = (torch.rand(5, 20, generator=torch.Generator().manual_seed(check_seed(44)), dtype=DTYPE) < 0.5).to(DTYPE)
    beta_prev, beta = 1.0 - 1e-5, 1.0
    a = (v @ W + c).tolist()
    expected = [math.fsum([(beta - beta_prev) * float(v[m] @ (b - b_A))]
                          + [_softplus(beta * x) - _softplus(beta_prev * x) for x in a[m]]) for m in range(5)]
    what = "ais_log_weight_step for a step of 1e-5 at beta = 1"
    assert_close(_call_step(ais_log_weight_step, torch.zeros(5, dtype=DTYPE), v, W, b, c, b_A, beta_prev, beta, what),
                 torch.tensor(expected, dtype=DTYPE), what + " (keep everything in float64)", rtol=1e-6, atol=1e-11)


def check_step_large_weights(ais_log_weight_step):
    W, b, c = _rbm(6, 3, 46, scale=500.0)  # some c_j + (v^T W)_j exceed 1,000: exp overflows
    b_A = torch.zeros(6, dtype=DTYPE)
    v = _states(6)[::9]
    what = "ais_log_weight_step with weights of size ~500"
    out = _call_step(ais_log_weight_step, torch.zeros(len(v), dtype=DTYPE), v, W, b, c, b_A, 0.5, 1.0, what)
    if not bool(torch.isfinite(out).all()):
        raise AssertionError(f"{what} returned inf/NaN: {out.tolist()[:4]}... log(1 + exp(x)) overflows; use F.softplus.")
    expected = _neg_free_energy_enumerated(v, W, b, c, b_A, 1.0) - _neg_free_energy_enumerated(v, W, b, c, b_A, 0.5)
    assert_close(out, expected, what, rtol=1e-12, atol=1e-8)


# ----------------------------------------------------------------------------- 3.3 the bias of log Z^
def _call_bias(log_z_bias, log_w, n_chains, what):
    out = as_float64(log_z_bias(log_w.clone(), n_chains), what)
    if out.numel() != 1:
        raise AssertionError(f"{what} should return one number; got shape {tuple(out.shape)}.")
    return float(out.reshape(()))


def _bias_python(log_w, n_chains: int) -> float:
    """-Var(w) / (2 M mean(w)^2) with the population variance, in Python floats (weights scaled by their max)."""
    values = log_w.tolist()
    m = max(values)
    w = [math.exp(x - m) for x in values]
    mean = math.fsum(w) / len(w)
    var = math.fsum((x - mean) ** 2 for x in w) / len(w)
    return -var / (2 * n_chains * mean**2)


def check_bias_formula(log_z_bias):
    g = torch.Generator().manual_seed(check_seed(60))
    for n, M, scale in [(50, 10, 0.5), (400, 100, 1.5), (7, 3, 2.0)]:
        log_w = scale * torch.randn(n, generator=g, dtype=DTYPE)
        expected = _bias_python(log_w, M)
        got = _call_bias(log_z_bias, log_w, M, f"log_z_bias for {n} log-weights and M = {M}")
        if abs(got + expected) < 1e-9 * abs(expected) + 1e-15 and expected != 0:
            raise AssertionError(f"log_z_bias for {n} log-weights and M = {M} has the wrong sign: Jensen's "
                                 "inequality makes E[log Z^] lower than log Z, so the bias is negative.")
        assert_close(got, expected, f"log_z_bias for {n} log-weights and M = {M} (the delta method: "
                     "E[log Z^] - log Z ~ -Var(w) / (2 M E[w]^2))", rtol=1e-6, atol=1e-12)


def check_bias_large_log_weights(log_z_bias):
    g = torch.Generator().manual_seed(check_seed(61))
    log_w = 0.8 * torch.randn(200, generator=g, dtype=DTYPE)
    expected = _bias_python(log_w, 20)
    for shift in (800.0, -800.0):
        got = _call_bias(log_z_bias, log_w + shift, 20, f"log_z_bias for log-weights shifted by {shift:g}")
        assert_close(got, expected, f"log_z_bias for log-weights near {shift:g} (exp over- or underflows there: "
                     "scale the weights by their maximum first)", rtol=1e-6, atol=1e-12)


def check_bias_against_monte_carlo(log_z_bias):
    # Log-normal weights, log w ~ N(0, s^2): E[w] = exp(s^2 / 2). The truth, E[log mean of M weights] - log E[w],
    # is measured over 200,000 estimates (its standard error ~1e-4); the delta method is accurate to a few percent
    # here, so 20 % separates a right formula from one missing the 1/2, the 1/M or the sign.
    g = torch.Generator().manual_seed(check_seed(62))
    s, M = 0.3, 10
    weights_log = s * torch.randn(200_000, M, generator=g, dtype=DTYPE)
    truth = float((torch.logsumexp(weights_log, 1) - math.log(M)).mean()) - s**2 / 2
    sample = s * torch.randn(400_000, generator=g, dtype=DTYPE)
    got = _call_bias(log_z_bias, sample, M, "log_z_bias on log-normal weights")
    if not abs(got - truth) < 0.2 * abs(truth):
        raise AssertionError(
            f"for weights with log w ~ N(0, {s}^2) and M = {M}, E[log Z^] - log Z measured over 200,000 estimates "
            f"is {truth:.5f}; your formula predicts {got:.5f}. Expand log(mean w) to second order around E[w]."
        )


# ----------------------------------------------------------------------------- 3.4 AIS
def _lme_python(values) -> float:
    """log((1/n) sum_i exp(x_i)) in Python floats (math.fsum), -inf entries contributing nothing."""
    finite = [x for x in values if x != -math.inf]
    m = max(finite)
    return m + math.log(math.fsum(math.exp(x - m) for x in finite) / len(values))


def _log_z_brute(W, b, c) -> float:
    vs, hs = _states(W.shape[0]), _states(W.shape[1])
    return float(torch.logsumexp((vs @ W @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]).reshape(-1), 0))


def _call_ais(ais_log_z, W, b, c, b_A, betas, n_chains, seed, what):
    out = ais_log_z(W.clone(), b.clone(), c.clone(), b_A.clone(), list(betas), n_chains,
                    torch.Generator().manual_seed(check_seed(seed)))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"ais_log_z should return (log_z_hat, log_w); got {type(out).__name__}.")
    log_z = as_float64(out[0], what + ": log_z_hat").reshape(-1)
    log_w = as_float64(out[1], what + ": log_w")
    assert_shape(log_z, (1,), what + ": log_z_hat (a single number)")
    assert_shape(log_w, (n_chains,), what + ": log_w (one log-weight per chain)")
    return float(log_z[0]), log_w


def check_ais_accuracy(ais_log_z):
    # 10 x 5 RBM with weights of scale 2, uniform base, 300 equally spaced betas, 200 chains: the reference
    # implementation's error here has sd ~0.02 nats, so 0.12 nats is ~6 of them; without the Gibbs steps (plain
    # importance sampling from the base) the error is typically 0.5 to several nats.
    W, b, c = _rbm(10, 5, 50, scale=2.0)
    b_A = torch.zeros(10, dtype=DTYPE)
    betas = [k / 300 for k in range(301)]
    what = "ais_log_z on a 10 x 5 RBM with 300 temperatures and 200 chains"
    log_z, log_w = _call_ais(ais_log_z, W, b, c, b_A, betas, 200, 51, what)
    exact = _log_z_brute(W, b, c)
    if not abs(log_z - exact) < 0.12:
        raise AssertionError(f"{what} gave log Z^ = {log_z:.4f}; the exact log Z (summed over every state) is "
                             f"{exact:.4f}, more than 0.12 nats away. Check the Gibbs step at each beta_k: "
                             "without it, AIS is plain importance sampling from the base.")
    base = sum(_softplus(x) for x in b_A.tolist()) + W.shape[1] * math.log(2)
    consistent = base + _lme_python(log_w.tolist())
    if not abs(log_z - consistent) < 1e-8:
        raise AssertionError(f"{what}: log_z_hat = {log_z:.6f} but log Z_A + log-mean-exp(log_w) = {consistent:.6f}; "
                             "return the estimate computed from the log-weights you return.")


def check_ais_unbiased(ais_log_z):
    # E[w] = Z / Z_A for any schedule: with betas (0, 0.5, 1) and 40,000 chains, the mean of w Z_A / Z must be
    # within 5 standard errors of 1. A wrong log Z_A (e.g. without n_h log 2) or a wrong path fails this.
    W, b, c = _rbm(5, 3, 52, scale=1.0)
    b_A = torch.tensor([0.5, -0.5, 1.0, 0.0, -1.0], dtype=DTYPE)
    what = "ais_log_z with betas (0, 0.5, 1) and 40,000 chains"
    _, log_w = _call_ais(ais_log_z, W, b, c, b_A, [0.0, 0.5, 1.0], 40_000, 53, what)
    log_z_A = sum(_softplus(x) for x in b_A.tolist()) + 3 * math.log(2)
    ratio = torch.exp(log_w + log_z_A - _log_z_brute(W, b, c))
    se = float(ratio.std()) / math.sqrt(len(ratio))
    if not abs(float(ratio.mean()) - 1.0) < 5 * se + 1e-12:
        raise AssertionError(
            f"{what}: the weights average to {float(ratio.mean()):.4f} Z / Z_A, not Z / Z_A (standard error "
            f"{se:.4f}). E[w] = Z / Z_A holds exactly: check the start at the base, the log-weight steps and the "
            "Gibbs step at beta_k (and log Z_A = sum softplus(b_A) + n_h log 2)."
        )


EXERCISES = [
    Exercise(
        id="3.1",
        name="pcd_update",
        checks=[
            Check("matches a unit-by-unit computation from the same uniforms", check_pcd_against_loops, 1.5),
            Check("a second update continues the chains the first returned", check_pcd_chains_persist, 0.5),
            Check("leaves its arguments unchanged", check_pcd_leaves_arguments_alone, 0.5),
            Check("averages to the exact expected update over 20,000 chains", check_pcd_expectation, 1.5),
        ],
    ),
    Exercise(
        id="3.2",
        name="ais_log_weight_step",
        checks=[
            Check("matches F_beta summed over every hidden state", check_step_enumeration, 1.5),
            Check("keeps steps of 1e-5 to float64 accuracy", check_step_small_steps_in_float64, 0.5),
            Check("stays finite and right for weights of size ~500", check_step_large_weights, 1),
        ],
    ),
    Exercise(
        id="3.3",
        name="log_z_bias",
        checks=[
            Check("is -Var(w) / (2 M mean(w)^2) from the given log-weights", check_bias_formula, 1.5),
            Check("works for log-weights near +-800", check_bias_large_log_weights, 0.5),
            Check("predicts the bias a Monte Carlo experiment measures", check_bias_against_monte_carlo, 1),
        ],
    ),
    Exercise(
        id="3.4",
        name="ais_log_z",
        checks=[
            Check("is within 0.1 nats of the enumerated log Z", check_ais_accuracy, 2),
            Check("its weights are unbiased for Z / Z_A (40,000 chains)", check_ais_unbiased, 2),
        ],
    ),
]
