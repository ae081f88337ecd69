"""Chapter 7 (joint energy models): their figures. Each function takes data and an optional ``ax`` and returns the axes (or the
figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations


import numpy as np

from .common import _ax, _np

__all__ = ["plot_reliability_diagram", "plot_score_histograms"]


def plot_reliability_diagram(bins, ax=None, title: str = "", label: str = "", color=None):
    """Reliability diagram from :class:`ebm_teach.evaluate.ReliabilityBins`: accuracy per confidence bin as
    bars against the diagonal of perfect calibration, with the gap to each bin's mean confidence shaded.
    Bars above the diagonal are underconfident bins, below it overconfident ones; empty bins are left blank.
    """
    ax = _ax(ax)
    edges, count = _np(bins.edges), _np(bins.count)
    conf, acc = _np(bins.confidence), _np(bins.accuracy)
    filled = count > 0
    width = np.diff(edges)
    ax.bar(edges[:-1][filled], acc[filled], width=width[filled], align="edge", color=color or "tab:blue",
           edgecolor="black", linewidth=0.5, alpha=0.8, label=f"accuracy{' (' + label + ')' if label else ''}")
    ax.bar(edges[:-1][filled], conf[filled] - acc[filled], bottom=acc[filled], width=width[filled], align="edge",
           fill=False, hatch="///", edgecolor="tab:red", linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence max$_y$ p(y|x)")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_score_histograms(scores: dict, ax=None, title: str = "", bins: int = 40, xlabel: str = "score"):
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
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax
