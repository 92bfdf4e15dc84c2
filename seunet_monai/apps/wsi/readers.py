"""Which reader opens a file, and reading regions and thumbnails from any reader.

- :func:`make_reader`: Pillow (:class:`~.pil_reader.PILImageReader`) for PNG/JPEG, tifffile
  (:class:`~.tiff_reader.TiffRegionReader`) for TIFF/SVS, or MONAI's cuCIM / OpenSlide backend when asked for.
- :func:`read_region`: an ``(H, W, 3) uint8`` region in pixels of a level, from any of them (white beyond the
  image).
- :func:`read_thumbnail`: a bounded-size thumbnail, read block by block from the coarsest level that is fine enough.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.wsi_reader import BaseWSIReader, WSIReader
from skimage.transform import downscale_local_mean, resize

from .pil_reader import PILImageReader
from .tiff_reader import TiffRegionReader

__all__ = [
    "SLIDE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "WHOLE_IMAGE_SUFFIXES",
    "make_reader",
    "read_region",
    "read_thumbnail",
]

WHOLE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Ordinary images, decoded whole (Pillow)."""
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs")
"""Files read region by region (tifffile): TIFF (tiled or stripped, pyramidal or not), OME-TIFF, Aperio SVS."""
SUPPORTED_SUFFIXES = WHOLE_IMAGE_SUFFIXES + SLIDE_SUFFIXES


def make_reader(path: str | os.PathLike, backend: str = "tifffile", level: int = 0) -> BaseWSIReader:
    """The reader for ``path``: Pillow for PNG/JPEG; for TIFF/SVS the tifffile region reader, or MONAI's
    cuCIM / OpenSlide backend when ``backend`` names one (and it is installed).

    Raises:
        ValueError: for an unsupported file extension or backend.
    """
    suffix = Path(str(path)).suffix.lower()
    if suffix in WHOLE_IMAGE_SUFFIXES:
        return PILImageReader(level=level, channel_dim=0)
    if suffix not in SLIDE_SUFFIXES:
        raise ValueError(f"{path}: unsupported extension {suffix!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}.")
    name = str(backend).lower()
    if name == "tifffile":
        return TiffRegionReader(level=level, channel_dim=0)
    if name in ("cucim", "openslide"):
        return WSIReader(backend=name, level=level, channel_dim=0)
    raise ValueError(f"unknown slide backend {backend!r} (key 'slide_backend'); expected tifffile, cucim or openslide.")


def read_region(
    reader: BaseWSIReader, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int
) -> np.ndarray:
    """The ``(H, W, 3) uint8`` region at ``location`` (pixels of ``level``) of ``size`` from any reader: the
    readers of this module read directly; MONAI's cuCIM/OpenSlide readers go through ``get_data``."""
    if hasattr(reader, "read_region"):
        return reader.read_region(wsi, location, size, level)
    ratio = reader.get_downsample_ratio(wsi, level)
    loc0 = tuple(int(round(v * ratio)) for v in location)
    patch, _ = reader.get_data(wsi, location=loc0, size=size, level=level)
    return np.moveaxis(np.asarray(patch), reader.channel_dim, -1).astype(np.uint8)


def read_thumbnail(reader: BaseWSIReader, wsi: Any, level: int, max_size: int = 2048) -> tuple[np.ndarray, int]:
    """An RGB thumbnail of ``level`` whose longer side is at most ``max_size``, and its integer factor ``f``
    (thumbnail pixel ``(i, j)`` covers pixels ``[i f, (i + 1) f) x [j f, (j + 1) f)`` of ``level``).

    Read from the coarsest pyramid level that is still at least as fine as the thumbnail, block by block (so
    memory stays bounded), and reduced by block averaging (scikit-image ``downscale_local_mean``).
    """
    h, w = reader.get_size(wsi, level)
    f = max(1, math.ceil(max(h, w) / max_size))
    th, tw = math.ceil(h / f), math.ceil(w / f)
    base = reader.get_downsample_ratio(wsi, level)
    src = level
    for k in range(reader.get_level_count(wsi)):
        r = reader.get_downsample_ratio(wsi, k) / base
        if r <= f * 1.01 and r > reader.get_downsample_ratio(wsi, src) / base:
            src = k
    g = f / (reader.get_downsample_ratio(wsi, src) / base)  # source pixels per thumbnail pixel
    if abs(g - round(g)) < 1e-3:  # pyramid levels: an integer factor, block averaging
        g = max(1, int(round(g)))
    out = np.full((th, tw, 3), 255, dtype=np.uint8)
    block = max(1, int(2048 // g))  # thumbnail pixels per block side
    for t0 in range(0, th, block):
        for u0 in range(0, tw, block):
            bh, bw = min(block, th - t0), min(block, tw - u0)
            if isinstance(g, int):
                region = read_region(reader, wsi, (t0 * g, u0 * g), (bh * g, bw * g), src)
                small = downscale_local_mean(region.astype(np.float32), (g, g, 1)) if g > 1 else region
            else:  # a resampled grid (ResampledLevelReader) over stored levels: a non-integer factor
                y0, x0 = round(t0 * g), round(u0 * g)
                region = read_region(reader, wsi, (y0, x0), (round((t0 + bh) * g) - y0, round((u0 + bw) * g) - x0), src)
                small = resize(region.astype(np.float32), (bh, bw), anti_aliasing=g > 1, preserve_range=True)
            out[t0 : t0 + bh, u0 : u0 + bw] = np.clip(np.asarray(small) + 0.5, 0, 255).astype(np.uint8)[:bh, :bw]
    return out, f
