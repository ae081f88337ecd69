"""Chapter 8 (deep belief networks and deep Boltzmann machines): its figures. Each function takes data and an
optional ``ax`` (or ``axes``) and returns the axes (or the figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

from .common import _np

__all__ = ["plot_dbm_graph", "plot_posterior_vs_mean_field", "plot_bound_curves", "plot_training_by_passes",
           "plot_seed_differences", "plot_ais_errors"]


def plot_dbm_graph(n_visible: int = 6, n_hidden1: int = 4, n_hidden2: int = 3, ax=None,
                   title: str = "a DBM: three layers, two Gibbs blocks"):
    """The DBM as a graph: rows v, h1, h2, edges only between neighbouring layers (W1, W2). The two blocks of
    block Gibbs sampling are coloured, with a legend: {v, h2} (blue) are independent given h1 (orange), and h1's
    units are independent given {v, h2}."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 3.3))
    rows = [(np.linspace(0, 1, n_visible), 0.0), (np.linspace(0.1, 0.9, n_hidden1), 1.0),
            (np.linspace(0.2, 0.8, n_hidden2), 2.0)]
    for (xa, ya), (xb, yb) in zip(rows, rows[1:]):
        for a in xa:
            for b in xb:
                ax.plot([a, b], [ya, yb], color="0.75", lw=0.7, zorder=1)
    names = ["v", "h^1", "h^2"]
    colours = ["tab:blue", "tab:orange", "tab:blue"]
    for (xs, y), name, colour in zip(rows, names, colours):
        ax.scatter(xs, np.full(len(xs), y), s=520, c=colour, zorder=2)
        for i, x in enumerate(xs):
            ax.text(x, y, f"${name}_{{{i + 1}}}$", ha="center", va="center", color="white", fontsize=9)
    for y, text in [(0, "$\\mathbf{v}$: bias $\\mathbf{b}$"), (1, "$\\mathbf{h}^1$: bias $\\mathbf{c}_1$"),
                    (2, "$\\mathbf{h}^2$: bias $\\mathbf{c}_2$")]:
        ax.text(1.08, y, text, va="center", fontsize=9)
    ax.text(0.5, 0.5, "$W_1$", ha="center", va="center", fontsize=11, backgroundcolor="white")
    ax.text(0.5, 1.5, "$W_2$", ha="center", va="center", fontsize=11, backgroundcolor="white")
    handles = [Line2D([], [], ls="", marker="o", ms=9, color="tab:blue", label="block 1: $\\{\\mathbf{v}, \\mathbf{h}^2\\}$"),
               Line2D([], [], ls="", marker="o", ms=9, color="tab:orange", label="block 2: $\\mathbf{h}^1$")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.45, 0.02), ncol=2, frameon=False, fontsize=9)
    ax.set(xlim=(-0.1, 1.55), ylim=(-0.35, 2.35))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_posterior_vs_mean_field(posterior, mean_field, n_hidden1: int, n_hidden2: int, axes=None, title: str = ""):
    """Three heat maps over the states of (h1, h2), rows h1 and columns h2, each labelled by its bits (unit 1
    first): the exact posterior p(h1, h2 | v), the mean-field q(h1) q(h2) (an outer product: it cannot make h1
    depend on h2), and their difference p - q on a diverging scale, which shows the coupling q leaves out.
    Both arrays (2^n_hidden1, 2^n_hidden2), states in itertools.product order (unit 1 most significant)."""
    p, q = _np(posterior), _np(mean_field)
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(6.8, 3.9), gridspec_kw={"wspace": 0.12})
    fig = axes[0].figure
    vmax = max(p.max(), q.max())
    rows = ["".join(b) for b in _bits(n_hidden1)]
    cols = ["".join(b) for b in _bits(n_hidden2)]
    for ax, data, name in zip(axes[:2], (p, q), ("exact $p(h^1, h^2 \\mid v)$", "mean field $q(h^1)\\,q(h^2)$")):
        im = ax.imshow(data, cmap="viridis", vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=9)
    diff = p - q
    lim = np.abs(diff).max()
    im_d = axes[2].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    axes[2].set_title("difference $p - q$", fontsize=9)
    for i, ax in enumerate(axes):
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, fontsize=9, rotation=90)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows if i == 0 else [], fontsize=9)
        ax.set_xlabel("$h^2$ (bits)", fontsize=9)
    axes[0].set_ylabel("$h^1$ (bits)", fontsize=9)
    fig.colorbar(im, ax=list(axes[:2]), shrink=0.8, pad=0.02).ax.tick_params(labelsize=9)
    fig.colorbar(im_d, ax=axes[2], shrink=0.8, pad=0.04).ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=10, y=1.02)
    return axes


def _bits(n: int):
    import itertools

    return [tuple(str(x) for x in bits) for bits in itertools.product((0, 1), repeat=n)]


def plot_bound_curves(curves: dict, ax=None, title: str = "", xlabel: str = "update of the top RBM",
                      ylabel: str = "bound minus $\\log p_1(\\mathbf{v})$ (nats)"):
    """Curves of the DBN bound's change against training progress: ``curves`` maps a label to (x, y), with an
    optional third entry, a dict of plot keywords. A line at 0 marks where the bound started, log p1(v); the x
    ticks are integers."""
    ax = ax if ax is not None else plt.subplots(figsize=(6.4, 3.4))[1]
    for label, entry in curves.items():
        x, y = entry[0], entry[1]
        style = entry[2] if len(entry) > 2 else {}
        ax.plot(_np(x), _np(y), label=label, **style)
    ax.axhline(0.0, color="gray", ls="--", lw=1, label="start: $\\log p_1(\\mathbf{v})$ (tight)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_training_by_passes(curves: dict, ax=None, title: str = "", marks: Optional[dict] = None,
                            ylabel: str = "exact test log-likelihood (nats)"):
    """Exact test log-likelihood against passes over the training data (every kind of epoch counts one):
    ``curves`` maps a label to (passes, values); ``marks`` maps a label to (x, text) for a dotted vertical line
    (e.g. where pre-training ends). Integer x ticks."""
    ax = ax if ax is not None else plt.subplots(figsize=(6.4, 3.4))[1]
    for label, (x, y) in curves.items():
        ax.plot(_np(x), _np(y), "o-", ms=3, label=label)
    for text, x in (marks or {}).items():
        ax.axvline(x, color="gray", ls=":", lw=1)
        ax.text(x, ax.get_ylim()[1], text + " ", fontsize=9, va="top", ha="right", color="0.3")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("passes over the training data", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(frameon=False, fontsize=9, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_seed_differences(differences: dict, live: Optional[dict] = None, ax=None, title: str = "",
                          xlabel: str = "difference in exact test log-likelihood (nats)"):
    """Paired differences over seeds as dots, one row per comparison: ``differences`` maps a label to its values
    (one per seed), drawn as small grey dots with their mean as a black bar; ``live`` maps a label to this
    run's value, drawn as a larger coloured dot. A vertical line marks 0 (no difference)."""
    labels = list(differences)
    ax = ax if ax is not None else plt.subplots(figsize=(6.6, 0.55 * len(labels) + 1.2))[1]
    rng = np.random.default_rng(0)  # vertical jitter only, so that equal values stay visible
    for i, label in enumerate(labels):
        d = _np(differences[label]).ravel()
        ax.scatter(d, i + rng.uniform(-0.12, 0.12, len(d)), s=16, color="0.55", zorder=2,
                   label=f"{len(d)} seeds" if i == 0 else None)
        ax.plot([d.mean()] * 2, [i - 0.28, i + 0.28], color="k", lw=2, zorder=3, label="mean" if i == 0 else None)
        if live is not None and label in live:
            ax.scatter([float(live[label])], [i], s=60, color="tab:orange", edgecolor="k", zorder=4,
                       label="this run" if i == 0 else None)
    ax.axvline(0.0, color="gray", ls="--", lw=1)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(frameon=False, fontsize=9, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_ais_errors(errors: dict, ess: dict, axes=None, title: str = "", n_chains: Optional[int] = None):
    """Two log-scale panels against the number of temperatures K: the RMS error of log Z^ (``errors`` maps a label
    to (K values, one error per K)) and the effective sample size of the pooled chains (``ess``, same form;
    ``n_chains`` draws the ceiling). Tick labels are plain numbers at the K values, with no crowded minor labels."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(6.8, 3.1))
    ks = set()
    for ax, curves in zip(axes, (errors, ess)):
        for i, (label, (k, values)) in enumerate(curves.items()):
            ax.plot(np.asarray(k, dtype=float), _np(values), "o-", color=f"C{i}", label=label)
            ks.update(float(x) for x in k)
    if n_chains:
        axes[1].axhline(n_chains, color="gray", ls=":", lw=1)
        axes[1].text(min(ks), n_chains, f" {n_chains} chains", fontsize=9, va="top", color="0.3")
    axes[0].set_ylabel("RMS error of $\\log \\hat Z$ (nats)", fontsize=9)
    axes[1].set_ylabel("ESS of the pooled chains", fontsize=9)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted(ks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0), numticks=8))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("temperatures $K$", fontsize=9)
        ax.tick_params(labelsize=9)
    axes[0].legend(frameon=False, fontsize=9)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes
