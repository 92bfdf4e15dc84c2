"""Per-nucleus measurements of instance labels: size and shape (scikit-image ``regionprops``), mean nucleus
probability and mean haematoxylin optical density.

:func:`nucleus_measurements` returns one column per measurement, one row per label (ascending label ids, the
``"label"`` column), as numpy arrays:

- always: ``label``, ``area_px`` (px²), ``perimeter_px``, ``equivalent_diameter_px`` (diameter of the disc of the
  same area), ``eccentricity`` (of the ellipse of the same second moments: 0 = disc), ``solidity`` (area / convex
  area). Shape descriptors are computed on the pixel grid (the physical ones for square pixels);
- with a known resolution: ``area_um2`` (exact: ``area_px`` x row x column pixel size),
  ``equivalent_diameter_um`` (from ``area_um2``) and ``perimeter_um`` (``nan`` for non-square pixels: scikit-image
  measures perimeters on square grids only);
- with ``probability``: ``mean_probability``, the mean over the nucleus's pixels;
- with ``image``: ``mean_haematoxylin_od``, the mean haematoxylin optical density (decadic, ``-log10`` of the
  transmitted fraction) from colour deconvolution (Ruifrok & Johnston 2001, scikit-image ``rgb2hed``; its
  output is in units of ``log(1e-6)`` and is multiplied by 6 to give decadic OD).

A missing column means "not computable from the inputs", never a guessed value. The perimeter is
scikit-image's ``perimeter`` (4-connected boundary pixels weighted by their neighbourhood), an estimate of the
length of the smooth outline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from skimage.color import rgb2hed
from skimage.measure import regionprops_table

from seunet_monai.transforms.instances import pixel_size_of

__all__ = ["MEASUREMENT_COLUMNS", "haematoxylin_od", "nucleus_measurements"]

MEASUREMENT_COLUMNS = (
    "label",
    "area_px",
    "perimeter_px",
    "equivalent_diameter_px",
    "eccentricity",
    "solidity",
    "area_um2",
    "perimeter_um",
    "equivalent_diameter_um",
    "mean_probability",
    "mean_haematoxylin_od",
)

# rgb2hed returns -ln(I) / -ln(1e-6) = -log10(I) / 6 per stain
_HED_TO_DECADIC_OD = 6.0


def _array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.long() if x.dtype == torch.uint32 else x
    return np.asarray(x)


def haematoxylin_od(image: Any, max_value: float = 255.0) -> np.ndarray:
    """Haematoxylin optical density ``(H, W)`` (decadic) of an RGB brightfield image by colour deconvolution.

    Args:
        image: RGB ``(3, H, W)`` (channel first, as MONAI loads it), uint8 or float.
        max_value: the intensity of unattenuated light (white): 255 for 8-bit images, 1 for images in ``[0, 1]``.

    Returns:
        ``(H, W)`` float64, >= 0.

    Raises:
        ValueError: for an image that is not ``(3, H, W)`` or a ``max_value`` that is not > 0.
    """
    if not (math.isfinite(float(max_value)) and float(max_value) > 0):
        raise ValueError(f"max_value must be a finite intensity > 0, got {max_value}.")
    arr = _array(image).astype(np.float64)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"image must be RGB (3, H, W), channel first, got shape {arr.shape}.")
    rgb = np.clip(np.moveaxis(arr, 0, -1) / float(max_value), 0.0, 1.0)
    return _HED_TO_DECADIC_OD * rgb2hed(rgb)[..., 0]


def nucleus_measurements(
    instances: Any,
    probability: Any = None,
    image: Any = None,
    pixel_size_um: float | Sequence[float] | None = None,
    max_value: float = 255.0,
) -> dict[str, np.ndarray]:
    """Measurements of every nucleus of an instance label map (module docstring: columns and units).

    Args:
        instances: ``(1, H, W)`` or ``(H, W)`` labels, 0 = background (e.g. the output of
            :class:`~seunet_monai.transforms.instances.NucleusInstances`).
        probability: optional nucleus probability ``(1, H, W)`` or ``(H, W)``.
        image: optional RGB image ``(3, H, W)`` for the haematoxylin optical density.
        pixel_size_um: µm per pixel, one value or ``(row, column)``; ``None``: from ``instances`` when it is a
            ``MetaTensor`` with an affine in µm (:func:`~seunet_monai.transforms.instances.pixel_size_of`), else
            unknown (no µm columns).
        max_value: intensity of white in ``image`` (255 for 8-bit).

    Returns:
        ``{column: (N,) array}`` for the ``N`` labels in ascending order.

    Raises:
        ValueError: for labels that are not non-negative integers ``(H, W)``, maps of another size, or a bad
            ``pixel_size_um``.
    """
    size = pixel_size_of(instances, pixel_size_um)
    labels = _array(instances)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        raise ValueError(f"instances must be (1, H, W) or (H, W) labels, got shape {labels.shape}.")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("instances must hold integer labels, found non-integral or non-finite values.")
    elif labels.dtype.kind not in "biu":
        raise ValueError(f"instances must hold integer labels, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"instances must hold labels >= 0 (0 = background), found {int(labels.min())}.")

    table = regionprops_table(
        labels, properties=("label", "area", "perimeter", "equivalent_diameter_area", "eccentricity", "solidity")
    )
    out: dict[str, np.ndarray] = {
        "label": np.asarray(table["label"], dtype=np.int64),
        "area_px": np.asarray(table["area"], dtype=np.float64),
        "perimeter_px": np.asarray(table["perimeter"], dtype=np.float64),
        "equivalent_diameter_px": np.asarray(table["equivalent_diameter_area"], dtype=np.float64),
        "eccentricity": np.asarray(table["eccentricity"], dtype=np.float64),
        "solidity": np.asarray(table["solidity"], dtype=np.float64),
    }
    if size is not None:
        row, col = size
        out["area_um2"] = out["area_px"] * row * col
        square = math.isclose(row, col, rel_tol=1e-6)
        out["perimeter_um"] = out["perimeter_px"] * row if square else np.full_like(out["perimeter_px"], np.nan)
        out["equivalent_diameter_um"] = np.sqrt(4.0 * out["area_um2"] / np.pi)

    area = np.bincount(labels.ravel(), minlength=int(labels.max(initial=0)) + 1).astype(np.float64)
    for column, values, name in (
        ("mean_probability", probability, "probability"),
        ("mean_haematoxylin_od", image, "image"),
    ):
        if values is None:
            continue
        if name == "image":
            values = haematoxylin_od(values, max_value)
        else:
            values = _array(values).astype(np.float64)
            values = values[0] if values.ndim == 3 and values.shape[0] == 1 else values
        if values.shape != labels.shape:
            raise ValueError(f"{name} must cover the labels' (H, W) = {labels.shape}, got {values.shape}.")
        sums = np.bincount(labels.ravel(), weights=values.ravel(), minlength=area.size)
        out[column] = sums[out["label"]] / area[out["label"]]
    return out
