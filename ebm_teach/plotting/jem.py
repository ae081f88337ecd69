"""Chapter 7 (joint energy models): their figures. Each function takes data and an optional ``ax`` and returns the
axes (or the figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from matplotlib.colors import LogNorm

from ..evaluate import grid
from .common import _ax, _np

__all__ = ["plot_reliability_diagram", "plot_score_histograms", "plot_log_density_2d"]


def plot_reliability_diagram(bins, ax=None, title: str = "", color=None, counts: bool = True, legend: bool = True):
    """Reliability diagram from :class:`ebm_teach.evaluate.ReliabilityBins`.

    Bars: the accuracy in each confidence bin. A red tick: the bin's mean confidence, joined to the bar's top by
    a red line, so the gap reads the same way above and below the bar (bar above the tick: underconfident bin;
    below: overconfident). counts: print each bin's number of examples above it (a bin of 2 examples says
    little). The dashed diagonal is perfect calibration; empty bins are left blank; the legend sits below
    the axes (legend=False leaves it out, e.g. to draw one legend for several panels with ``fig.legend``).
    """
    ax = _ax(ax)
    edges, count = _np(bins.edges), _np(bins.count)
    conf, acc = _np(bins.confidence), _np(bins.accuracy)
    filled = count > 0
    left, width = edges[:-1][filled], np.diff(edges)[filled]
    centre = left + width / 2
    ax.bar(left, acc[filled], width=width, align="edge", color=color or "tab:blue", edgecolor="white",
           linewidth=0.5, alpha=0.85, label="accuracy in the bin")
    ax.vlines(centre, np.minimum(acc[filled], conf[filled]), np.maximum(acc[filled], conf[filled]),
              color="tab:red", lw=1.5, zorder=3)
    ax.hlines(conf[filled], left + 0.15 * width, left + 0.85 * width, color="tab:red", lw=2.5, zorder=3,
              label="mean confidence in the bin")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    if counts:
        for x, top, n in zip(centre, np.maximum(acc[filled], conf[filled]), count[filled]):
            ax.text(x, top + 0.02, f"{int(n)}", ha="center", va="bottom", rotation=90, fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("confidence max$_y$ p(y|x)")
    ax.set_ylabel("accuracy")
    if legend:
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_score_histograms(scores: dict, ax=None, title: str = "", bins: int = 40, xlabel: str = "score",
                          legend: bool = True):
    """Overlaid normalised histograms of OOD scores, one per data set: ``scores`` maps a label (e.g.
    "digits (in)", "noise") to scores (n,). The first entry is drawn filled as the in-distribution reference.
    """
    ax = _ax(ax)
    arrays = {k: _np(v).ravel() for k, v in scores.items()}
    lo = min(float(a.min()) for a in arrays.values())
    hi = max(float(a.max()) for a in arrays.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for i, (label, a) in enumerate(arrays.items()):
        if i == 0:
            ax.hist(a, bins=edges, density=True, color="gray", alpha=0.45, label=label)
        else:
            ax.hist(a, bins=edges, density=True, histtype="step", lw=1.5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if legend:
        ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_log_density_2d(energy: Callable[[torch.Tensor], torch.Tensor], bounds: Sequence = ((-4, 4), (-4, 4)),
                        ax=None, samples=None, title: str = "", device=None, n_points: int = 150,
                        decades: float = 6.0, dtype=torch.float32):
    """The density exp(-E)/Z of a 2-D energy, normalised on a grid over ``bounds``, on a logarithmic colour
    scale spanning ``decades`` powers of ten below its maximum (a density that varies by orders of magnitude
    shows only its peak on a linear scale). Optional ``samples`` (n, 2) are scattered in white.
    """
    ax = _ax(ax)
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=dtype)
    with torch.no_grad():
        e = energy(points).double().reshape(-1)
    p = (torch.softmax(-e, 0) / cell).reshape(n_points, n_points)
    top = float(p.max())
    norm = LogNorm(vmin=top * 10.0**-decades, vmax=top)
    mesh = ax.pcolormesh(_np(xs), _np(ys), _np(p.clamp(min=top * 10.0**-decades)), norm=norm, cmap="viridis",
                         shading="auto")
    ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label="p(x), log scale")
    if samples is not None:
        s = _np(samples)
        ax.scatter(s[:, 0], s[:, 1], s=3, c="white", alpha=0.6, linewidths=0)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax
