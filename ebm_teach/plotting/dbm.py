"""Chapter 8 (deep belief networks and deep Boltzmann machines): its figures. Each function takes data and an
optional ``ax`` and returns the axes (or the figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .common import _np

__all__ = ["plot_dbm_graph", "plot_posterior_vs_mean_field", "plot_log_likelihoods"]


def plot_dbm_graph(n_visible: int = 6, n_hidden1: int = 4, n_hidden2: int = 3, ax=None,
                   title: str = "a DBM: three layers, two Gibbs blocks"):
    """The DBM as a graph: rows v, h1, h2, edges only between neighbouring layers (W1, W2). The two blocks of
    block Gibbs sampling are coloured: {v, h2} (blue) are independent given h1 (orange), and vice versa."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.4, 3.2))
    rows = [(np.linspace(0, 1, n_visible), 0.0), (np.linspace(0.1, 0.9, n_hidden1), 1.0),
            (np.linspace(0.2, 0.8, n_hidden2), 2.0)]
    for (xa, ya), (xb, yb) in zip(rows, rows[1:]):
        for a in xa:
            for b in xb:
                ax.plot([a, b], [ya, yb], color="0.75", lw=0.7, zorder=1)
    names = ["v", "h^1", "h^2"]
    colours = ["tab:blue", "tab:orange", "tab:blue"]
    for (xs, y), name, colour in zip(rows, names, colours):
        ax.scatter(xs, np.full(len(xs), y), s=330, c=colour, zorder=2)
        for i, x in enumerate(xs):
            ax.text(x, y, f"${name}_{{{i + 1}}}$", ha="center", va="center", color="white", fontsize=8)
    ax.text(1.08, 0, "v: bias $b$", va="center", fontsize=9)
    ax.text(1.08, 1, "$h^1$: bias $c_1$", va="center", fontsize=9)
    ax.text(1.08, 2, "$h^2$: bias $c_2$", va="center", fontsize=9)
    ax.text(0.5, 0.5, "$W_1$", ha="center", va="center", fontsize=11, backgroundcolor="white")
    ax.text(0.5, 1.5, "$W_2$", ha="center", va="center", fontsize=11, backgroundcolor="white")
    ax.set(xlim=(-0.1, 1.5), ylim=(-0.35, 2.35))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_posterior_vs_mean_field(posterior, mean_field, axes=None, title: str = ""):
    """Two heat maps of a distribution over (h1, h2) states, rows h1 and columns h2 (each state's bits read as a
    binary number): the exact posterior p(h1, h2 | v) and the mean-field q(h1) q(h2), which is an outer product
    (rank one) and so cannot show how h1 and h2 depend on each other. Both arrays (2^n1, 2^n2)."""
    p, q = _np(posterior), _np(mean_field)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
    vmax = max(p.max(), q.max())
    for ax, data, name in zip(axes, (p, q), ("exact posterior $p(h^1, h^2 \\mid v)$", "mean field $q(h^1)\\,q(h^2)$")):
        im = ax.imshow(data, cmap="viridis", vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("state of $h^2$")
        ax.set_xticks(range(data.shape[1]))
        ax.set_yticks(range(data.shape[0]))
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("state of $h^1$")
    axes[1].set_yticklabels([])
    axes[1].figure.colorbar(im, ax=list(axes), shrink=0.85, label="probability")
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def plot_log_likelihoods(values: dict, errors: Optional[dict] = None, ax=None, title: str = "",
                         xlabel: str = "exact test log-likelihood (nats)", reference: Optional[float] = None,
                         reference_label: str = ""):
    """Horizontal bars of one number per model (``values`` maps a label to a float), with optional error bars
    (``errors``: label -> half-width) and a dotted vertical ``reference`` line. Bars start at the smallest value
    minus a margin, so that small differences stay visible; the axis says so."""
    labels = list(values)
    vals = np.array([float(values[k]) for k in labels])
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.0))
    lo = min(vals.min(), reference if reference is not None else vals.min())
    hi = max(vals.max(), reference if reference is not None else vals.max())
    margin = 0.15 * (hi - lo) + 0.05
    left = lo - margin
    err = None if errors is None else [float(errors.get(k, 0.0)) for k in labels]
    ax.barh(range(len(labels)), vals - left, left=left, xerr=err, color="tab:blue", alpha=0.75, capsize=3)
    for i, value in enumerate(vals):
        ax.text(value + margin * 0.1, i, f"{value:.2f}", va="center", fontsize=9)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(left, hi + margin)
    if reference is not None:
        ax.axvline(reference, color="k", ls=":", lw=1)
        if reference_label:
            ax.text(reference, len(labels) - 0.4, " " + reference_label, fontsize=8, va="bottom")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
