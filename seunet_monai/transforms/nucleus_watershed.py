"""Nucleus separation on arrays: the per-component marker-controlled watershed of
:class:`~seunet_monai.transforms.instances.NucleusInstances` (steps 2-5 of its module docstring), in pixel units.

- :func:`fill_small_holes`: the enclosed background regions up to an area filled (step 2);
- :func:`separate_component`: one 8-connected component of the hole-filled nucleus mask, in the crop of its bounding
  box grown by one pixel, split into nuclei (steps 3-5): markers from the extended maxima of the distance to the
  background (:func:`extended_maxima`), or from a ``centre`` map, the distance measured inside a ``boundary`` map's
  interiors; the watershed of the negated distance from the markers; objects under an area removed and the rest
  renumbered in raster order (:func:`remove_small`);
- :func:`above`: a probability map thresholded in float64 without copying it.

The nuclei of a component depend on that component (and the maps over it) alone, not on the rest of the image:
what lets a slide be labelled band by band with exactly the nuclei of one call over the whole image
(:func:`seunet_monai.apps.wsi.instances.iter_nucleus_bands`). The distance, its extended maxima and the watershed of
a component are those of a call over the whole image, but for the order in which scikit-image's watershed settles
pixels that two markers reach at the same priority: over a whole image that order depends on every other marker of
the image (its heap), per component on the component only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

__all__ = ["EIGHT_CONNECTED", "above", "extended_maxima", "fill_small_holes", "remove_small", "separate_component"]

#: the 8-connected structuring element of the nuclei and their markers
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def above(values: np.ndarray, threshold: float) -> np.ndarray:
    """``values > threshold`` compared in float64 whatever the dtype of ``values`` (a ``float32`` map is not copied;
    its values convert to float64 exactly)."""
    return np.greater(values, np.float64(threshold))


def fill_small_holes(foreground: np.ndarray, max_area_px: float) -> np.ndarray:
    """``foreground`` with its enclosed background regions of at most ``max_area_px`` pixels filled (in place
    when there is any; the array is returned)."""
    holes = ndi.binary_fill_holes(foreground)
    np.logical_and(holes, ~foreground, out=holes)
    if max_area_px <= 0 or not holes.any():
        return foreground
    lab, n = ndi.label(holes)  # background is 4-connected, as the 8-connected objects imply
    del holes
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    small = areas <= max_area_px
    small[0] = False
    np.logical_or(foreground, small[lab], out=foreground)
    return foreground


def extended_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """Boolean map of the regional maxima of the h-maxima transform ``R(image - h)`` (reconstruction by dilation
    under ``image``): one connected region per dome at least ``h`` high, however many equal peaks it has."""
    transformed = reconstruction(image - h, image, method="dilation")
    return local_maxima(transformed, connectivity=2, allow_borders=True).astype(bool)


def remove_small(labels: np.ndarray, min_area_px: float) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (int32, in place) with the objects under ``min_area_px`` pixels set to 0 and the rest renumbered
    1..N in raster order of their first pixel; and the flat index of each kept object's first pixel.

    MONAI's ``RemoveSmallObjects(by_measure=True)`` is not used: it reads a ``MetaTensor``'s pixdim even when
    ``pixdim`` is given, and an identity affine there means 1 µm per pixel."""
    flat = labels.ravel()
    areas = np.bincount(flat)
    ids, first = np.unique(flat, return_index=True)
    keep = (ids > 0) & (areas[ids] >= min_area_px)
    order = np.argsort(first[keep], kind="stable")
    lut = np.zeros(areas.size, dtype=labels.dtype)
    lut[ids[keep][order]] = np.arange(1, order.size + 1, dtype=labels.dtype)
    np.take(lut, labels, out=labels)
    return labels, first[keep][order]


def separate_component(
    component: np.ndarray,
    pixel_size_um: Sequence[float],
    marker_h_um: float,
    min_area_px: float,
    map_threshold: float = 0.5,
    boundary: Any = None,
    centre: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The nuclei of one 8-connected component of a hole-filled nucleus mask.

    Args:
        component: ``(h, w)`` bool crop holding the component alone (the other pixels False), grown by one pixel on
            every side within the image; the result depends on this crop only.
        pixel_size_um: ``(row, column)`` µm per pixel (the distance is measured in µm).
        marker_h_um: drop of the distance (µm, > 0) that separates two markers.
        min_area_px: objects with fewer pixels are removed.
        map_threshold: threshold of the ``boundary`` and ``centre`` maps.
        boundary: optional ``(h, w)`` boundary probability over the crop: the distance is measured inside the
            component minus the pixels above ``map_threshold``.
        centre: optional ``(h, w)`` centre probability over the crop: the markers are its 8-connected components
            above ``map_threshold`` inside the component.

    Returns:
        int32 labels ``(h, w)``, 0 = background, ``1..n`` the nuclei of the component in raster order of their first
        pixel, and the flat index in the crop of each one's first pixel ``(n,)``.
    """
    interior = component if boundary is None else component & ~above(boundary, map_threshold)
    distance = ndi.distance_transform_edt(interior, sampling=pixel_size_um)
    if centre is not None:
        markers, n = ndi.label(component & above(centre, map_threshold), structure=EIGHT_CONNECTED)
    else:
        markers, n = ndi.label(extended_maxima(distance, marker_h_um) & interior, structure=EIGHT_CONNECTED)
    if n <= 1:  # one marker floods the whole component; without any, the component is one object
        labels = component.astype(np.int32)
    else:
        labels = watershed(-distance, markers, connectivity=2, mask=component).astype(np.int32, copy=False)
    return remove_small(labels, min_area_px)
