"""Stitching patch outputs in bounded memory: a MONAI ``Merger`` that keeps one band of rows.

:class:`BandMerger` blends overlapping patches with MONAI's Gaussian importance map (as
``SlidingWindowInferer(mode="gaussian")`` does) but holds only one band of rows, one patch high, of the stitched
output. Patches arrive in row-major order (as the splitters yield them), so every row above the current patch row
is final: it is divided by its accumulated weight and handed to a ``sink``
(:class:`~seunet_monai.apps.wsi.accumulator.SlideAccumulator`), then forgotten. Memory grows with the slide's
width, not its area (MONAI's ``AvgMerger`` holds the whole output: ``bundle/docs/README.md``, Inference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.data.utils import compute_importance_map
from monai.inferers import Merger
from monai.utils import BlendMode

__all__ = ["BandMerger"]


class BandMerger(Merger):
    """Gaussian-weighted average of overlapping patches that keeps one band of rows (one patch high).

    Patches must arrive in row-major order of their top-left corners (as MONAI's splitters produce them).
    When a patch starts below the current band, the rows above it are final: they are divided by their
    accumulated weights and passed to ``sink(y0, values, valid)`` with ``values`` ``(C, n, W)`` float32 and
    ``valid`` ``(n, W)`` bool (pixels covered by at least one patch), or ``sink(y0, None, n)`` for ``n`` rows
    that no patch covered (skipped background). Rows and columns beyond ``cropped_shape`` are dropped.

    Per-head channels (from ``head_channels_from`` on) are blended from window interiors only: within
    ``head_border`` pixels of a window edge that lies inside the image, the network saw its zero padding (dark,
    like stained tissue) instead of the neighbouring tissue, and the heads with large σ answer that frame. Such
    pixels take their per-head values from the neighbouring windows' interiors (the default overlap of a quarter
    window covers every pixel with a border of up to half the overlap) and are ``NaN`` where no interior reached
    (the edges of the run region, which border skipped, non-tissue windows).

    Args:
        merged_shape: ``(1, C, H_padded, W_padded)`` (set by ``PatchInferer``).
        cropped_shape: ``(1, C, H, W)`` of the image (set by ``PatchInferer``).
        sink: receives the final rows; ``finalize`` returns ``sink.result()`` when it has one.
        sigma_scale: width of MONAI's Gaussian importance map relative to the patch size.
        head_channels_from: index of the first per-head channel (``None``: every channel is blended alike).
        head_border: width in pixels (one per axis, or one for both) of the window border left out of the
            per-head channels.
        device: device of the band buffers.
    """

    def __init__(
        self,
        merged_shape: Sequence[int],
        cropped_shape: Sequence[int] | None = None,
        sink: Any = None,
        sigma_scale: float = 0.125,
        head_channels_from: int | None = None,
        head_border: Sequence[int] | int = 0,
        device: torch.device | str | None = "cpu",
    ) -> None:
        super().__init__(merged_shape=merged_shape, cropped_shape=cropped_shape, device=device)
        if len(self.merged_shape) != 4 or self.merged_shape[0] != 1:
            raise ValueError(f"BandMerger merges 2D single-image outputs (1, C, H, W), got {tuple(merged_shape)}.")
        if sink is None:
            raise ValueError("BandMerger needs a sink that receives the final rows.")
        self.sink = sink
        self.sigma_scale = float(sigma_scale)
        self.head_from = None if head_channels_from is None else int(head_channels_from)
        border = (head_border, head_border) if isinstance(head_border, int) else tuple(head_border)
        self.head_border = tuple(max(0, int(b)) for b in border)
        self.head_weights: torch.Tensor | None = None
        self.out_h, self.out_w = (int(v) for v in (self.cropped_shape or self.merged_shape)[2:])
        self.y_base = 0
        self.values: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None
        self.importance: torch.Tensor | None = None

    def _allocate(self, patch_shape: Sequence[int]) -> None:
        ph = int(patch_shape[0])
        width = int(self.merged_shape[3])
        self.values = torch.zeros((int(self.merged_shape[1]), ph, width), dtype=torch.float32, device=self.device)
        self.weights = torch.zeros((ph, width), dtype=torch.float32, device=self.device)
        self.importance = compute_importance_map(
            tuple(int(p) for p in patch_shape),
            mode=BlendMode.GAUSSIAN,
            sigma_scale=self.sigma_scale,
            device=self.device,
        ).float()
        if self.head_from is not None:
            self.head_weights = torch.zeros((ph, width), dtype=torch.float32, device=self.device)

    def _emit(self, y0: int, n: int, values: torch.Tensor | None, weights: torch.Tensor | None) -> None:
        n = min(n, self.out_h - y0)
        if n <= 0:
            return
        if values is None or weights is None:
            self.sink(y0, None, n)
            return
        w = weights[:n, : self.out_w]
        valid = w > 0
        out = values[:, :n, : self.out_w] / torch.where(valid, w, torch.ones_like(w))
        if self.head_weights is not None:
            hw = self.head_weights[:n, : self.out_w]
            heads = values[self.head_from :, :n, : self.out_w] / torch.where(hw > 0, hw, torch.ones_like(hw))
            out[self.head_from :] = torch.where(hw > 0, heads, torch.full_like(heads, float("nan")))
        self.sink(y0, out.cpu().numpy(), valid.cpu().numpy())

    def _flush_until(self, y: int) -> None:
        """Hand every row above ``y`` to the sink and move the band down to start at ``y``."""
        if y <= self.y_base:
            return
        if self.values is None or self.weights is None:
            self._emit(self.y_base, y - self.y_base, None, None)
            self.y_base = y
            return
        band = self.values.shape[1]
        k = min(y - self.y_base, band)
        self._emit(self.y_base, k, self.values, self.weights)
        for buffer in (self.weights, self.head_weights):
            if buffer is not None:
                if k < band:
                    buffer[: band - k] = buffer[k:].clone()
                buffer[band - k :] = 0
        if k < band:
            self.values[:, : band - k] = self.values[:, k:].clone()
        self.values[:, band - k :] = 0
        if y - self.y_base > band:
            self._emit(self.y_base + band, y - self.y_base - band, None, None)
        self.y_base = y

    def aggregate(self, values: torch.Tensor, location: Sequence[int]) -> None:
        """Add one patch's output ``(1, C, ph, pw)`` at ``location`` (top-left corner ``(y, x)``)."""
        if self.is_finalized:
            raise ValueError("`BandMerger` is already finalized; no more patches can be aggregated.")
        y, x = (int(v) for v in location)
        if y < self.y_base:
            raise ValueError(f"BandMerger needs patches in row-major order: got row {y} after row {self.y_base}.")
        if self.values is None:
            self._allocate(values.shape[2:])
        self._flush_until(y)
        # a patch may reach beyond the padded output (an image smaller than the patch): keep what lies inside
        band_h, band_w = self.values.shape[1:]  # type: ignore[union-attr]
        ph, pw = min(values.shape[2], band_h), min(values.shape[3], band_w - x)
        if pw <= 0:
            return
        imp = self.importance[:ph, :pw]  # type: ignore[index]  # on self.device, like the band
        patch = values[0, :, :ph, :pw].float().to(self.device)
        if self.head_weights is None:
            self.values[:, 0:ph, x : x + pw] += patch * imp  # type: ignore[index]
        else:
            inner = self._interior(imp, y, x)
            self.values[: self.head_from, 0:ph, x : x + pw] += patch[: self.head_from] * imp  # type: ignore[index]
            self.values[self.head_from :, 0:ph, x : x + pw] += patch[self.head_from :] * inner  # type: ignore[index]
            self.head_weights[0:ph, x : x + pw] += inner
        self.weights[0:ph, x : x + pw] += imp  # type: ignore[index]

    def _interior(self, imp: torch.Tensor, y: int, x: int) -> torch.Tensor:
        """``imp`` with the window's border zeroed where the edge lies inside the image (``head_border`` wide)."""
        by, bx = self.head_border
        inner = imp.clone()
        full_h, full_w = self.importance.shape  # type: ignore[union-attr]
        if y > 0:
            inner[:by] = 0
        if y + full_h < self.out_h:
            inner[max(0, full_h - by) :] = 0
        if x > 0:
            inner[:, :bx] = 0
        if x + full_w < self.out_w:
            inner[:, max(0, full_w - bx) :] = 0
        return inner

    def finalize(self) -> Any:
        """Flush the remaining rows; returns ``sink.result()`` (or ``None``)."""
        if not self.is_finalized:
            self._flush_until(max(self.out_h, self.y_base))
            self.is_finalized = True
        result = getattr(self.sink, "result", None)
        return result() if callable(result) else None
