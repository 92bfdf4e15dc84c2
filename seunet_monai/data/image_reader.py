"""A MONAI ``ImageReader`` for multi-page TIFF stacks (one z-slice per page), read with ``tifffile``.

MONAI's built-in readers cover NIfTI (``NibabelReader``) and MHA/NRRD/NIfTI (``ITKReader``); its
``PILReader`` reads one page of a TIFF and ``TiffFileWSIReader`` reads pyramid levels of slides, but none
reads a stack of full-size pages as a volume, the usual export of confocal and light-sheet microscopes
(ImageJ/Fiji "hyperstack" TIFF). :class:`TiffStackReader` does, with the voxel size ImageJ writes.

Arrays come in the ``(X, Y, Z)`` order of NIfTI and of ``NibabelReader``/``ITKReader`` (``reverse_indexing``),
so the same volume saved as NIfTI, MHA or TIFF stack loads to the same array. Use it like any reader, alone
or among others (``LoadImaged(keys, reader=[..., TiffStackReader])``, or its dotted path in a bundle config).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tifffile
from monai.data import ImageReader
from monai.data.image_reader import _copy_compatible_dict, _stack_images
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

__all__ = ["TIFF_STACK_SUFFIXES", "TiffStackReader", "tiff_stack_spacing"]

TIFF_STACK_SUFFIXES = ("tif", "tiff")


def tiff_stack_spacing(tif: Any) -> tuple[float, float, float]:
    """Voxel size ``(x, y, z)`` of an open ``tifffile.TiffFile``: ``XResolution``/``YResolution`` (pixels per
    unit) of the first page and ImageJ's ``spacing`` for z; 1.0 where the file states nothing."""
    page = tif.pages[0]

    def inverse(tag: str) -> float:
        t = page.tags.get(tag)
        if t is None:
            return 1.0
        num, den = t.value if isinstance(t.value, tuple) else (t.value, 1)
        return float(den) / float(num) if num else 1.0

    z = 1.0
    ij = tif.imagej_metadata or {}
    if ij.get("spacing"):
        z = float(ij["spacing"])
    return inverse("XResolution"), inverse("YResolution"), z


class TiffStackReader(ImageReader):
    """Read a multi-page TIFF stack as a volume ``(X, Y, Z)`` (a single-page TIFF as an image ``(X, Y)``).

    The pages (ImageJ axes ``Z``, or unlabelled ``I``/``Q`` pages) become the last spatial axis; a stack with
    channels or time points (``C``/``T`` axes, or RGB samples) is refused, naming the file. The affine is
    ``diag(x, y, z, 1)`` from the file's resolution tags and ImageJ ``spacing``.

    Args:
        kwargs: passed to ``tifffile.TiffFile.asarray`` (e.g. ``maxworkers``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every file ends in ``.tif``/``.tiff`` (case-insensitive)."""
        return all(str(f).lower().endswith(tuple(f".{s}" for s in TIFF_STACK_SUFFIXES)) for f in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> Any:
        """Read each file into ``(array (X, Y[, Z]), spacing)``; one item, or a list for several files."""
        if not self.verify_suffix(data):
            raise ValueError(f"TiffStackReader reads .tif/.tiff files, got {data!r}.")
        out = []
        for name in ensure_tuple(data):
            with tifffile.TiffFile(str(name)) as tif:
                series = tif.series[0]
                axes = series.axes
                arr = series.asarray(**{**self.kwargs, **kwargs})
                spacing = tiff_stack_spacing(tif)
            extra = [a for a in axes if a not in "YXZIQ"]
            if extra or arr.ndim not in (2, 3):
                raise ValueError(
                    f"TIFF {name}: axes {axes!r} (shape {arr.shape}); expected a stack of grey-scale pages (ZYX) or "
                    "one grey-scale page (YX). Save one channel and one time point per file."
                )
            arr = np.ascontiguousarray(np.transpose(arr))  # (Z, Y, X) -> (X, Y, Z); (Y, X) -> (X, Y)
            out.append((arr, spacing[: arr.ndim]))
        return out if len(out) > 1 else out[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """``(array, meta)``: arrays of several files stacked on a new first axis; ``meta`` has ``affine``,
        ``original_affine``, ``spatial_shape``, ``spacing`` and no channel (``original_channel_dim`` nan)."""
        arrays: list[np.ndarray] = []
        compatible: dict = {}
        for arr, spacing in ensure_tuple(img) if isinstance(img, list) else (img,):
            affine = np.eye(len(spacing) + 1)
            affine[: len(spacing), : len(spacing)] = np.diag(spacing)
            header = {
                MetaKeys.AFFINE: affine.copy(),
                MetaKeys.ORIGINAL_AFFINE: affine.copy(),
                MetaKeys.SPATIAL_SHAPE: np.asarray(arr.shape),
                MetaKeys.SPACE: SpaceKeys.RAS,
                MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
                "spacing": np.asarray(spacing, dtype=np.float64),
            }
            arrays.append(arr)
            _copy_compatible_dict(header, compatible)
        return _stack_images(arrays, compatible), compatible
