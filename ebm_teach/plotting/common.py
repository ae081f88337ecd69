"""Figures every chapter uses: an energy or density on a 2-D grid, scattered samples, a grid of images, 1-D
densities. Functions take data and an optional ``ax`` and return the axes (or the figure); nothing here calls
``plt.show()``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..evaluate import grid

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
    colorbar: bool = True,
):
    """Heat map with contours of a 2-D energy over ``bounds``: ``kind`` "density" shows exp(-E) normalised
    on the grid, "energy" shows E itself. Optional ``samples`` (n, 2) are scattered on top; ``colorbar=False``
    leaves out the colour bar (for narrow panels side by side).
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
    if colorbar:
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


def image_grid(images, n_cols: int = 10, image_shape=None, ax=None, title: str = "", vmin=0.0, vmax=1.0, cmap="gray_r",
               size: Optional[float] = None):
    """Tile images (n, h*w) or (n, h, w) into one grid (square images when ``image_shape`` is None).

    size: inches per image when a new figure is made (default: up to 0.5, so that the figure stays within the
    book's 8-inch column); larger sizes are capped to keep the figure within 8 inches.
    """
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
        side = min(0.5 if size is None else float(size), 7.5 / n_cols)  # inches per image, within 8 in
        _, ax = plt.subplots(figsize=(side * n_cols + 0.5, side * n_rows + 0.6))
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
