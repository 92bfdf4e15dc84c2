"""Patch-wise inference over a slide with MONAI's :class:`~monai.inferers.PatchInferer`, in bounded memory.

The pieces that :class:`~monai.inferers.PatchInferer` is built from here:

- :class:`TissueWSISplitter`, a :class:`monai.inferers.WSISlidingWindowSplitter` that applies the tissue filter
  to a patch's *location before reading it*. MONAI 1.6.1's splitter reads (decodes) every patch and only then
  calls ``filter_fn(patch, location)``, which on a mostly blank slide spends most of the time decoding glass.
  It also keeps the opened slide (MONAI re-opens the file in ``get_input_shape``, twice per ``PatchInferer``
  call) and shows a progress bar over the patches that will run, with ETA.
- :class:`BandMerger`, a :class:`monai.inferers.Merger` that blends overlapping patches with MONAI's Gaussian
  importance map (as ``SlidingWindowInferer(mode="gaussian")`` does) but holds only one band of rows, one
  patch high, of the stitched output. MONAI's ``AvgMerger`` holds the whole ``(C, H, W)`` output (12.8 GB for
  two float channels of a 40,000 x 40,000 slide) and ``ZarrAvgMerger`` needs ``zarr`` (not installed) and a
  full-size store on disk. The splitter yields patches in row-major order, so every row above the current
  patch row is final: ``BandMerger`` hands those rows to a ``sink`` and forgets them.
- :class:`HeadsPatchPredictor`, the network call: per-head class probabilities (``output_heads``), fused with
  the network's own ``fusion``, plus each head's margin ``D_k = p_max - p_second`` (Algorithm 1) so that the
  PDist winner (which scale group decided) can be mapped per region. Output ``(B, C + Ω, h, w)``.
- :class:`PatchPreprocessing`: an optional per-patch image transform (e.g. stain normalisation) then scaling
  of ``uint8`` to ``[0, 1]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data.utils import compute_importance_map, iter_patch_position
from monai.inferers import Merger, WSISlidingWindowSplitter
from monai.utils import BlendMode
from tqdm.auto import tqdm

from seunet_monai.fusion.heads import head_margins
from seunet_monai.fusion.scale import estimate_log_scale, resolve_profile
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import head_probabilities
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import unwrap

__all__ = ["BandMerger", "HeadsPatchPredictor", "PatchPreprocessing", "TissueWSISplitter"]


class TissueWSISplitter(WSISlidingWindowSplitter):
    """Sliding-window splitter over one level of a slide that skips non-tissue locations before reading.

    Args:
        patch_size: patch size in pixels of ``level``.
        overlap: relative (float in [0, 1)) or absolute (int) overlap of neighbouring patches.
        reader: a MONAI ``BaseWSIReader`` instance whose ``level`` is ``level`` (it must pad out-of-image
            regions: the readers of :mod:`seunet_monai.apps.wsi.readers` pad with white).
        level: the pyramid level the patches are read from.
        location_filter: ``f(location) -> bool`` on the top-left corner (pixels of ``level``); ``None`` keeps all.
        progress: show a progress bar (tqdm) over the patches that run.
        device: where patches are put (default: CPU).
    """

    def __init__(
        self,
        patch_size: Sequence[int] | int,
        overlap: float | Sequence[float] = 0.25,
        reader: Any = None,
        level: int = 0,
        location_filter: Callable[[Sequence[int]], bool] | None = None,
        progress: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        with warnings.catch_warnings():  # MONAI warns that non-cuCIM/OpenSlide backends read whole levels;
            warnings.simplefilter("ignore")  # the readers used here read regions.
            super().__init__(patch_size, overlap=overlap, pad_mode="constant", device=device, reader=reader, level=level)
        self.location_filter = location_filter
        self.progress = as_flag(progress, "progress")
        self._opened: tuple[str, Any] | None = None
        self.num_locations = 0
        self.num_patches = 0

    def _open(self, inputs: Any) -> Any:
        key = str(inputs)
        if self._opened is None or self._opened[0] != key:
            self._opened = (key, self.reader.read(inputs))
        return self._opened[1]

    def get_input_shape(self, inputs: Any) -> tuple:
        return tuple(self.reader.get_size(self._open(inputs), self.reader_kwargs.get("level", 0)))

    def locations(self, inputs: Any) -> list[tuple[int, int]]:
        """Top-left corners (pixels of ``level``) of the patches that will run, in row-major order."""
        spatial_shape = self.get_input_shape(inputs)
        patch_size, overlap, offset = self._get_valid_shape_parameters(spatial_shape)
        pad_size, _ = self._calculate_pad_size(spatial_shape, len(spatial_shape), patch_size, offset, overlap)
        padded = tuple(s + p0 + p1 for s, p0, p1 in zip(spatial_shape, pad_size[1::2], pad_size[::2]))
        every = list(iter_patch_position(padded, patch_size, offset, overlap, False))
        self.num_locations = len(every)
        keep = [tuple(int(v) for v in loc) for loc in every if self.location_filter is None or self.location_filter(loc)]
        self.num_patches = len(keep)
        return keep  # type: ignore[return-value]

    def __call__(self, inputs: Any) -> Iterable[tuple[torch.Tensor, Sequence[int]]]:
        """Yield ``(patch (1, 3, ph, pw) uint8, location)`` for every kept location of the slide at ``inputs``."""
        if not isinstance(inputs, (str, bytes)) and isinstance(inputs, Sequence):
            inputs = inputs[0]
        wsi = self._open(inputs)
        level = self.reader_kwargs.get("level", 0)
        ratio = self.reader.get_downsample_ratio(wsi, level)
        patch_size = self._get_valid_shape_parameters(self.get_input_shape(inputs))[0]
        locations = self.locations(inputs)
        bar = tqdm(locations, desc="patches", unit="patch", disable=not self.progress, leave=False, mininterval=2.0)
        for location in bar:
            location_0 = tuple(round(v * ratio) for v in location)  # MONAI readers take level-0 locations
            patch = torch.as_tensor(self._get_patch(wsi, location_0, patch_size), device=self.device)
            yield patch, location


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
            tuple(int(p) for p in patch_shape), mode=BlendMode.GAUSSIAN, sigma_scale=self.sigma_scale, device=self.device
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


class PatchPreprocessing:
    """``PatchInferer`` preprocessing: an optional per-patch image transform, then ``uint8 -> [0, 1]`` floats.

    Args:
        image_transform: applied to each patch ``(3, h, w)`` uint8 (channel first), e.g. a stain normaliser from
            :func:`seunet_monai.data.stain.reference.load_stain_reference` with ``channel_dim=0``; ``None`` skips it.
        device: where the network runs.
    """

    def __init__(self, image_transform: Callable | None = None, device: torch.device | str = "cpu") -> None:
        self.image_transform = image_transform
        self.device = torch.device(device)

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        if self.image_transform is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # low-tissue patches come back unchanged, by design
                patches = torch.stack(
                    [torch.as_tensor(np.asarray(self.image_transform(p.cpu().numpy()))) for p in patches]
                )
        return patches.to(self.device, torch.float32) / 255.0


class HeadsPatchPredictor:
    """Network call for :class:`~monai.inferers.PatchInferer`: fused probabilities and per-head margins.

    Per-head probabilities come from :func:`seunet_monai.inferers.head_probabilities` (``forward_heads`` and a
    softmax over classes for multi-head networks; a plain network is one head). They are fused as the network's
    eval-mode ``forward`` fuses them (:meth:`~seunet_monai.networks.base.MultiHeadNetwork.fuse_heads`).

    Args:
        network: the segmentation network (put in eval mode by the caller).
        amp: autocast on CUDA.

    Returns (when called on ``x`` ``(B, 3, h, w)``):
        ``(B, C + Ω, h, w)`` float32 on the CPU: ``C`` fused class probabilities, then the Ω head margins.
    """

    def __init__(self, network: torch.nn.Module, amp: bool = False) -> None:
        self.network = network
        self.amp = bool(amp)
        #: ``log ŝ`` of every window run (a slide region), when the network's scale fusion is calibrated
        self.window_log_scales: list[float] = []

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head class probabilities ``(B, Ω, C, h, w)`` (:func:`seunet_monai.inferers.head_probabilities`, the
        package's one path; ``softmax`` runs in float32 under autocast)."""
        return head_probabilities(self.network, x).float()

    def _record_scales(self, probs: torch.Tensor) -> None:
        """Estimate each window's scale relative to training from its heads (the ``scale`` fusion's estimator)."""
        net = unwrap(self.network)
        if probs.shape[1] > 1 and resolve_profile(net) is not None:
            self.window_log_scales.extend(float(v) for v in estimate_log_scale(probs.float().cpu(), net))

    def fused(self, probs: torch.Tensor) -> torch.Tensor:
        """Fused class probabilities ``(B, C, h, w)`` of per-head ones, as the network's eval mode fuses them."""
        net = unwrap(self.network)
        if isinstance(net, MultiHeadNetwork):
            return net.fuse_heads(probs)  # "scale" reads the network's fusion_* calibration buffers
        return fuse(probs, "mean")  # a plain network: one head

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=self.amp and x.device.type == "cuda"):
            probs = self.heads(x)
        self._record_scales(probs)
        return torch.cat([self.fused(probs), head_margins(probs)], dim=1).float().cpu()
