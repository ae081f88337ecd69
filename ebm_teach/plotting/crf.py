"""Chapter 9 (structured prediction: CRFs, the structured perceptron and SVM, LeCun et al.'s losses, the grid):
its figures. Each function takes data and an optional ``ax`` (or ``axes``) and returns the axes (or the
figure); nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap
import torch

from .common import _np, image_grid

__all__ = [
    "plot_chain_marginals",
    "plot_transition_scores",
    "plot_digit_sequences",
    "plot_method_comparison",
    "plot_loss_plane",
    "plot_embeddings",
    "plot_image_rows_labelled",
    "plot_exact_cost",
    "plot_error_vs_sweeps",
]


#: -1 light grey, +1 black; NaN (the gaps image_grid leaves between images) blue-grey
_SPIN_CMAP = LinearSegmentedColormap.from_list("spins", ["0.93", "black"]).with_extremes(bad="#9fb6cd")


def _new_ax(ax, size=(4.5, 3.2)):
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def plot_chain_marginals(node, paths: Optional[dict] = None, ax=None, title: str = "", label_names=None):
    """Heat map of node marginals p(y_t = k), positions across and labels up, with label sequences drawn on top.

    node: (T, K); paths: a dict name -> (T,) labels (e.g. the Viterbi path, the truth), drawn as lines with
    markers; label_names: K tick labels (default 0..K-1).
    """
    node = _np(node)
    T, K = node.shape
    ax = _new_ax(ax, (min(8, 1.0 + 0.55 * T), 0.35 * K + 1.2))
    im = ax.imshow(node.T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
                   extent=(0.5, T + 0.5, -0.5, K - 0.5))
    ax.figure.colorbar(im, ax=ax, label="$p(y_t = k)$", shrink=0.9)
    markers = ["o", "x", "s", "+"]
    for i, (name, path) in enumerate((paths or {}).items()):
        ax.plot(np.arange(1, T + 1), _np(path), marker=markers[i % 4], ms=7, lw=1.2, color=f"C{i + 1}", label=name,
                mfc="none" if markers[i % 4] in "os" else None)
    ax.set(xlabel="position t", ylabel="label k", xticks=range(1, T + 1), yticks=range(K))
    if label_names is not None:
        ax.set_yticklabels(label_names)
    if paths:
        ax.legend(frameon=True, fontsize=9, loc="upper left", bbox_to_anchor=(0, -0.18), ncol=len(paths))
    if title:
        ax.set_title(title)
    return ax


def plot_transition_scores(scores, ax=None, title: str = "", label: str = "score", cmap: str = "RdBu_r"):
    """A (K, K) matrix of transition scores (or probabilities): row = y_t, column = y_{t+1}, centred at 0."""
    s = _np(scores)
    ax = _new_ax(ax, (3.8, 3.3))
    lim = float(np.abs(s).max()) or 1.0
    vmin = -lim if (s < 0).any() else 0.0
    im = ax.imshow(s, cmap=cmap if vmin < 0 else "Blues", vmin=vmin, vmax=lim)
    ax.figure.colorbar(im, ax=ax, label=label, shrink=0.85)
    K = s.shape[0]
    ax.set(xlabel="next label $y_{t+1}$", ylabel="label $y_t$", xticks=range(K), yticks=range(K))
    ax.tick_params(labelsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_digit_sequences(images, truth, predictions: dict, image_shape=(8, 8), title: str = "", clean=None):
    """Sequences of images, each with its true labels and every method's predicted labels written beneath
    (green where right, red where wrong). images: (n, T, h*w); truth: (n, T); predictions: name -> (n, T);
    clean: the same images without noise, (n, T, h*w), drawn in a row above the noisy ones (rescaled to the
    noisy images' grey range). Returns the figure."""
    imgs, truth = _np(images), _np(truth)
    n, T = truth.shape
    h, w = image_shape
    rows = 1 + len(predictions)
    lo, hi = float(imgs.min()), float(imgs.max())
    n_img_rows = 1 if clean is None else 2
    if clean is not None:
        c = _np(clean)
        c = lo + (c - c.min()) / max(float(c.max() - c.min()), 1e-12) * (hi - lo)
        imgs = np.concatenate([c, imgs], axis=1)  # (n, 2T, h*w): the clean row, then the noisy row
    top = n_img_rows * (h + 1) - 1  # height of the image rows, in pixels
    fig, axes = plt.subplots(n, 1, figsize=(min(8, 1.6 + 0.62 * T), n * (0.75 * n_img_rows + 0.2 * rows) + 0.3),
                             squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        image_grid(imgs[i], n_cols=T, image_shape=image_shape, ax=ax, vmin=lo, vmax=hi)
        if clean is not None:
            ax.text(-1.0, h / 2 - 0.5, "clean", ha="right", va="center", fontsize=9, color="0.35")
            ax.text(-1.0, h + 1 + h / 2 - 0.5, "noisy", ha="right", va="center", fontsize=9, color="0.35")
        lines = [("truth", truth[i], None)] + [(name, _np(p)[i], truth[i]) for name, p in predictions.items()]
        for r, (name, labels, ref) in enumerate(lines):
            yy = top + 1.6 + 2.3 * r
            ax.text(-1.0, yy, name, ha="right", va="center", fontsize=9)
            for t in range(T):
                colour = "black" if ref is None else ("tab:green" if labels[t] == ref[t] else "tab:red")
                ax.text(t * (w + 1) + w / 2 - 0.5, yy, str(int(labels[t])), ha="center", va="center", fontsize=10,
                        color=colour, fontweight="bold" if ref is not None and labels[t] != ref[t] else None)
        ax.set_ylim(top + 2.3 * rows + 0.5, -0.5)
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_method_comparison(results: dict, metrics: Sequence[str], axes=None, title: str = "", ylabels=None,
                           ylim=(0.0, 1.0), log: bool = False, rotation: float = 20):
    """One panel per metric: every method's value on every seed (dots) and their mean (a bar; the geometric
    mean and no bar with ``log``, a logarithmic axis).

    results: method name -> {metric name -> list of values over seeds}; ylim: the value axis (None: automatic).
    Returns the axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(min(8, 3.4 * len(metrics)), 3.0), squeeze=False)
        axes = axes[0]
    names = list(results)
    for j, (ax, metric) in enumerate(zip(axes, metrics)):
        for i, name in enumerate(names):
            vals = np.asarray(results[name][metric], dtype=float)
            if log:
                ax.hlines(np.exp(np.log(vals).mean()), i - 0.3, i + 0.3, color=f"C{i}", lw=2)
            else:
                ax.bar(i, vals.mean(), color=f"C{i}", alpha=0.35, width=0.6)
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, color=f"C{i}", s=14, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=rotation, ha="right", fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        ax.set_ylabel(ylabels[j] if ylabels else metric, fontsize=9)
        if log:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(axis="y", alpha=0.3)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_loss_plane(losses: Callable, margin: float = 1.0, extent=(-2.0, 3.0), n_points: int = 101, axes=None,
                    notes: Optional[dict] = None, names: Optional[Sequence[str]] = None, titles: Optional[dict] = None):
    """LeCun et al.'s (2006) losses for two answers, as functions of E(correct) (across) and E(most offending
    incorrect answer) (up), one panel each with a colour bar of the loss, and arrows pointing downhill (the
    direction training moves the two energies). losses: a function (energies (n, 2), y (n,)) -> dict name ->
    (n,), such as :func:`ebm_teach.crf.energy_losses`; names: which of its losses to draw (default all);
    titles: name -> panel title (default the name); notes: name -> a short line written under the title.
    Without ``axes`` the panels are laid out two per row."""
    lo, hi = extent
    e = np.linspace(lo, hi, n_points)
    ec, ew = np.meshgrid(e, e)  # ec across (columns), ew up (rows)
    table = torch.tensor(np.stack([ec.ravel(), ew.ravel()], 1), dtype=torch.float64)
    computed = losses(table, torch.zeros(len(table), dtype=torch.long), margin=margin)
    values = {k: _np(computed[k]).reshape(n_points, n_points) for k in (names or computed)}
    if axes is None:
        n_rows = (len(values) + 1) // 2
        fig, axes = plt.subplots(n_rows, 2, figsize=(7.2, 3.1 * n_rows), squeeze=False)
        axes = axes.ravel()
        for ax in axes[len(values):]:
            ax.set_visible(False)
    step = e[1] - e[0]
    q = slice(5, None, 12)
    for ax, (name, z) in zip(axes, values.items()):
        filled = ax.contourf(ec, ew, z, levels=15, cmap="viridis")
        bar = ax.figure.colorbar(filled, ax=ax, shrink=0.9)
        bar.set_label("loss", fontsize=9)
        bar.ax.tick_params(labelsize=9)
        gy, gx = np.gradient(z, step)
        norm = np.hypot(gx, gy) + 1e-12
        ax.quiver(ec[q, q], ew[q, q], -gx[q, q] / norm[q, q], -gy[q, q] / norm[q, q], color="white", scale=14,
                  width=0.012, alpha=np.where(norm[q, q] > 1e-6, 0.9, 0.0).ravel())
        ax.plot([lo, hi], [lo, hi], color="white", lw=0.8, ls="--")
        title = (titles or {}).get(name, name)
        ax.set_title(title + ("\n" + notes[name] if notes and name in notes else ""), fontsize=10)
        ax.set_xlabel("E(correct)", fontsize=9)
        ax.set_ylabel("E(most offending wrong)", fontsize=9)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=9)
    axes[0].figure.tight_layout()
    return axes


def _merge_close(centres: np.ndarray, radius: float) -> list:
    """Groups of answer indices whose embeddings lie within ``radius`` of another member (single linkage)."""
    groups = [[k] for k in range(len(centres))]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                d = np.linalg.norm(centres[groups[a]][:, None] - centres[groups[b]][None], axis=-1).min()
                if d < radius:
                    groups[a] += groups.pop(b)
                    merged = True
                    break
            if merged:
                break
    return [sorted(g) for g in groups]


def plot_embeddings(z, labels, centres, ax=None, title: str = "", box: float = 0.07):
    """A 2-D embedding f(x) of inputs (dots coloured by class) and the learned answer embeddings e_y (digits
    in boxes): the energy E(x, y) = |f(x) - e_y|^2 / 2 is low where a dot sits near its digit. Answers closer
    than ``box`` times the panel's width (about a box's width) share one box, labelled with all their digits
    ("0,1,7"), since they would hide each other."""
    z, labels, centres = _np(z), _np(labels), _np(centres)
    ax = _new_ax(ax, (3.0, 3.0))
    ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=4, alpha=0.5, linewidths=0)
    pts = np.concatenate([z, centres])
    mid, half = (pts.max(0) + pts.min(0)) / 2, max(float((pts.max(0) - pts.min(0)).max()) / 2 * 1.1, 1e-3)
    for group in _merge_close(centres, box * 2 * half):
        cx, cy = centres[group].mean(0)
        edge = plt.cm.tab10(group[0] / 9) if len(group) == 1 else "black"
        ax.text(cx, cy, ",".join(str(k) for k in group), ha="center", va="center", fontsize=9, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=edge, alpha=0.9))
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=9)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_image_rows_labelled(rows: dict, n_cols: int = 10, vmin: float = -1.0, vmax: float = 1.0, title: str = ""):
    """One row of images per entry of ``rows`` (name -> images (n, h, w)), the name written on the left.
    Light grey (-1) to black (+1), on a blue-grey background, so that all-white images stay apart from each
    other and from the gaps. Returns the figure."""
    first = _np(next(iter(rows.values())))
    h, w = first.shape[1:]
    width = min(8.0, 0.11 * (w + 1) * n_cols + 1.8)
    row_height = (width - 1.8) * h / ((w + 1) * n_cols) + 0.12  # the images' own aspect ratio, plus a gap
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, row_height * len(rows) + 0.5), squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], rows.items()):
        image_grid(_np(images)[:n_cols], n_cols=n_cols, ax=ax, vmin=vmin, vmax=vmax, cmap=_SPIN_CMAP)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_exact_cost(widths, seconds, n_rows: int, ax=None, title: str = ""):
    """Measured seconds of exact inference on an n_rows x W grid against W (log scale), with the H 4^W
    operations of the row-by-row forward algorithm drawn through the last measurement."""
    widths, seconds = np.asarray(widths, dtype=float), np.asarray(seconds, dtype=float)
    ax = _new_ax(ax, (4.2, 3.0))
    ax.semilogy(widths, seconds, "o-", label="measured: forward algorithm over rows")
    ref = seconds[-1] * 4.0 ** (widths - widths[-1])
    ax.semilogy(widths, ref, "--", color="gray", label=r"$\propto 4^W$ (a $2^W \times 2^W$ step per row)")
    ax.set(xlabel="grid width W (each row: $2^W$ states)", ylabel=f"seconds per grid of {n_rows} rows")
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_error_vs_sweeps(sweeps, errors: dict, ax=None, title: str = "", ylabel: str = "error"):
    """Log-log error against the number of Monte Carlo sweeps (``errors``: name -> values, one per entry of
    sweeps), with a dotted slope -1/2 through the first point of the first curve."""
    sweeps = np.asarray(sweeps, dtype=float)
    ax = _new_ax(ax, (4.2, 3.0))
    for name, err in errors.items():
        ax.loglog(sweeps, np.asarray(err, dtype=float), "o-", label=name)
    first = np.asarray(next(iter(errors.values())), dtype=float)[0]
    ax.loglog(sweeps, first * np.sqrt(sweeps[0] / sweeps), ":", color="gray", label=r"$\propto 1/\sqrt{\mathrm{sweeps}}$")
    ax.set(xlabel="Gibbs sweeps", ylabel=ylabel)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
