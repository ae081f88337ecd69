"""Chapter 10 (every method on the same data): its figures. Functions take data and an optional ``ax`` (or
``axes``) and return the axes (or the figure); nothing here calls ``plt.show()``.

Not re-exported by ``ebm_teach.plotting`` (import this module directly), so that chapter 10 can change its
figures without touching the package's shared plotting namespace.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np
import torch

from ..evaluate import grid
from .common import _np

__all__ = ["plot_density_grid", "plot_compute_vs_quality", "plot_measure_agreement", "plot_sample_grid",
           "plot_method_bars", "method_colours"]


def method_colours(names: Sequence[str]) -> Dict[str, str]:
    """One fixed colour per method name (tab10 in the given order), so every figure of the chapter agrees."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _grid_axes(n: int, n_cols: int, size: float):
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def plot_density_grid(energies: Dict[str, Callable], bounds, n_points: int = 120, n_cols: int = 3,
                      size: float = 2.5, title: str = "", device=None, dtype=torch.float32):
    """The normalised density exp(-E)/Z on the grid for several energies, one small panel each, sharing one
    colour scale (so a mode that is too light or too heavy shows). energies: {title: callable (batch, 2) ->
    (batch,)}, e.g. the true -log p and the trained models. Returns the figure."""
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=dtype)
    dens = {}
    with torch.no_grad():
        for name, energy in energies.items():
            e = energy(points).reshape(-1).double()
            dens[name] = _np((torch.softmax(-e, 0) / cell).reshape(n_points, n_points))
    vmax = max(float(np.quantile(d, 0.999)) for d in dens.values())
    fig, axes = _grid_axes(len(dens), n_cols, size)
    extent = (bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1])
    for ax, (name, d) in zip(axes, dens.items()):
        ax.imshow(d, origin="lower", extent=extent, vmin=0, vmax=vmax, cmap="viridis", aspect="equal")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sample_grid(panels: Dict[str, torch.Tensor], bounds, n_cols: int = 3, size: float = 2.5, s: float = 3,
                     title: str = ""):
    """Scatter plots of 2-D samples, one panel per entry of ``panels`` ({title: (n, 2)}), on shared bounds, in a
    grid of n_cols columns. Returns the figure."""
    fig, axes = _grid_axes(len(panels), n_cols, size)
    for ax, (name, x) in zip(axes, panels.items()):
        x = _np(x)
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.5, linewidths=0)
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
                            legend: bool = True, ylim=None):
    """Quality against cost on a log x axis: one line per method through the mean over seeds at each
    checkpoint, with a band from the worst to the best seed.

    rows: dicts with "method", "seed", ``x`` and ``y`` (one per checkpoint of one run); the x of a method's
    checkpoints is averaged over seeds (wall-clock seconds differ from run to run). reference: a horizontal
    line (e.g. the true density's test log-likelihood). Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = colours or method_colours(methods)
    for m in methods:
        runs: Dict[object, list] = {}
        for r in rows:
            if r["method"] == m:
                runs.setdefault(r["seed"], []).append((float(r[x]), float(r[y])))
        n = min(len(v) for v in runs.values())
        xs = np.array([[p[0] for p in sorted(v)[:n]] for v in runs.values()])
        ys = np.array([[p[1] for p in sorted(v)[:n]] for v in runs.values()])
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
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8, frameon=False, ncol=2)
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
    each model; taus: Kendall's tau of each proxy with the log-likelihood, shown in the panel's title.
    Returns the axes.
    """
    names = list(proxies)
    if axes is None:
        n_cols = min(len(names), 2)
        n_rows = math.ceil(len(names) / n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.7 * n_cols, 2.9 * n_rows), squeeze=False)
        for ax in axes.flat[len(names):]:
            ax.axis("off")
        axes = axes.flat[: len(names)]
    uniq = list(dict.fromkeys(methods))
    colours = colours or method_colours(uniq)
    ll = np.asarray([float(v) for v in ll])
    for ax, name in zip(axes, names):
        p = np.asarray([float(v) for v in proxies[name]])
        for m in uniq:
            sel = np.array([mm == m for mm in methods])
            ax.scatter(ll[sel], p[sel], color=colours[m], s=18, label=m)
        t = f" (Kendall tau {taus[name]:+.2f})" if taus and name in taus else ""
        ax.set_title(name + t, fontsize=9)
        ax.set_xlabel("exact test log-likelihood", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes
