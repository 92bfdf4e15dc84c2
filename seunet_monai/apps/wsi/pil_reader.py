"""PNG and JPEG as a one-level MONAI WSI backend, decoded whole with Pillow within an explicit size bound.

These formats have no random access to a region, so :class:`PILImageReader` decodes the image once and holds it.
Pillow's decompression-bomb guess is replaced by :data:`MAX_IMAGE_PIXELS`, checked from the header *before*
decoding; a larger image is refused with one line saying to convert it to a tiled pyramidal TIFF (read tile by
tile by :class:`~seunet_monai.apps.wsi.tiff_reader.TiffRegionReader`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.wsi_reader import BaseWSIReader
from PIL import Image

from seunet_monai.data.io import to_rgb
from seunet_monai.errors import ImageTooLargeError

from .tiff_reader import to_rgb_uint8

__all__ = ["MAX_IMAGE_PIXELS", "PILImageReader"]

MAX_IMAGE_PIXELS = 2**28
"""Largest PNG/JPEG (pixels) decoded whole: 16,384 x 16,384, about 1.9 GB while decoding (Pillow's 4 bytes per
pixel plus the 3-byte array)."""


class PILImageReader(BaseWSIReader):
    """A one-level MONAI WSI backend for PNG/JPEG images held in memory (decoded whole with Pillow).

    ``read`` returns a dict ``{"path", "image" (H, W, 3) uint8, "mpp" or None}``; the resolution comes from the
    file's dots-per-inch when it states one other than the usual 72/96/300 defaults.

    Args:
        max_pixels: the largest image (``H * W``) decoded; a larger one is refused from its header, before
            any decoding (default :data:`MAX_IMAGE_PIXELS`).
        kwargs: those of :class:`monai.data.wsi_reader.BaseWSIReader` (``level``, ``channel_dim``...).
    """

    backend = "pillow"
    supported_suffixes = ["png", "jpg", "jpeg"]

    def __init__(self, max_pixels: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_pixels = int(MAX_IMAGE_PIXELS if max_pixels is None else max_pixels)
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}.")

    def read(self, data: Sequence[os.PathLike] | os.PathLike | str, **kwargs: Any) -> dict:
        path = Path(str(data))
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # replaced by the explicit bound below, checked before decoding
        try:
            with Image.open(path) as img:  # reads the header only
                w, h = img.size
                if w * h > self.max_pixels:
                    raise ImageTooLargeError(
                        f"{path}: {w} x {h} {img.format or 'image'} ({w * h / 1e6:.0f} Mpx) is larger than the "
                        f"{self.max_pixels / 1e6:.0f} Mpx that PNG/JPEG files are decoded whole within (no random "
                        "access to a region in these formats). Convert it to a tiled pyramidal TIFF, which is read "
                        "tile by tile, e.g. `vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg`."
                    )
                img.load()
                dpi = img.info.get("dpi")
                arr = np.asarray(to_rgb(img))  # logs grey/RGBA conversions, refuses 16-bit and float
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder error becomes one message naming the file
            raise ValueError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        mpp = None
        if dpi and all(float(d) > 1 for d in dpi) and {round(float(d)) for d in dpi} - {72, 96, 300}:
            mpp = (25400.0 / float(dpi[1]), 25400.0 / float(dpi[0]))
        return {"path": str(path.resolve()), "image": to_rgb_uint8(arr, str(path)), "mpp": mpp}

    @staticmethod
    def get_level_count(wsi: dict) -> int:
        return 1

    def get_size(self, wsi: dict, level: int) -> tuple[int, int]:
        return tuple(int(s) for s in wsi["image"].shape[:2])  # type: ignore[return-value]

    def get_downsample_ratio(self, wsi: dict, level: int) -> float:
        return 1.0

    @staticmethod
    def get_file_path(wsi: dict) -> str:
        return wsi["path"]

    def get_mpp(self, wsi: dict, level: int) -> tuple[float, float]:
        if wsi["mpp"] is None:
            raise ValueError(f"{wsi['path']}: no resolution metadata (µm per pixel) in the file.")
        return wsi["mpp"]

    def get_power(self, wsi: dict, level: int) -> float:
        raise ValueError(f"{wsi['path']}: objective power is not recorded in PNG/JPEG files.")

    def read_region(self, wsi: dict, location: tuple[int, int], size: tuple[int, int], level: int = 0) -> np.ndarray:
        """The ``(H, W, 3) uint8`` region at ``location`` of ``size``; pixels beyond the image are white."""
        img = wsi["image"]
        h, w = (int(s) for s in size)
        y0, x0 = (int(s) for s in location)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        ys, xs, ye, xe = max(y0, 0), max(x0, 0), min(y0 + h, img.shape[0]), min(x0 + w, img.shape[1])
        if ys < ye and xs < xe:
            out[ys - y0 : ye - y0, xs - x0 : xe - x0] = img[ys:ye, xs:xe]
        return out

    def _get_patch(
        self, wsi: dict, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        # the abstract backend hook of MONAI's BaseWSIReader (called by the public get_data); one level: level-0
        # locations are this level's
        patch = self.read_region(wsi, location, size).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)
