"""Chapter 5 (noise-contrastive estimation): its figures.

Each function takes data and an optional ``ax`` and returns the axes (or the figure); nothing here calls
``plt.show()``. Figures fit the book's column: at most 8 inches wide, fonts of at least 9 points.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import torch

from ..evaluate import grid
from .common import _ax, _np

__all__ = ["plot_nce_boundary_1d", "plot_error_vs_nu", "plot_nce_classifier"]


def plot_nce_boundary_1d(x, model_density, noise_density, prob_data, boundaries=(), axes=None,
                         model_label: str = r"$\tilde p_\theta(x) = e^{-E(x)-c}$",
                         noise_label: str = r"$\nu\, p_n(x)$", title: str = ""):
    """Two panels for a 1-D NCE classifier: the model's density beside nu times the noise density, and the
    classifier's P(data | x) = sigma(Delta(x)); dashed lines mark the decision ``boundaries`` (Delta = 0).
    x, model_density, noise_density, prob_data: (n,). Returns the two axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    xs = _np(x).ravel()
    axes[0].plot(xs, _np(model_density).ravel(), label=model_label)
    axes[0].plot(xs, _np(noise_density).ravel(), label=noise_label)
    axes[1].plot(xs, _np(prob_data).ravel(), color="k")
    axes[1].axhline(0.5, color="gray", lw=0.8)
    for b in _np(boundaries).ravel():
        for ax in axes:
            ax.axvline(b, color="gray", ls="--", lw=1)
        axes[1].annotate(f"{b:+.3f}", (b, 0.05), ha="center", fontsize=9,
                         bbox=dict(boxstyle="round", fc="white", ec="none"))
    axes[0].set(xlabel="$x$", ylabel="density", title=title or "model against scaled noise")
    axes[0].title.set_fontsize(10)
    axes[0].legend(frameon=False, fontsize=9)
    axes[1].set(xlabel="$x$", ylabel=r"$P(\mathrm{data}\mid x) = \sigma(\Delta(x))$", ylim=(-0.02, 1.02),
                title="the classifier: data inside")
    return axes


def plot_error_vs_nu(nus, measured: dict, theory: Optional[dict] = None, floor: Optional[dict] = None, axes=None,
                     floor_label: str = "maximum likelihood", title: str = ""):
    """One log-log panel per parameter: the measured error of an NCE estimate against the noise ratio nu.

    measured: {name: errors (len(nus),)}; theory: optional {name: predicted errors (len(nus),)} drawn as a
    line; floor: optional {name: the maximum-likelihood error} drawn as a dashed horizontal line.
    Returns the axes.
    """
    names = list(measured)
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(min(7.8, 2.6 * len(names)), 3.0), squeeze=False)
        axes = axes[0]
    nus = _np(nus).ravel()
    for ax, name in zip(axes, names):
        ax.loglog(nus, _np(measured[name]).ravel(), "o", label="NCE, measured")
        if theory is not None and name in theory:
            ax.loglog(nus, _np(theory[name]).ravel(), "-", color="C0", alpha=0.6, label="NCE, asymptotic theory")
        if floor is not None and name in floor:
            ax.axhline(float(floor[name]), color="k", ls="--", lw=1, label=floor_label)
        ax.set(xlabel=r"noise ratio $\nu$", title=name)
    axes[0].set_ylabel("RMS error")
    axes[0].legend(frameon=False, fontsize=9)
    if title:
        axes[0].figure.suptitle(title)
    return axes


def plot_nce_classifier(prob: Callable, bounds: Sequence, centres=None, log_density: Optional[Callable] = None,
                        level: float = 0.01, ax=None, title: str = "", device=None, n_points: int = 150,
                        colorbar: bool = True):
    """Heat map of an NCE classifier's P(data | x) = sigma(Delta(x)) on [0, 1] over ``bounds``.

    prob: (m, 2) -> (m,) in [0, 1]; centres: optional (k, 2) points marked with crosses (the data's modes);
    log_density: optional true log-density whose ``level`` contour (density = level x its largest value on
    the grid) is drawn as one thin dashed line, so that the heat map stays visible where the data are.
    """
    ax = _ax(ax)
    points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=torch.float32)
    with torch.no_grad():
        p = prob(points).double().reshape(n_points, n_points)
    mesh = ax.pcolormesh(_np(xs), _np(ys), _np(p), cmap="viridis", vmin=0.0, vmax=1.0, shading="auto")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=r"$P(\mathrm{data}\mid x)$")
    if log_density is not None:
        with torch.no_grad():
            lp = log_density(points).double().reshape(n_points, n_points)
        rel = torch.exp(lp - lp.max())
        ax.contour(_np(xs), _np(ys), _np(rel), levels=[level], colors="white", linewidths=0.8,
                   linestyles="--", alpha=0.8)
    if centres is not None:
        c = _np(centres)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=30, c="red", linewidths=1.2)
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    ax.tick_params(labelsize=9)
    if title:
        ax.set_title(title, fontsize=9)
    return ax
