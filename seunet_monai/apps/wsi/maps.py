"""Maps over the tissue of slide inference: which scale group won and the estimated scale, per region.

- ``NAME_heads.png`` (:func:`write_head_map`): the winning scale group (PDist) per region, a labelled map over
  the tissue, in viridis.
- ``NAME_scale.png`` (:func:`write_scale_map`): the estimated scale relative to training per region (one estimate
  per window run, spread over the thumbnail by :func:`window_map`), on a diverging purple-orange scale centred
  on 1.

Cells outside the tissue, or where nothing ran, are grey.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

__all__ = ["window_map", "write_head_map", "write_scale_map"]

_UNSET = (0.85, 0.85, 0.85)  # map cells outside the tissue, or where nothing ran


def window_map(
    locations: Sequence[Sequence[int]],
    values: Sequence[float],
    patch_size: Sequence[int],
    factor: int,
    shape: Sequence[int],
) -> np.ndarray:
    """Mean of the per-window ``values`` over the windows covering each thumbnail pixel ``(h, w)`` (``NaN`` where
    none did); ``locations`` are the windows' top-left corners in pixels of the inference level."""
    total = np.zeros(tuple(shape), dtype=np.float64)
    count = np.zeros(tuple(shape), dtype=np.int64)
    ph, pw = (int(p) for p in patch_size)
    for (y, x), v in zip(locations, values):
        cells = (
            slice(int(y) // factor, math.ceil((int(y) + ph) / factor)),
            slice(int(x) // factor, math.ceil((int(x) + pw) / factor)),
        )
        total[cells] += float(v)
        count[cells] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _map_figure(values: np.ndarray, box: tuple[int, int, int, int], factor: int, title: str) -> tuple:
    """A figure with one map axis: ``(figure, axis, values cropped to box, imshow extent)``."""
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    fig = Figure(figsize=(8.0, max(3.0, 8.0 * h / max(w, 1))), dpi=100)
    ax = fig.subplots()
    extent = (x0 * factor, x1 * factor, y1 * factor, y0 * factor)  # axes in pixels of the inference level
    ax.set_xlabel("x (pixels of the inference level)")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    return fig, ax, values[y0:y1, x0:x1], extent


def _save_figure(fig: Figure, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with open(path, "wb") as f:
        fig.savefig(f, format="png")


def write_head_map(
    path: str | os.PathLike,
    winner: np.ndarray,
    tissue: np.ndarray,
    box: tuple[int, int, int, int],
    factor: int,
    head_sigmas: Sequence[float] | None = None,
    name: str = "",
) -> None:
    """The winning scale group (PDist: the head with the largest summed margin) per thumbnail pixel, over the
    tissue only (grey elsewhere, and where no window interior reached), cropped to ``box``, with a legend naming
    each head and its σ.

    Args:
        path: the PNG file.
        winner: 0-based winning head per thumbnail pixel, ``-1`` where none.
        tissue: boolean tissue map.
        box: ``(y0, y1, x0, x1)`` of the crop (thumbnail pixels).
        factor: pixels of the inference level per thumbnail pixel (axis units).
        head_sigmas: σ of each head (last GD layer); ``None`` labels heads by number.
        name: the input's file name, in the title.
    """
    omega = int(max(int(winner.max()) + 1, len(head_sigmas or []), 1))
    shown = np.where(tissue, winner, -1)
    fig, ax, crop, extent = _map_figure(shown, box, factor, f"{name}: winning scale group (PDist) per region")
    cmap = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0, 1, omega))).with_extremes(bad=_UNSET)
    im = ax.imshow(
        np.ma.masked_less(crop, 0),
        cmap=cmap,
        norm=BoundaryNorm(np.arange(-0.5, omega), omega),
        interpolation="nearest",
        extent=extent,
    )
    bar = fig.colorbar(im, ax=ax, ticks=range(omega), fraction=0.046)
    labels = [f"head {k + 1}" + (f" (σ={head_sigmas[k]:.2f})" if head_sigmas else "") for k in range(omega)]
    bar.ax.set_yticklabels(labels)
    bar.set_label("winning head (small σ: fine detail)")
    ax.text(0.0, -0.12, "grey: not tissue, or no window interior", transform=ax.transAxes, fontsize=8, va="top")
    _save_figure(fig, path)


def write_scale_map(
    path: str | os.PathLike,
    scale: np.ndarray,
    tissue: np.ndarray,
    box: tuple[int, int, int, int],
    factor: int,
    name: str = "",
    note: str = "",
) -> None:
    """The estimated scale of the tissue relative to the training data per region (:func:`window_map` of the
    per-window estimates), over the tissue only, on a log scale from 1/2 to 2 centred on 1 (purple: smaller
    than in training, orange: larger), cropped to ``box``. Without estimates (all ``NaN``) the figure says why
    (``note``).

    Args:
        path: the PNG file.
        scale: scale relative to training per thumbnail pixel, ``NaN`` where unknown.
        tissue: boolean tissue map.
        box: ``(y0, y1, x0, x1)`` of the crop (thumbnail pixels).
        factor: pixels of the inference level per thumbnail pixel (axis units).
        name: the input's file name, in the title.
        note: the reason printed when there is no estimate.
    """
    shown = np.where(tissue, scale, np.nan)
    fig, ax, crop, extent = _map_figure(shown, box, factor, f"{name}: estimated scale relative to training, per window")
    cmap = matplotlib.colormaps["PuOr_r"].with_extremes(bad=_UNSET)
    with np.errstate(invalid="ignore", divide="ignore"):
        log2 = np.log2(crop)
    im = ax.imshow(np.ma.masked_invalid(log2), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest", extent=extent)
    ticks = [-1.0, -0.5, 0.0, 0.5, 1.0]
    bar = fig.colorbar(im, ax=ax, ticks=ticks, fraction=0.046)
    bar.ax.set_yticklabels([f"{2.0**t:.2g}" for t in ticks])
    bar.set_label("scale relative to training (1 = as trained)")
    if not np.isfinite(crop).any():
        ax.text(
            0.5,
            0.5,
            note or "no scale estimate",
            transform=ax.transAxes,
            ha="center",
            va="center",
            wrap=True,
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8},
        )
    ax.text(0.0, -0.12, "grey: not tissue, or no estimate", transform=ax.transAxes, fontsize=8, va="top")
    _save_figure(fig, path)
