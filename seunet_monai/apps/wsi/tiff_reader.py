"""Tiled, pyramidal TIFF, OME-TIFF and Aperio SVS as a MONAI WSI backend that reads regions tile by tile.

:class:`TiffRegionReader` is MONAI's :class:`monai.data.TiffFileWSIReader` with:

- regions decoded from the tiles (or strips) that overlap them only, in bounded memory; a region reaching beyond
  the image is padded with white (255, like background glass), which the splitter's constant padding relies on;
- levels taken as tifffile's ``series[0].levels`` (right for SVS, whose second page is a thumbnail, and for
  OME-TIFF pyramids stored in SubIFDs);
- the resolution read from the resolution tags, the Aperio description (``MPP = ...``) or the OME-XML
  ``PhysicalSizeX``.

Why MONAI's own reader is not enough: ``bundle/docs/README.md`` (Inference, "MONAI 1.6.1 limitations").
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from monai.data.wsi_reader import TiffFileWSIReader

__all__ = ["TiffRegionReader", "to_rgb_uint8"]

_CM_PER_UNIT = {2: 2.54, 3: 1.0}  # ResolutionUnit INCH, CENTIMETER
_OME_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def to_rgb_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """``(H, W[, S])`` -> ``(H, W, 3) uint8`` (grey replicated, alpha dropped; other than 8-bit refused)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] in (4, 2):
        arr = arr[..., :3] if arr.shape[-1] == 4 else np.repeat(arr[..., :1], 3, axis=-1)
    if arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected grey, RGB or RGBA samples, got {arr.shape[-1]} per pixel.")
    if arr.dtype != np.uint8:
        bits = "16-bit" if arr.dtype.itemsize == 2 else str(arr.dtype)
        raise ValueError(f"{name}: {bits} pixels; expected 8-bit RGB (grey/RGBA are converted). Convert it to 8 bits.")
    return arr


class TiffRegionReader(TiffFileWSIReader):
    """MONAI tifffile WSI backend that decodes only the tiles of the requested region (see module docstring).

    ``read`` returns the open :class:`tifffile.TiffFile`; levels are ``series[0].levels``. Arguments are those
    of :class:`monai.data.TiffFileWSIReader` (``level``, ``channel_dim``, ``dtype``, ``mode``...).
    """

    backend = "tifffile"
    supported_suffixes = ["tif", "tiff", "svs"]

    @staticmethod
    def _levels(wsi: Any) -> list:
        if not wsi.series:
            raise ValueError(f"{wsi.filehandle.path}: no image series in this TIFF file.")
        return list(wsi.series[0].levels)

    @staticmethod
    def _page(wsi: Any, level: int) -> Any:
        levels = TiffRegionReader._levels(wsi)
        if not 0 <= level < len(levels):
            raise ValueError(f"{wsi.filehandle.path}: level {level} requested, the file has {len(levels)} levels.")
        return levels[level].pages[0]

    @staticmethod
    def get_level_count(wsi: Any) -> int:
        return len(TiffRegionReader._levels(wsi))

    def get_size(self, wsi: Any, level: int) -> tuple[int, int]:
        page = self._page(wsi, level)
        return int(page.imagelength), int(page.imagewidth)

    def get_downsample_ratio(self, wsi: Any, level: int) -> float:
        return float(self.get_size(wsi, 0)[0]) / float(self.get_size(wsi, level)[0])

    def get_mpp(self, wsi: Any, level: int) -> tuple[float, float]:
        """Micrometres per pixel (y, x) at ``level``.

        Raises:
            ValueError: when the file records no physical resolution.
        """
        base = self._base_mpp(wsi)
        if base is None:
            raise ValueError(f"{wsi.filehandle.path}: no resolution metadata (µm per pixel) in the file.")
        r = self.get_downsample_ratio(wsi, level)
        return base[0] * r, base[1] * r

    @staticmethod
    def _base_mpp(wsi: Any) -> tuple[float, float] | None:
        """Level-0 µm per pixel from the Aperio description, the OME-XML or the resolution tags."""
        page = wsi.pages[0]
        desc = page.description or ""
        if wsi.is_svs:
            m = re.search(r"MPP\s*=\s*([0-9.eE+-]+)", desc)
            if m and float(m.group(1)) > 0:
                return float(m.group(1)), float(m.group(1))
        if wsi.is_ome and wsi.ome_metadata:
            mx = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', wsi.ome_metadata)
            my = re.search(r'PhysicalSizeY="([0-9.eE+-]+)"', wsi.ome_metadata)
            ux = re.search(r'PhysicalSizeXUnit="([^"]+)"', wsi.ome_metadata)
            if mx and my:
                f = _OME_UM.get(ux.group(1) if ux else "µm", 1.0)
                return float(my.group(1)) * f, float(mx.group(1)) * f
        tags = page.tags
        unit = tags.get("ResolutionUnit")
        unit = int(unit.value) if unit is not None else 2
        if "XResolution" in tags and "YResolution" in tags and unit in _CM_PER_UNIT:
            xr, yr = tags["XResolution"].value, tags["YResolution"].value
            x = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
            y = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
            # TIFF writers put 1 (or 72 dpi) when nothing is known: treat those as "no resolution"
            if x > 1 and y > 1 and not (unit == 2 and {round(x), round(y)} <= {72, 96, 300}):
                return _CM_PER_UNIT[unit] * 1e4 / y, _CM_PER_UNIT[unit] * 1e4 / x
        return None

    def read_region(self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int) -> np.ndarray:
        """Decode the ``(H, W, 3) uint8`` region at ``location`` (level-``level`` pixels) of ``size``.

        Only the tiles or strips overlapping the region are read; pixels beyond the image are white (255).
        """
        page = self._page(wsi, level)
        key = page.keyframe
        name = str(wsi.filehandle.path)
        if key.planarconfig == 2 and key.samplesperpixel > 1:
            raise ValueError(f"{name}: separate colour planes (PlanarConfiguration 2) are not supported.")
        h, w = (int(s) for s in size)
        y0, x0 = (int(s) for s in location)
        big_h, big_w = int(key.imagelength), int(key.imagewidth)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        ys, xs, ye, xe = max(y0, 0), max(x0, 0), min(y0 + h, big_h), min(x0 + w, big_w)
        if ys >= ye or xs >= xe:
            return out
        th, tw = (
            (int(key.tilelength), int(key.tilewidth)) if key.is_tiled else (min(int(key.rowsperstrip), big_h), big_w)
        )
        nx = math.ceil(big_w / tw)
        decodeargs: dict[str, Any] = {"_fullsize": key.is_tiled}
        if key.compression in {6, 7, 34892, 33007}:  # JPEG
            decodeargs["jpegtables"] = page.jpegtables
            decodeargs["jpegheader"] = key.jpegheader
        fh = wsi.filehandle
        for ty in range(ys // th, (ye - 1) // th + 1):
            for tx in range(xs // tw, (xe - 1) // tw + 1):
                index = ty * nx + tx
                offset, count = page.dataoffsets[index], page.databytecounts[index]
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count) if count else None
                seg, _, shape = key.decode(data, index, **decodeargs)
                if seg is None:  # an empty (never written) tile
                    continue
                seg = to_rgb_uint8(np.asarray(seg).reshape(shape[1:]), name)
                sy, sx = ty * th, tx * tw
                a0, a1 = max(ys, sy), min(ye, sy + seg.shape[0])
                b0, b1 = max(xs, sx), min(xe, sx + seg.shape[1])
                out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = seg[a0 - sy : a1 - sy, b0 - sx : b1 - sx]
        return out

    def _get_patch(
        self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        # the abstract backend hook of MONAI's BaseWSIReader (every backend implements it; the public get_data
        # calls it). MONAI passes ``location`` in level-0 pixels
        ratio = self.get_downsample_ratio(wsi, level)
        loc = tuple(int(round(v / ratio)) for v in location)
        patch = self.read_region(wsi, loc, size, level).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)
