"""Chapters 2 and 3 (RBMs, CD-k, PCD, AIS): their figures. Each function takes data and an optional ``ax`` and returns the axes (or the
figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .common import _ax, _np, image_grid

__all__ = ["plot_rbm_graph", "plot_ising_lattices", "plot_magnetisation", "plot_rbm_filters",
           "plot_state_distribution", "plot_curves", "plot_log_likelihood_curves", "plot_image_rows",
           "plot_ais_convergence", "plot_log_z_errors", "plot_mode_masses", "plot_seed_points"]


def plot_rbm_graph(n_visible: int = 6, n_hidden: int = 4, ax=None, title: str = "an RBM: a bipartite graph"):
    """The RBM as a graph: a row of hidden units h_j over a row of visible units v_i, every v_i joined to every
    h_j by a weight W_ij and no edges within a layer (the restriction that makes the conditionals factorise)."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 2.6))[1]
    xv = np.linspace(0, 1, n_visible)
    xh = np.linspace(0.1, 0.9, n_hidden)
    for a in xv:
        for b in xh:
            ax.plot([a, b], [0, 1], color="0.7", lw=0.8, zorder=1)
    ax.scatter(xv, np.zeros(n_visible), s=380, c="tab:blue", zorder=2)
    ax.scatter(xh, np.ones(n_hidden), s=380, c="tab:orange", zorder=2)
    for i, a in enumerate(xv):
        ax.text(a, 0, f"$v_{i + 1}$", ha="center", va="center", color="white", fontsize=9)
    for j, b in enumerate(xh):
        ax.text(b, 1, f"$h_{j + 1}$", ha="center", va="center", color="white", fontsize=9)
    ax.text(1.08, 0, "visible, bias $b$", va="center", fontsize=9)
    ax.text(1.08, 1, "hidden, bias $c$", va="center", fontsize=9)
    ax.text(0.5, 0.5, "$W$", ha="center", va="center", fontsize=11, backgroundcolor="white")
    ax.set(xlim=(-0.1, 1.45), ylim=(-0.3, 1.3))
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def plot_ising_lattices(spins, titles: Sequence[str], size: float = 2.4):
    """Spin configurations (n, L, L) in {-1, +1} side by side (black = +1); returns the figure."""
    s = _np(spins)
    fig, axes = plt.subplots(1, len(s), figsize=(size * len(s), size + 0.3), squeeze=False)
    for ax, lattice, title in zip(axes[0], s, titles):
        ax.imshow(lattice, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_magnetisation(temperatures, abs_m, err=None, exact: Optional[Callable] = None, t_critical=None, ax=None,
                       title: str = "", label: str = "Gibbs sampling"):
    """Mean |magnetisation| per spin against temperature T, with error bars ``err``; ``exact`` (T -> |m|)
    is drawn as a line (e.g. Onsager's infinite-lattice curve) and ``t_critical`` as a dotted vertical line."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 3.2))[1]
    t = _np(temperatures)
    ax.errorbar(t, _np(abs_m), yerr=None if err is None else _np(err), fmt="o", ms=4, capsize=2, label=label)
    if exact is not None:
        grid_t = np.linspace(t.min(), t.max(), 400)
        ax.plot(grid_t, [exact(x) for x in grid_t], color="k", lw=1, label="Onsager, infinite lattice")
    if t_critical is not None:
        ax.axvline(t_critical, ls=":", color="gray")
        ax.text(t_critical + 0.02, 0.03, "$T_c$", ha="left", va="bottom", fontsize=9, color="gray")
    ax.set(xlabel="temperature $T$", ylabel=r"$\langle |m| \rangle$", ylim=(0, 1.08))
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_rbm_filters(W, image_shape=(8, 8), n_cols: int = 8, ax=None, title: str = "filters: columns of W",
                     size: Optional[float] = None):
    """Each hidden unit's weights W[:, j] as an image (red positive, blue negative, one symmetric scale);
    ``size``: inches per filter in a new figure (see :func:`image_grid`)."""
    w = _np(W).T
    lim = float(np.abs(w).max()) or 1.0
    ax = image_grid(w, n_cols=n_cols, image_shape=image_shape, ax=ax, vmin=-lim, vmax=lim, cmap="RdBu_r",
                    size=size)
    if title:
        ax.set_title(title)
    return ax


def plot_state_distribution(p_exact, p_sampled: dict, ax=None, title: str = "", top: int = 20):
    """Probabilities of the ``top`` most likely states under ``p_exact`` (n_states,), with bars for sampled
    frequencies (``p_sampled`` maps a label to (n_states,)). States are ranked by exact probability."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(7, 3))[1]
    p = _np(p_exact)
    order = np.argsort(-p)[:top]
    x = np.arange(len(order))
    width = 0.8 / max(1, len(p_sampled))
    for i, (label, q) in enumerate(p_sampled.items()):
        ax.bar(x + (i - (len(p_sampled) - 1) / 2) * width, _np(q)[order], width=width, alpha=0.7, label=label)
    ax.plot(x, p[order], "k_", ms=14, mew=2, label="exact p(v)")
    ax.set_xticks(x[::max(1, len(x) // 10)], [str(i + 1) for i in x[::max(1, len(x) // 10)]])
    ax.set(xlabel=f"visible state (the {len(order)} most probable, by rank)", ylabel="probability")
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_curves(curves: dict, ax=None, title: str = "", xlabel: str = "epoch", ylabel: str = "",
                styles: Optional[dict] = None, hline: Optional[float] = None, hline_label: str = ""):
    """Several curves y(x) on one axes: ``curves`` maps a label to (x, y); ``styles`` maps a label to plot
    keyword arguments; ``hline`` draws a dashed reference level (e.g. the best achievable log-likelihood)."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5.5, 3.4))[1]
    for label, (x, y) in curves.items():
        ax.plot(_np(x), _np(y), label=label, **(styles or {}).get(label, {}))
    if hline is not None:
        ax.axhline(hline, ls="--", color="gray", lw=1, label=hline_label or None)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax

def plot_log_likelihood_curves(histories: dict, ax=None, title: str = "", x_key: str = "at",
                               ylabel: str = "exact log-likelihood (nats)", parts=("train", "test"),
                               ncol: int = 2):
    """Train (solid) and test (dashed) log-likelihood against epoch, one colour per run: ``histories`` maps a
    label to a dict with ``x_key`` (epochs), "train" and "test" (equal lengths), e.g. a fit history; ``parts``
    picks which of the two to draw (a single part is drawn solid and labelled by the run alone)."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3.6))[1]
    for i, (label, h) in enumerate(histories.items()):
        colour = f"C{i}"
        for part in parts:
            style = "--" if part == "test" and len(parts) > 1 else "-"
            name = label if len(parts) == 1 else f"{label} {part}"
            ax.plot(_np(h[x_key]), _np(h[part]), color=colour, ls=style, label=name)
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.legend(frameon=False, fontsize=9, ncol=ncol)
    if title:
        ax.set_title(title)
    return ax


def plot_image_rows(rows: dict, image_shape=(8, 8), n_cols: int = 16, title: str = "",
                    width: Optional[float] = None):
    """One row of images per entry of ``rows`` (a label, e.g. "epoch 10", to images (n, h*w)), the label
    written on the left: fantasy particles over training, or samples along an annealing path. ``width``: the
    figure's width in inches (default: 0.45 per image plus room for the labels, at most 8). Returns the figure."""
    width = min(8.0, 0.45 * n_cols + 1.2) if width is None else float(width)
    per_image = (width - 1.2) / n_cols
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, per_image * 1.1 * len(rows) + 0.45), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        image_grid(_np(images)[:n_cols], n_cols=n_cols, image_shape=image_shape, ax=ax)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def plot_ais_convergence(n_betas, errors: dict, seconds: dict, axes=None, title: str = ""):
    """Two log-log panels against the number of temperatures K: the RMS error of log Z^ over repeated runs
    (``errors`` maps a label to (len(n_betas),)) and the seconds per run (``seconds``, same keys). A dotted
    line of slope -1/2 through the smallest final error marks an estimator whose variance falls as 1/K."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.3))
    k = _np(n_betas).astype(float)
    for label, err in errors.items():
        axes[0].loglog(k, _np(err), "o-", label=label)
        if label in seconds:
            axes[1].loglog(k, _np(seconds[label]), "o-", label=label)
    last = min(float(_np(err)[-1]) for err in errors.values())  # the reference line ends on the best estimate
    axes[0].loglog(k, last * np.sqrt(k[-1] / k), ":", color="gray", label=r"$\propto K^{-1/2}$")
    axes[0].set(xlabel="number of temperatures $K$", ylabel=r"RMS error of $\log \hat Z$ (nats)")
    axes[1].set(xlabel="number of temperatures $K$", ylabel="seconds per run")
    for ax in axes:
        ax.legend(frameon=False, fontsize=9)
    if title:
        axes[0].figure.suptitle(title)
    axes[0].figure.tight_layout()
    return axes


def plot_log_z_errors(errors: dict, ax=None, bins: int = 40, title: str = ""):
    """Histograms of log Z^ - log Z over repeated AIS runs, one per setting (``errors`` maps a label to
    (n_runs,)), each mean marked by a vertical line of its colour, and the truth (0) in black."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3.6))[1]
    all_errors = np.concatenate([_np(e).ravel() for e in errors.values()])
    edges = np.linspace(all_errors.min(), max(all_errors.max(), 0.0), bins + 1)
    for i, (label, err) in enumerate(errors.items()):
        err = _np(err).ravel()
        ax.hist(err, bins=edges, alpha=0.45, color=f"C{i}", label=f"{label} (mean {err.mean():.2g})")
        ax.axvline(err.mean(), color=f"C{i}", lw=1.5)
    ax.axvline(0.0, color="k", lw=1.5, label=r"truth: $\log Z$")
    ax.set(xlabel=r"$\log \hat Z - \log Z$ (nats)", ylabel="runs")
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_mode_masses(masses: dict, images, image_shape=(3, 3), ax=None, title: str = "", share: float = 1.0,
                     ylabel: str = "mass x number of images"):
    """How several models split their probability among n training images: grouped bars per image (``masses``
    maps a model's label to (n,) values, e.g. p(v_i) times n so that a fair share is 1), on a log axis, with
    a dotted line at ``share`` and each image (``images``: (n, h*w)) drawn as a thumbnail below its bars."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        fig.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.8)  # room for thumbnails and legend
    imgs = _np(images).reshape(-1, *image_shape)
    n, width = len(imgs), 0.8 / max(1, len(masses))
    x = np.arange(n)
    for i, (label, m) in enumerate(masses.items()):
        ax.bar(x + (i - (len(masses) - 1) / 2) * width, _np(m), width=width, label=label, color=f"C{i}")
    ax.axhline(share, color="k", ls=":", lw=1, label="fair share")
    ax.set_yscale("log")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xticks([])
    ax.set_ylabel(ylabel)
    for i, img in enumerate(imgs):  # thumbnails under the axis: x in data units, y in axes units
        inset = ax.inset_axes([i - 0.3, -0.17, 0.6, 0.14], transform=ax.get_xaxis_transform())
        inset.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        inset.set_xticks([])
        inset.set_yticks([])
    ax.legend(frameon=False, fontsize=9, ncol=len(masses) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    if title:
        ax.set_title(title, pad=22)
    return ax


def plot_seed_points(values: dict, ax=None, title: str = "", ylabel: str = ""):
    """One column per method (``values`` maps a label to its runs' numbers, e.g. the final log-likelihood of
    each seed): a dot per run and a horizontal bar at their mean, so that differences smaller than the spread
    of training curves can be seen."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(4, 3.4))[1]
    for i, (label, v) in enumerate(values.items()):
        v = _np(v).ravel()
        ax.plot(np.full(len(v), i) + np.linspace(-0.12, 0.12, len(v)), v, "o", color=f"C{i}", ms=5)
        ax.plot([i - 0.3, i + 0.3], [v.mean()] * 2, color=f"C{i}", lw=2)
    ax.set_xticks(range(len(values)), list(values), fontsize=9)
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax
