"""Tissue detection on a low-resolution thumbnail, so that background patches never reach the network.

Otsu's threshold (scikit-image ``threshold_otsu``) on the HSV saturation of the thumbnail: glass is grey or
white (saturation near 0) and H&E-stained tissue is pink to purple. The threshold is clipped to
``[min_threshold, max_threshold]``: on a slide without tissue Otsu would split noise, and on an image that is
all tissue it would split pale stroma from nuclei; the clipping keeps both cases sensible. Small specks are
removed and the mask is dilated by ``margin`` thumbnail pixels so that tissue borders get whole patches.

A colourless thumbnail (:func:`is_colourless`: a grey-scale image, or a stain without hue) has no saturation to
threshold; there Otsu's threshold is taken on the optical density of the grey level instead (tissue absorbs,
glass does not), clipped to ``[min_density, max_density]`` so that blank glass stays blank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.color import rgb2hsv
from skimage.filters import threshold_otsu
from skimage.morphology import dilation, disk, remove_small_objects

__all__ = ["TISSUE_METHODS", "TissueLocationFilter", "detect_tissue", "is_colourless"]

TISSUE_METHODS = ("otsu", "none")


def is_colourless(thumbnail: np.ndarray, max_saturation: float = 0.03) -> bool:
    """Whether an RGB thumbnail has (almost) no colour: the 99th percentile of its HSV saturation is below
    ``max_saturation`` (a grey-scale image stored as RGB, or blank glass)."""
    return bool(np.percentile(rgb2hsv(thumbnail)[..., 1], 99) < max_saturation)


def _threshold(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values > t`` with Otsu's threshold ``t`` clipped to ``[low, high]`` (``high`` on a constant image)."""
    thr = float(threshold_otsu(values)) if float(values.max()) > float(values.min()) else high
    return values > min(max(thr, low), high)


def detect_tissue(
    thumbnail: np.ndarray,
    method: str = "otsu",
    min_threshold: float = 0.03,
    max_threshold: float = 0.1,
    min_size: int = 4,
    margin: int = 1,
    min_density: float = 0.1,
    max_density: float = 0.3,
) -> np.ndarray:
    """Boolean tissue mask ``(h, w)`` of an RGB thumbnail ``(h, w, 3) uint8``.

    Args:
        thumbnail: the low-resolution RGB image.
        method: ``"otsu"`` (saturation threshold) or ``"none"`` (everything is tissue).
        min_threshold: lowest saturation threshold (slides without tissue stay empty).
        max_threshold: highest saturation threshold (pale tissue on all-tissue images stays tissue).
        min_density, max_density: bounds of the optical-density threshold on colourless thumbnails
            (:func:`is_colourless`; 0.1 to 0.3 is a grey level of 230 to 189).
        min_size: connected tissue specks smaller than this (thumbnail pixels) are dropped.
        margin: dilation radius in thumbnail pixels.

    Raises:
        ValueError: for an unknown ``method`` (names the key ``tissue_mask``).
    """
    name = str(method).lower()
    if name not in TISSUE_METHODS:
        raise ValueError(f"unknown tissue detection {method!r} (key 'tissue_mask'); expected one of {TISSUE_METHODS}.")
    if name == "none":
        return np.ones(thumbnail.shape[:2], dtype=bool)
    if is_colourless(thumbnail, min_threshold):
        grey = np.maximum(np.asarray(thumbnail, dtype=np.float32).mean(axis=-1), 1.0)
        mask = _threshold(-np.log(grey / 255.0), min_density, max_density)
    else:
        mask = _threshold(rgb2hsv(thumbnail)[..., 1], min_threshold, max_threshold)
    if min_size > 1 and mask.any():
        mask = remove_small_objects(mask, max_size=min_size - 1)
    if margin > 0 and mask.any():
        mask = dilation(mask, disk(margin))
    return mask


class TissueLocationFilter:
    """Keep a patch when its footprint touches tissue: a location filter for the splitter.

    Args:
        mask: boolean tissue mask at thumbnail resolution ``(h, w)``.
        factor: pixels of the inference level per thumbnail pixel.
        patch_size: patch size ``(ph, pw)`` in pixels of the inference level.
    """

    def __init__(self, mask: np.ndarray, factor: int, patch_size: Sequence[int]) -> None:
        self.mask = np.asarray(mask, dtype=bool)
        self.factor = int(factor)
        self.patch_size = tuple(int(p) for p in patch_size)

    def __call__(self, location: Sequence[int]) -> bool:
        y, x = (int(v) for v in location)
        f = self.factor
        y0, x0 = max(y // f, 0), max(x // f, 0)
        y1, x1 = math.ceil((y + self.patch_size[0]) / f), math.ceil((x + self.patch_size[1]) / f)
        return bool(self.mask[y0:y1, x0:x1].any())
