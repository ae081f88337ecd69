"""Chapter 11 (the MNIST RBMs of Salakhutdinov & Murray, bracketed): its figures. Each function takes data and an
optional ``ax`` and returns the axes; nothing here calls ``plt.show()``.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .common import _ax

__all__ = ["plot_likelihood_brackets", "plot_bidirectional"]


def _value(row: Mapping, key: str) -> float:
    x = row.get(key, "")
    return float("nan") if x in ("", None) else float(x)


def plot_likelihood_brackets(rows: Sequence[Mapping], published: Mapping[str, float], ax=None, title: str = ""):
    """Per model, the test log-likelihood bracket: the optimistic AIS estimate (dot, with the lowest and highest
    run as a bar) over the conservative RAISE-based one (triangle), joined by a line, and the published value
    (star) where there is one. rows: dicts (e.g. from mnist_rbm.csv) with "method", "test_ll_ais",
    "test_ll_ais_run_min", "test_ll_ais_run_max", "test_ll_conservative" and optionally "exact_test_ll"."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6.5, 3.6))[1]
    x = np.arange(len(rows))
    for i, row in enumerate(rows):
        ais, low = _value(row, "test_ll_ais"), _value(row, "test_ll_conservative")
        lo_run, hi_run = _value(row, "test_ll_ais_run_min"), _value(row, "test_ll_ais_run_max")
        ax.plot([i, i], [low, ais], color="0.6", lw=3, solid_capstyle="butt", zorder=1)
        ax.errorbar([i], [ais], yerr=[[ais - lo_run], [hi_run - ais]], fmt="o", color="tab:blue", capsize=4,
                    zorder=3, label="AIS (optimistic), runs' range" if i == 0 else None)
        ax.plot([i], [low], "v", color="tab:orange", ms=8, zorder=3,
                label="RAISE-based (conservative)" if i == 0 else None)
        exact = _value(row, "exact_test_ll")
        if not np.isnan(exact):
            ax.plot([i], [exact], "_", color="k", ms=18, mew=2, zorder=4, label="exact" if i == 0 else None)
        if row["method"] in published:
            ax.plot([i + 0.18], [published[row["method"]]], "*", color="tab:red", ms=11, zorder=3,
                    label="Salakhutdinov & Murray (2008)" if i == 0 or not any(
                        r["method"] in published for r in rows[:i]) else None)
    ax.set_xticks(x, [r["method"] for r in rows])
    ax.set_xlim(-0.5, len(rows) - 0.3)
    ax.set_ylabel("test log-likelihood (nats)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="lower right")
    if title:
        ax.set_title(title)
    return ax


def plot_bidirectional(n_betas: Sequence[int], forward, reverse, exact: Optional[float] = None, ax=None,
                       title: str = "", ylabel: str = r"$\log \hat Z$"):
    """Bidirectional Monte Carlo against the number of temperatures K (log scale): the forward AIS estimates
    (from below on average) and the reverse ones (from above), each as mean with the range over runs, and the
    exact value as a line. forward, reverse: (len(n_betas), runs) arrays."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3.4))[1]
    k = np.asarray(n_betas, dtype=float)
    for values, colour, name, shift in [(forward, "tab:blue", "AIS (forward)", 0.97),
                                        (reverse, "tab:orange", "reverse AIS from exact samples", 1.03)]:
        v = np.asarray(values, dtype=float)
        mean = v.mean(1)
        ax.errorbar(k * shift, mean, yerr=[mean - v.min(1), v.max(1) - mean], fmt="o-", color=colour, capsize=3,
                    label=name)
    if exact is not None:
        ax.axhline(exact, color="k", lw=1, ls="--", label="exact (enumeration)")
    ax.set_xscale("log")
    ax.set_xlabel("temperatures K")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax
