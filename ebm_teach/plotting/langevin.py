"""Chapter 4 (Langevin dynamics, MCMC diagnostics, deep EBMs): its figures.

Each function takes data and an optional ``ax`` and returns the axes (or the figure); nothing here calls
``plt.show()``. Figures fit the book's column: at most 8 inches wide, fonts of at least 9 points.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..evaluate import grid
from .common import _ax, _np

__all__ = [
    "plot_samples_vs_density",
    "plot_traces",
    "plot_autocorr",
    "plot_training_curves",
    "plot_energy_gap",
    "plot_sample_panels",
    "plot_density_panels",
    "plot_energy_magnitudes",
    "plot_image_chains",
]


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
    """Trace plot of chains (n_chains, n_steps) or one chain (n_steps,): value against step, one line per chain.

    With ``labels`` the legend sits outside the axes, to the right, so that it hides no part of a trace.
    """
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(8, 2.6))[1]
    c = np.atleast_2d(_np(chains))
    for i, row in enumerate(c):
        ax.plot(row, lw=0.6, label=None if labels is None else labels[i])
    ax.set(xlabel="step", ylabel=ylabel, xlim=(0, c.shape[1] - 1))
    if labels is not None:
        ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0), handlelength=1.2)
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
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def _running_mean(y: np.ndarray, smooth: int):
    if smooth > 1 and len(y) >= smooth:
        return np.arange(smooth - 1, len(y)), np.convolve(y, np.ones(smooth) / smooth, mode="valid")
    return np.arange(len(y)), y


def plot_training_curves(histories: dict, key: str = "gap", ax=None, title: str = "", smooth: int = 1,
                         ylabel: Optional[str] = None):
    """One training quantity (``key`` of each history dict, e.g. "gap", "e_pos") against iteration, one line
    per run (``histories`` maps a label to a history); ``smooth`` > 1 draws a running mean over that window."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3))[1]
    for label, h in histories.items():
        ax.plot(*_running_mean(_np(h[key]).astype(float), smooth), label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="iteration", ylabel=ylabel or key)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_energy_gap(histories: dict, ax=None, smooth: int = 20, title: str = ""):
    """The energy gap mean E(x+) - mean E(x-) of each run (solid) beside where the L2-regularised loss lets it
    settle, -2 alpha (mean E(x+)^2 + mean E(x-)^2) = -2 (loss - gap) (dashed, same colour); running means over
    ``smooth`` iterations. ``histories`` maps a label to a history of :func:`ebm_teach.training.train_ebm`.
    The legend sits below the axes, where it hides no curve."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(7, 3.6))[1]
    for i, (label, h) in enumerate(histories.items()):
        gap, loss = _np(h["gap"]).astype(float), _np(h["loss"]).astype(float)
        ax.plot(*_running_mean(gap, smooth), color=f"C{i}", label=label)
        ax.plot(*_running_mean(-2 * (loss - gap), smooth), color=f"C{i}", ls="--", lw=1.2)
    ax.plot([], [], color="gray", ls="--", lw=1.2,
            label=r"dashed: $-2\alpha(\overline{E(x^+)^2} + \overline{E(x^-)^2})$")
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="iteration", ylabel=r"$\overline{E(x^+)} - \overline{E(x^-)}$")
    ax.legend(frameon=False, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax


def plot_sample_panels(panels: dict, bounds: Sequence = ((-6, 6), (-6, 6)), n_cols: int = 3, width: float = 8.0,
                       s: float = 2):
    """A grid of scatter plots of 2-D samples, one per entry of ``panels`` (title -> samples (n, 2)), on shared
    ``bounds``, ``n_cols`` per row, ``width`` inches wide; returns the figure. For comparing data with what
    different samplers or models produce."""
    n_cols = min(n_cols, len(panels))
    n_rows = int(np.ceil(len(panels) / n_cols))
    size = width / n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, size * n_rows + 0.3), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        x = _np(x)
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.5, linewidths=0)
        ax.set(xlim=bounds[0], ylim=bounds[1])
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    return fig


def plot_density_panels(panels: dict, bounds: Sequence = ((-6, 6), (-6, 6)), n_cols: int = 3,
                        width: float = 8.0, n_points: int = 100, device=None):
    """A grid of model densities exp(-E)/Z on ``bounds``, normalised on the grid, one panel per entry of
    ``panels`` (title -> energy callable (m, 2) -> (m,)), ``n_cols`` per row; returns the figure. Each panel has
    its own colour scale (no colour bars: the shapes are what to compare)."""
    n_cols = min(n_cols, len(panels))
    n_rows = int(np.ceil(len(panels) / n_cols))
    size = width / n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, size * n_rows + 0.3), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=torch.float32)
    for ax, (title, energy) in zip(axes.flat, panels.items()):
        with torch.no_grad():
            e = energy(points).double()
        p = torch.softmax(-e, 0).reshape(n_points, n_points)
        ax.pcolormesh(_np(xs), _np(ys), _np(p), cmap="viridis", shading="auto")
        ax.set(xlim=bounds[0], ylim=bounds[1])
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    return fig


def plot_energy_magnitudes(history: dict, ax=None, title: str = "", signed: bool = False,
                           linthresh: float = 1.0):
    """The mean energies E(x+) and E(x-) of a training history against iteration, for a run that blows up.

    signed=False: |mean E| on a log scale, so growth by orders of magnitude reads directly off the axis.
    signed=True: the signed means on a symmetric log scale (linear within +-linthresh, logarithmic beyond),
    so that one also sees which way each energy runs."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(7, 3))[1]
    e_pos, e_neg = (_np(history[k]).astype(float) for k in ("e_pos", "e_neg"))
    if signed:
        ax.plot(e_pos, label=r"$\overline{E(x^+)}$ (data)")
        ax.plot(e_neg, label=r"$\overline{E(x^-)}$ (negatives)")
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.axhline(0.0, color="gray", lw=0.5)
        ax.set(xlabel="iteration", ylabel="mean energy (symlog)")
    else:
        ax.semilogy(np.abs(e_pos), label=r"$|\overline{E(x^+)}|$ (data)")
        ax.semilogy(np.abs(e_neg), label=r"$|\overline{E(x^-)}|$ (negatives)")
        ax.set(xlabel="iteration", ylabel="|mean energy|")
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_image_chains(frames, steps: Sequence[int], image_shape=(8, 8), ax=None, title: str = ""):
    """Images evolving along Langevin chains: one row per chain, one column per recorded step.

    frames: (len(steps), n_chains, h*w) in [0, 1], frames[j] the chains after steps[j] steps (0 = the start).
    """
    f = _np(frames)
    n_steps, n_chains = f.shape[:2]
    h, w = image_shape
    canvas = np.full((n_chains * (h + 1) - 1, n_steps * (w + 1) - 1), np.nan)
    for j in range(n_steps):
        for i in range(n_chains):
            canvas[i * (h + 1): i * (h + 1) + h, j * (w + 1): j * (w + 1) + w] = f[j, i].reshape(h, w)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(8.0, 0.85 * n_steps + 0.6), 0.85 * n_chains + 0.7))
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([j * (w + 1) + (w - 1) / 2 for j in range(n_steps)], [str(s) for s in steps], fontsize=9)
    ax.set_yticks([])
    ax.set_xlabel("Langevin steps from uniform noise")
    if title:
        ax.set_title(title)
    return ax
