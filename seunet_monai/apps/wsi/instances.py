"""Nucleus (object) instances of a stitched class-id mask, band by band, as polygons.

Instances are the 4-connected components of each non-background class (scikit-image ``label``), optionally
split where touching nuclei meet (distance transform, ``peak_local_max`` markers, ``watershed``). The mask is
read in bands of rows with a ``margin`` of rows above and below; a component belongs to the band that holds its
first row, so each is reported once and whole as long as it is at most ``margin`` rows tall (a larger one, e.g.
a tissue region of a multi-class model, is cut at the band border: raise ``margin`` for those).

Polygons are outer boundaries (``find_contours`` on the zero-padded component, holes not kept), in the pixel
coordinates of the mask where pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` (QuPath's convention), and
closed (first point repeated last).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Instance", "iter_instances", "split_touching"]


@dataclass
class Instance:
    """One object: class id, closed polygon ``(N, 2)`` of ``(x, y)`` in mask pixels, area in mask pixels."""

    class_id: int
    polygon: np.ndarray
    area: int


def split_touching(component: np.ndarray, min_distance: int = 5) -> list[np.ndarray]:
    """Split one boolean component into touching objects by a marker-controlled watershed.

    Markers are the local maxima of the Euclidean distance to the background at least ``min_distance`` apart;
    with fewer than two markers the component is returned whole.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    distance = ndi.distance_transform_edt(component)
    peaks = peak_local_max(distance, min_distance=max(1, int(min_distance)), labels=component.astype(np.int32),
                           exclude_border=False)
    if len(peaks) < 2:
        return [component]
    markers = np.zeros(component.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    parts = watershed(-distance, markers, mask=component, connectivity=1)
    return [parts == k for k in range(1, len(peaks) + 1) if (parts == k).any()]


def _outline(component: np.ndarray) -> np.ndarray:
    """Closed outer boundary ``(N, 2)`` ``(x, y)`` of a boolean component, relative to its array's corner."""
    from skimage.measure import find_contours

    padded = np.pad(component.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    ring = max(contours, key=len)
    xy = np.stack([ring[:, 1] - 0.5, ring[:, 0] - 0.5], axis=1)  # pad offset 1, pixel centres at +0.5
    if not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    return xy


def iter_instances(
    mask, num_classes: int, band: int = 1024, margin: int = 128, watershed: bool = False, min_distance: int = 5
) -> Iterator[Instance]:
    """Yield every instance of the classes ``1..num_classes-1`` of ``mask`` (a :class:`RawMask` or an array).

    Args:
        mask: ``(H, W)`` class ids: an array or an object with ``shape`` and ``read_rows(y0, y1)``.
        num_classes: number of classes (0 is background).
        band: rows per band.
        margin: rows read above and below each band (largest object height handled whole).
        watershed: split touching objects (:func:`split_touching`).
        min_distance: watershed marker spacing in pixels.
    """
    from skimage.measure import label, regionprops

    read = mask.read_rows if hasattr(mask, "read_rows") else (lambda a, b: np.asarray(mask)[max(a, 0) : b])
    height = int(mask.shape[0])
    for y0 in range(0, height, band):
        w0 = max(0, y0 - margin)
        window = read(w0, min(height, y0 + band + margin))
        if not window.any():
            continue
        for c in range(1, int(num_classes)):
            binary = window == c
            if not binary.any():
                continue
            for region in regionprops(label(binary, connectivity=1)):
                r0, c0 = region.bbox[0], region.bbox[1]
                if not y0 <= w0 + r0 < y0 + band:
                    continue  # owned by the band that holds its first row
                parts = split_touching(region.image, min_distance) if watershed else [region.image]
                for part in parts:
                    xy = _outline(part) + np.array([c0, w0 + r0], dtype=np.float64)
                    yield Instance(class_id=c, polygon=xy, area=int(part.sum()))
