"""Hidden checks for chapter 4's exercises (solutions/04_langevin.py).

4.1 one Langevin step against energies whose gradients are known in closed form, the seeds' other convention,
    and gradient hygiene (no parameter .grad written, result detached).
4.2 the MALA acceptance probability against log-densities from torch.distributions, and detailed balance
    p(x) q(x'|x) alpha(x->x') = p(x') q(x|x') alpha(x'->x) on a non-Gaussian energy.
4.3 sampling from a replay buffer: the fresh fraction within binomial error, rows taken whole from the noise or
    the buffer, uniform use of the buffer (chi-square), the edge cases (empty buffer, fraction 0 and 1).
4.4 the autocorrelation function against the direct O(n^2) sum and the AR(1) answer rho^t.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ebm_teach.grade.asserts import as_float64, assert_close, assert_shape
from ebm_teach.grade.spec import Check, Exercise

DTYPE = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- 4.1 one Langevin step
PREC = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=DTYPE)
MU = torch.tensor([0.5, -1.0], dtype=DTYPE)


def _quadratic(x):
    d = x - MU
    return 0.5 * ((d @ PREC) * d).sum(1)


def _quartic(x):
    return (x**4).sum(1) / 4 + x[:, 0] * x[:, 1]


def _call_step(langevin_update, x, energy, eps, z, what):
    out = langevin_update(x.clone(), energy, eps, z)
    value = as_float64(out, what)
    assert_shape(value, tuple(x.shape), what)
    return out, value


def check_step_quadratic(langevin_update):
    x = torch.randn(6, 2, generator=_gen(0), dtype=DTYPE)
    z = torch.randn(6, 2, generator=_gen(1), dtype=DTYPE)
    for eps in (0.1, 0.7):
        # grad E = Lambda (x - mu), so x' = x - (eps/2) Lambda (x - mu) + sqrt(eps) z
        expected = x - 0.5 * eps * (x - MU) @ PREC + math.sqrt(eps) * z
        _, got = _call_step(langevin_update, x, _quadratic, eps, z, f"langevin_update on a Gaussian energy (eps = {eps})")
        if torch.allclose(got, x - eps * (x - MU) @ PREC + math.sqrt(eps) * z, atol=1e-8):
            raise AssertionError("the drift is eps * grad E; the book's convention uses (eps/2) * grad E.")
        if torch.allclose(got, x - 0.5 * eps * (x - MU) @ PREC + eps * z, atol=1e-8):
            raise AssertionError("the noise is scaled by eps; it should be scaled by sqrt(eps).")
        if torch.allclose(got, x + 0.5 * eps * (x - MU) @ PREC + math.sqrt(eps) * z, atol=1e-8):
            raise AssertionError("the step goes uphill: subtract (eps/2) grad E, do not add it.")
        assert_close(got, expected, f"langevin_update on a Gaussian energy (eps = {eps})", rtol=1e-6, atol=1e-8)


def check_step_nonlinear(langevin_update):
    x = torch.randn(5, 2, generator=_gen(2), dtype=DTYPE) * 1.5
    z = torch.randn(5, 2, generator=_gen(3), dtype=DTYPE)
    grad = x**3 + torch.stack([x[:, 1], x[:, 0]], 1)  # d/dx of sum x^4/4 + x1 x2
    eps = 0.2
    _, got = _call_step(langevin_update, x, _quartic, eps, z, "langevin_update on E = sum x^4/4 + x1 x2")
    assert_close(got, x - 0.5 * eps * grad + math.sqrt(eps) * z, "langevin_update on E = sum x^4/4 + x1 x2",
                 rtol=1e-6, atol=1e-8)
    # the seeds' other convention x' = x - eps' grad E + sqrt(2 eps') z with eps' = eps / 2 is the same step
    assert_close(got, x - (eps / 2) * grad + math.sqrt(2 * (eps / 2)) * z,
                 "langevin_update compared with the convention eps' = eps/2", rtol=1e-6, atol=1e-8)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0], dtype=DTYPE))

    def forward(self, x):
        return 0.5 * ((x * self.w) ** 2).sum(1)


def check_step_hygiene(langevin_update):
    net = _Net()
    x = torch.randn(4, 2, generator=_gen(4), dtype=DTYPE)
    z = torch.zeros(4, 2, dtype=DTYPE)
    out, got = _call_step(langevin_update, x, net, 0.1, z, "langevin_update on a network energy")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        raise AssertionError("return a detached tensor (x_new.detach()): samples must not carry a graph.")
    if net.w.grad is not None:
        raise AssertionError(
            "the step wrote into the network's parameter .grad: take the gradient with respect to x only, "
            "with torch.autograd.grad(E.sum(), x), instead of calling .backward()."
        )
    assert_close(got, x - 0.05 * x * net.w.detach() ** 2, "langevin_update on a network energy (z = 0)", rtol=1e-6, atol=1e-8)
    with torch.no_grad():  # must work where the caller switched autograd off
        out = langevin_update(x.clone(), net, 0.1, z)
    assert_close(as_float64(out, "langevin_update under torch.no_grad()"), x - 0.05 * x * net.w.detach() ** 2,
                 "langevin_update called under torch.no_grad() (use torch.enable_grad() inside)", rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- 4.2 the MALA acceptance probability
def _energy_bumpy(x):
    return 0.5 * (x**2).sum(1) + torch.sin(2 * x[:, 0]) + 0.3 * x[:, 0] * x[:, 1] ** 2


def _grad(energy, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(energy(x).sum(), x)
    return g


def _log_q(to, frm, energy, eps):
    mean = frm - 0.5 * eps * _grad(energy, frm)
    return torch.distributions.Normal(mean, math.sqrt(eps)).log_prob(to).sum(1)


def _call_alpha(mala_acceptance_prob, x, x_prop, energy, eps, what):
    got = as_float64(mala_acceptance_prob(x.clone(), x_prop.clone(), energy, eps), what)
    assert_shape(got, (x.shape[0],), what)
    if bool(((got < 0) | (got > 1 + 1e-12)).any()):
        raise AssertionError(f"{what} must lie in [0, 1] (it is min(1, ratio)); got {got.tolist()[:6]}.")
    return got


def check_alpha_against_densities(mala_acceptance_prob):
    for energy, name in ((_quadratic, "a Gaussian energy"), (_energy_bumpy, "a non-Gaussian energy")):
        x = torch.randn(12, 2, generator=_gen(5), dtype=DTYPE)
        for eps in (0.3, 1.2):
            x_prop = x - 0.5 * eps * _grad(energy, x) + math.sqrt(eps) * torch.randn(12, 2, generator=_gen(6), dtype=DTYPE)
            log_ratio = (-energy(x_prop) + _log_q(x, x_prop, energy, eps)) - (-energy(x) + _log_q(x_prop, x, energy, eps))
            expected = log_ratio.clamp(max=0).exp().detach()
            what = f"mala_acceptance_prob on {name} (eps = {eps})"
            got = _call_alpha(mala_acceptance_prob, x, x_prop, energy, eps, what)
            symmetric = (-energy(x_prop) + energy(x)).clamp(max=0).exp().detach()
            if torch.allclose(got, symmetric, atol=1e-8) and not torch.allclose(expected, symmetric, atol=1e-6):
                raise AssertionError(
                    f"{what} is the random-walk Metropolis ratio exp(E(x) - E(x')): the Langevin proposal is not "
                    "symmetric, so include log q(x | x') - log q(x' | x)."
                )
            assert_close(got, expected, what, rtol=1e-6, atol=1e-9)


def check_alpha_detailed_balance(mala_acceptance_prob):
    # p(x) q(x'|x) alpha(x -> x') must equal p(x') q(x|x') alpha(x' -> x) for every pair: detailed balance.
    x = torch.randn(20, 2, generator=_gen(7), dtype=DTYPE)
    x_prop = x + 0.8 * torch.randn(20, 2, generator=_gen(8), dtype=DTYPE)
    eps = 0.5
    fwd = _call_alpha(mala_acceptance_prob, x, x_prop, _energy_bumpy, eps, "mala_acceptance_prob(x, x')")
    bwd = _call_alpha(mala_acceptance_prob, x_prop, x, _energy_bumpy, eps, "mala_acceptance_prob(x', x)")
    lhs = (-_energy_bumpy(x) + _log_q(x_prop, x, _energy_bumpy, eps)).detach() + torch.log(fwd)
    rhs = (-_energy_bumpy(x_prop) + _log_q(x, x_prop, _energy_bumpy, eps)).detach() + torch.log(bwd)
    assert_close(lhs, rhs, "log[p(x) q(x'|x) alpha(x->x')] against log[p(x') q(x|x') alpha(x'->x)]",
                 rtol=1e-6, atol=1e-8)
    if not bool(((fwd > 1 - 1e-12) | (bwd > 1 - 1e-12)).all()):
        raise AssertionError("for every pair, one of the two directions must be accepted with probability 1.")


# ----------------------------------------------------------------------------- 4.3 sampling from a replay buffer
def _noise_recorder(dim):
    """A noise_fn whose rows are all negative and distinct (unlike any buffer row), remembering what it returned."""
    seen = []

    def noise_fn(n, generator):
        rows = -1.0 - torch.rand(n, dim, generator=generator, dtype=DTYPE)
        seen.append(rows)
        return rows

    return noise_fn, seen


def _buffer(n, dim=2):
    # row i is (i, i + 0.5, ...): non-negative, and its index can be read back from the first entry
    return torch.arange(n, dtype=DTYPE)[:, None] + 0.5 * torch.arange(dim, dtype=DTYPE)[None, :]


def _call_buffer(sample_from_buffer, buffer, n, f, seed):
    noise_fn, seen = _noise_recorder(buffer.shape[1])
    out = sample_from_buffer(buffer, n, noise_fn, f, _gen(seed))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(f"sample_from_buffer should return a pair (x, fresh_mask); got {type(out).__name__}.")
    x, fresh = out
    x = as_float64(x, "x from sample_from_buffer")
    assert_shape(x, (n, buffer.shape[1]), "x (one row per sample)")
    if not isinstance(fresh, torch.Tensor) or fresh.dtype != torch.bool or fresh.shape != (n,):
        raise AssertionError(f"fresh_mask should be a bool tensor of shape ({n},); got {fresh!r:.80}.")
    return x, fresh, seen


def check_buffer_fraction_and_rows(sample_from_buffer):
    # n = 40 000: the fresh fraction's standard error is sqrt(f(1-f)/n); 4.5 SE is exceeded with prob. < 1e-5.
    buffer = _buffer(300)
    n = 40_000
    for f in (0.05, 0.3):
        x, fresh, seen = _call_buffer(sample_from_buffer, buffer, n, f, seed=10)
        frac = float(fresh.double().mean())
        se = math.sqrt(f * (1 - f) / n)
        if abs(frac - f) > 4.5 * se:
            raise AssertionError(
                f"with reinit_fraction = {f} the fraction of fresh rows was {frac:.4f}; it should be within "
                f"{4.5 * se:.4f} of {f}. Decide each row independently: fresh where torch.rand(n) < reinit_fraction."
            )
        # every fresh row must be a row that noise_fn returned, bit for bit
        noise_rows = {tuple(row) for batch in seen for row in batch.tolist()}
        if not all(tuple(row) in noise_rows for row in x[fresh].tolist()):
            raise AssertionError("rows marked fresh must be rows returned by noise_fn, unchanged.")
        stale = x[~fresh]
        idx = stale[:, 0]
        if not bool(((idx >= 0) & (idx < len(buffer)) & (idx == idx.round())).all()) or not torch.equal(stale, buffer[idx.long()]):
            raise AssertionError("rows not marked fresh must be whole rows of the buffer, unchanged.")


def check_buffer_uniform(sample_from_buffer):
    # 50 buffer rows, 50 000 draws without re-initialisation: chi-square with 49 degrees of freedom has mean 49,
    # standard deviation 9.9; 49 + 5 sd = 99 is exceeded with probability < 1e-5.
    buffer = _buffer(50)
    x, fresh, _ = _call_buffer(sample_from_buffer, buffer, 50_000, 0.0, seed=11)
    if bool(fresh.any()):
        raise AssertionError("with reinit_fraction = 0 no row may be fresh.")
    counts = torch.bincount(x[:, 0].long(), minlength=50).double()
    chi2 = float(((counts - 1000.0) ** 2 / 1000.0).sum())
    if chi2 > 99.0:
        raise AssertionError(
            f"the buffer's rows are not drawn uniformly: counts range from {int(counts.min())} to {int(counts.max())} "
            "(expected about 1000 each). Draw indices with torch.randint(0, len(buffer), (batch_size,))."
        )


def check_buffer_edge_cases(sample_from_buffer):
    x, fresh, _ = _call_buffer(sample_from_buffer, _buffer(20), 200, 1.0, seed=12)
    if not bool(fresh.all()):
        raise AssertionError("with reinit_fraction = 1 every row must be fresh.")
    empty = torch.zeros(0, 2, dtype=DTYPE)
    x, fresh, _ = _call_buffer(sample_from_buffer, empty, 30, 0.05, seed=13)
    if not bool(fresh.all()) or not bool((x < 0).all()):
        raise AssertionError("an empty buffer has nothing to give: every row must be fresh noise.")
    a = _call_buffer(sample_from_buffer, _buffer(40), 100, 0.3, seed=14)
    b = _call_buffer(sample_from_buffer, _buffer(40), 100, 0.3, seed=14)
    if not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])):
        raise AssertionError("two calls with generators seeded alike differ: draw all randomness from the generator.")
    c = _call_buffer(sample_from_buffer, _buffer(40), 100, 0.0, seed=15)
    d = _call_buffer(sample_from_buffer, _buffer(40), 100, 0.0, seed=16)
    if torch.equal(c[0], d[0]):
        raise AssertionError("generators seeded differently picked the same buffer rows: draw the rows at random.")


def check_buffer_independent_rows(sample_from_buffer):
    # Each row is fresh independently, so the number of fresh rows in a batch of n is Binomial(n, f): over 300
    # batches of n = 100 with f = 0.3 its sample variance should be near n f (1 - f) = 21. The ratio has a
    # standard deviation of sqrt(2/299) = 0.08, so [0.55, 1.45] is a 5.5-sigma band. A fixed count
    # round(f n) per batch has variance 0.
    counts = torch.tensor(
        [float(_call_buffer(sample_from_buffer, _buffer(40), 100, 0.3, seed=100 + r)[1].sum()) for r in range(300)],
        dtype=DTYPE,
    )
    ratio = float(counts.var()) / 21.0
    if not 0.55 < ratio < 1.45:
        raise AssertionError(
            f"over 300 batches of 100 rows with reinit_fraction = 0.3 the number of fresh rows had variance "
            f"{float(counts.var()):.1f}; independent draws give about 21. Decide every row on its own "
            "(fresh = torch.rand(batch_size, generator=generator) < reinit_fraction) rather than fixing the count."
        )


# ----------------------------------------------------------------------------- 4.4 the autocorrelation function
def _direct_acf(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean()
    n = len(x)
    acov = torch.stack([(xc[: n - t] * xc[t:]).sum() / n for t in range(n)])
    return acov / acov[0]


def _call_acf(autocorrelation, x, what):
    got = as_float64(autocorrelation(x.clone()), what)
    assert_shape(got, (len(x),), what)
    return got


def check_acf_direct(autocorrelation):
    x = torch.randn(257, generator=_gen(20), dtype=DTYPE).cumsum(0) * 0.1 + 3.0
    got = _call_acf(autocorrelation, x, "autocorrelation of a random walk of 257 steps")
    expected = _direct_acf(x)
    unbiased = expected * len(x) / (len(x) - torch.arange(len(x), dtype=DTYPE))
    if torch.allclose(got, unbiased, atol=1e-8) and not torch.allclose(got, expected, atol=1e-8):
        raise AssertionError("divide every lag by n (the biased estimator, as in the docstring), not by n - t.")
    assert_close(got, expected, "autocorrelation of a random walk of 257 steps", rtol=1e-6, atol=1e-8)
    shifted = _call_acf(autocorrelation, 5.0 * x - 2.0, "autocorrelation of 5x - 2")
    assert_close(shifted, expected, "autocorrelation of 5x - 2 (it must not change under shifting and scaling)",
                 rtol=1e-6, atol=1e-8)


def check_acf_ar1(autocorrelation):
    # One stationary AR(1) chain, rho = 0.7, n = 20 000: Bartlett's standard error of rho_hat(t) is at most
    # sqrt((1 + rho^2)/(1 - rho^2) / n) = 0.012; 0.06 is 5 standard errors.
    rho, n = 0.7, 20_000
    e = torch.randn(n, generator=_gen(21), dtype=DTYPE).tolist()
    values = [e[0] / math.sqrt(1 - rho**2)]  # start in the stationary law N(0, 1/(1 - rho^2))
    for t in range(1, n):
        values.append(rho * values[-1] + e[t])
    x = torch.tensor(values, dtype=DTYPE)
    got = _call_acf(autocorrelation, x, "autocorrelation of an AR(1) chain with rho = 0.7")
    expected = rho ** torch.arange(10, dtype=DTYPE)
    if bool(((got[:10] - expected).abs() > 0.06).any()):
        raise AssertionError(
            f"for an AR(1) chain with rho = 0.7 the autocorrelation at lags 0..9 should be close to 0.7^t = "
            f"{[round(v, 3) for v in expected.tolist()]}; got {[round(v, 3) for v in got[:10].tolist()]}."
        )


EXERCISES = [
    Exercise(
        id="4.1",
        name="langevin_update",
        checks=[
            Check("matches x - (eps/2) Lambda (x - mu) + sqrt(eps) z on a Gaussian energy", check_step_quadratic, 1),
            Check("matches the closed-form gradient of a non-Gaussian energy (both conventions)", check_step_nonlinear, 1),
            Check("leaves the network's parameter gradients alone and returns a detached tensor", check_step_hygiene, 1),
        ],
    ),
    Exercise(
        id="4.2",
        name="mala_acceptance_prob",
        checks=[
            Check("matches the ratio of densities and proposal densities from torch.distributions",
                  check_alpha_against_densities, 2),
            Check("satisfies detailed balance for every pair of points", check_alpha_detailed_balance, 1),
        ],
    ),
    Exercise(
        id="4.3",
        name="sample_from_buffer",
        checks=[
            Check("re-initialises a fraction within binomial error, with whole rows from noise or buffer",
                  check_buffer_fraction_and_rows, 1),
            Check("draws the buffer's rows uniformly (chi-square test)", check_buffer_uniform, 1),
            Check("handles an empty buffer, fractions 0 and 1, and uses the generator", check_buffer_edge_cases, 1),
            Check("decides every row independently (the count of fresh rows is binomial)", check_buffer_independent_rows, 1),
        ],
    ),
    Exercise(
        id="4.4",
        name="autocorrelation",
        checks=[
            Check("matches the direct sum over lags and ignores shifting and scaling", check_acf_direct, 1),
            Check("gives rho^t for an AR(1) chain", check_acf_ar1, 1),
        ],
    ),
]
