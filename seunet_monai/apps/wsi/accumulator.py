"""What :class:`~seunet_monai.apps.wsi.merger.BandMerger` hands the final rows to: the class-id mask (and, for a
nucleus model, the nucleus probability and the separation map) go to uncompressed row-major files on disk (a
slide's maps are never held in memory), and everything the overlay and the summary need is reduced on the fly to
thumbnail resolution or to a few counts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RawMask", "SlideAccumulator"]


class RawMask:
    """An ``(H, W)`` array (``uint8`` class ids by default) stored row-major in a plain file (sparse: rows never
    written read as 0).

    Args:
        path: the file (created, truncated to ``H * W`` items).
        shape: ``(H, W)``.
        dtype: the item type (e.g. ``float32`` for a probability map).
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int], dtype: Any = np.uint8) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        with open(self.path, "wb") as f:
            f.truncate(self.shape[0] * self.shape[1] * self.dtype.itemsize)

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` ``(n, W)`` at row ``y0`` (cast to ``dtype``)."""
        with open(self.path, "r+b") as f:
            f.seek(int(y0) * self.shape[1] * self.dtype.itemsize)
            f.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)`` (clipped to the mask) as ``(n, W)`` of ``dtype``."""
        y0, y1 = max(0, int(y0)), min(self.shape[0], int(y1))
        n = max(0, y1 - y0)
        arr = np.fromfile(
            self.path, dtype=self.dtype, count=n * self.shape[1], offset=y0 * self.shape[1] * self.dtype.itemsize
        )
        return arr.reshape(n, self.shape[1])

    def read_block(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """The block ``[y0, y0 + h) x [x0, x0 + w)``, zero beyond the mask (only its columns are read)."""
        out = np.zeros((int(h), int(w)), dtype=self.dtype)
        ya, yb = max(0, int(y0)), min(self.shape[0], int(y0) + int(h))
        xa, xb = max(0, int(x0)), min(self.shape[1], int(x0) + int(w))
        if ya < yb and xa < xb:
            stored = np.memmap(self.path, dtype=self.dtype, mode="r", shape=self.shape)
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = stored[ya:yb, xa:xb]
            del stored
        return out


class SlideAccumulator:
    """Sink of the merged rows ``(C + A + Ω, n, W)``: fused class probabilities, the ``A`` fused extra maps of a
    network with ``aux_channels`` (e.g. the nucleus separation map), then per-head margins.

    Writes ``argmax`` class ids to a :class:`RawMask` (0 where no patch ran) and keeps, per thumbnail pixel
    (``factor`` x ``factor`` pixels), the margin sums of every head (their argmax is the region's winning head)
    and the fraction of non-background pixels; and, over the whole slide, class pixel counts, the PDist winner
    counts (over inferred and over non-background pixels). Pixels whose margins are ``NaN`` (no window interior
    reached them: :class:`~seunet_monai.apps.wsi.merger.BandMerger`) are left out of every head statistic.

    Args:
        mask: the :class:`RawMask` receiving class ids.
        num_classes: ``C``.
        factor: pixels per thumbnail pixel.
        probability: optional ``float32`` :class:`RawMask` receiving the fused probability of class
            ``probability_class`` (0 where no patch ran), for the per-nucleus measurements.
        probability_class: the class whose probability is kept.
        aux_channels: ``A``, the extra maps after the classes (0: none).
        separation: optional ``float32`` :class:`RawMask` receiving the first extra map (0 where no patch ran),
            for the separation of touching nuclei; needs ``aux_channels >= 1``.
    """

    def __init__(
        self,
        mask: RawMask,
        num_classes: int,
        factor: int,
        probability: RawMask | None = None,
        probability_class: int = 1,
        aux_channels: int = 0,
        separation: RawMask | None = None,
    ) -> None:
        if separation is not None and int(aux_channels) < 1:
            raise ValueError("SlideAccumulator: a separation store needs aux_channels >= 1 (the map's channel).")
        self.mask = mask
        self.probability = probability
        self.probability_class = int(probability_class)
        self.aux_channels = int(aux_channels)
        self.separation = separation
        self.num_classes = int(num_classes)
        self.factor = int(factor)
        h, w = mask.shape
        self.thumb_shape = (math.ceil(h / self.factor), math.ceil(w / self.factor))
        self.num_heads = 0
        self.class_pixels = np.zeros(self.num_classes, dtype=np.int64)
        self.inferred_pixels = 0
        self.cell_heads = np.zeros(self.thumb_shape[0] * self.thumb_shape[1], dtype=np.int64)
        self.cell_inferred = np.zeros(self.thumb_shape[0] * self.thumb_shape[1], dtype=np.int64)
        self.cell_foreground = np.zeros_like(self.cell_inferred)
        self.cell_margins: np.ndarray | None = None
        self.winner_pixels: np.ndarray | None = None
        self.winner_foreground: np.ndarray | None = None

    def __call__(self, y0: int, values: np.ndarray | None, valid: np.ndarray | int) -> None:
        if values is None:  # rows no patch covered: background, already zero in the sparse file
            self.class_pixels[0] += int(valid) * self.mask.shape[1]
            return
        c, a = self.num_classes, self.aux_channels
        probs, margins = values[:c], values[c + a :]
        if self.cell_margins is None:
            self.num_heads = margins.shape[0]
            omega = self.num_heads
            self.cell_margins = np.zeros((omega, self.cell_inferred.size), dtype=np.float64)
            self.winner_pixels = np.zeros(omega, dtype=np.int64)
            self.winner_foreground = np.zeros(omega, dtype=np.int64)
        valid = np.asarray(valid, dtype=bool)
        labels = np.where(valid, probs.argmax(0), 0).astype(np.uint8)
        self.mask.write_rows(y0, labels)
        if self.probability is not None:
            self.probability.write_rows(y0, np.where(valid, probs[self.probability_class], 0.0))
        if self.separation is not None:
            self.separation.write_rows(y0, np.where(valid, values[c], 0.0))
        self.class_pixels += np.bincount(labels.ravel(), minlength=c)[:c]
        if not valid.any():
            return
        n, w = labels.shape
        f = self.factor
        cells = ((np.arange(y0, y0 + n) // f)[:, None] * self.thumb_shape[1] + (np.arange(w) // f)[None, :])[valid]
        fg = labels[valid] > 0
        m = margins[:, valid]  # (Ω, P)
        size = self.cell_inferred.size
        self.inferred_pixels += int(valid.sum())
        self.cell_inferred += np.bincount(cells, minlength=size)
        self.cell_foreground += np.bincount(cells[fg], minlength=size)
        known = np.isfinite(m).all(0)  # per-head values from a window interior
        cells, fg, m = cells[known], fg[known], m[:, known]
        self.cell_heads += np.bincount(cells, minlength=size)
        for k in range(self.num_heads):
            self.cell_margins[k] += np.bincount(cells, weights=m[k], minlength=size)  # type: ignore[index]
        winner = m.argmax(0)
        self.winner_pixels += np.bincount(winner, minlength=self.num_heads)  # type: ignore[operator]
        self.winner_foreground += np.bincount(winner[fg], minlength=self.num_heads)  # type: ignore[operator]

    def winner_map(self) -> np.ndarray:
        """0-based winning head per thumbnail pixel ``(h, w)`` (largest summed margin), ``-1`` where nothing ran or
        no window interior reached."""
        if self.cell_margins is None:
            return np.full(self.thumb_shape, -1, dtype=np.int64)
        win = self.cell_margins.argmax(0)
        return np.where(self.cell_heads > 0, win, -1).reshape(self.thumb_shape)

    def foreground_fraction(self) -> np.ndarray:
        """Fraction of non-background pixels per thumbnail pixel ``(h, w)``."""
        return (self.cell_foreground / np.maximum(self.cell_inferred, 1)).reshape(self.thumb_shape)

    def result(self) -> "SlideAccumulator":
        return self
