"""Chapter 4 (Langevin dynamics, MCMC diagnostics, deep EBMs): their figures. Each function takes data and an optional ``ax`` and returns the axes (or the
figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..evaluate import grid
from .common import _ax, _np

__all__ = ["plot_samples_vs_density", "plot_traces", "plot_autocorr", "plot_training_curves", "plot_sample_panels"]


def plot_samples_vs_density(samples, log_prob: Callable, bounds: Sequence = ((-4, 4), (-4, 4)), ax=None,
                            title: str = "", bins: int = 50, n_points: int = 120, levels: int = 6):
    """2-D histogram of samples (n, 2), normalised as a density, under contour lines of the exact density
    exp(log_prob(x)) (log_prob: (m, 2) -> (m,)). Where the sampler is right, the shading follows the lines."""
    ax = _ax(ax)
    s = _np(samples)
    (x0, x1), (y0, y1) = bounds
    ax.hist2d(s[:, 0], s[:, 1], bins=bins, range=[[x0, x1], [y0, y1]], density=True, cmap="Greys")
    points, (xs, ys), _ = grid(bounds, n_points, dtype=torch.float64)
    with torch.no_grad():
        p = log_prob(points).exp().reshape(n_points, n_points)
    ax.contour(_np(xs), _np(ys), _np(p), levels=levels, colors="tab:orange", linewidths=1.0)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_traces(chains, ax=None, title: str = "", labels=None, ylabel: str = "$x_1$"):
    """Trace plot of chains (n_chains, n_steps) or one chain (n_steps,): value against step, one line per chain."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(8, 2.6))[1]
    c = np.atleast_2d(_np(chains))
    for i, row in enumerate(c):
        ax.plot(row, lw=0.6, label=None if labels is None else labels[i])
    ax.set(xlabel="step", ylabel=ylabel)
    if labels is not None:
        ax.legend(frameon=False, fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    return ax


def plot_autocorr(acfs: dict, max_lag: int = 100, ax=None, title: str = "", exact: Optional[dict] = None):
    """Autocorrelation rho(t) for t = 0..max_lag of several chains (``acfs`` maps a label to rho (n,));
    ``exact`` maps a label to a known curve drawn dashed."""
    ax = _ax(ax)
    for label, rho in acfs.items():
        ax.plot(_np(rho)[: max_lag + 1], label=label)
    for label, rho in (exact or {}).items():
        ax.plot(_np(rho)[: max_lag + 1], ls="--", color="k", lw=0.8, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="lag t", ylabel=r"$\rho(t)$", xlim=(0, max_lag))
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_training_curves(histories: dict, key: str = "gap", ax=None, title: str = "", smooth: int = 1,
                         ylabel: Optional[str] = None):
    """One training quantity (``key`` of each history dict, e.g. "gap", "e_pos") against iteration, one line
    per run (``histories`` maps a label to a history); ``smooth`` > 1 draws a running mean over that window."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3))[1]
    for label, h in histories.items():
        y = _np(h[key]).astype(float)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(y)) + (smooth - 1 if smooth > 1 else 0), y, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="iteration", ylabel=ylabel or key)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_sample_panels(panels: dict, bounds: Sequence = ((-6, 6), (-6, 6)), size: float = 3.4, s: float = 2):
    """A row of scatter plots of 2-D samples, one per entry of ``panels`` (title -> samples (n, 2)), on shared
    ``bounds``; returns the figure. For comparing data with what different samplers or models produce."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.2), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels.items()):
        x = _np(x)
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.5, linewidths=0)
        ax.set(xlim=bounds[0], ylim=bounds[1], xlabel="$x_1$", ylabel="$x_2$")
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
