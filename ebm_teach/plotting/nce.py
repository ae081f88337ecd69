"""Chapter 5 (noise-contrastive estimation): its figures.

Each function takes data and an optional ``ax`` and returns the axes (or the figure); nothing here calls
``plt.show()``. Figures fit the book's column: at most 8 inches wide, fonts of at least 9 points.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ..evaluate import grid
from .common import _ax, _np

__all__ = [
    "plot_bump_masses",
    "plot_error_vs_nu",
    "plot_log_density_panels",
    "plot_nce_boundary_1d",
    "plot_nce_classifier",
]


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
                         bbox={"boxstyle": "round", "fc": "white", "ec": "none"})
    axes[0].set(xlabel="$x$", ylabel="density", title=title or "model against scaled noise")
    axes[0].title.set_fontsize(10)
    axes[0].legend(frameon=False, fontsize=9)
    axes[1].set(xlabel="$x$", ylabel=r"$P(\mathrm{data}\mid x) = \sigma(\Delta(x))$", ylim=(-0.02, 1.02),
                title="the classifier: data inside")
    return axes


def _nice_log_ticks(lo: float, hi: float, max_ticks: int = 4) -> list:
    """Three or four round numbers inside [lo, hi] for a log axis: the coarsest of the mantissa sets
    (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 8), steps of 0.5 and steps of 0.1 that gives at least three,
    thinned to max_ticks."""
    mantissas = ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 8), tuple(np.arange(1.0, 10.0, 0.5)),
                 tuple(np.round(np.arange(1.0, 10.0, 0.1), 1)))
    inside: list = []
    for subset in mantissas:
        inside = [float(f"{m * 10.0**k:.6g}")
                  for k in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
                  for m in subset if lo <= m * 10.0**k <= hi]
        if len(inside) >= 3:
            break
    while len(inside) > max_ticks:
        inside = inside[::2]
    return inside or [float(np.sqrt(lo * hi))]


def _plain_log_axis(ax, axis: str, ticks) -> None:
    """Label a log axis at ``ticks`` with plain decimals (0.02, 0.3, 16) and no minor-tick labels."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(FixedLocator(list(ticks)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def plot_error_vs_nu(nus, measured: dict, theory: dict | None = None, floor: dict | None = None, axes=None,
                     floor_label: str = "maximum likelihood", title: str = "", errors: dict | None = None,
                     reference: dict | None = None, reference_label: str = "Cramér–Rao bound"):
    """One log-log panel per parameter: the measured error of an NCE estimate against the noise ratio nu.

    measured: {name: errors (len(nus),)}; errors: optional {name: standard errors of those (len(nus),)},
    drawn as error bars; theory: optional {name: predicted errors (len(nus),)} drawn as a line; floor:
    optional {name: one number} drawn as a dashed horizontal line (``floor_label``), e.g. maximum likelihood
    on the same data; reference: optional {name: one number} drawn as a dotted grey line
    (``reference_label``), e.g. the Cramer-Rao bound. The legend sits above the panels, and the axes are
    labelled with plain decimals at the values of nu. Returns the axes.
    """
    names = list(measured)
    if axes is None:
        fig, axes = plt.subplots(1, len(names), figsize=(min(7.8, 2.6 * len(names)), 3.3), squeeze=False,
                                 layout="constrained")
        axes = axes[0]
    fig = axes[0].figure
    nus = _np(nus).ravel().astype(float)
    for ax, name in zip(axes, names):
        y = _np(measured[name]).ravel().astype(float)
        err = None if errors is None or name not in errors else _np(errors[name]).ravel().astype(float)
        ax.errorbar(nus, y, yerr=err, fmt="o", ms=4, capsize=2, color="C0", label="NCE, measured", zorder=3)
        values = list(y if err is None else np.concatenate([y - err, y + err]))
        if theory is not None and name in theory:
            t = _np(theory[name]).ravel().astype(float)
            ax.plot(nus, t, "-", color="C0", alpha=0.6, label="NCE, asymptotic theory")
            values += list(t)
        if floor is not None and name in floor:
            ax.axhline(float(floor[name]), color="k", ls="--", lw=1, label=floor_label)
            values.append(float(floor[name]))
        if reference is not None and name in reference:
            ax.axhline(float(reference[name]), color="gray", ls=":", lw=1.2, label=reference_label)
            values.append(float(reference[name]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo, hi = min(v for v in values if v > 0), max(values)
        pad = (hi / lo) ** 0.06
        ax.set_ylim(lo / pad, hi * pad)
        _plain_log_axis(ax, "y", _nice_log_ticks(lo / pad, hi * pad))
        _plain_log_axis(ax, "x", nus)
        ax.set_xlim(nus.min() / 1.4, nus.max() * 1.4)
        ax.set_xlabel(r"noise ratio $\nu$")
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=9)
    axes[0].set_ylabel("RMS error")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 4), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    return axes


def plot_log_density_panels(panels: dict, bounds: Sequence, axes=None, n_cols: int = 3, decades: float = 5.0,
                            n_points: int = 150, device=None, colorbar: bool = True):
    """Densities exp(-E)/Z of 2-D energies, each normalised on a grid over ``bounds``, on one shared
    logarithmic colour scale: from the largest value over all panels down ``decades`` powers of ten.

    A shared scale makes the panels comparable (a per-panel scale would stretch each to its own peak), and a
    log scale shows the faint mass far from the data, which a linear scale hides. panels: {title: energy
    callable (m, 2) -> (m,)}; axes: optional axes to draw into (one per panel), else a grid of ``n_cols``
    columns at most 8 in wide. Returns the figure.
    """
    if axes is None:
        n_cols = min(n_cols, len(panels))
        n_rows = int(np.ceil(len(panels) / n_cols))
        side = min(2.6, 7.0 / n_cols)
        fig, grid_axes = plt.subplots(n_rows, n_cols, figsize=(side * n_cols + 0.8, side * n_rows + 0.2),
                                      squeeze=False, layout="constrained")
        axes = list(grid_axes.flat)
        for ax in axes[len(panels):]:
            ax.axis("off")
    axes = list(axes)
    if len(axes) < len(panels):
        raise ValueError(f"got {len(axes)} axes for {len(panels)} panels; pass one axis per panel.")
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=torch.float32)
    densities = []
    for energy in panels.values():
        with torch.no_grad():
            e = energy(points).double().reshape(-1)
        densities.append((torch.softmax(-e, 0) / cell).reshape(n_points, n_points))
    top = max(float(p.max()) for p in densities)
    norm = LogNorm(vmin=top * 10.0**-decades, vmax=top)
    mesh = None
    for ax, title, p in zip(axes, panels, densities):
        mesh = ax.pcolormesh(_np(xs), _np(ys), _np(p.clamp(min=top * 10.0**-decades)), norm=norm,
                             cmap="viridis", shading="auto", rasterized=True)
        ax.set(xlim=bounds[0], ylim=bounds[1])
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=9)
    fig = axes[0].figure
    if colorbar:
        fig.colorbar(mesh, ax=axes[:len(panels)], shrink=0.85, label="density, log scale")
    return fig


def plot_bump_masses(masses: dict, truth, ax=None, title: str = "mass on each bump"):
    """Dot plot of the mass each trained model puts on each bump, one column of dots per method and bump,
    with the true masses as short black lines. masses: {method: (runs, K)}; truth: (K,). Returns the axes."""
    ax = _ax(ax)
    truth = _np(truth).ravel()
    k = len(truth)
    width = 0.6 / max(len(masses), 1)
    for j, (method, m) in enumerate(masses.items()):
        m = np.atleast_2d(_np(m))
        offset = (j - (len(masses) - 1) / 2) * width
        for b in range(k):
            ax.plot(np.full(m.shape[0], b + offset), m[:, b], "o", ms=4, color=f"C{j}", alpha=0.8,
                    label=method if b == 0 else None)
    for b, w in enumerate(truth):
        ax.plot([b - 0.4, b + 0.4], [w, w], color="k", lw=1.5, label="truth" if b == 0 else None)
    ax.set_xticks(range(k), [str(b + 1) for b in range(k)])
    ax.set(xlabel="bump", ylabel="mass", xlim=(-0.6, k - 0.4))
    ax.tick_params(labelsize=9)
    ax.legend(frameon=False, fontsize=9, loc="upper right", handlelength=1.0, handletextpad=0.4,
              borderaxespad=0.2)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_nce_classifier(prob: Callable, bounds: Sequence, centres=None, log_density: Callable | None = None,
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
