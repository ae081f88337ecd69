"""Tests of ebm_teach.rbm against exact enumeration over both layers of tiny RBMs, autograd of the brute-force
log-likelihood, scikit-learn's independent implementation, and the exactly enumerated 4x4 Ising model."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

import ebm_teach.rbm as rbm_module
from ebm_teach.core import DivergenceError
from ebm_teach.rbm import (BernoulliRBM, RBMGradient, bm_energy, bm_gibbs, bm_log_partition_exact, ising_energy,
                           ising_gibbs, ising_to_bm, lattice_couplings)

D = torch.float64


# --------------------------------------------------------------------------------------------- brute force
def _states(n, device="cpu"):
    """All 2^n binary vectors as rows (2^n, n), in itertools.product order."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=D, device=device)


def _random_rbm(n_visible, n_hidden, seed, scale=1.0, device="cpu", dtype=D):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(n_visible, n_hidden, generator=g, dtype=D)
    b = scale * torch.randn(n_visible, generator=g, dtype=D)
    c = scale * torch.randn(n_hidden, generator=g, dtype=D)
    return BernoulliRBM.from_arrays(W, b, c, device=device, dtype=dtype)


def _joint_energy(W, b, c, vs, hs):
    """E(v, h) for every pair: (2^n_v, 2^n_h), written out from the definition -v^T W h - b^T v - c^T h."""
    return -(vs @ W @ hs.T) - (vs @ b)[:, None] - (hs @ c)[None, :]


def _brute(rbm):
    W, b, c = rbm.W.double().cpu(), rbm.b.double().cpu(), rbm.c.double().cpu()
    vs, hs = _states(rbm.n_visible), _states(rbm.n_hidden)
    E = _joint_energy(W, b, c, vs, hs)
    log_z = torch.logsumexp(-E.reshape(-1), 0)
    log_pv = torch.logsumexp(-E, 1) - log_z  # exact marginal log p(v) for every v
    return vs, hs, E, log_z, log_pv


def _index_of(v, n):
    """Row index of each binary row of v in itertools.product order (first unit = most significant bit)."""
    weights = 2.0 ** torch.arange(n - 1, -1, -1, dtype=D)
    return (v.double().cpu() @ weights).long()


def _exact_ml_gradient(rbm, v_data):
    """d/d(W, b, c) of the mean exact log-likelihood, by autograd through the brute-force sum over both layers."""
    W = rbm.W.double().cpu().clone().requires_grad_(True)
    b = rbm.b.double().cpu().clone().requires_grad_(True)
    c = rbm.c.double().cpu().clone().requires_grad_(True)
    vs, hs = _states(rbm.n_visible), _states(rbm.n_hidden)
    E = _joint_energy(W, b, c, vs, hs)
    log_pv = torch.logsumexp(-E, 1) - torch.logsumexp(-E.reshape(-1), 0)
    ll = log_pv[_index_of(v_data, rbm.n_visible)].mean()
    return torch.autograd.grad(ll, (W, b, c))


def _exact_expected_cd1_gradient(rbm, v_data):
    """E[CD-1 gradient] by summing over every h_0 and v_1: the law of v_1 is sum_h0 p(h0|v0) p(v1|h0)."""
    W, b, c = rbm.W.double().cpu(), rbm.b.double().cpu(), rbm.c.double().cpu()
    vs, hs = _states(rbm.n_visible), _states(rbm.n_hidden)
    v0 = v_data.double().cpu()
    p0 = torch.sigmoid(v0 @ W + c)
    p_h0 = torch.prod(torch.where(hs[None] == 1, p0[:, None, :], 1 - p0[:, None, :]), -1)  # (n, 2^nh)
    pv = torch.sigmoid(hs @ W.T + b)  # p(v_i = 1 | h) for every h
    p_v1_given_h = torch.prod(torch.where(vs[None] == 1, pv[:, None, :], 1 - pv[:, None, :]), -1)  # (2^nh, 2^nv)
    q_v1 = (p_h0 @ p_v1_given_h).mean(0)  # the law of v_1, averaged over the data
    ph_v1 = torch.sigmoid(vs @ W + c)
    neg_W = (vs * q_v1[:, None]).T @ ph_v1
    return (v0.T @ p0 / len(v0) - neg_W, v0.mean(0) - q_v1 @ vs, p0.mean(0) - q_v1 @ ph_v1)


# --------------------------------------------------------------------------------------------- exact log Z, F(v)
@pytest.mark.parametrize("n_visible, n_hidden", [(5, 3), (3, 6), (4, 4), (1, 7)])
def test_log_partition_exact_matches_brute_force_over_both_layers(n_visible, n_hidden, device):
    for seed in range(3):
        rbm = _random_rbm(n_visible, n_hidden, seed, scale=1.5, device=device)
        _, _, _, log_z, _ = _brute(rbm)
        assert abs(rbm.log_partition_exact() - float(log_z)) < 1e-10


def test_log_partition_exact_in_float64_for_a_float32_model():
    rbm32 = _random_rbm(6, 4, 0, scale=2.0, dtype=torch.float32)
    _, _, _, log_z, _ = _brute(rbm32)  # the brute force uses the same float32 parameters, in float64
    assert abs(rbm32.log_partition_exact() - float(log_z)) < 1e-10


def test_log_partition_exact_with_chunks_matches_independent_units():
    """With W = 0 the units are independent: log Z = sum_i softplus(b_i) + sum_j softplus(c_j). 2^14 hidden
    states times 600 visible units runs through several chunks."""
    g = torch.Generator().manual_seed(0)
    b, c = torch.randn(600, generator=g, dtype=D), torch.randn(14, generator=g, dtype=D)
    rbm = BernoulliRBM.from_arrays(torch.zeros(600, 14, dtype=D), b, c)
    exact = float(torch.nn.functional.softplus(b).sum() + torch.nn.functional.softplus(c).sum())
    assert abs(rbm.log_partition_exact() - exact) < 1e-9


def test_free_energy_is_the_marginalised_energy(device):
    rbm = _random_rbm(5, 4, 1, scale=1.5, device=device)
    vs, hs, E, _, _ = _brute(rbm)
    free = rbm.free_energy(vs.to(device)).double().cpu()
    assert torch.allclose(free, -torch.logsumexp(-E, 1), atol=1e-10)
    h_index = torch.randint(0, len(hs), (len(vs),), generator=torch.Generator().manual_seed(0))
    e = rbm.energy(vs.to(device), hs[h_index].to(device)).double().cpu()
    assert torch.allclose(e, E[torch.arange(len(vs)), h_index], atol=1e-12)


def test_log_likelihood_exact_is_the_enumerated_marginal(device):
    rbm = _random_rbm(6, 3, 2, scale=1.0, device=device)
    vs, _, _, _, log_pv = _brute(rbm)
    v = vs[[0, 5, 17, 63, 40]]
    assert abs(rbm.log_likelihood_exact(v.to(device)) - float(log_pv[[0, 5, 17, 63, 40]].mean())) < 1e-10
    assert abs(float(torch.logsumexp(log_pv, 0))) < 1e-12  # and p(v) sums to one


# --------------------------------------------------------------------------------------------- conditionals, Gibbs
def test_conditionals_match_the_enumerated_joint(device):
    rbm = _random_rbm(4, 3, 3, scale=1.5, device=device)
    vs, hs, E, _, _ = _brute(rbm)
    p_joint = torch.softmax(-E.reshape(-1), 0).reshape(E.shape)
    p_h_given_v = p_joint / p_joint.sum(1, keepdim=True)  # rows: v
    p_v_given_h = p_joint / p_joint.sum(0, keepdim=True)  # columns: h
    assert torch.allclose(rbm.p_h_given_v(vs.to(device)).double().cpu(), p_h_given_v @ hs, atol=1e-12)
    assert torch.allclose(rbm.p_v_given_h(hs.to(device)).double().cpu(), (vs.T @ p_v_given_h).T, atol=1e-12)


def test_sampled_units_have_the_conditional_means(device):
    rbm = _random_rbm(6, 5, 4, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    n = 40_000
    v = torch.zeros(n, 6, dtype=D, device=device)
    v[:, ::2] = 1.0
    h = rbm.sample_h_given_v(v, generator=g)
    p = rbm.p_h_given_v(v[:1])[0]
    se = torch.sqrt(p * (1 - p) / n)
    assert bool(((h.mean(0) - p).abs() < 5 * se).all())
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    v_back = rbm.sample_v_given_h(h[:1].expand(n, -1).contiguous(), generator=g)
    q = rbm.p_v_given_h(h[:1])[0]
    assert bool(((v_back.mean(0) - q).abs() < 5 * torch.sqrt(q * (1 - q) / n)).all())


def _chi_square_against(counts, probs, p_value=1e-6):
    """Pearson's chi-square of counts against probs; bins with expected count < 5 are merged into one."""
    n = counts.sum()
    expected = n * probs
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return chi2, float(stats.chi2.ppf(1 - p_value, len(exp) - 1))


def test_gibbs_chains_reach_the_exact_p_v(device):
    """20,000 independent chains, 40 block Gibbs steps from uniform noise: their states are draws from p(v)."""
    rbm = _random_rbm(5, 3, 5, scale=1.0, device=device)
    _, _, _, _, log_pv = _brute(rbm)
    g = torch.Generator(device=device).manual_seed(1)
    start = (torch.rand(20_000, 5, generator=g, device=device, dtype=D) < 0.5).to(D)
    v = rbm.gibbs(start, n_steps=40, generator=g)
    counts = np.bincount(_index_of(v, 5).numpy(), minlength=32)
    chi2, critical = _chi_square_against(counts, log_pv.exp().numpy())
    assert chi2 < critical, f"chi-square {chi2:.1f} above the 1e-6 critical value {critical:.1f}"


@pytest.mark.parametrize("n_visible, n_hidden", [(5, 3), (3, 5)])
def test_sample_exact_draws_the_enumerated_joint(n_visible, n_hidden, device):
    """20,000 exact samples (v, h), enumerating the smaller layer (hidden, or visible when it is smaller):
    the counts of the joint states pass a chi-square test against the brute-force p(v, h) at p = 1e-6, and a
    model with c's sign flipped would not (its counts are tested too, and fail)."""
    rbm = _random_rbm(n_visible, n_hidden, 7, scale=1.0, device=device)
    _, _, E, log_z, _ = _brute(rbm)
    p_joint = torch.exp(-E - log_z).reshape(-1).numpy()  # (v, h) pairs, v-major
    g = torch.Generator(device=device).manual_seed(3)
    v, h = rbm.sample_exact(20_000, generator=g)
    assert v.shape == (20_000, n_visible) and h.shape == (20_000, n_hidden) and v.dtype == D
    joint = _index_of(v, n_visible) * 2**n_hidden + _index_of(h, n_hidden)
    counts = np.bincount(joint.numpy(), minlength=len(p_joint))
    chi2, critical = _chi_square_against(counts, p_joint)
    assert chi2 < critical, f"chi-square {chi2:.1f} above the 1e-6 critical value {critical:.1f}"
    flipped = BernoulliRBM.from_arrays(rbm.W, rbm.b, -rbm.c)
    fv, fh = flipped.sample_exact(20_000, generator=torch.Generator(device=device).manual_seed(3))
    wrong = np.bincount((_index_of(fv, n_visible) * 2**n_hidden + _index_of(fh, n_hidden)).numpy(),
                        minlength=len(p_joint))
    assert _chi_square_against(wrong, p_joint)[0] > critical


def test_sample_exact_refuses_layers_too_large_to_enumerate():
    rbm = BernoulliRBM(30, 28, seed=0)
    with pytest.raises(ValueError, match="exact sampling enumerates 2\\^28 states"):
        rbm.sample_exact(5)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        rbm.sample_exact(0)


def test_persistent_chains_in_fit_sample_p_v_when_the_model_stands_still():
    """The fast loop's own Gibbs sampler: with a vanishing step size the persistent chains are a Gibbs sampler of
    the fixed model, so after 40 updates (one Gibbs step each) their states are draws from p(v)."""
    rbm = _random_rbm(5, 3, 6, scale=1.0, dtype=torch.float32)
    _, _, _, _, log_pv = _brute(rbm)
    before = rbm.theta.clone()
    history = rbm.fit(torch.ones(1, 5), n_epochs=40, batch_size=1, step_size=1e-30, persistent=True,
                      n_chains=20_000, generator=torch.Generator().manual_seed(2))
    assert torch.equal(rbm.theta, before)
    counts = np.bincount(_index_of(history["v_chains"], 5).numpy(), minlength=32)
    chi2, critical = _chi_square_against(counts, log_pv.exp().numpy())
    assert chi2 < critical, f"chi-square {chi2:.1f} above the 1e-6 critical value {critical:.1f}"


# --------------------------------------------------------------------------------------------- CD-k gradient
def _tiny_problem():
    rbm = _random_rbm(4, 3, 7, scale=1.5)
    data = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=D)
    return rbm, data


def test_cd_gradient_with_large_k_matches_the_exact_likelihood_gradient():
    """Negative chains run k = 50 steps from the data (each data row replicated 4,000 times, so the batch mean
    is an average over 20,000 chains): the estimate matches autograd of the enumerated log-likelihood to within
    Monte Carlo error (each per-chain term lies in [0, 1], so its sd is <= 1/2; tolerance 5 sd / sqrt(n))."""
    rbm, data = _tiny_problem()
    exact = _exact_ml_gradient(rbm, data)
    batch = data.repeat_interleave(4000, 0)
    grad, v_k = rbm.cd_gradient(batch, k=50, generator=torch.Generator().manual_seed(0))
    tol = 5 * 0.5 / math.sqrt(len(batch))
    for name, est, ex in zip("Wbc", grad, exact):
        assert (est - ex).abs().max() < tol, f"grad {name}: {est} vs exact {ex}"
    assert v_k.shape == batch.shape


def test_cd1_gradient_matches_its_exact_expectation_and_is_biased():
    """E[CD-1] computed by summing over h_0 and v_1 matches the Monte Carlo CD-1 estimate, and differs from the
    exact log-likelihood gradient by far more than the Monte Carlo error: the bias of CD-1 is real."""
    rbm, data = _tiny_problem()
    expected_cd1 = _exact_expected_cd1_gradient(rbm, data)
    batch = data.repeat_interleave(4000, 0)
    grad, _ = rbm.cd_gradient(batch, k=1, generator=torch.Generator().manual_seed(1))
    tol = 5 * 0.5 / math.sqrt(len(batch))
    for est, ex in zip(grad, expected_cd1):
        assert (est - ex).abs().max() < tol
    exact = _exact_ml_gradient(rbm, data)
    bias = max(float((a - b).abs().max()) for a, b in zip(expected_cd1, exact))
    assert bias > 3 * tol  # so this test would fail if cd_gradient(k=1) returned the exact gradient


def test_cd_gradient_from_persistent_chains_uses_them_for_the_negative_phase():
    """With v_negative_start the negative phase does not involve the data: the expected gradient's negative
    part is that of the chains, which after many steps is the model expectation (as for large-k CD)."""
    rbm, data = _tiny_problem()
    exact = _exact_ml_gradient(rbm, data)
    chains = torch.zeros(20_000, 4, dtype=D)  # far from the data on purpose
    grad, v_k = rbm.cd_gradient(data, k=50, v_negative_start=chains, generator=torch.Generator().manual_seed(3))
    tol = 5 * 0.5 / math.sqrt(len(chains))
    for est, ex in zip(grad, exact):
        assert (est - ex).abs().max() < tol
    assert v_k.shape == chains.shape


@pytest.mark.parametrize("k, persistent, batch_size", [(1, False, 37), (3, False, 37), (2, False, 10), (1, True, 37), (4, True, 37)])
def test_fit_is_cd_gradient_plus_update_with_the_same_random_numbers(k, persistent, batch_size):
    """The fast loop draws the same uniforms in the same order as cd_gradient (on the CPU), so one epoch of fit
    equals cd_gradient + update minibatch by minibatch (persistent: the first minibatch; later ones continue
    the chains from h drawn before the update, as scikit-learn does)."""
    x = (torch.rand(37, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    chains = (torch.rand(9, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    fast = BernoulliRBM(6, 5, seed=2, init_std=0.5)
    slow = fast.copy()
    fast.fit(x, n_epochs=1, batch_size=batch_size, step_size=0.3, k=k, shuffle=False, persistent=persistent,
             v_chains=chains if persistent else None, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    for v0 in x.split(batch_size):
        grad, _ = slow.cd_gradient(v0, k=k, v_negative_start=chains if persistent else None, generator=g)
        slow.update(grad, 0.3)
    for name in "Wbc":
        assert torch.allclose(getattr(fast, name), getattr(slow, name), atol=1e-6), name


def _pcd_reference(rbm, x, batch_size, k, chains, step_size, g):
    """PCD-k as fit runs it, written out: the persistent state is the pair (v, q = p(h | v) under the
    parameters v was drawn with); each update draws h ~ q, then k Gibbs steps under the current parameters, and
    reads its uniforms in fit's order (all of an update at once: h_0 (n_h x M), v_1 (n_v x M), h_1, ...)."""
    W, b, c = rbm.W, rbm.b, rbm.c
    v, M = chains.clone(), len(chains)
    q = torch.sigmoid(v @ W + c)
    for v0 in x.split(batch_size):
        u = torch.rand(k * M * (rbm.n_hidden + rbm.n_visible), generator=g)
        blocks = u.split([M * rbm.n_hidden, M * rbm.n_visible] * k)
        u_h = [blk.view(rbm.n_hidden, M).T for blk in blocks[0::2]]
        u_v = [blk.view(rbm.n_visible, M).T for blk in blocks[1::2]]
        p0 = torch.sigmoid(v0 @ W + c)
        h = (u_h[0] < q).float()
        for t in range(k):
            v = (u_v[t] < torch.sigmoid(h @ W.T + b)).float()
            q = torch.sigmoid(v @ W + c)
            if t < k - 1:
                h = (u_h[t + 1] < q).float()
        rbm.update(RBMGradient(v0.T @ p0 / len(v0) - v.T @ q / M, v0.mean(0) - v.mean(0), p0.mean(0) - q.mean(0)),
                   step_size)
    return v


@pytest.mark.parametrize("k, batch_size, n_chains", [(1, 5, 9), (3, 7, 4)])
def test_persistent_fit_is_the_written_out_pcd_over_many_updates(k, batch_size, n_chains):
    """Several updates of PCD (the chains carried from one minibatch to the next): fit equals the reference
    loop above on the same random stream, parameters and final chains."""
    x = (torch.rand(37, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    chains = (torch.rand(n_chains, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    fast = BernoulliRBM(6, 5, seed=2, init_std=0.5)
    slow = fast.copy()
    history = fast.fit(x, n_epochs=1, batch_size=batch_size, step_size=0.3, k=k, shuffle=False, persistent=True,
                       v_chains=chains, generator=torch.Generator().manual_seed(5))
    v_final = _pcd_reference(slow, x, batch_size, k, chains, 0.3, torch.Generator().manual_seed(5))
    for name in "Wbc":
        assert torch.allclose(getattr(fast, name), getattr(slow, name), atol=1e-6), name
    assert torch.equal(history["v_chains"], v_final)


def test_momentum_weight_decay_and_sparsity_are_hintons_update():
    """fit with the guide's extras equals cd_gradient + the update written out: delta <- m delta + eps (g - lambda
    W - sparsity term), with the running mean activation q <- d q + (1 - d) mean p(h | v_0) (first: the mean)."""
    x = (torch.rand(30, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    fast = BernoulliRBM(6, 5, seed=2, init_std=0.5)
    slow = fast.copy()
    m, lam, target, cost, decay, eps = 0.6, 0.01, 0.1, 0.5, 0.9, 0.2
    fast.fit(x, n_epochs=2, batch_size=7, step_size=eps, k=2, shuffle=False, momentum=m, weight_decay=lam,
             sparsity_target=target, sparsity_cost=cost, sparsity_decay=decay,
             generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    delta = [torch.zeros_like(t) for t in (slow.W, slow.b, slow.c)]
    q = None
    for _ in range(2):
        for v0 in x.split(7):
            p0 = torch.sigmoid(v0 @ slow.W + slow.c).mean(0)
            grad, _ = slow.cd_gradient(v0, k=2, generator=g)
            q = p0 if q is None else decay * q + (1 - decay) * p0
            gW = grad.W - lam * slow.W - cost * torch.outer(v0.mean(0), q - target)
            gc = grad.c - cost * (q - target)
            for i, gi in enumerate((gW, grad.b, gc)):
                delta[i] = m * delta[i] + eps * gi
            slow.W, slow.b, slow.c = slow.W + delta[0], slow.b + delta[1], slow.c + delta[2]
    for name in "Wbc":
        assert torch.allclose(getattr(fast, name), getattr(slow, name), atol=1e-5), name


def test_weight_decay_shrinks_the_weights_and_sparsity_lowers_the_mean_activation():
    x = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    runs = {}
    for name, kwargs in [("plain", {}), ("decay", {"weight_decay": 0.05}),
                         ("sparse", {"sparsity_target": 0.05, "sparsity_cost": 2.0})]:
        rbm = BernoulliRBM(16, 8, seed=1, init_std=0.1)
        rbm.fit(x, n_epochs=20, batch_size=10, step_size=0.1, generator=torch.Generator().manual_seed(2), **kwargs)
        runs[name] = (float(rbm.W.norm()), float(rbm.p_h_given_v(x).mean()))
    assert runs["decay"][0] < 0.8 * runs["plain"][0]
    assert runs["sparse"][1] < 0.15 < runs["plain"][1]


def test_init_visible_biases_is_the_logit_of_the_clipped_means():
    x = torch.tensor([[1.0, 0, 1], [1, 0, 0], [1, 0, 1], [0, 0, 1]])
    rbm = BernoulliRBM(3, 2, seed=0).init_visible_biases(x, eps=0.01)
    p = torch.tensor([0.75, 0.01, 0.75])
    assert torch.allclose(rbm.b, torch.log(p / (1 - p)))
    assert torch.allclose(rbm.p_v_given_h(torch.zeros(1, 2)), p[None].clamp(0.01, 0.99))  # W = 0 nearly: exact at h=0


def test_step_size_schedule_is_applied_epoch_by_epoch():
    x = (torch.rand(30, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    scheduled, stepwise = BernoulliRBM(6, 4, seed=1), BernoulliRBM(6, 4, seed=1)
    scheduled.fit(x, n_epochs=2, batch_size=7, step_size=lambda epoch: 0.3 / epoch, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    stepwise.fit(x, n_epochs=1, batch_size=7, step_size=0.3, generator=g)
    stepwise.fit(x, n_epochs=1, batch_size=7, step_size=0.15, generator=g)
    assert torch.allclose(scheduled.theta, stepwise.theta, atol=1e-7)
    with pytest.raises(ValueError, match=r"step_size\(2\)"):
        BernoulliRBM(6, 4, seed=1).fit(x, n_epochs=3, step_size=lambda epoch: 0.1 if epoch == 1 else 0.0)


def test_update_is_gradient_ascent():
    rbm = BernoulliRBM(3, 2, seed=0)
    before = [t.clone() for t in (rbm.W, rbm.b, rbm.c)]
    grad = RBMGradient(torch.ones(3, 2), torch.full((3,), 2.0), torch.full((2,), -1.0))
    rbm.update(grad, 0.5)
    for after, old, g in zip((rbm.W, rbm.b, rbm.c), before, grad):
        assert torch.allclose(after, old + 0.5 * g)


def test_training_on_digits_raises_the_exact_log_likelihood():
    """Seeded smoke test: a few epochs of CD-1 lift the test log-likelihood far above its start near
    -64 log 2 = -44.4 nats (W ~ 0, b = c = 0 is uniform over 2^64 images)."""
    from ebm_teach.data import load_digits, train_test_split

    x_train, x_test = train_test_split(load_digits(binarize=True), seed=0)
    rbm = BernoulliRBM(64, 8, seed=0)
    start = rbm.log_likelihood_exact(x_test)
    history = rbm.fit(x_train, n_epochs=5, batch_size=20, step_size=0.1, k=1, generator=torch.Generator().manual_seed(0),
                      callback=lambda epoch, m: {"ll": m.log_likelihood_exact(x_test)})
    assert abs(start + 64 * math.log(2)) < 0.1
    assert history["ll"][-1] > start + 10
    assert history["epoch"] == [1, 2, 3, 4, 5] and len(history["seconds"]) == 5


def test_fit_restores_the_thread_count_and_leaves_no_autograd_graph():
    threads = torch.get_num_threads()
    rbm = BernoulliRBM(6, 3, seed=0)
    rbm.fit(torch.ones(4, 6), n_epochs=2, batch_size=2)
    rbm.gibbs(torch.ones(4, 6), n_steps=2)
    rbm.cd_gradient(torch.ones(4, 6), k=2)
    assert torch.get_num_threads() == threads
    assert not rbm.theta.requires_grad and rbm.theta.grad is None


def test_fit_raises_divergence_error_instead_of_nan():
    rbm = BernoulliRBM(6, 3, seed=0)
    x = (torch.rand(50, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with pytest.raises(DivergenceError, match="lower step_size"):
        rbm.fit(x, n_epochs=3, batch_size=5, step_size=1e39)


# --------------------------------------------------------------------------------------------- proxies
def test_pseudo_log_likelihood_matches_enumerated_conditionals(device):
    rbm = _random_rbm(5, 3, 8, scale=1.5, device=device)
    vs, _, _, _, log_pv = _brute(rbm)
    p_v = log_pv.exp()
    expected = torch.zeros(len(vs), dtype=D)
    for i in range(5):
        flipped = vs.clone()
        flipped[:, i] = 1 - flipped[:, i]
        p_flip = p_v[_index_of(flipped, 5)]
        expected += torch.log(p_v / (p_v + p_flip))  # log p(v_i | v_-i)
    assert torch.allclose(rbm.pseudo_log_likelihood(vs.to(device)).double().cpu(), expected, atol=1e-10)


def test_pseudo_log_likelihood_in_chunks_matches_flipped_free_energies():
    """64 x 300 units and 1,000 rows run in two chunks; each term is log sigma(F(flip_i v) - F(v))."""
    rbm = _random_rbm(64, 300, 10, scale=0.1)
    v = (torch.rand(1000, 64, generator=torch.Generator().manual_seed(0), dtype=D) < 0.3).to(D)
    free = rbm.free_energy(v)
    expected = torch.zeros(1000, dtype=D)
    for i in range(64):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        expected += torch.nn.functional.logsigmoid(rbm.free_energy(flipped) - free)
    assert torch.allclose(rbm.pseudo_log_likelihood(v), expected, atol=1e-9)


def test_reconstruction_error_is_the_mean_field_up_down_pass(device):
    rbm = _random_rbm(5, 3, 9, device=device)
    v = _states(5, device)
    p = torch.sigmoid(torch.sigmoid(v @ rbm.W + rbm.c) @ rbm.W.T + rbm.b)
    assert abs(rbm.reconstruction_error(v) - float(((v - p) ** 2).sum(1).mean())) < 1e-12


# --------------------------------------------------------------------------------------------- loading, contracts
def test_weights_from_sklearn_give_sklearns_free_energy_and_hidden_means():
    from sklearn.neural_network import BernoulliRBM as SkRBM

    x = (np.random.default_rng(0).random((60, 7)) < 0.4).astype(np.float64)
    sk = SkRBM(n_components=4, n_iter=3, learning_rate=0.1, random_state=0).fit(x)
    rbm = BernoulliRBM.from_arrays(sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_)
    assert rbm.dtype == torch.float64
    assert np.allclose(rbm.free_energy(x).numpy(), sk._free_energy(x), atol=1e-12)
    assert np.allclose(rbm.p_h_given_v(x).numpy(), sk.transform(x), atol=1e-12)


def test_contracts_on_device(device):
    g = torch.Generator(device=device).manual_seed(0)
    rbm = BernoulliRBM(6, 4, device=device, generator=g)
    assert rbm.W.shape == (6, 4) and rbm.b.shape == (6,) and rbm.c.shape == (4,)
    assert rbm.W.device.type == device.type and rbm.W.dtype == torch.float32
    assert abs(float(rbm.W.std()) - 0.01) < 0.01 and float(rbm.b.abs().max()) == 0 == float(rbm.c.abs().max())
    v = (torch.rand(5, 6, generator=g, device=device) < 0.5).float()
    assert rbm.free_energy(v).shape == (5,)
    assert rbm.p_h_given_v(v).shape == (5, 4) and rbm.sample_h_given_v(v).device.type == device.type
    h = rbm.sample_h_given_v(v)
    assert rbm.p_v_given_h(h).shape == (5, 6) and rbm.sample_v_given_h(h).shape == (5, 6)
    assert rbm.energy(v, h).shape == (5,) and rbm.gibbs(v, 3).shape == (5, 6)
    grad, v_k = rbm.cd_gradient(v, k=2)
    assert [t.shape for t in grad] == [(6, 4), (6,), (4,)] and v_k.device.type == device.type
    history = rbm.fit(v, n_epochs=2, batch_size=2, persistent=True, n_chains=3)
    assert history["v_chains"].shape == (3, 6) and all(math.isfinite(s) for s in history["seconds"])
    assert rbm.pseudo_log_likelihood(v).shape == (5,) and math.isfinite(rbm.reconstruction_error(v))
    assert math.isfinite(rbm.log_likelihood_exact(v))
    copy = rbm.copy()
    copy.W.add_(1.0)
    assert not torch.equal(copy.W, rbm.W)


def test_parameters_are_views_into_theta_and_can_be_set():
    rbm = BernoulliRBM(3, 2, seed=0)
    rbm.W = np.arange(6.0).reshape(3, 2)
    rbm.b = [1.0, 2.0, 3.0]
    rbm.c = torch.tensor([-1.0, -2.0])
    assert torch.equal(rbm.theta, torch.tensor([[0.0, 1, 1], [2, 3, 2], [4, 5, 3], [-1, -2, 0]]))
    rbm.W[0, 0] = 7.0
    assert float(rbm.theta[0, 0]) == 7.0


# --------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_with_advice():
    rbm = BernoulliRBM(4, 3, seed=0)
    with pytest.raises(ValueError, match="binary"):
        rbm.free_energy(torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="binarize first"):
        rbm.fit(torch.rand(10, 4))
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        rbm.p_h_given_v(torch.ones(2, 5))
    with pytest.raises(ValueError, match="Hidden units are binary"):
        rbm.p_v_given_h(torch.full((2, 3), 0.3))
    with pytest.raises(ValueError, match="same batch size"):
        rbm.energy(torch.ones(2, 4), torch.ones(3, 3))
    with pytest.raises(ValueError, match="step_size"):
        rbm.fit(torch.ones(2, 4), step_size=0.0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        rbm.cd_gradient(torch.ones(2, 4), k=0)
    with pytest.raises(ValueError, match="persistent=True"):
        rbm.fit(torch.ones(2, 4), v_chains=torch.ones(2, 4))
    with pytest.raises(ValueError, match="n_chains is 3"):
        rbm.fit(torch.ones(2, 4), persistent=True, v_chains=torch.ones(2, 4), n_chains=3)
    with pytest.raises(ValueError, match="grad.W"):
        rbm.update(RBMGradient(torch.ones(3, 4), torch.ones(4), torch.ones(3)), 0.1)
    with pytest.raises(ValueError, match="n_visible must be >= 1"):
        BernoulliRBM(0, 3)
    with pytest.raises(ValueError, match="either generator or seed"):
        BernoulliRBM(4, 3, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="transposed"):
        BernoulliRBM.from_arrays(np.zeros((4, 3)), np.zeros(3), np.zeros(4))  # components_ by mistake
    with pytest.raises(ValueError, match="annealed importance sampling"):
        BernoulliRBM(30, 30, seed=0).log_partition_exact()
    with pytest.raises(ValueError, match="momentum must be in"):
        rbm.fit(torch.ones(2, 4), momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay must be"):
        rbm.fit(torch.ones(2, 4), weight_decay=-0.1)
    with pytest.raises(ValueError, match="needs a sparsity_target"):
        rbm.fit(torch.ones(2, 4), sparsity_cost=0.1)
    with pytest.raises(ValueError, match="sparsity_cost"):
        rbm.fit(torch.ones(2, 4), sparsity_target=0.1)
    with pytest.raises(ValueError, match="eps must be < 0.5"):
        rbm.init_visible_biases(torch.ones(2, 4), eps=0.6)
    with pytest.raises(ValueError, match="v is empty"):
        rbm.init_visible_biases(torch.ones(0, 4))


# --------------------------------------------------------------------------------------------- Boltzmann machines
def _random_bm(d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    J = scale * torch.randn(d, d, generator=g, dtype=D)
    J = torch.triu(J, 1) + torch.triu(J, 1).T
    return J, scale * torch.randn(d, generator=g, dtype=D)


def test_bm_energy_and_log_partition_match_their_definitions():
    J, b = _random_bm(7, 0)
    xs = _states(7)
    by_loops = torch.tensor([-sum(J[i, j] * x[i] * x[j] for i in range(7) for j in range(i + 1, 7)) - float(b @ x)
                             for x in xs], dtype=D)
    assert torch.allclose(bm_energy(xs, J, b), by_loops)
    assert math.isclose(bm_log_partition_exact(J, b), float(torch.logsumexp(-by_loops, 0)), rel_tol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_bm_gibbs_samples_the_boltzmann_distribution_at_temperature_t(temperature):
    """20,000 chains, 30 sweeps, from all zeros: the states follow exp(-E/T)/Z_T (chi-square, 1e-6 level)."""
    J, b = _random_bm(5, 1, scale=1.5)
    xs = _states(5)
    p = torch.softmax(-bm_energy(xs, J, b) / temperature, 0)
    x = bm_gibbs(torch.zeros(20_000, 5, dtype=D), J, b, 30, temperature, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(_index_of(x, 5).numpy(), minlength=32)
    chi2, critical = _chi_square_against(counts, p.numpy())
    assert chi2 < critical


def test_bm_gibbs_at_zero_temperature_is_a_hopfield_network_descending_the_energy():
    """Hebb's rule stores 3 random patterns of 60 spins; from each pattern with 10 spins flipped, zero-temperature
    sweeps only ever lower the energy and end at the stored pattern, which is a fixed point."""
    g = torch.Generator().manual_seed(0)
    xi = torch.where(torch.rand(3, 60, generator=g) < 0.5, -1.0, 1.0).double()
    C = xi.T @ xi / 60
    C.fill_diagonal_(0)
    J, b = ising_to_bm(C)
    patterns = (xi + 1) / 2
    noisy = patterns.clone()
    for r in range(3):
        flip = torch.randperm(60, generator=g)[:10]
        noisy[r, flip] = 1 - noisy[r, flip]
    energy = [bm_energy(noisy, J, b)]
    x = noisy
    for _ in range(5):
        x = bm_gibbs(x, J, b, 1, temperature=0)
        energy.append(bm_energy(x, J, b))
    assert all(bool((later <= earlier + 1e-12).all()) for earlier, later in zip(energy, energy[1:]))
    assert torch.equal(x, patterns)
    assert torch.equal(bm_gibbs(patterns, J, b, 1, temperature=0), patterns)


def test_lattice_ising_model_is_the_boltzmann_machine_of_ising_to_bm():
    """For every state of the 4x4 lattice with a field: beta E_Ising(s) - E_BM(x) is one constant, and the
    lattice case has J' = 4 beta J between neighbours and b' = -8 beta J + 2 beta H."""
    L, beta, H = 4, 0.3, 0.2
    C = lattice_couplings(L, J=1.0)
    xs = _states(L * L)
    s = 2 * xs - 1
    e_ising = ising_energy(s.reshape(-1, L, L)) - H * s.sum(1)
    J, b = ising_to_bm(C, H, beta)
    diff = beta * e_ising - bm_energy(xs, J, b)
    assert float(diff.max() - diff.min()) < 1e-9
    assert torch.allclose(J[0, 1], torch.tensor(4 * beta, dtype=D)) and float(J[0, 5]) == 0.0
    assert torch.allclose(b, torch.full((L * L,), -8 * beta + 2 * beta * H, dtype=D))


def test_boltzmann_machine_bad_input():
    J, b = _random_bm(4, 0)
    with pytest.raises(ValueError, match="symmetric with a zero diagonal"):
        bm_energy(torch.zeros(1, 4, dtype=D), J + torch.eye(4, dtype=D), b)
    with pytest.raises(ValueError, match="square"):
        bm_log_partition_exact(torch.zeros(3, 4, dtype=D), b)
    with pytest.raises(ValueError, match="temperature must be"):
        bm_gibbs(torch.zeros(1, 4, dtype=D), J, b, 1, temperature=-1.0)
    with pytest.raises(ValueError, match="binary"):
        bm_gibbs(torch.full((1, 4), 0.5, dtype=D), J, b, 1)
    with pytest.raises(ValueError, match="raise max_units"):
        bm_log_partition_exact(torch.zeros(30, 30, dtype=D), torch.zeros(30, dtype=D))
    with pytest.raises(ValueError, match="beta must be"):
        ising_to_bm(J, beta=-1.0)
    with pytest.raises(ValueError, match="L must be >= 2"):
        lattice_couplings(1)


# --------------------------------------------------------------------------------------------- Ising
def test_ising_energy_matches_a_sum_over_bonds():
    s = np.where(np.random.default_rng(0).random((3, 6, 6)) < 0.5, -1.0, 1.0)
    expected = [-sum(x[i, j] * (x[(i + 1) % 6, j] + x[i, (j + 1) % 6]) for i in range(6) for j in range(6)) for x in s]
    assert np.allclose(ising_energy(torch.tensor(s)).numpy(), expected)
    assert float(ising_energy(torch.ones(1, 4, 4))[0]) == -32.0  # 2 L^2 bonds, all aligned


def test_ising_gibbs_matches_the_enumerated_4x4_lattice():
    """All 2^16 states of the periodic 4x4 lattice at beta = 0.4: the energies and |m| of 20,000 chains after
    60 checkerboard sweeps follow the exact Boltzmann distribution (chi-square; |m| within 5 standard errors)."""
    L, beta, n = 4, 0.4, 20_000
    bits = _states(L * L).reshape(-1, L, L)
    spins = 2 * bits - 1
    energies = ising_energy(spins)
    p = torch.softmax(-beta * energies, 0)
    trace = ising_gibbs(torch.ones(n, L, L, dtype=D), beta, 60, generator=torch.Generator().manual_seed(0))
    levels = torch.unique(energies)
    exact_p = torch.stack([p[energies == e].sum() for e in levels]).numpy()
    sampled = ising_energy(trace.spins)
    counts = np.array([(sampled == e).sum().item() for e in levels])
    chi2, critical = _chi_square_against(counts, exact_p)
    assert chi2 < critical
    abs_m = spins.mean((1, 2)).abs()
    exact_abs_m = float((p * abs_m).sum())
    sd = math.sqrt(float((p * abs_m**2).sum()) - exact_abs_m**2)
    assert abs(float(trace.magnetisation[-1].abs().mean()) - exact_abs_m) < 5 * sd / math.sqrt(n)
    assert torch.allclose(trace.energy[-1], sampled / L**2)


def test_ising_bad_input():
    with pytest.raises(ValueError, match=r"-1 or \+1"):
        ising_gibbs(torch.zeros(1, 4, 4), 0.4, 1)
    with pytest.raises(ValueError, match="L even"):
        ising_gibbs(torch.ones(1, 5, 5), 0.4, 1)
    with pytest.raises(ValueError, match="beta"):
        ising_gibbs(torch.ones(2, 4, 4), -1.0, 1)


# --------------------------------------------------------------------------------------------- exercise checks
def _fails(check, fn):
    with pytest.raises(AssertionError):
        check(fn)


def test_ch02_exercise_checks_reject_typical_mistakes():
    """The hidden checks of chapter 2's exercises fail a flipped sign, a dropped factor or term (they check the
    math, not the solution's own output)."""
    from ebm_teach.grade.checks import ch02_rbm_cd as ch02

    def mapping(factor=4.0, bonds_per_site=6, field_sign=1.0, k_sign=1.0):
        def triangular_ising_as_boltzmann_machine(beta, J, H, L):
            K = k_sign * beta * L**2 * (H - bonds_per_site / 2 * J)
            return factor * beta * J, field_sign * 2 * beta * H - 2 * bonds_per_site * beta * J, K
        return triangular_ising_as_boltzmann_machine

    ch02.check_mapping_by_enumeration(mapping())
    ch02.check_constant_by_enumeration(mapping())
    _fails(ch02.check_mapping_by_enumeration, mapping(factor=2.0))  # (2x-1)(2y-1) has 4xy, not 2xy
    _fails(ch02.check_mapping_by_enumeration, mapping(bonds_per_site=4))  # the square lattice's 4 bonds per site
    _fails(ch02.check_mapping_by_enumeration, mapping(field_sign=-1.0))
    _fails(ch02.check_constant_by_enumeration, mapping(k_sign=-1.0))  # E_BM - beta E_Ising

    def cd1(stat="probabilities", sign=1.0):
        def cd1_gradient(v0, W, b, c, u_h, u_v):
            p0 = torch.sigmoid(v0 @ W + c)
            h0 = (u_h < p0).to(v0.dtype)
            v1 = (u_v < torch.sigmoid(h0 @ W.T + b)).to(v0.dtype)
            p1 = torch.sigmoid(v1 @ W + c)
            h1 = (torch.rand(p1.shape, generator=torch.Generator().manual_seed(0), dtype=p1.dtype) < p1).to(p1.dtype)
            dc = (p0 - p1).mean(0) if stat == "probabilities" else (h0 - h1).mean(0)
            return sign * (v0.T @ p0 - v1.T @ p1) / len(v0), (v0 - v1).mean(0), dc
        return cd1_gradient

    ch02.check_cd1_against_loops(cd1())
    _fails(ch02.check_cd1_against_loops, cd1(stat="samples"))  # dc from sampled h, not p
    _fails(ch02.check_cd1_against_loops, cd1(sign=-1.0))


def test_ch02_self_check_of_cd1_checks_dc():
    """The learner's self-check of 2.3 rejects a dc computed from samples instead of probabilities."""
    import jupytext
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "solutions" / "02_rbm_cd.py"
    cells = jupytext.read(path, fmt="py:percent").cells
    definition = next(c for c in cells if c.cell_type == "code" and "def cd1_gradient(" in c.source)
    self_check = cells[cells.index(definition) + 1]
    namespace = {"__name__": "__main__"}
    exec(compile(cells[next(i for i, c in enumerate(cells) if c.cell_type == "code")].source, "<imports>", "exec"),
         namespace)
    exec(compile(definition.source, "<definition>", "exec"), namespace)
    exec(compile(self_check.source, "<self-check>", "exec"), dict(namespace))  # the solution passes
    broken = definition.source.replace("(p0 - p1).mean(0)", "(h0 - (p1 > 0.5).to(p1.dtype)).mean(0)")
    assert broken != definition.source
    exec(compile(broken, "<broken>", "exec"), namespace)
    with pytest.raises(AssertionError, match="dc"):
        exec(compile(self_check.source, "<self-check>", "exec"), dict(namespace))
