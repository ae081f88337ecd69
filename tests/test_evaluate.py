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
