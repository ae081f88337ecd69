import math

import pytest
import torch

from ebm_teach.evaluate import grid, log_likelihood_grid, log_partition_grid


def test_grid_ordering_matches_contour_convention():
    pts, (xs, ys), cell = grid([(0, 2), (10, 13)], 4)
    assert pts.shape == (16, 2) and cell == pytest.approx(0.5 * 0.75)
    assert torch.equal(pts[:4, 0], xs) and bool((pts[:4, 1] == ys[0]).all())


def test_log_partition_of_a_1d_quadratic_by_completing_the_square():
    a, b = 0.7, -1.3  # E = a x^2 - b x  =>  log Z = 1/2 log(pi / a) + b^2 / (4a)
    expected = 0.5 * math.log(math.pi / a) + b**2 / (4 * a)
    got = log_partition_grid(lambda x: a * x[:, 0] ** 2 - b * x[:, 0], [(-15, 15)], 3000)
    assert abs(got - expected) < 1e-10


def test_log_likelihood_of_a_standard_normal():
    x = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    expected = float((-0.5 * (x**2).sum(1) - math.log(2 * math.pi)).mean())
    got = log_likelihood_grid(lambda y: 0.5 * (y**2).sum(1), x, [(-8, 8), (-8, 8)], 400)
    assert abs(got - expected) < 1e-9


def test_bad_bounds_and_nan_energies():
    with pytest.raises(ValueError, match="low < high"):
        grid([(1, 0)], 10)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        grid([(0, 1)] * 3, 10)
    with pytest.raises(ValueError, match="NaN/inf somewhere on the grid"):
        log_partition_grid(lambda x: torch.log(x[:, 0]), [(-1, 1)], 10)


# --------------------------------------------------------------------------------------------- chapter 1's exercise checks
def _fails(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def test_ch01_exercise_checks_reject_typical_mistakes():
    """The hidden checks of chapter 1 fail a flipped sign, a dropped term, the wrong covariance, the maximum-
    likelihood answer where the CD-1 fixed point is asked for, and a missing ValueError."""
    from ebm_teach.grade.checks import ch01_gaussian_ebm as ch01

    def grad(sign=1.0, transform="solve", negative="sampled"):
        def loglik_grad_mu(x_data, mu, precision, z):
            positive = ((x_data - mu) @ precision).mean(0)
            L = torch.linalg.cholesky(precision)
            if transform == "solve":
                x_neg = mu + torch.linalg.solve_triangular(L.T, z.T, upper=True).T
            elif transform == "covariance factor":  # right covariance, but not the asked-for map of z
                x_neg = mu + z @ torch.linalg.cholesky(torch.linalg.inv(precision)).T
            else:  # z L^T: covariance Lambda instead of Lambda^-1
                x_neg = mu + z @ L.T
            neg = -((x_neg - mu) @ precision).mean(0) if negative == "sampled" else torch.zeros_like(mu)
            return positive + sign * neg
        return loglik_grad_mu

    for check in (ch01.check_grad_shape, ch01.check_grad_exact, ch01.check_grad_converges):
        check(grad())
    _fails(ch01.check_grad_exact, grad(sign=-1.0))  # return positive - negative
    _fails(ch01.check_grad_exact, grad(negative="exact"))
    _fails(ch01.check_grad_exact, grad(transform="covariance factor"))
    _fails(ch01.check_grad_exact, grad(transform="L"))

    def cd1(half=0.5, order=1.0, b_sign=1.0, reduce=torch.mean):
        def cd1_step(a, b, x, step_size, noise):
            x1 = x - half * step_size * (2 * a * x - b) + math.sqrt(step_size) * noise
            return x1, order * reduce(x**2 - x1**2), b_sign * -reduce(x - x1)
        return cd1_step

    ch01.check_cd1_against_autograd(cd1())
    for wrong in (cd1(half=1.0), cd1(order=-1.0), cd1(b_sign=-1.0), cd1(reduce=torch.sum)):
        _fails(ch01.check_cd1_against_autograd, wrong)

    def cdk(sign=1.0, noise=True, extra_step=0, half=False, validate=True):
        def cdk_expected_gradient(theta, s, eps, k):
            if validate and (eps <= 0 or k < 1):
                raise ValueError("need eps > 0 and k >= 1")
            r = 1.0 - (0.5 if half else 1.0) * eps * theta
            injected = eps * sum(r ** (2 * j) for j in range(int(k) + extra_step)) if noise else 0.0
            return sign * (s - (r ** (2 * int(k)) * s + injected))
        return cdk_expected_gradient

    for check in (ch01.check_cdk_one_step, ch01.check_cdk_against_propagation, ch01.check_cdk_rejects_bad_input):
        check(cdk())
    _fails(ch01.check_cdk_one_step, cdk(sign=-1.0))  # E[(x^k)^2] - E[(x^0)^2]
    _fails(ch01.check_cdk_against_propagation, cdk(noise=False))  # the injected noise left out
    _fails(ch01.check_cdk_against_propagation, cdk(extra_step=1))  # one noise term too many
    _fails(ch01.check_cdk_one_step, cdk(half=True))  # x -> x - (eps/2) theta x: the gradient of theta x^2 is 2 theta x
    _fails(ch01.check_cdk_rejects_bad_input, cdk(validate=False))
