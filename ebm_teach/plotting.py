"""Every figure the notebooks show. Functions take data and an optional ``ax`` and return the axes (or the
figure); nothing here calls ``plt.show()``. Chapters append their own figures in sections at the end.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .evaluate import grid

__all__ = ["plot_energy_2d", "plot_samples", "image_grid", "plot_density_1d"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    return ax


def plot_energy_2d(
    energy: Callable[[torch.Tensor], torch.Tensor],
    bounds: Sequence = ((-5, 5), (-5, 5)),
    n_points: int = 150,
    kind: str = "density",
    samples: Optional[torch.Tensor] = None,
    ax=None,
    title: str = "",
    device=None,
    dtype=torch.float32,
    levels: int = 30,
    cmap: str = "viridis",
):
    """Heat map with contours of a 2-D energy over ``bounds``: ``kind`` "density" shows exp(-E) normalised
    on the grid, "energy" shows E itself. Optional ``samples`` (n, 2) are scattered on top.
    """
    if kind not in ("density", "energy"):
        raise ValueError(f"kind must be 'density' or 'energy'; got {kind!r}.")
    ax = _ax(ax)
    points, (xs, ys), cell = grid(bounds, n_points, device=device, dtype=dtype)
    with torch.no_grad():
        e = energy(points).reshape(n_points, n_points).double()
    if kind == "density":
        z = torch.softmax(-e.reshape(-1), 0).reshape(n_points, n_points) / cell
    else:
        z = e
    cs = ax.contourf(_np(xs), _np(ys), _np(z), levels=levels, cmap=cmap)
    ax.figure.colorbar(cs, ax=ax, shrink=0.8, label="p(x)" if kind == "density" else "E(x)")
    if samples is not None:
        s = _np(samples)
        ax.scatter(s[:, 0], s[:, 1], s=3, c="white", alpha=0.6, linewidths=0)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_samples(x, ax=None, title: str = "", bounds=None, c=None, s: float = 3, alpha: float = 0.5, label=None):
    """Scatter of 2-D samples x: (n, 2); ``c`` colours by label; ``bounds`` fixes the axes."""
    ax = _ax(ax)
    x = _np(x)
    colour = {} if c is None else {"c": _np(c), "cmap": "tab10"}
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, linewidths=0, label=label, **colour)
    if bounds is not None:
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def image_grid(images, n_cols: int = 10, image_shape=None, ax=None, title: str = "", vmin=0.0, vmax=1.0, cmap="gray_r"):
    """Tile images (n, h*w) or (n, h, w) into one grid (square images when ``image_shape`` is None)."""
    imgs = _np(images)
    if imgs.ndim == 2:
        side = int(round(np.sqrt(imgs.shape[1])))
        h, w = image_shape or (side, side)
        if h * w != imgs.shape[1]:
            raise ValueError(f"cannot reshape rows of {imgs.shape[1]} pixels to {h}x{w}; pass image_shape.")
        imgs = imgs.reshape(-1, h, w)
    elif imgs.ndim != 3:
        raise ValueError(f"images must be (n, h*w) or (n, h, w); got shape {imgs.shape}.")
    n, h, w = imgs.shape
    n_cols = min(n_cols, n)
    n_rows = int(np.ceil(n / n_cols))
    canvas = np.full((n_rows * (h + 1) - 1, n_cols * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, n_cols)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = imgs[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * n_cols + 0.5, 0.5 * n_rows + 0.6))
    ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_density_1d(x, densities: dict, ax=None, title: str = "", samples=None, bins: int = 60):
    """Curves of 1-D densities on points x: (n,) (``densities`` maps a label to values (n,)), with an
    optional histogram of ``samples`` normalised as a density."""
    ax = _ax(ax)
    if samples is not None:
        ax.hist(_np(samples).ravel(), bins=bins, density=True, alpha=0.35, color="gray", label="samples")
    for label, y in densities.items():
        ax.plot(_np(x).ravel(), _np(y).ravel(), label=label)
    ax.set_xlabel("$x$")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


# --- chapter 7 ---
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


__all__ += ["plot_reliability_diagram", "plot_score_histograms"]


# --- chapter 4 ---
def plot_samples_vs_density(samples, log_prob: Callable, bounds: Sequence = ((-4, 4), (-4, 4)), ax=None,
                            title: str = "", bins: int = 50, n_points: int = 120, levels: int = 6):
    """2-D histogram of samples (n, 2), normalised as a density, under contour lines of the exact density
    exp(log_prob(x)) (log_prob: (m, 2) -> (m,)). Where the sampler is right, the shading follows the lines."""
    ax = _ax(ax)
    s = _np(samples)
    (x0, x1), (y0, y1) = bounds
    ax.hist2d(s[:, 0], s[:, 1], bins=bins, range=[[x0, x1], [y0, y1]], density=True, cmap="Greys")
    points, (xs, ys), _ = grid(bounds, n_points, dtype=torch.float64)
    with torch.no_grad():
        p = log_prob(points).exp().reshape(n_points, n_points)
    ax.contour(_np(xs), _np(ys), _np(p), levels=levels, colors="tab:orange", linewidths=1.0)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_traces(chains, ax=None, title: str = "", labels=None, ylabel: str = "$x_1$"):
    """Trace plot of chains (n_chains, n_steps) or one chain (n_steps,): value against step, one line per chain."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(8, 2.6))[1]
    c = np.atleast_2d(_np(chains))
    for i, row in enumerate(c):
        ax.plot(row, lw=0.6, label=None if labels is None else labels[i])
    ax.set(xlabel="step", ylabel=ylabel)
    if labels is not None:
        ax.legend(frameon=False, fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    return ax


def plot_autocorr(acfs: dict, max_lag: int = 100, ax=None, title: str = "", exact: Optional[dict] = None):
    """Autocorrelation rho(t) for t = 0..max_lag of several chains (``acfs`` maps a label to rho (n,));
    ``exact`` maps a label to a known curve drawn dashed."""
    ax = _ax(ax)
    for label, rho in acfs.items():
        ax.plot(_np(rho)[: max_lag + 1], label=label)
    for label, rho in (exact or {}).items():
        ax.plot(_np(rho)[: max_lag + 1], ls="--", color="k", lw=0.8, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="lag t", ylabel=r"$\rho(t)$", xlim=(0, max_lag))
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_training_curves(histories: dict, key: str = "gap", ax=None, title: str = "", smooth: int = 1,
                         ylabel: Optional[str] = None):
    """One training quantity (``key`` of each history dict, e.g. "gap", "e_pos") against iteration, one line
    per run (``histories`` maps a label to a history); ``smooth`` > 1 draws a running mean over that window."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3))[1]
    for label, h in histories.items():
        y = _np(h[key]).astype(float)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(y)) + (smooth - 1 if smooth > 1 else 0), y, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set(xlabel="iteration", ylabel=ylabel or key)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_sample_panels(panels: dict, bounds: Sequence = ((-6, 6), (-6, 6)), size: float = 3.4, s: float = 2):
    """A row of scatter plots of 2-D samples, one per entry of ``panels`` (title -> samples (n, 2)), on shared
    ``bounds``; returns the figure. For comparing data with what different samplers or models produce."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.2), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels.items()):
        x = _np(x)
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.5, linewidths=0)
        ax.set(xlim=bounds[0], ylim=bounds[1], xlabel="$x_1$", ylabel="$x_2$")
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


__all__ += ["plot_samples_vs_density", "plot_traces", "plot_autocorr", "plot_training_curves", "plot_sample_panels"]


# --- chapter 6 ---
def plot_objective_curves(theta, curves: dict, ax=None, title: str = "", xlabel: str = r"$\theta$",
                          ylabel: str = "objective", dashed: Sequence[str] = ()):
    """Several objectives against one parameter: theta (n,), ``curves`` maps a label to values (n,); the
    labels in ``dashed`` are drawn dashed (to show a curve lying on top of another). Curves that differ by a
    constant show up as parallel lines with their minima at the same theta."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 3.4))[1]
    for label, y in curves.items():
        ax.plot(_np(theta), _np(y), label=label, ls="--" if label in dashed else "-")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_cost_vs_dimension(dims, seconds: dict, ax=None, title: str = ""):
    """Time per call against the dimension d on log-log axes, one line per method (``seconds`` maps a label
    to a sequence aligned with ``dims``); a dotted line of slope 1 is drawn for reference."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(5, 3.4))[1]
    d = np.asarray(dims, dtype=float)
    for label, t in seconds.items():
        ax.loglog(d, np.asarray(t, dtype=float) * 1e3, "o-", label=label)
    first = min(float(np.asarray(t, dtype=float)[0]) for t in seconds.values()) * 1e3
    ax.loglog(d, first * d / d[0], ":", color="gray", label=r"$\propto d$")
    ax.set(xlabel="dimension $d$", ylabel="ms per loss and gradient")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_score_field(score: Callable, bounds: Sequence = ((-5, 5), (-5, 5)), n_arrows: int = 21,
                     log_density: Optional[Callable] = None, samples=None, ax=None, title: str = "",
                     device=None, dtype=torch.float32, n_points: int = 150, color: str = "white"):
    """Arrows of a 2-D score field s(x) (score: (m, 2) -> (m, 2)) on an n_arrows x n_arrows grid over
    ``bounds``, drawn over a heat map of exp(log_density) (log_density: (m, 2) -> (m,)) when given.

    Arrow lengths are proportional to |s|, capped at the 90th percentile so that the long arrows far from
    the data do not hide the short ones near the modes. Optional ``samples`` (n, 2) are scattered on top.
    """
    ax = _ax(ax)
    if log_density is not None:
        points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=dtype)
        with torch.no_grad():
            p = log_density(points).double().exp().reshape(n_points, n_points)
        ax.contourf(_np(xs), _np(ys), _np(p), levels=20, cmap="viridis")
    points, (xs, ys), _ = grid(bounds, n_arrows, device=device, dtype=dtype)
    s = _np(score(points)).astype(float)
    norm = np.linalg.norm(s, axis=1)
    cap = np.quantile(norm, 0.9) + 1e-12
    s = s * np.minimum(1.0, cap / (norm + 1e-12))[:, None]
    cell = float(xs[1] - xs[0])
    p = _np(points)
    ax.quiver(p[:, 0], p[:, 1], s[:, 0], s[:, 1], angles="xy", scale_units="xy", scale=cap / (0.9 * cell),
              color=color, width=0.004)
    if samples is not None:
        x = _np(samples)
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange", alpha=0.5, linewidths=0)
    (x0, x1), (y0, y1) = bounds
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_scalar_field(values: Callable, bounds: Sequence = ((-5, 5), (-5, 5)), log_density: Optional[Callable] = None,
                      ax=None, title: str = "", label: str = "", n_points: int = 120, device=None,
                      dtype=torch.float32, cmap: str = "magma", vmax: Optional[float] = None):
    """Heat map of a scalar function f(x) (values: (m, 2) -> (m,)) over ``bounds``, with white contour
    lines of the density exp(log_density) on top, e.g. a score model's error against where the data lie."""
    ax = _ax(ax)
    points, (xs, ys), _ = grid(bounds, n_points, device=device, dtype=dtype)
    with torch.no_grad():
        f = values(points).double().reshape(n_points, n_points)
    mesh = ax.pcolormesh(_np(xs), _np(ys), _np(f), cmap=cmap, vmin=0 if vmax is not None else None, vmax=vmax,
                         shading="auto")
    ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=label)
    if log_density is not None:
        with torch.no_grad():
            p = log_density(points).double().exp().reshape(n_points, n_points)
        ax.contour(_np(xs), _np(ys), _np(p), levels=5, colors="white", linewidths=0.8)
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_annealing_snapshots(x_levels, sigmas, levels: Optional[Sequence[int]] = None,
                             bounds: Sequence = ((-10, 10), (-10, 10)), axes=None, title: str = ""):
    """Scatter plots of annealed-Langevin samples after chosen levels: x_levels (L, n, 2) as returned in
    ``AnnealedLangevinInfo``, sigmas (L,); ``levels`` are indices into them (default: four spread out)."""
    x_levels = _np(x_levels)
    sig = _np(sigmas).ravel()
    if levels is None:
        levels = sorted({int(round(i)) for i in np.linspace(0, len(sig) - 1, 4)})
    if axes is None:
        fig, axes = plt.subplots(1, len(levels), figsize=(2.6 * len(levels), 2.8), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, i in zip(axes, levels):
        x = x_levels[i]
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, linewidths=0)
        ax.set_title(rf"after $\sigma_{{{i + 1}}}$ = {sig[i]:.2g}", fontsize=9)
        ax.set(xlim=bounds[0], ylim=bounds[1], xlabel="$x_1$")
        ax.set_aspect("equal")
    axes[0].set_ylabel("$x_2$")
    if title:
        axes[0].figure.suptitle(title)
    return axes


__all__ += ["plot_objective_curves", "plot_cost_vs_dimension", "plot_score_field", "plot_scalar_field",
            "plot_annealing_snapshots"]


# --- chapter 5 ---
def plot_nce_boundary_1d(x, model_density, noise_density, prob_data, boundaries=(), axes=None,
                         model_label: str = r"$\tilde p_\theta(x) = e^{-E(x)-c}$",
                         noise_label: str = r"$\nu\, p_n(x)$", title: str = ""):
    """Two panels for a 1-D NCE classifier: the model's density beside nu times the noise density, and the
    classifier's P(data | x) = sigma(Delta(x)); dashed lines mark the decision ``boundaries`` (Delta = 0).
    x, model_density, noise_density, prob_data: (n,). Returns the two axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9.5, 3.3))
    xs = _np(x).ravel()
    axes[0].plot(xs, _np(model_density).ravel(), label=model_label)
    axes[0].plot(xs, _np(noise_density).ravel(), label=noise_label)
    axes[1].plot(xs, _np(prob_data).ravel(), color="k")
    axes[1].axhline(0.5, color="gray", lw=0.8)
    for b in _np(boundaries).ravel():
        for ax in axes:
            ax.axvline(b, color="gray", ls="--", lw=1)
        axes[1].annotate(f"{b:+.3f}", (b, 0.05), ha="center", fontsize=9,
                         bbox=dict(boxstyle="round", fc="white", ec="none"))
    axes[0].set(xlabel="$x$", ylabel="density", title=title or "model against scaled noise")
    axes[0].legend(frameon=False)
    axes[1].set(xlabel="$x$", ylabel=r"$P(\mathrm{data}\mid x) = \sigma(\Delta(x))$", ylim=(-0.02, 1.02),
                title="the classifier: data inside, noise outside")
    return axes


def plot_error_vs_nu(nus, measured: dict, theory: Optional[dict] = None, floor: Optional[dict] = None, axes=None,
                     floor_label: str = "maximum likelihood", title: str = ""):
    """One log-log panel per parameter: the measured error of an NCE estimate against the noise ratio nu.

    measured: {name: errors (len(nus),)}; theory: optional {name: predicted errors (len(nus),)} drawn as a
    line; floor: optional {name: the maximum-likelihood error} drawn as a dashed horizontal line.
    Returns the axes.
    """
    names = list(measured)
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3.2), squeeze=False)
        axes = axes[0]
    nus = _np(nus).ravel()
    for ax, name in zip(axes, names):
        ax.loglog(nus, _np(measured[name]).ravel(), "o", label="NCE, measured")
        if theory is not None and name in theory:
            ax.loglog(nus, _np(theory[name]).ravel(), "-", color="C0", alpha=0.6, label="NCE, asymptotic theory")
        if floor is not None and name in floor:
            ax.axhline(float(floor[name]), color="k", ls="--", lw=1, label=floor_label)
        ax.set(xlabel=r"noise ratio $\nu$", title=name)
    axes[0].set_ylabel("RMS error")
    axes[0].legend(frameon=False, fontsize=8)
    if title:
        axes[0].figure.suptitle(title)
    return axes


__all__ += ["plot_nce_boundary_1d", "plot_error_vs_nu"]


# --- chapter 2 ---
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
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_rbm_filters(W, image_shape=(8, 8), n_cols: int = 8, ax=None, title: str = "filters: columns of W"):
    """Each hidden unit's weights W[:, j] as an image (red positive, blue negative, one symmetric scale)."""
    w = _np(W).T
    lim = float(np.abs(w).max()) or 1.0
    ax = image_grid(w, n_cols=n_cols, image_shape=image_shape, ax=ax, vmin=-lim, vmax=lim, cmap="RdBu_r")
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
    ax.legend(frameon=False, fontsize=8)
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
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


__all__ += ["plot_rbm_graph", "plot_ising_lattices", "plot_magnetisation", "plot_rbm_filters",
            "plot_state_distribution", "plot_curves"]


# --- chapter 3 ---
def plot_log_likelihood_curves(histories: dict, ax=None, title: str = "", x_key: str = "at",
                               ylabel: str = "exact log-likelihood (nats)"):
    """Train (solid) and test (dashed) log-likelihood against epoch, one colour per run: ``histories`` maps a
    label to a dict with ``x_key`` (epochs), "train" and "test" (equal lengths), e.g. a fit history."""
    ax = _ax(ax) if ax is not None else plt.subplots(figsize=(6, 3.6))[1]
    for i, (label, h) in enumerate(histories.items()):
        colour = f"C{i}"
        ax.plot(_np(h[x_key]), _np(h["train"]), color=colour, label=f"{label} train")
        ax.plot(_np(h[x_key]), _np(h["test"]), color=colour, ls="--", label=f"{label} test")
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    if title:
        ax.set_title(title)
    return ax


def plot_image_rows(rows: dict, image_shape=(8, 8), n_cols: int = 16, title: str = ""):
    """One row of images per entry of ``rows`` (a label, e.g. "epoch 10", to images (n, h*w)), the label
    written on the left: fantasy particles over training, or samples along an annealing path. Returns the figure."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.45 * n_cols + 1.2, 0.5 * len(rows) + 0.4), squeeze=False)
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
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
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
        ax.legend(frameon=False, fontsize=8)
    if title:
        axes[0].figure.suptitle(title)
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
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


__all__ += ["plot_log_likelihood_curves", "plot_image_rows", "plot_ais_convergence", "plot_log_z_errors"]
