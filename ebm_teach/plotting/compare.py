"""Chapter 10 (every method on the same data): its figures. Functions take data and an optional ``ax`` (or
``axes``) and return the axes (or the figure); nothing here calls ``plt.show()``.

Every figure colours a method the same way (:func:`method_colours`: CD-1 is blue in 2-D and for the RBM
alike), puts legends where they cover no data (:func:`method_legend`, below the panels) and writes text at
9 pt or more.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib import ticker
from matplotlib.lines import Line2D
import numpy as np
import torch

from ..evaluate import grid
from .common import _np

__all__ = ["plot_density_grid", "plot_compute_vs_quality", "plot_measure_agreement", "plot_sample_grid",
           "plot_method_bars", "method_colours", "method_legend"]

#: One colour per method of chapter 10, for both families: the ten colours of tab10, each used once.
METHOD_COLOURS = {
    "CD-1": "tab:blue", "CD-10": "tab:orange", "short-run 10": "tab:green", "replay 10": "tab:red",
    "NCE": "tab:purple", "sliced SM": "tab:brown", "DSM": "tab:pink", "NC-DSM": "tab:gray",
    "PCD-1": "tab:olive", "pseudo-likelihood": "tab:cyan",
}


def method_colours(names: Sequence[str]) -> Dict[str, str]:
    """The fixed colour of each method name (``METHOD_COLOURS``), so that a method has one colour in every
    figure of the chapter; a name not in the table gets a colour of the 'Dark2' map."""
    extra = plt.get_cmap("Dark2")
    out, k = {}, 0
    for name in names:
        if name in METHOD_COLOURS:
            out[name] = METHOD_COLOURS[name]
        else:
            out[name] = extra(k % 8)
            k += 1
    return out


def method_legend(fig, colours: Dict[str, str], names: Optional[Sequence[str]] = None, reference: Optional[str] = None,
                  n_cols: int = 5, fontsize: float = 9):
    """One legend for a whole figure, below its panels (call ``fig.tight_layout(rect=(0, b, 1, 1))`` with b about
    0.08-0.12 to leave it room). colours: {method: colour}; names: which to list (default all); reference: the
    label of a dashed black line, if the panels draw one. Returns the legend."""
    names = list(colours) if names is None else list(names)
    handles = [Line2D([], [], color=colours[n], marker="o", ms=4, lw=1.5, label=n) for n in names]
    if reference:
        handles.append(Line2D([], [], color="k", ls="--", lw=1, label=reference))
    return fig.legend(handles=handles, loc="lower center", ncol=n_cols, fontsize=fontsize, frameon=False)


def _grid_axes(n: int, n_cols: int, size: float, extra_width: float = 0.0):
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols + extra_width, size * n_rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def plot_density_grid(energies: Dict[str, Callable], bounds, n_points: int = 120, n_cols: int = 3,
                      size: float = 2.4, title: str = "", device=None, dtype=torch.float32,
                      vmax: Optional[float] = None):
    """The normalised density exp(-E)/Z on the grid for several energies, one small panel each, sharing one
    colour scale with a colour bar (so a mode that is too light or too heavy shows).

    energies: {title: callable (batch, 2) -> (batch,)}, e.g. the true -log p and the trained models (put the
    numbers a reader should compare, such as each mode's mass, into the titles); vmax: the top of the colour
    scale (default: the 99.9 % quantile of the largest density shown); brighter points are drawn at vmax.
    Returns the figure.
    """
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=dtype)
    dens = {}
    with torch.no_grad():
        for name, energy in energies.items():
            e = energy(points).reshape(-1).double()
            dens[name] = _np((torch.softmax(-e, 0) / cell).reshape(n_points, n_points))
    if vmax is None:
        vmax = max(float(np.quantile(d, 0.999)) for d in dens.values())
    fig, axes = _grid_axes(len(dens), n_cols, size, extra_width=0.6)
    extent = (bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1])
    image = None
    for ax, (name, d) in zip(axes, dens.items()):
        image = ax.imshow(d, origin="lower", extent=extent, vmin=0, vmax=vmax, cmap="viridis", aspect="equal")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.91, 0.15, 0.015, 0.7))
    bar = fig.colorbar(image, cax=cax, extend="max")
    bar.set_label("density", fontsize=9)
    bar.ax.tick_params(labelsize=9)
    return fig


def plot_sample_grid(panels: Dict[str, torch.Tensor], bounds, n_cols: int = 3, size: float = 2.5, s: float = 5,
                     title: str = "", colours: Optional[Dict[str, str]] = None):
    """Scatter plots of 2-D samples, one panel per entry of ``panels`` ({title: (n, 2)}), on shared bounds, in a
    grid of n_cols columns. Give every panel the same number of points, so that densities compare (and put
    the shares per mode, which dots cannot show exactly, in the titles). colours: {title: colour}, default
    black. Returns the figure."""
    fig, axes = _grid_axes(len(panels), n_cols, size)
    colours = colours or {}
    for ax, (name, x) in zip(axes, panels.items()):
        x = _np(x)
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.35, linewidths=0, color=colours.get(name, "k"))
        ax.set(xlim=bounds[0], ylim=bounds[1], xticks=[], yticks=[])
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_compute_vs_quality(rows: List[dict], x: str = "evaluations", y: str = "ll", ax=None, title: str = "",
                            reference: Optional[float] = None, reference_label: str = "true density",
                            colours: Optional[dict] = None, ylabel: str = "test log-likelihood (nats)",
                            legend: bool = True, ylim=None, fontsize: float = 9):
    """Quality against cost on a log x axis: one line per method through the mean over seeds at each
    checkpoint, with a band from the worst to the best seed.

    rows: dicts with "method", "seed", ``x`` and ``y`` (one per checkpoint of one run); the x of a method's
    checkpoints is averaged over seeds (wall-clock seconds differ from run to run). reference: a horizontal
    line (e.g. the true density's test log-likelihood). legend: a legend inside the axes (for a figure of
    several panels, use :func:`method_legend` instead). Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = colours or method_colours(methods)
    for m in methods:
        runs: Dict[object, list] = {}
        for r in rows:
            if r["method"] == m:
                runs.setdefault(r["seed"], []).append((float(r["evaluations"]), float(r[x]), float(r[y])))
        n = min(len(v) for v in runs.values())
        # order each run's checkpoints by their count (seconds need not grow as smoothly)
        xs = np.array([[p[1] for p in sorted(v)[:n]] for v in runs.values()])
        ys = np.array([[p[2] for p in sorted(v)[:n]] for v in runs.values()])
        xm = xs.mean(0)
        ax.plot(xm, ys.mean(0), "o-", color=colours[m], label=m, ms=3, lw=1.4)
        ax.fill_between(xm, ys.min(0), ys.max(0), color=colours[m], alpha=0.15, lw=0)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label=reference_label)
    if x == "evaluations":  # budgets are powers of two: label them so
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"$2^{{{math.log2(v):.0f}}}$"))
    else:
        ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    xlabel = {"evaluations": "energy-gradient evaluations", "seconds": "training time (s)"}.get(x, x)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=max(fontsize, 10))
    if legend:
        ax.legend(fontsize=fontsize, frameon=False, ncol=2)
    return ax


def plot_method_bars(values: Dict[str, Sequence[float]], ax=None, title: str = "", ylabel: str = "",
                     colours: Optional[dict] = None, reference: Optional[float] = None):
    """One bar per method at the mean over seeds, with every seed's value as a dot. values: {method: [per seed]}.
    Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    names = list(values)
    colours = colours or method_colours(names)
    for i, name in enumerate(names):
        v = np.asarray([float(t) for t in values[name]])
        ax.bar(i, v.mean(), color=colours[name], alpha=0.6)
        ax.plot(np.full(len(v), i), v, "k.", ms=4)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=9)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_measure_agreement(ll: Sequence[float], proxies: Dict[str, Sequence[float]], methods: Sequence[str],
                           taus: Optional[Dict[str, float]] = None, axes=None, colours: Optional[dict] = None,
                           title: str = ""):
    """Each proxy against the exact log-likelihood, one panel per proxy, one dot per model coloured by method.

    ll: (n_models,); proxies: {name: (n_models,)}, oriented so that larger is better; methods: the method of
    each model; taus: Kendall's tau of each proxy with the log-likelihood, shown in the panel's title. A panel
    whose range a few outliers would set is cut at the 10 % quantile minus the width of the central range;
    the points below are drawn as triangles on the lower edge. The legend sits below the panels. Returns
    the axes.
    """
    names = list(proxies)
    if axes is None:
        n_cols = min(len(names), 2)
        n_rows = math.ceil(len(names) / n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.8 * n_cols, 2.7 * n_rows + 0.6), squeeze=False)
        for ax in axes.flat[len(names):]:
            ax.axis("off")
        axes = axes.flat[: len(names)]
    uniq = list(dict.fromkeys(methods))
    colours = colours or method_colours(uniq)
    ll = np.asarray([float(v) for v in ll])
    for ax, name in zip(axes, names):
        p = np.asarray([float(v) for v in proxies[name]])
        lo_q, hi_q = np.quantile(p, [0.1, 1.0])
        floor = lo_q - (hi_q - lo_q)
        clipped = p < floor
        for m in uniq:
            sel = np.array([mm == m for mm in methods])
            ax.scatter(ll[sel & ~clipped], p[sel & ~clipped], color=colours[m], s=18, label=m)
            ax.scatter(ll[sel & clipped], np.full(int((sel & clipped).sum()), floor), color=colours[m], s=30, marker="v")
        if clipped.any():
            ax.set_ylim(bottom=floor - 0.05 * (hi_q - floor))
        t = f" (Kendall tau {taus[name]:+.2f})" if taus and name in taus else ""
        ax.set_title(name + t, fontsize=9)
        ax.set_xlabel("exact test log-likelihood", fontsize=9)
        ax.tick_params(labelsize=9)
    fig = axes[0].figure
    method_legend(fig, colours, uniq, n_cols=len(uniq))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return axes
