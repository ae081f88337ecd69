"""Evaluating EBMs: log Z and log-likelihood by quadrature on a grid (1-D and 2-D).

Later chapters add annealed importance sampling (chapter 3) and classifier metrics (chapter 7).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Tuple

import torch

from .core import check_int, check_tensor

__all__ = ["grid", "log_partition_grid", "log_likelihood_grid"]

Bounds = Sequence[Tuple[float, float]]


def _check_bounds(bounds) -> list:
    try:
        bounds = [(float(lo), float(hi)) for lo, hi in bounds]
    except (TypeError, ValueError) as err:
        raise ValueError("bounds must be a list of (low, high) pairs, one per dimension, e.g. [(-5, 5), (-5, 5)].") from err
    if len(bounds) not in (1, 2):
        raise ValueError(f"quadrature on a grid is for 1-D or 2-D energies; got {len(bounds)} dimensions.")
    for lo, hi in bounds:
        if not hi > lo:
            raise ValueError(f"each bound needs low < high; got ({lo}, {hi}).")
    return bounds


def grid(bounds: Bounds, n_points: int = 200, device=None, dtype=torch.float64):
    """Cell centres of a uniform grid over ``bounds`` (midpoint rule).

    Returns points (n_points**d, d), the per-axis centre coordinates (a list of d tensors (n_points,)) and
    the volume of one cell. For d = 2 the points are ordered row-major: reshape values to
    (n_points, n_points) with axis 0 = y (second coordinate) and axis 1 = x, ready for ``contourf``.
    """
    bounds = _check_bounds(bounds)
    n_points = check_int(n_points, "n_points", minimum=2)
    axes, cell = [], 1.0
    for lo, hi in bounds:
        h = (hi - lo) / n_points
        axes.append(torch.linspace(lo + h / 2, hi - h / 2, n_points, device=device, dtype=dtype))
        cell *= h
    if len(axes) == 1:
        return axes[0][:, None], axes, cell
    yy, xx = torch.meshgrid(axes[1], axes[0], indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), axes, cell


def _energy_on(points: torch.Tensor, energy: Callable, batch_size: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for chunk in points.split(batch_size):
            out.append(energy(chunk).reshape(-1).to(torch.float64))
    e = torch.cat(out)
    if not bool(torch.isfinite(e).all()):
        raise ValueError("the energy is NaN/inf somewhere on the grid; check the model or shrink the bounds.")
    return e


def log_partition_grid(
    energy: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds,
    n_points: int = 400,
    device=None,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 65536,
) -> float:
    """log Z = log int exp(-E(x)) dx by the midpoint rule on a uniform grid over ``bounds``.

    log Z ~= logsumexp_i(-E(x_i)) + log(cell volume), summed in float64 with log-sum-exp. For a smooth
    density that has decayed to ~0 at the edges of the box this is accurate to many digits; mass outside
    the box is lost, so choose bounds that cover the density. energy: callable (batch, d) -> (batch,);
    the grid is built with ``dtype`` on ``device`` (pass the model's dtype/device for a network).
    """
    points, _, cell = grid(bounds, n_points, device=device, dtype=dtype)
    e = _energy_on(points, energy, batch_size)
    return float(torch.logsumexp(-e, dim=0)) + math.log(cell)


def log_likelihood_grid(
    energy: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bounds: Bounds,
    n_points: int = 400,
    batch_size: int = 65536,
) -> float:
    """Mean log-likelihood (1/n) sum_i [-E(x_i)] - log Z of data x: (n, d), with log Z by quadrature."""
    x = check_tensor(x, "x", ndim=2)
    if x.shape[1] != len(bounds):
        raise ValueError(f"x has {x.shape[1]} dimensions but bounds has {len(bounds)}.")
    log_z = log_partition_grid(energy, bounds, n_points, device=x.device, dtype=x.dtype, batch_size=batch_size)
    return float(_energy_on(x, energy, batch_size).neg().mean()) - log_z
