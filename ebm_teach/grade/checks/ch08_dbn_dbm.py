"""Hidden checks for chapter 8's exercises (solutions/08_dbn_dbm.py).

8.1 mean field: with W2 = 0 the answer is the exact posterior (enumerated); after many rounds both fixed-point
    equations hold (residuals computed here); one round from the stated start, in the stated order, matches a
    unit-by-unit computation in Python floats.
8.2 exact log Z of a DBM by summing out v and h2 and enumerating h1: against a brute-force sum over every
    (v, h1, h2) of tiny DBMs, a DBM too large to brute-force (term by term over h1 in Python floats), and
    weights large enough to overflow exp.
8.3 the mean-field bound in closed form and its gradient in (mu1, mu2): the bound against the sum over every
    (h1, h2) of q(h) [-E(v, h) - log q(h)] at random q, with q(h = 1) of exactly 0 or 1, and on layers too wide to
    enumerate; the gradient against autograd of that enumerated sum, and zero at a mean-field fixed point found
    here by many rounds of the layer-wise updates.
Every random input is drawn from check_seed(k), so a secret grading seed changes them all.
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


def _gen(k: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_seed(k))


def _dbm(n_v: int, n1: int, n2: int, k: int, scale: float = 1.0):
    """Random parameters (W1, W2, b, c1, c2), N(0, scale^2), from check_seed(k)."""
    g = _gen(k)
    return tuple(scale * torch.randn(s, generator=g, dtype=DTYPE) for s in [(n_v, n1), (n1, n2), (n_v,), (n1,), (n2,)])


def _binary(n: int, d: int, k: int) -> torch.Tensor:
    return (torch.rand(n, d, generator=_gen(k), dtype=DTYPE) < 0.5).to(DTYPE)


def _neg_energy(W1, W2, b, c1, c2, v):
    """-E(v, h1, h2) for each row of v and every (h1, h2): (batch, 2^n1, 2^n2), from the definition."""
    h1s, h2s = _states(W1.shape[1]), _states(W2.shape[1])
    return ((v @ W1 @ h1s.T)[:, :, None] + (h1s @ W2 @ h2s.T)[None] + (v @ b)[:, None, None]
            + (h1s @ c1)[None, :, None] + (h2s @ c2)[None, None, :])


# ----------------------------------------------------------------------------- 8.1 mean field
def _call_mean_field(mean_field, v, W1, W2, c1, c2, n_iter, what):
    out = mean_field(v.clone(), W1.clone(), W2.clone(), c1.clone(), c2.clone(), n_iter)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"mean_field should return a pair (mu1, mu2); got {type(out).__name__}.")
    mu1, mu2 = as_float64(out[0], f"mu1 {what}"), as_float64(out[1], f"mu2 {what}")
    assert_shape(mu1, (len(v), W1.shape[1]), f"mu1 {what} (one row per row of v)")
    assert_shape(mu2, (len(v), W2.shape[1]), f"mu2 {what} (one row per row of v)")
    return mu1, mu2


def check_mean_field_exact_without_top_coupling(mean_field):
    W1, W2, b, c1, c2 = _dbm(5, 3, 4, 1, scale=1.5)
    W2 = torch.zeros_like(W2)
    v = _states(5)[::3]
    mu1, mu2 = _call_mean_field(mean_field, v, W1, W2, c1, c2, 3, "with W2 = 0")
    p = torch.softmax(_neg_energy(W1, W2, b, c1, c2, v).reshape(len(v), -1), 1).reshape(len(v), 8, 16)
    assert_close(mu1, p.sum(2) @ _states(3), "mu1 with W2 = 0 (the posterior factorises: compared with the "
                 "enumerated p(h1_j = 1 | v))", rtol=1e-9, atol=1e-12)
    assert_close(mu2, p.sum(1) @ _states(4), "mu2 with W2 = 0 (compared with the enumerated p(h2_k = 1 | v))",
                 rtol=1e-9, atol=1e-12)


def check_mean_field_fixed_point(mean_field):
    W1, W2, b, c1, c2 = _dbm(8, 6, 5, 2, scale=0.7)
    v = _binary(12, 8, 3)
    mu1, mu2 = _call_mean_field(mean_field, v, W1, W2, c1, c2, 200, "after 200 rounds")
    r1 = (mu1 - torch.sigmoid(c1 + v @ W1 + mu2 @ W2.T)).abs().max().item()
    r2 = (mu2 - torch.sigmoid(c2 + mu1 @ W2)).abs().max().item()
    if r1 > 1e-8 or r2 > 1e-8:
        raise AssertionError(
            f"after 200 rounds (mu1, mu2) should satisfy mu1 = sigmoid(c1 + v W1 + mu2 W2^T) and mu2 = sigmoid(c2 + "
            f"mu1 W2); the largest residuals are {r1:.2e} and {r2:.2e}. Check that mu1 hears both v (through W1) and "
            "mu2 (through W2^T), and that mu2 hears mu1 through W2."
        )


def _mean_field_by_loops(v, W1, W2, c1, c2, n_iter):
    sig = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    n_v, n1 = W1.shape
    n2 = W2.shape[1]
    rows1, rows2 = [], []
    for x in v.tolist():
        bottom = [c1[j].item() + sum(x[i] * W1[i, j].item() for i in range(n_v)) for j in range(n1)]
        m1 = [sig(bottom[j] + sum(x[i] * W1[i, j].item() for i in range(n_v))) for j in range(n1)]
        m2 = [sig(c2[k].item() + sum(m1[j] * W2[j, k].item() for j in range(n1))) for k in range(n2)]
        for _ in range(n_iter):
            m1 = [sig(bottom[j] + sum(W2[j, k].item() * m2[k] for k in range(n2))) for j in range(n1)]
            m2 = [sig(c2[k].item() + sum(m1[j] * W2[j, k].item() for j in range(n1))) for k in range(n2)]
        rows1.append(m1)
        rows2.append(m2)
    return torch.tensor(rows1, dtype=DTYPE), torch.tensor(rows2, dtype=DTYPE)


def check_mean_field_start_and_order(mean_field):
    W1, W2, b, c1, c2 = _dbm(5, 4, 3, 4, scale=2.0)
    v = _binary(4, 5, 5)
    for n_iter in (0, 1, 2):
        mu1, mu2 = _call_mean_field(mean_field, v, W1, W2, c1, c2, n_iter, f"with n_iter = {n_iter}")
        e1, e2 = _mean_field_by_loops(v, W1, W2, c1, c2, n_iter)
        where = (f"with n_iter = {n_iter} (compared unit by unit with the start mu1 = sigmoid(c1 + 2 v W1), "
                 "mu2 = sigmoid(c2 + mu1 W2), then rounds that update mu1 first and mu2 from the new mu1)")
        assert_close(mu1, e1, "mu1 " + where, rtol=1e-9, atol=1e-12)
        assert_close(mu2, e2, "mu2 " + where, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- 8.2 exact log Z
def _log_z_brute(W1, W2, b, c1, c2):
    ne = _neg_energy(W1, W2, b, c1, c2, _states(W1.shape[0]))
    return float(torch.logsumexp(ne.reshape(-1), 0))


def _log_z_by_loops(W1, W2, b, c1, c2):
    """logsumexp over h1 of c1^T h1 + sum_i softplus(b + W1 h1)_i + sum_k softplus(c2 + W2^T h1)_k, term by term."""
    def softplus(a):
        return max(a, 0.0) + math.log1p(math.exp(-abs(a)))

    terms = []
    for h in _states(W1.shape[1]):
        a = (b + W1 @ h).tolist()
        d = (c2 + h @ W2).tolist()
        terms.append(float(h @ c1) + sum(softplus(x) for x in a) + sum(softplus(x) for x in d))
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def _call_log_z(log_partition_dbm, params, what):
    out = as_float64(log_partition_dbm(*(p.clone() for p in params)), what)
    if out.numel() != 1:
        raise AssertionError(f"{what} should return a single number; got shape {tuple(out.shape)}.")
    return out.reshape(())


def check_log_z_brute_force(log_partition_dbm):
    for k, (n_v, n1, n2) in enumerate([(3, 4, 2), (4, 2, 5), (2, 5, 1), (1, 1, 1)]):
        params = _dbm(n_v, n1, n2, 10 + k, scale=1.5)
        what = f"log_partition_dbm for layers of {n_v}, {n1} and {n2} units"
        assert_close(_call_log_z(log_partition_dbm, params, what), _log_z_brute(*params),
                     what + " (compared with a sum over every (v, h1, h2))", rtol=1e-10, atol=1e-10)


def check_log_z_wide_layers(log_partition_dbm):
    params = _dbm(24, 8, 24, 14, scale=0.4)
    what = "log_partition_dbm for layers of 24, 8 and 24 units (2^56 joint states: only the sum over h1 is feasible)"
    assert_close(_call_log_z(log_partition_dbm, params, what), _log_z_by_loops(*params), what, rtol=1e-10, atol=1e-10)


def check_log_z_large_weights(log_partition_dbm):
    params = _dbm(4, 3, 3, 15, scale=300.0)
    what = "log_partition_dbm with weights of size ~300"
    out = _call_log_z(log_partition_dbm, params, what)
    assert bool(torch.isfinite(out)), f"{what} returned {out.item()}: sum with torch.logsumexp and F.softplus."
    assert_close(out, _log_z_brute(*params), what, rtol=1e-12, atol=1e-7)


# ----------------------------------------------------------------------------- 8.3 the mean-field bound
def _bound_by_enumeration(v, mu1, mu2, W1, W2, b, c1, c2):
    """sum over (h1, h2) of q(h) [-E(v, h) - log q(h)] with q factorial: (batch,)."""
    h1s, h2s = _states(W1.shape[1]), _states(W2.shape[1])
    log_q1 = (torch.special.xlogy(h1s, mu1[:, None]) + torch.special.xlogy(1 - h1s, 1 - mu1[:, None])).sum(2)
    log_q2 = (torch.special.xlogy(h2s, mu2[:, None]) + torch.special.xlogy(1 - h2s, 1 - mu2[:, None])).sum(2)
    log_q = log_q1[:, :, None] + log_q2[:, None, :]
    q = log_q.exp()
    inside = _neg_energy(W1, W2, b, c1, c2, v) - torch.where(q > 0, log_q, torch.zeros_like(log_q))
    return (q * inside).sum((1, 2))


def _call_bound(mean_field_bound, v, mu1, mu2, params, what):
    out = mean_field_bound(v.clone(), mu1.clone(), mu2.clone(), *(p.clone() for p in params))
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError(f"mean_field_bound should return three things, (L, dL_dmu1, dL_dmu2); got "
                             f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
                             + ".")
    bound = as_float64(out[0], what)
    assert_shape(bound, (len(v),), what + " (one bound per row of v)")
    grad1, grad2 = as_float64(out[1], "dL_dmu1 " + what), as_float64(out[2], "dL_dmu2 " + what)
    assert_shape(grad1, tuple(mu1.shape), "dL_dmu1 " + what + " (the shape of mu1)")
    assert_shape(grad2, tuple(mu2.shape), "dL_dmu2 " + what + " (the shape of mu2)")
    return bound, grad1, grad2


def check_bound_enumeration(mean_field_bound):
    for k, (n_v, n1, n2) in enumerate([(4, 3, 3), (3, 5, 2), (6, 2, 4)]):
        params = _dbm(n_v, n1, n2, 20 + k, scale=1.5)
        g = _gen(30 + k)
        v = (torch.rand(5, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
        mu1, mu2 = torch.rand(5, n1, generator=g, dtype=DTYPE), torch.rand(5, n2, generator=g, dtype=DTYPE)
        what = f"mean_field_bound for layers of {n_v}, {n1} and {n2} units at random q"
        assert_close(_call_bound(mean_field_bound, v, mu1, mu2, params, what)[0],
                     _bound_by_enumeration(v, mu1, mu2, *params),
                     what + " (compared with sum over every (h1, h2) of q(h) [-E(v, h) - log q(h)]; did you keep "
                     "E_q[h1^T W2 h2] and both entropies?)", rtol=1e-9, atol=1e-9)


def check_gradient(mean_field_bound):
    for k, (n_v, n1, n2) in enumerate([(4, 3, 3), (5, 2, 4)]):
        params = _dbm(n_v, n1, n2, 60 + k, scale=1.2)
        g = _gen(70 + k)
        v = (torch.rand(4, n_v, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
        mu1 = (0.05 + 0.9 * torch.rand(4, n1, generator=g, dtype=DTYPE)).requires_grad_(True)
        mu2 = (0.05 + 0.9 * torch.rand(4, n2, generator=g, dtype=DTYPE)).requires_grad_(True)
        want1, want2 = torch.autograd.grad(_bound_by_enumeration(v, mu1, mu2, *params).sum(), (mu1, mu2))
        what = f"for layers of {n_v}, {n1} and {n2} units at random q"
        _, got1, got2 = _call_bound(mean_field_bound, v, mu1.detach(), mu2.detach(), params, "mean_field_bound " + what)
        assert_close(got1, want1, "dL_dmu1 " + what + " (compared with the derivative of the enumerated bound: the "
                     "linear terms from E_q[-E], and the entropy's derivative)", rtol=1e-8, atol=1e-8)
        assert_close(got2, want2, "dL_dmu2 " + what + " (compared with the derivative of the enumerated bound)",
                     rtol=1e-8, atol=1e-8)
    W1, W2, b, c1, c2 = params = _dbm(6, 5, 4, 80, scale=0.6)
    v = _binary(3, 6, 81)
    mu1 = torch.sigmoid(c1 + 2 * v @ W1)
    mu2 = torch.sigmoid(c2 + mu1 @ W2)
    for _ in range(500):
        mu1 = torch.sigmoid(c1 + v @ W1 + mu2 @ W2.T)
        mu2 = torch.sigmoid(c2 + mu1 @ W2)
    _, got1, got2 = _call_bound(mean_field_bound, v, mu1, mu2, params, "mean_field_bound at a mean-field fixed point")
    largest = float(torch.cat([got1, got2], 1).abs().max())
    if largest > 1e-8:
        raise AssertionError(f"at a mean-field fixed point (mu1 = sigmoid(c1 + v W1 + mu2 W2^T), mu2 = sigmoid(c2 + "
                             f"mu1 W2)) the gradient of L should vanish; yours is as large as {largest:.3g}. Setting "
                             "dL_dmu1 = 0 should give exercise 8.1's update.")


def check_bound_at_the_edges(mean_field_bound):
    params = _dbm(4, 3, 2, 40, scale=1.0)
    g = _gen(41)
    v = (torch.rand(3, 4, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    mu1 = (torch.rand(3, 3, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)  # every q(h1_j = 1) is 0 or 1
    mu2 = torch.rand(3, 2, generator=g, dtype=DTYPE)
    mu2[:, 0] = 1.0
    what = "mean_field_bound with q(h = 1) of exactly 0 or 1 (0 log 0 = 0)"
    out = _call_bound(mean_field_bound, v, mu1, mu2, params, what)[0]
    assert bool(torch.isfinite(out).all()), f"{what} gave {out.tolist()}: use torch.special.xlogy(mu, mu)."
    assert_close(out, _bound_by_enumeration(v, mu1, mu2, *params), what, rtol=1e-9, atol=1e-9)


def check_bound_wide_layers(mean_field_bound):
    params = _dbm(20, 30, 30, 50, scale=0.3)
    W1, W2, b, c1, c2 = params
    g = _gen(51)
    v = (torch.rand(4, 20, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    mu1, mu2 = torch.rand(4, 30, generator=g, dtype=DTYPE), torch.rand(4, 30, generator=g, dtype=DTYPE)
    expected = []
    for x, m1, m2 in zip(v, mu1, mu2):  # E_q[-E] term by term, then the two entropies
        value = float(b @ x) + sum(float(m1[j]) * (float(c1[j]) + float(x @ W1[:, j])) for j in range(30))
        value += sum(float(m1[j]) * float(W2[j, k]) * float(m2[k]) for j in range(30) for k in range(30))
        value += sum(float(c2[k]) * float(m2[k]) for k in range(30))
        value -= sum(p * math.log(p) + (1 - p) * math.log(1 - p) for p in m1.tolist() + m2.tolist())
        expected.append(value)
    what = "mean_field_bound for 30 + 30 hidden units (2^60 states: only the closed form is feasible)"
    assert_close(_call_bound(mean_field_bound, v, mu1, mu2, params, what)[0], torch.tensor(expected, dtype=DTYPE), what,
                 rtol=1e-9, atol=1e-8)


EXERCISES = [
    Exercise(
        id="8.1",
        name="mean_field",
        checks=[
            Check("with W2 = 0 it is the exact (enumerated) posterior", check_mean_field_exact_without_top_coupling, 1),
            Check("after 200 rounds both fixed-point equations hold", check_mean_field_fixed_point, 2),
            Check("the stated start and update order, round by round", check_mean_field_start_and_order, 1),
        ],
    ),
    Exercise(
        id="8.2",
        name="log_partition_dbm",
        checks=[
            Check("matches a sum over every (v, h1, h2) for four tiny DBMs", check_log_z_brute_force, 2),
            Check("sums out the wide layers (24 x 8 x 24 units)", check_log_z_wide_layers, 1),
            Check("stays finite and right for weights of size ~300", check_log_z_large_weights, 1),
        ],
    ),
    Exercise(
        id="8.3",
        name="mean_field_bound",
        checks=[
            Check("L matches the enumerated E_q[-E] + H(q) at random q", check_bound_enumeration, 1),
            Check("the gradient matches the enumerated bound's and vanishes at a fixed point", check_gradient, 1),
            Check("L handles q(h = 1) of exactly 0 or 1", check_bound_at_the_edges, 0.5),
            Check("L is the closed form on layers too wide to enumerate", check_bound_wide_layers, 0.5),
        ],
    ),
]
