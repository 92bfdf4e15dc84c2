"""A pyramid level resampled on the fly to another resolution, as level 0 of a MONAI WSI backend.

Slides rarely store exactly the training resolution (e.g. a 0.2525 µm/px level for a model trained at 0.25).
:class:`ResampledLevelReader` presents a level of another reader resampled by ``zoom``: the splitter, the merger
and the outputs then work in pixels of the resampled grid, whose µm per pixel is the target's. Each region is
resampled from a source region a few pixels larger, with linear interpolation at pixel centres
(``scipy.ndimage.affine_transform``), after a Gaussian pre-smoothing against aliasing when shrinking; the whole
level is never resampled at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from monai.data.wsi_reader import BaseWSIReader
from scipy.ndimage import affine_transform, gaussian_filter

from .readers import read_region

__all__ = ["ResampledLevelReader"]


class ResampledLevelReader(BaseWSIReader):
    """A pyramid level of another reader resampled by ``zoom``, presented as level 0 of a MONAI WSI backend.

    Levels: 0 is the resampled grid; ``1 + k`` is the base reader's level ``k`` as stored (so that thumbnails
    are read from a coarse level); downsample ratios are relative to level 0 (so they are not integers).

    Args:
        reader: the base reader (any of this module's readers or MONAI's cuCIM / OpenSlide readers).
        source_level: the base reader's level that is resampled.
        zoom: output pixels per source pixel (``source mpp / target mpp``), > 0.
    """

    backend = "resampled"

    def __init__(self, reader: BaseWSIReader, source_level: int, zoom: float, **kwargs: Any) -> None:
        super().__init__(level=0, channel_dim=getattr(reader, "channel_dim", 0), **kwargs)
        if not (zoom > 0 and math.isfinite(zoom)):
            raise ValueError(f"zoom must be a positive number, got {zoom}.")
        self.base = reader
        self.source_level = int(source_level)
        self.zoom = float(zoom)
        self.supported_suffixes = list(getattr(reader, "supported_suffixes", []))

    def read(self, data: Any, **kwargs: Any) -> Any:
        return self.base.read(data, **kwargs)

    def get_level_count(self, wsi: Any) -> int:  # type: ignore[override]
        return 1 + int(self.base.get_level_count(wsi))

    def get_size(self, wsi: Any, level: int) -> tuple[int, int]:
        if level == 0:
            h, w = self.base.get_size(wsi, self.source_level)
            return max(1, round(int(h) * self.zoom)), max(1, round(int(w) * self.zoom))
        return tuple(int(v) for v in self.base.get_size(wsi, level - 1))  # type: ignore[return-value]

    def downsample_to_base(self, wsi: Any) -> float:
        """Base level-0 pixels per pixel of the resampled grid (level 0 of this reader)."""
        return float(self.base.get_downsample_ratio(wsi, self.source_level)) / self.zoom

    def get_downsample_ratio(self, wsi: Any, level: int) -> float:
        if level == 0:
            return 1.0
        return float(self.base.get_downsample_ratio(wsi, level - 1)) / self.downsample_to_base(wsi)

    def get_mpp(self, wsi: Any, level: int) -> tuple[float, float]:
        if level == 0:
            y, x = self.base.get_mpp(wsi, self.source_level)
            return float(y) / self.zoom, float(x) / self.zoom
        return self.base.get_mpp(wsi, level - 1)

    def get_power(self, wsi: Any, level: int) -> float:
        return self.base.get_power(wsi, self.source_level if level == 0 else level - 1)

    def get_file_path(self, wsi: Any) -> str:
        return self.base.get_file_path(wsi)

    def read_region(self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int = 0) -> np.ndarray:
        """The ``(H, W, 3) uint8`` region at ``location`` of ``size`` (pixels of ``level``); white beyond the image."""
        if level != 0:
            return read_region(self.base, wsi, location, size, level - 1)
        h, w = (int(v) for v in size)
        y0, x0 = (int(v) for v in location)
        z = self.zoom
        # output pixel i (centre i + 0.5) samples the source at (i + 0.5) / z - 0.5
        blur = 0.5 * math.sqrt(1.0 / z**2 - 1.0) if z < 1 else 0.0
        pad = 2 + math.ceil(3 * blur)
        sy, sx = math.floor((y0 + 0.5) / z - 0.5) - pad, math.floor((x0 + 0.5) / z - 0.5) - pad
        sh, sw = math.ceil(h / z) + 2 * pad + 2, math.ceil(w / z) + 2 * pad + 2
        src = read_region(self.base, wsi, (sy, sx), (sh, sw), self.source_level).astype(np.float32)
        if blur > 0:
            src = gaussian_filter(src, sigma=(blur, blur, 0), mode="nearest")
        offset = ((y0 + 0.5) / z - 0.5 - sy, (x0 + 0.5) / z - 0.5 - sx, 0.0)
        out = affine_transform(
            src,
            (1.0 / z, 1.0 / z, 1.0),
            offset=offset,
            output_shape=(h, w, 3),
            order=1,
            mode="nearest",
            prefilter=False,
        )
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        big_h, big_w = self.get_size(wsi, 0)  # beyond the resampled grid: white, as the other readers pad
        out[: max(0, -y0)] = 255
        out[max(0, big_h - y0) :] = 255
        out[:, : max(0, -x0)] = 255
        out[:, max(0, big_w - x0) :] = 255
        return out

    def _get_patch(
        self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        # the abstract backend hook of MONAI's BaseWSIReader (called by the public get_data)
        ratio = self.get_downsample_ratio(wsi, level)  # MONAI passes ``location`` in level-0 pixels
        loc = tuple(int(round(v / ratio)) for v in location)
        patch = self.read_region(wsi, loc, size, level).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)
