"""Hidden checks for chapter 2's exercises (solutions/02_rbm_cd.py).

2.1 the free energy against -log sum_h exp(-E(v, h)) summed over every hidden state, and against an
    overflow-free max(a, 0) + log1p(exp(-|a|)) form for large weights.
2.2 the triangular Ising model as a Boltzmann machine (a derivation): for every state of periodic 3 x 3 and 4 x 4
    triangular lattices, beta E_Ising(s) - E_BM(x) must be one constant, K, with energies summed bond by bond
    (random beta, J, H).
2.3 the CD-1 gradient against a loop-by-loop float64 computation from the same uniforms, and its average over
    20,000 chains against the exact expected CD-1 gradient (a sum over every h_0 and v_1).
2.4 exact log Z against a brute-force sum over both layers, an RBM that only the smaller layer can enumerate,
    and weights large enough to overflow exp.
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


def _joint_neg_energy(W, b, c, vs, hs):
    """-E(v, h) = v^T W h + b^T v + c^T h for every pair: (len(vs), len(hs))."""
    return vs @ W @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]


# ----------------------------------------------------------------------------- 2.1 the free energy
def check_free_energy_enumeration(free_energy):
    for n_v, n_h, seed in [(4, 3, 0), (3, 5, 1), (6, 2, 2)]:
        W, b, c = _rbm(n_v, n_h, seed, scale=1.5)
        vs = _states(n_v)
        expected = -torch.logsumexp(_joint_neg_energy(W, b, c, vs, _states(n_h)), 1)
        out = as_float64(free_energy(vs.clone(), W.clone(), b.clone(), c.clone()), "free_energy(v, W, b, c)")
        where = f"free_energy for every v of an RBM with {n_v} visible and {n_h} hidden units"
        assert_shape(out, (len(vs),), where)
        assert_close(out, expected, where + " (compared with -log sum_h exp(-E(v, h)))", rtol=1e-9, atol=1e-9)


def check_free_energy_large_weights(free_energy):
    W, b, c = _rbm(8, 5, 3, scale=400.0)
    vs = _states(8)[::7]
    a = vs @ W + c
    expected = -(vs @ b) - (a.clamp(min=0) + torch.log1p(torch.exp(-a.abs()))).sum(1)
    out = as_float64(free_energy(vs, W, b, c), "free_energy with weights of size ~400")
    assert bool(torch.isfinite(out).all()), (
        f"free_energy returned inf/NaN for weights of size ~400: {out.tolist()[:4]}... log(1 + exp(a)) overflows; "
        "use F.softplus(a)."
    )
    assert_close(out, expected, "free_energy with weights of size ~400", rtol=1e-9, atol=1e-6)


# ----------------------------------------------------------------------------- 2.2 the Ising model as a BM
def _triangular_bonds(L: int):
    """The 3 L^2 bonds (i, j) of a periodic L x L triangular lattice: each site to its right, lower and
    lower-left neighbour (the other three of its six neighbours get it in return)."""
    return [(r * L + c, ((r + dr) % L) * L + (c + dc) % L)
            for r in range(L) for c in range(L) for dr, dc in [(0, 1), (1, 0), (1, -1)]]


def _energy_gap(beta, J, H, J_prime, b_prime, L):
    """beta E_Ising(s) - E_BM(x) over all 2^(L^2) states, both summed bond by bond: (2^(L^2),)."""
    xs = _states(L * L)
    s = 2 * xs - 1
    i, j = torch.tensor(_triangular_bonds(L)).T
    e_ising = -J * (s[:, i] * s[:, j]).sum(1) - H * s.sum(1)
    e_bm = -J_prime * (xs[:, i] * xs[:, j]).sum(1) - b_prime * xs.sum(1)
    return beta * e_ising - e_bm


def _call_mapping(fn, beta, J, H, L):
    out = fn(beta, J, H, L)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError(f"triangular_ising_as_boltzmann_machine should return a triple (J_prime, b_prime, K); "
                             f"got {type(out).__name__}.")
    values = []
    for t, name in zip(out, ("J_prime", "b_prime", "K")):
        t = as_float64(t, name)
        if t.numel() != 1:
            raise AssertionError(f"{name} should be one number; got shape {tuple(t.shape)}.")
        values.append(float(t.reshape(())))
    return values


def _mapping_cases():
    """(beta, J, H, L): random beta in (0.1, 1.6), J and H in (-1.5, 1.5), on 3 x 3 and 4 x 4 lattices."""
    g = torch.Generator().manual_seed(check_seed(30))
    cases = []
    for L in (3, 4, 3):
        beta, J, H = torch.empty(3, dtype=DTYPE).uniform_(-1.5, 1.5, generator=g).tolist()
        cases.append((round(abs(beta) + 0.1, 3), round(J, 3), round(H, 3), L))
    return cases


def check_mapping_by_enumeration(triangular_ising_as_boltzmann_machine):
    for beta, J, H, L in _mapping_cases():
        J_prime, b_prime, _ = _call_mapping(triangular_ising_as_boltzmann_machine, beta, J, H, L)
        gap = _energy_gap(beta, J, H, J_prime, b_prime, L)
        spread = float(gap.max() - gap.min())
        if spread > 1e-9:
            hint = ""
            if abs(J_prime - 4 * beta * J) < 1e-9:
                hint = " J' is right; count the bonds each site is part of when you collect the x_i terms."
                if abs(b_prime - (2 * beta * H - 8 * beta * J)) < 1e-9:
                    hint = " That is the square lattice's b'; on the triangular lattice each site has six bonds."
            elif abs(J_prime - 2 * beta * J) < 1e-9 or abs(J_prime - beta * J) < 1e-9:
                hint = " (2x_i - 1)(2x_j - 1) = 4 x_i x_j - 2 x_i - 2 x_j + 1: mind the factor 4."
            raise AssertionError(
                f"for beta = {beta}, J = {J}, H = {H} on a {L} x {L} lattice your (J', b') = ({J_prime:.6g}, "
                f"{b_prime:.6g}) do not give the Ising probabilities: over all {2 ** (L * L)} states, beta E_Ising - "
                f"E_BM varies by {spread:.4g} instead of being one constant.{hint}"
            )


def check_constant_by_enumeration(triangular_ising_as_boltzmann_machine):
    for beta, J, H, L in _mapping_cases():
        J_prime, b_prime, K = _call_mapping(triangular_ising_as_boltzmann_machine, beta, J, H, L)
        gap = _energy_gap(beta, J, H, J_prime, b_prime, L)
        if float(gap.max() - gap.min()) > 1e-9:
            raise AssertionError("J' and b' are not right yet (see the other check); the constant K comes after.")
        if abs(K + float(gap[0])) < 1e-9 * (1 + abs(K)) and abs(K) > 1e-9:
            raise AssertionError(f"K has the wrong sign (beta = {beta}, J = {J}, H = {H}, L = {L}): it is beta E_Ising "
                                 "minus E_BM.")
        assert_close(K, float(gap[0]), f"K for beta = {beta}, J = {J}, H = {H} on a {L} x {L} lattice (beta E_Ising - "
                     "E_BM, the same in every state)", rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- 2.3 the CD-1 gradient
def _cd1_by_loops(v0, W, b, c, u_h, u_v):
    """The CD-1 estimate written one unit at a time, in Python floats."""
    sig = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    n, n_v = v0.shape
    n_h = W.shape[1]
    dW = [[0.0] * n_h for _ in range(n_v)]
    db, dc = [0.0] * n_v, [0.0] * n_h
    for r in range(n):
        x0 = v0[r].tolist()
        p0 = [sig(c[j].item() + sum(x0[i] * W[i, j].item() for i in range(n_v))) for j in range(n_h)]
        h0 = [1.0 if u_h[r, j].item() < p0[j] else 0.0 for j in range(n_h)]
        x1 = [1.0 if u_v[r, i].item() < sig(b[i].item() + sum(W[i, j].item() * h0[j] for j in range(n_h))) else 0.0
              for i in range(n_v)]
        p1 = [sig(c[j].item() + sum(x1[i] * W[i, j].item() for i in range(n_v))) for j in range(n_h)]
        for i in range(n_v):
            db[i] += (x0[i] - x1[i]) / n
            for j in range(n_h):
                dW[i][j] += (x0[i] * p0[j] - x1[i] * p1[j]) / n
        for j in range(n_h):
            dc[j] += (p0[j] - p1[j]) / n
    return torch.tensor(dW, dtype=DTYPE), torch.tensor(db, dtype=DTYPE), torch.tensor(dc, dtype=DTYPE)


def _call_cd1(cd1_gradient, v0, W, b, c, u_h, u_v):
    out = cd1_gradient(v0.clone(), W.clone(), b.clone(), c.clone(), u_h.clone(), u_v.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError(f"cd1_gradient should return a triple (dW, db, dc); got {type(out).__name__}.")
    dW, db, dc = (as_float64(t, f"{name} from cd1_gradient") for t, name in zip(out, ("dW", "db", "dc")))
    assert_shape(dW, tuple(W.shape), "dW (the shape of W)")
    assert_shape(db, tuple(b.shape), "db (the shape of b)")
    assert_shape(dc, tuple(c.shape), "dc (the shape of c)")
    return dW, db, dc


def check_cd1_against_loops(cd1_gradient):
    for n, n_v, n_h, seed in [(7, 5, 3, 10), (1, 4, 4, 11), (12, 3, 6, 12)]:
        W, b, c = _rbm(n_v, n_h, seed, scale=1.2)
        g = torch.Generator().manual_seed(check_seed(seed + 100))
        v0 = (torch.rand(n, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
        u_h, u_v = torch.rand(n, n_h, generator=g, dtype=DTYPE), torch.rand(n, n_v, generator=g, dtype=DTYPE)
        got = _call_cd1(cd1_gradient, v0, W, b, c, u_h, u_v)
        ref = _cd1_by_loops(v0, W, b, c, u_h, u_v)
        where = f"for a batch of {n} with {n_v} visible and {n_h} hidden units (compared unit by unit)"
        for name, a, e in zip(("dW", "db", "dc"), got, ref):
            assert_close(a, e, f"{name} {where}", rtol=1e-9, atol=1e-12)


def check_cd1_expectation(cd1_gradient):
    # Averaged over the uniforms, CD-1 gives sum over h0, v1 of p(h0 | v0) p(v1 | h0) [...]: computed here by
    # enumeration. Each chain's v1 p1 term lies in [0, 1] (sd <= 1/2), so 5 sd / sqrt(n) bounds the error.
    W, b, c = _rbm(4, 3, 13, scale=1.5)
    data = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]], dtype=DTYPE)
    n = 20_000
    v0 = data.repeat_interleave(n // len(data), 0)
    g = torch.Generator().manual_seed(check_seed(14))
    got = _call_cd1(cd1_gradient, v0, W, b, c, torch.rand(n, 3, generator=g, dtype=DTYPE),
                    torch.rand(n, 4, generator=g, dtype=DTYPE))
    vs, hs = _states(4), _states(3)
    p0 = torch.sigmoid(data @ W + c)
    law_h0 = torch.exp(torch.log(p0) @ hs.T + torch.log1p(-p0) @ (1 - hs).T)  # (4 data, 8 h)
    pv = torch.sigmoid(hs @ W.T + b)
    law_v1 = law_h0 @ torch.exp(torch.log(pv) @ vs.T + torch.log1p(-pv) @ (1 - vs).T)  # (4 data, 16 v)
    q = law_v1.mean(0)
    p1 = torch.sigmoid(vs @ W + c)
    expected = (data.T @ p0 / len(data) - (vs * q[:, None]).T @ p1, data.mean(0) - q @ vs, p0.mean(0) - q @ p1)
    tol = 5 * 0.5 / math.sqrt(n)
    for name, a, e in zip(("dW", "db", "dc"), got, expected):
        if bool(((a - e).abs() > tol).any()):
            raise AssertionError(
                f"averaged over {n} chains, {name} = {[round(x, 3) for x in a.flatten().tolist()]} but the exact "
                f"expected CD-1 value is {[round(x, 3) for x in e.flatten().tolist()]} (tolerance {tol:.3f}). Check "
                "that h0 is sampled from p(h | v0), v1 from p(v | h0), and the statistics use p0 and p1."
            )


# ----------------------------------------------------------------------------- 2.4 exact log Z
def _log_z_brute(W, b, c):
    return float(torch.logsumexp(_joint_neg_energy(W, b, c, _states(W.shape[0]), _states(W.shape[1])).reshape(-1), 0))


def _log_z_over_h(W, b, c):
    """log sum_h exp(c^T h) prod_i (1 + exp(b_i + (W h)_i)), term by term with logaddexp."""
    total = -math.inf
    for h in _states(W.shape[1]):
        a = b + W @ h
        term = float(h @ c) + sum(max(x, 0.0) + math.log1p(math.exp(-abs(x))) for x in a.tolist())
        total = max(total, term) + math.log1p(math.exp(-abs(total - term))) if total > -math.inf else term
    return total


def _call_log_z(log_partition_exact, W, b, c, what):
    out = as_float64(log_partition_exact(W.clone(), b.clone(), c.clone()), what)
    assert_shape(out.reshape(()) if out.numel() == 1 else out, (), what + " (a single number)")
    return out.reshape(())


def check_log_z_brute_force(log_partition_exact):
    for n_v, n_h, seed in [(4, 3, 20), (3, 5, 21), (6, 6, 22), (1, 1, 23)]:
        W, b, c = _rbm(n_v, n_h, seed, scale=1.5)
        what = f"log_partition_exact for {n_v} visible and {n_h} hidden units"
        assert_close(_call_log_z(log_partition_exact, W, b, c, what), _log_z_brute(W, b, c),
                     what + " (compared with a sum over all (v, h))", rtol=1e-10, atol=1e-10)


def check_log_z_smaller_layer(log_partition_exact):
    for n_v, n_h in [(30, 10), (10, 30)]:
        W, b, c = _rbm(n_v, n_h, 24, scale=0.4)
        expected = _log_z_over_h(W, b, c) if n_h <= n_v else _log_z_over_h(W.T, c, b)
        what = f"log_partition_exact for {n_v} visible and {n_h} hidden units"
        assert_close(_call_log_z(log_partition_exact, W, b, c, what), expected, what, rtol=1e-10, atol=1e-10)


def check_log_z_large_weights(log_partition_exact):
    W, b, c = _rbm(5, 4, 25, scale=300.0)
    what = "log_partition_exact with weights of size ~300"
    out = _call_log_z(log_partition_exact, W, b, c, what)
    assert bool(torch.isfinite(out)), f"{what} returned {out.item()}: sum with torch.logsumexp and F.softplus."
    assert_close(out, _log_z_brute(W, b, c), what, rtol=1e-12, atol=1e-8)


EXERCISES = [
    Exercise(
        id="2.1",
        name="free_energy",
        checks=[
            Check("matches -log sum_h exp(-E(v, h)) for three RBMs", check_free_energy_enumeration, 2),
            Check("stays finite and right for weights of size ~400", check_free_energy_large_weights, 1),
        ],
    ),
    Exercise(
        id="2.2",
        name="triangular_ising_as_boltzmann_machine",
        checks=[
            Check("J', b' give the Ising probabilities on every state of 3 x 3 and 4 x 4 lattices",
                  check_mapping_by_enumeration, 2),
            Check("the constant K: beta E_Ising - E_BM in every state", check_constant_by_enumeration, 1),
        ],
    ),
    Exercise(
        id="2.3",
        name="cd1_gradient",
        checks=[
            Check("matches a unit-by-unit computation from the same uniforms", check_cd1_against_loops, 2),
            Check("averages to the exact expected CD-1 gradient over 20,000 chains", check_cd1_expectation, 2),
        ],
    ),
    Exercise(
        id="2.4",
        name="log_partition_exact",
        checks=[
            Check("matches a sum over all (v, h) for four tiny RBMs", check_log_z_brute_force, 2),
            Check("enumerates the smaller layer (30 x 10 and 10 x 30 units)", check_log_z_smaller_layer, 1),
            Check("stays finite and right for weights of size ~300", check_log_z_large_weights, 1),
        ],
    ),
]
