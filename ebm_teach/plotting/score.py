"""Chapter 6 (score matching, annealed Langevin): their figures. Each function takes data and an optional ``ax`` and returns the axes (or the
figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..evaluate import grid
from .common import _ax, _np

__all__ = ["plot_objective_curves", "plot_cost_vs_dimension", "plot_score_field", "plot_scalar_field",
            "plot_annealing_snapshots", "plot_density_pair"]


def plot_objective_curves(theta, curves: dict, ax=None, title: str = "", xlabel: str = r"$\theta$",
                          ylabel: str = "objective", dashed: Sequence[str] = ()):
    """Several objectives against one parameter: theta (n,), ``curves`` maps a label to values (n,); the
    labels in ``dashed`` are drawn dashed (to show a curve lying on top of another). Curves that differ by a
    constant show up as parallel lines with their minima at the same theta."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 3.4))[1]
    for label, y in curves.items():
        ax.plot(_np(theta), _np(y), label=label, ls="--" if label in dashed else "-")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_cost_vs_dimension(dims, seconds: dict, ax=None, title: str = ""):
    """Time per call against the dimension d on log-log axes, one line per method (``seconds`` maps a label
    to a sequence aligned with ``dims``); a dotted line of slope 1 is drawn for reference."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 3.4))[1]
    d = np.asarray(dims, dtype=float)
    for label, t in seconds.items():
        ax.loglog(d, np.asarray(t, dtype=float) * 1e3, "o-", label=label)
    first = min(float(np.asarray(t, dtype=float)[0]) for t in seconds.values()) * 1e3
    ax.loglog(d, first * d / d[0], ":", color="gray", label=r"$\propto d$")
    ax.set(xlabel="dimension $d$", ylabel="ms per loss and gradient")
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_score_field(score: Callable, bounds: Sequence = ((-5, 5), (-5, 5)), n_arrows: int = 21,
                     log_density: Optional[Callable] = None, samples=None, ax=None, title: str = "",
                     device=None, dtype=torch.float32, n_points: int = 150, color: str = "white"):
    """Arrows of a 2-D score field s(x) (score: (m, 2) -> (m, 2)) on an n_arrows x n_arrows grid over
    ``bounds``, drawn over a heat map of exp(log_density) (log_density: (m, 2) -> (m,)) when given.

    Arrow lengths are proportional to |s|, capped at the 90th percentile so that the long arrows far from
    the data do not hide the short ones near the modes. Optional ``samples`` (n, 2) are scattered on top.
    """
    ax = _ax(ax)
    if log_density is not None:
        points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=dtype)
        with torch.no_grad():
            p = log_density(points).double().exp().reshape(n_points, n_points)
        ax.contourf(_np(xs), _np(ys), _np(p), levels=20, cmap="viridis")
    points, (xs, ys), _ = grid(bounds, n_arrows, device=device, dtype=dtype)
    s = _np(score(points)).astype(float)
    norm = np.linalg.norm(s, axis=1)
    cap = np.quantile(norm, 0.9) + 1e-12
    s = s * np.minimum(1.0, cap / (norm + 1e-12))[:, None]
    cell = float(xs[1] - xs[0])
    p = _np(points)
    ax.quiver(p[:, 0], p[:, 1], s[:, 0], s[:, 1], angles="xy", scale_units="xy", scale=cap / (0.9 * cell),
              color=color, width=0.004)
    if samples is not None:
        x = _np(samples)
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange", alpha=0.5, linewidths=0)
    (x0, x1), (y0, y1) = bounds
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_scalar_field(values: Callable, bounds: Sequence = ((-5, 5), (-5, 5)), log_density: Optional[Callable] = None,
                      ax=None, title: str = "", label: str = "", n_points: int = 120, device=None,
                      dtype=torch.float32, cmap: str = "magma", vmax: Optional[float] = None):
    """Heat map of a scalar function f(x) (values: (m, 2) -> (m,)) over ``bounds``, with white contour
    lines of the density exp(log_density) on top, e.g. a score model's error against where the data lie."""
    ax = _ax(ax)
    points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=dtype)
    with torch.no_grad():
        f = values(points).double().reshape(n_points, n_points)
    mesh = ax.pcolormesh(_np(xs), _np(ys), _np(f), cmap=cmap, vmin=0 if vmax is not None else None, vmax=vmax,
                         shading="auto")
    ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=label)
    if log_density is not None:
        with torch.no_grad():
            p = log_density(points).double().exp().reshape(n_points, n_points)
        ax.contour(_np(xs), _np(ys), _np(p), levels=5, colors="white", linewidths=0.8)
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_annealing_snapshots(x_levels, sigmas, levels: Optional[Sequence[int]] = None,
                             bounds: Sequence = ((-10, 10), (-10, 10)), axes=None, title: str = ""):
    """Scatter plots of annealed-Langevin samples after chosen levels: x_levels (L, n, 2) as returned in
    ``AnnealedLangevinInfo``, sigmas (L,); ``levels`` are indices into them (default: four spread out)."""
    x_levels = _np(x_levels)
    sig = _np(sigmas).ravel()
    if levels is None:
        levels = sorted({int(round(i)) for i in np.linspace(0, len(sig) - 1, 4)})
    if axes is None:
        fig, axes = plt.subplots(1, len(levels), figsize=(min(8.0, 2.0 * len(levels)), 2.4), sharex=True,
                                 sharey=True)
    axes = np.atleast_1d(axes)
    for ax, i in zip(axes, levels):
        x = x_levels[i]
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, linewidths=0)
        ax.set_title(rf"after $\sigma_{{{i + 1}}}$ = {sig[i]:.2g}", fontsize=9)
        ax.set(xlim=bounds[0], ylim=bounds[1], xlabel="$x_1$")
        ax.set_aspect("equal")
    axes[0].set_ylabel("$x_2$")
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_density_pair(energies: dict, bounds: Sequence = ((-5, 5), (-5, 5)), n_points: int = 150, device=None,
                      dtype=torch.float32, levels: int = 20, cmap: str = "viridis", figsize=(8.0, 3.4)):
    """Densities exp(-E)/Z of several 2-D energies side by side on one shared colour scale.

    ``energies`` maps a panel title to an energy (m, 2) -> (m,); each density is normalised on the grid over
    ``bounds``. All panels use the same contour levels from 0 to the largest density of any panel, with one
    colour bar, so that equally bright means equally dense in every panel (separate colour bars would
    stretch each panel to its own maximum). Returns (fig, axes).
    """
    if not energies:
        raise ValueError("energies must map at least one title to an energy function.")
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=dtype)
    densities = {}
    with torch.no_grad():
        for title, energy in energies.items():
            e = energy(points).double().reshape(-1)
            densities[title] = _np((torch.softmax(-e, 0) / cell).reshape(n_points, n_points))
    top = max(float(d.max()) for d in densities.values())
    fig, axes = plt.subplots(1, len(energies), figsize=figsize, squeeze=False)
    axes = axes[0]
    steps = np.linspace(0.0, top, levels + 1)
    for ax, (title, d) in zip(axes, densities.items()):
        cs = ax.contourf(_np(xs), _np(ys), d, levels=steps, cmap=cmap)
        ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.colorbar(cs, ax=list(axes), shrink=0.8, label="p(x), one scale for all panels")
    return fig, axes
