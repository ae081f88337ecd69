"""Hidden checks for chapter 6's exercises (solutions/06_score_matching.py).

6.1 the DSM loss against the equivalent form 1/2 |s(x~) + z/sigma|^2 (the target written as -z/sigma), and,
    for Gaussian data with its exact noisy score, against the closed form d s^2 / (2 sigma^2 (s^2 + sigma^2)).
6.2 the sliced estimator against v^T A v + 1/2 (v^T s)^2 for linear scores (Jacobian A), against the full
    Jacobian from torch.autograd.functional.jacobian for a non-linear score, its gradient in a parameter
    against the closed form, and its average over random directions against the exact trace.
6.3 annealed Langevin against the order of its score calls, one step rebuilt by hand from the same noise,
    and the closed-form AR(1) mean and variance for Gaussian data with its exact noisy scores.
6.4 the predicted fraction of plain-Langevin chains that end near (5, 5) against the fraction of the
    starting square on that side of the basin boundary x1 + x2 = 0, computed here by one-dimensional
    quadrature, on random squares (chapter 6, section 4: each chain stays in the basin it starts in).

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


# ----------------------------------------------------------------------------- 6.1 DSM target and loss
def _call_dsm(dsm_loss, score, x, sigma, z, what):
    out = as_float64(dsm_loss(score, x, sigma, z), what)
    assert_shape(out, (), f"{what} (the batch mean: a single number)")
    return out


def check_dsm_against_noise_form(dsm_loss):
    # (x - x~)/sigma^2 = -z/sigma, so the loss is 1/2 mean_b |s(x + sigma z) + z/sigma|^2.
    g = _gen(0)
    x = torch.randn(16, 3, generator=g, dtype=DTYPE) * 2
    z = torch.randn(16, 3, generator=g, dtype=DTYPE)
    a = torch.tensor([[-1.0, 0.2, 0.0], [0.3, -0.5, 0.1], [0.0, 0.4, -2.0]], dtype=DTYPE)

    def score(y):
        return torch.tanh(y) @ a.T + 0.3

    for sigma in (0.1, 0.7, 2.5):
        want = 0.5 * ((score(x + sigma * z) + z / sigma) ** 2).sum(1).mean()
        got = _call_dsm(dsm_loss, score, x, sigma, z, f"dsm_loss with sigma = {sigma}")
        if abs(float(got) - float(want)) > 1e-8 * (1 + abs(float(want))):
            ratio = float(got) / float(want)
            hint = ""
            if abs(ratio - 1 / 3) < 1e-6:
                hint = " It is a third of the answer: sum the squares over the d = 3 coordinates, average over the batch."
            elif abs(ratio - 2) < 1e-6:
                hint = " It is twice the answer: the loss has a factor 1/2."
            raise AssertionError(
                f"dsm_loss(score, x, sigma={sigma}, z) for a batch of 16 points in 3-D should be {float(want):.6g}; "
                f"got {float(got):.6g}.{hint} Check x~ = x + sigma z, the target (x - x~)/sigma^2, and that the "
                "score is evaluated at the noisy point x~."
            )


def check_dsm_closed_form(dsm_loss):
    # Data N(0, s^2 I_2) with the exact noisy score -y/(s^2 + sigma^2): E loss = d s^2 / (2 sigma^2 (s^2 + sigma^2)).
    s, sigma, d, n = 1.3, 0.6, 2, 100_000
    g = _gen(1)
    x = s * torch.randn(n, d, generator=g, dtype=DTYPE)
    z = torch.randn(n, d, generator=g, dtype=DTYPE)
    got = float(_call_dsm(dsm_loss, lambda y: -y / (s**2 + sigma**2), x, sigma, z, "dsm_loss on Gaussian data"))
    want = d * s**2 / (2 * sigma**2 * (s**2 + sigma**2))
    per_example = 0.5 * ((-(x + sigma * z) / (s**2 + sigma**2) + z / sigma) ** 2).sum(1)
    tol = 5 * float(per_example.std()) / math.sqrt(n)  # 5 standard errors of the Monte Carlo mean
    if abs(got - want) > tol:
        raise AssertionError(
            f"for data N(0, {s}^2 I) and the exact noisy score the expected DSM loss at sigma = {sigma} is "
            f"d s^2 / (2 sigma^2 (s^2 + sigma^2)) = {want:.4f}; with n = {n} your loss {got:.4f} is more than 5 "
            f"standard errors ({tol:.4f}) away."
        )


def check_dsm_keeps_graph(dsm_loss):
    theta = torch.tensor(1.5, dtype=DTYPE, requires_grad=True)
    g = _gen(2)
    x = torch.randn(8, 2, generator=g, dtype=DTYPE)
    z = torch.randn(8, 2, generator=g, dtype=DTYPE)
    sigma = 0.5
    out = dsm_loss(lambda y: -theta * y, x, sigma, z)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise AssertionError(
            "dsm_loss must return a tensor that keeps autograd's graph (a score model is trained through it); "
            "avoid .item(), float() and .detach() on the way."
        )
    (grad,) = torch.autograd.grad(out, theta)
    x_tilde = x + sigma * z
    # d/dtheta 1/2 |-theta x~ + z/sigma|^2 = -x~ . (-theta x~ + z/sigma)
    want = (-(x_tilde * (-theta.detach() * x_tilde + z / sigma)).sum(1)).mean()
    assert_close(grad, want, "the derivative of dsm_loss in the score's parameter theta (s(y) = -theta y)",
                 rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- 6.2 sliced score matching
def _call_ssm(sliced_sm_loss, score, x, v, what):
    out = sliced_sm_loss(score, x, v)
    out64 = as_float64(out, what)
    assert_shape(out64, (), f"{what} (the mean over directions and points: a single number)")
    return out, out64


def check_ssm_linear(sliced_sm_loss):
    g = _gen(3)
    a = torch.tensor([[-1.0, 0.3, 0.0], [0.2, -2.0, 0.5], [0.1, 0.0, -0.7]], dtype=DTYPE)
    b = torch.tensor([0.5, -0.1, 0.2], dtype=DTYPE)
    x = torch.randn(5, 3, generator=g, dtype=DTYPE)
    v = torch.randn(4, 5, 3, generator=g, dtype=DTYPE)
    s = (x @ a.T + b)[None]
    vs = (v * s).sum(-1)
    want = (torch.einsum("pbi,ij,pbj->pb", v, a, v) + 0.5 * vs**2).mean()
    _, got = _call_ssm(sliced_sm_loss, lambda y: y @ a.T + b, x, v, "sliced_sm_loss for a linear score")
    if abs(float(got) - float(want)) > 1e-8 * (1 + abs(float(want))):
        raise AssertionError(
            f"for the linear score s(x) = A x + b (Jacobian A) with 4 directions for each of 5 points the estimate "
            f"is mean[v^T A v + 1/2 (v^T s)^2] = {float(want):.6g}; got {float(got):.6g}. Check that direction p "
            "of point b is v[p, b] and that x is repeated in the same order (x.repeat(P, 1) puts copy p of all "
            "points in rows p*B .. p*B + B - 1, like v.reshape(P * B, d))."
        )


def check_ssm_nonlinear_against_jacobian(sliced_sm_loss):
    g = _gen(4)
    w = torch.randn(3, 3, generator=g, dtype=DTYPE)

    def score(y):
        return torch.tanh(y @ w.T) - 0.5 * y**3

    x = torch.randn(6, 3, generator=g, dtype=DTYPE)
    v = torch.randn(2, 6, 3, generator=g, dtype=DTYPE)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda y: score(y[None])[0], xb) for xb in x])  # (B, d, d)
    s = score(x)[None]
    want = (torch.einsum("pbi,bij,pbj->pb", v, jac, v) + 0.5 * ((v * s).sum(-1)) ** 2).mean()
    _, got = _call_ssm(sliced_sm_loss, score, x, v, "sliced_sm_loss for a non-linear score")
    assert_close(got, want, "sliced_sm_loss for s(x) = tanh(W x) - x^3/2 (compared with the full Jacobian)",
                 rtol=1e-8, atol=1e-10)


def check_ssm_differentiable(sliced_sm_loss):
    # s(x) = -theta x: v^T grad(v^T s) = -theta |v|^2, (v^T s)^2 = theta^2 (v^T x)^2, so
    # dJ/dtheta = mean[-|v|^2 + theta (v^T x)^2].
    theta = torch.tensor(0.8, dtype=DTYPE, requires_grad=True)
    g = _gen(5)
    x = torch.randn(7, 2, generator=g, dtype=DTYPE)
    v = torch.randn(3, 7, 2, generator=g, dtype=DTYPE)
    out, _ = _call_ssm(sliced_sm_loss, lambda y: -theta * y, x, v, "sliced_sm_loss")
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise AssertionError(
            "sliced_sm_loss must keep autograd's graph so that it can train a model: call torch.autograd.grad "
            "with create_graph=True and do not detach the result."
        )
    try:
        (grad,) = torch.autograd.grad(out, theta)
    except RuntimeError as err:
        raise AssertionError(
            "differentiating sliced_sm_loss in the model's parameter failed: the graph of the inner "
            "torch.autograd.grad call was freed. Pass create_graph=True to it, so that the estimate can train "
            f"the model. (PyTorch said: {str(err).splitlines()[0][:120]})"
        ) from err
    want = (-(v**2).sum(-1) + theta.detach() * ((v * x[None]).sum(-1)) ** 2).mean()
    assert_close(grad, want, "d(sliced_sm_loss)/d(theta) for s(x) = -theta x (was create_graph=True passed?)",
                 rtol=1e-8, atol=1e-10)


def check_ssm_unbiased(sliced_sm_loss):
    # For the Gaussian score s = -Lambda (x - mu), Hyvarinen's J = -tr Lambda + 1/2 mean |s|^2 exactly; the sliced
    # estimate with many Gaussian directions must agree within 5 standard errors.
    lam = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=DTYPE)
    mu = torch.tensor([0.3, -0.2], dtype=DTYPE)
    g = _gen(6)
    x = torch.randn(20, 2, generator=g, dtype=DTYPE)
    n_proj = 5000
    v = torch.randn(n_proj, 20, 2, generator=g, dtype=DTYPE)

    def score(y):
        return -(y - mu) @ lam

    s = score(x)
    exact = float(-torch.trace(lam) + 0.5 * (s**2).sum(1).mean())
    terms = -torch.einsum("pbi,ij,pbj->pb", v, lam, v) + 0.5 * ((v * s[None]).sum(-1)) ** 2
    tol = 5 * float(terms.mean(1).std()) / math.sqrt(n_proj)
    _, got = _call_ssm(sliced_sm_loss, score, x, v, "sliced_sm_loss with 5000 random directions")
    if abs(float(got) - exact) > tol:
        raise AssertionError(
            f"averaged over {n_proj} Gaussian directions the sliced estimate should be within {tol:.3g} of "
            f"Hyvarinen's exact objective {exact:.4f} (E[v^T A v] = tr A); got {float(got):.4f}."
        )


# ----------------------------------------------------------------------------- 6.3 annealed Langevin
def _call_sweep(sweep, score, x, sigmas, step_size, n_steps_each, seed, what):
    out = sweep(score, x, sigmas, step_size, n_steps_each, _gen(seed))
    out = as_float64(out, what)
    assert_shape(out, tuple(x.shape), what)
    return out


def check_sweep_order_of_levels(sweep):
    calls = []

    def score(y, sigma):
        calls.append(round(float(sigma), 12))
        return -y

    sigmas = [3.0, 1.5, 0.75]
    _call_sweep(sweep, score, torch.zeros(4, 2, dtype=DTYPE), sigmas, 0.01, 4, 7, "annealed_langevin_sweep")
    want = [s for s in sigmas for _ in range(4)]
    if calls != want:
        raise AssertionError(
            f"with sigmas {sigmas} and n_steps_each = 4 the score should be called 4 times at each level, largest "
            f"first: {want}; the calls were {calls}."
        )


def check_sweep_one_step_by_hand(sweep):
    # One level, one step: x' = x + (eps/2) s(x) + sqrt(eps) z with z the generator's first draw.
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], dtype=DTYPE)
    eps = 0.09

    def score(y, sigma):
        return -2.0 * y + 1.0

    out = _call_sweep(sweep, score, x, [0.5], eps, 1, 8, "annealed_langevin_sweep for one step")
    z = torch.randn(x.shape, generator=_gen(8), dtype=DTYPE)
    want = x + 0.5 * eps * score(x, 0.5) + math.sqrt(eps) * z
    assert_close(
        out, want,
        "one Langevin step x + (eps/2) s(x) + sqrt(eps) z (z = torch.randn(x.shape, generator=generator, "
        "dtype=x.dtype))", rtol=1e-10, atol=1e-12,
    )


def check_sweep_gaussian_moments(sweep):
    # Data N(0, s^2) in 1-D with its exact noisy score -x / (s^2 + sigma^2): each step is the AR(1)
    # x' = rho x + sqrt(a) z, rho = 1 - a / (2 (s^2 + sigma^2)), so mean' = rho mean and var' = rho^2 var + a.
    s, n = 0.8, 50_000
    sigmas = [4.0, 2.0, 1.0, 0.5]
    eps, t = 0.02, 6
    x0 = 3.0 + 0.5 * torch.randn(n, 1, generator=_gen(9), dtype=DTYPE)
    mean, var = 3.0, 0.25
    for sigma in sigmas:
        a = eps * sigma**2 / sigmas[-1] ** 2
        rho = 1 - a / (2 * (s**2 + sigma**2))
        for _ in range(t):
            mean, var = rho * mean, rho**2 * var + a
    out = _call_sweep(sweep, lambda y, sigma: -y / (s**2 + sigma**2), x0, sigmas, eps, t, 10,
                      "annealed_langevin_sweep on Gaussian data")
    m_hat, v_hat = float(out.mean()), float(out.var())
    tol_m, tol_v = 5 * math.sqrt(var / n), 5 * var * math.sqrt(2 / n)  # 5 standard errors
    if abs(m_hat - mean) > tol_m or abs(v_hat - var) > tol_v:
        raise AssertionError(
            f"for Gaussian data with its exact noisy score, sigmas {sigmas}, step_size {eps} and {t} steps per "
            f"level the samples should end with mean {mean:.4f} and variance {var:.4f} (closed form); got mean "
            f"{m_hat:.4f} and variance {v_hat:.4f}. Check alpha_i = step_size * sigma_i^2 / sigma_L^2 and the "
            "factor 1/2 on the score term."
        )


# ----------------------------------------------------------------------------- 6.4 the prediction
def _fraction_on_the_first_side(a: float, b: float, n: int = 200_001) -> float:
    """P(U1 + U2 > 0) for U1, U2 ~ U(a, b) independent, by the midpoint rule over U1 (independent of any formula):
    given U1 = u, P(U2 > -u) = clip((b - max(a, -u)) / (b - a), 0, 1)."""
    u = a + (torch.arange(n, dtype=DTYPE) + 0.5) * (b - a) / n
    return float(((b - torch.maximum(torch.full_like(u, a), -u)) / (b - a)).clamp(0, 1).mean())


def _predict(predicted_fraction, a, b):
    out = as_float64(predicted_fraction(a, b), f"predicted_fraction({a:g}, {b:g})")
    assert_shape(out, (), f"predicted_fraction({a:g}, {b:g}) (a single number)")
    return float(out)


def check_prediction_on_the_chapters_square(predicted_fraction):
    got = _predict(predicted_fraction, -8.0, 8.0)
    if abs(got - 0.8) < 0.02:
        raise AssertionError(
            "predicted_fraction(-8, 8) gave the true weight 0.8, but plain Langevin does not find the weights: "
            "each chain stays in the basin of the mode it starts in. What fraction of the square [-8, 8]^2 lies "
            "on the (5, 5) side of the boundary x1 + x2 = 0?"
        )
    if abs(got - 0.5) > 0.02:
        raise AssertionError(f"on the chapter's square [-8, 8]^2 about half the chains end near (5, 5); got {got:.3f}.")


def check_prediction_on_random_squares(predicted_fraction):
    g = _gen(20)
    squares = [(-6.0, 2.0), (-1.0, 9.0), (1.0, 4.0), (-7.0, -0.5)]
    for _ in range(4):
        lo, width = float(torch.rand((), generator=g, dtype=DTYPE) * 16 - 10), float(torch.rand((), generator=g, dtype=DTYPE) * 12 + 1)
        squares.append((round(lo, 3), round(lo + width, 3)))
    for a, b in squares:
        want = _fraction_on_the_first_side(a, b)
        got = _predict(predicted_fraction, a, b)
        if abs(got - want) > 0.02:
            raise AssertionError(
                f"for chains started uniformly on the square [{a:g}, {b:g}]^2 the fraction that ends near (5, 5) "
                f"is {want:.3f} (the share of the square with x1 + x2 > 0, where the basin of (5, 5) is); your "
                f"prediction is {got:.3f}. The weights 0.8/0.2 do not enter: where does each chain end?"
            )


EXERCISES = [
    Exercise(
        id="6.1",
        name="dsm_loss",
        checks=[
            Check("matches 1/2 |s(x~) + z/sigma|^2 averaged over a 3-D batch, at three sigmas", check_dsm_against_noise_form, 2),
            Check("the exact noisy score of Gaussian data gives the closed-form expected loss", check_dsm_closed_form, 1),
            Check("keeps the graph: its derivative in the score's parameter is right", check_dsm_keeps_graph, 1),
        ],
    ),
    Exercise(
        id="6.2",
        name="sliced_sm_loss",
        checks=[
            Check("linear scores: mean of v^T A v + 1/2 (v^T s)^2", check_ssm_linear, 1),
            Check("a non-linear score, against its full Jacobian", check_ssm_nonlinear_against_jacobian, 1),
            Check("differentiable in the model's parameters (create_graph)", check_ssm_differentiable, 1),
            Check("averaged over many directions it is Hyvarinen's exact objective", check_ssm_unbiased, 1),
        ],
    ),
    Exercise(
        id="6.3",
        name="annealed_langevin_sweep",
        checks=[
            Check("calls the score n_steps_each times per level, largest sigma first", check_sweep_order_of_levels, 1),
            Check("one step x + (eps/2) s + sqrt(eps) z, rebuilt from the same noise", check_sweep_one_step_by_hand, 1),
            Check("Gaussian data: final mean and variance match the AR(1) closed form", check_sweep_gaussian_moments, 2),
        ],
    ),
    Exercise(
        id="6.4",
        name="predicted_fraction",
        checks=[
            Check("the chapter's square [-8, 8]^2", check_prediction_on_the_chapters_square, 1),
            Check("squares on one side, across the boundary and off-centre", check_prediction_on_random_squares, 2),
        ],
    ),
]
