"""Nucleus (object) instances of a stitched class-id mask, band by band, as polygons with holes.

Instances are the 4-connected components of each non-background class (scikit-image ``label``), optionally
split where touching nuclei meet (distance transform, ``peak_local_max`` markers, ``watershed``). The mask is
read in bands of rows (plus ``margin`` rows below); a component belongs to the band that holds its first row,
so each is reported once. A component that reaches the bottom of the rows read may continue below: it is
followed (flood fill in a box that doubles towards every side the component touches, reading only the rows
it needs) until it is whole, so an object of any height is one polygon, however the bands cut it. Memory
grows only with the size of such an object (a tissue region of a multi-class model: its bounding box of
rows is read; a nucleus mask never needs it).

:func:`iter_label_instances` yields the same polygons for the objects of an instance label map (e.g. from
:class:`~seunet_monai.transforms.instances.NucleusInstances`), one per label, in label order.

Polygons (``find_contours`` on the zero-padded component, background 8-connected as the 4-connected
labelling implies) are the outer boundary and one interior ring per hole, in the pixel coordinates of the
mask where pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` (QuPath's convention), closed (first point
repeated last), exterior counter-clockwise and holes clockwise in ``(x, y)`` (RFC 7946).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import find_contours, label, regionprops
from skimage.segmentation import watershed

__all__ = ["Instance", "iter_instances", "iter_label_instances", "split_touching"]


@dataclass
class Instance:
    """One object: class id, closed exterior ring ``(N, 2)`` of ``(x, y)`` in mask pixels, area in mask pixels
    (holes excluded), the closed interior rings (one per hole) and its label id (0 for connected components)."""

    class_id: int
    polygon: np.ndarray
    area: int
    holes: list[np.ndarray] = field(default_factory=list)
    label: int = 0


def iter_label_instances(labels: np.ndarray, class_id: int = 1) -> Iterator[Instance]:
    """Yield one :class:`Instance` per label ``1..max`` present in ``labels``, in label order.

    Args:
        labels: ``(H, W)`` integer instance labels, 0 = background.
        class_id: class id given to every instance.

    The area counts every pixel of the label; the polygon outlines its largest 4-connected part (a watershed
    label may touch another part of itself only at a corner: that part is counted, not outlined).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W) instance labels, got shape {labels.shape}.")
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        crop = labels[box] == k
        parts = label(crop, connectivity=1)
        part = crop if parts.max() <= 1 else parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
        exterior, holes = _rings(part)
        offset = np.array([box[1].start, box[0].start], dtype=np.float64)
        yield Instance(class_id=int(class_id), polygon=exterior + offset, area=int(crop.sum()),
                       holes=[h + offset for h in holes], label=k)


def split_touching(component: np.ndarray, min_distance: int = 5) -> list[np.ndarray]:
    """Split one boolean component into touching objects by a marker-controlled watershed.

    Markers are the local maxima of the Euclidean distance to the background at least ``min_distance`` apart;
    with fewer than two markers the component is returned whole.
    """
    distance = ndi.distance_transform_edt(component)
    peaks = peak_local_max(distance, min_distance=max(1, int(min_distance)), labels=component.astype(np.int32),
                           exclude_border=False)
    if len(peaks) < 2:
        return [component]
    markers = np.zeros(component.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    parts = watershed(-distance, markers, mask=component, connectivity=1)
    return [parts == k for k in range(1, len(peaks) + 1) if (parts == k).any()]


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area of a closed ring ``(N, 2)`` ``(x, y)``: positive when counter-clockwise."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _rings(component: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Closed exterior ring and interior rings (holes) ``(N, 2)`` ``(x, y)`` of one boolean component,
    relative to its array's corner; exterior counter-clockwise, holes clockwise."""
    padded = np.pad(component.astype(np.float32), 1)
    rings = []
    for contour in find_contours(padded, 0.5, fully_connected="low"):
        xy = np.stack([contour[:, 1] - 0.5, contour[:, 0] - 0.5], axis=1)  # pad offset 1, pixel centres at +0.5
        if not np.array_equal(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        rings.append(xy)
    areas = [_signed_area(r) for r in rings]
    outer = int(np.argmax(np.abs(areas)))  # one connected component: the exterior encloses every other ring
    exterior = rings[outer] if areas[outer] > 0 else rings[outer][::-1]
    holes = [r if a < 0 else r[::-1] for k, (r, a) in enumerate(zip(rings, areas)) if k != outer and abs(a) > 0]
    return exterior, holes


def _whole_component(read, shape: tuple[int, int], class_id: int, seed: tuple[int, int],
                     box: tuple[int, int, int, int]) -> tuple[np.ndarray, int, int]:
    """The whole 4-connected component of ``class_id`` holding pixel ``seed`` (absolute ``(y, x)``).

    Starts from ``box`` ``(y0, y1, x0, x1)`` and doubles it towards each side that the component touches (and
    that is not the mask's border) until the component lies inside. Returns its boolean image cropped to its
    bounding box and the box's top-left corner ``(top, left)``.
    """
    height, width = shape
    y0, y1, x0, x1 = box
    while True:
        sub = read(y0, y1)[:, x0:x1] == class_id
        lab = label(sub, connectivity=1)
        comp = lab == lab[seed[0] - y0, seed[1] - x0]
        rows, cols = np.flatnonzero(comp.any(1)), np.flatnonzero(comp.any(0))
        h, w = y1 - y0, x1 - x0
        grown = (
            max(0, y0 - h) if rows[0] == 0 else y0,
            min(height, y1 + h) if rows[-1] == h - 1 else y1,
            max(0, x0 - w) if cols[0] == 0 else x0,
            min(width, x1 + w) if cols[-1] == w - 1 else x1,
        )
        if grown == (y0, y1, x0, x1):
            crop = comp[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            return crop, y0 + int(rows[0]), x0 + int(cols[0])
        y0, y1, x0, x1 = grown


def iter_instances(
    mask, num_classes: int, band: int = 1024, margin: int = 128, watershed: bool = False, min_distance: int = 5
) -> Iterator[Instance]:
    """Yield every instance of the classes ``1..num_classes-1`` of ``mask`` (a :class:`RawMask` or an array).

    Args:
        mask: ``(H, W)`` class ids: an array or an object with ``shape`` and ``read_rows(y0, y1)``.
        num_classes: number of classes (0 is background).
        band: rows per band.
        margin: rows read below each band at once (objects reaching further are followed: module docstring).
        watershed: split touching objects (:func:`split_touching`).
        min_distance: watershed marker spacing in pixels.
    """
    read = mask.read_rows if hasattr(mask, "read_rows") else (lambda a, b: np.asarray(mask)[max(a, 0) : b])
    height, width = int(mask.shape[0]), int(mask.shape[1])
    for y0 in range(0, height, band):
        # one row above the band: a component reaching it starts in an earlier band (which reports it)
        w0, bottom = max(0, y0 - 1), min(height, y0 + band + margin)
        window = read(w0, bottom)
        if not window.any():
            continue
        for c in range(1, int(num_classes)):
            binary = window == c
            if not binary.any():
                continue
            followed: list[tuple[int, int, np.ndarray]] = []  # components followed beyond the window
            for region in regionprops(label(binary, connectivity=1)):
                r0, c0, r1, c1 = region.bbox
                if not y0 <= w0 + r0 < y0 + band:
                    continue  # owned by the band that holds its first row
                image, top, left = region.image, w0 + r0, c0
                if w0 + r1 == bottom < height:  # may continue below the rows read: follow it
                    sy, sx = (int(v) for v in region.coords[0])
                    sy += w0
                    if any(t <= sy < t + im.shape[0] and l <= sx < l + im.shape[1] and im[sy - t, sx - l]
                           for t, l, im in followed):
                        continue  # another part of an object already followed
                    image, top, left = _whole_component(read, (height, width), c, (sy, sx), (w0 + r0, bottom, c0, c1))
                    followed.append((top, left, image))
                    if top < y0:
                        continue  # its first row is in an earlier band, which reported it whole
                parts = split_touching(image, min_distance) if watershed else [image]
                for part in parts:
                    exterior, holes = _rings(part)
                    offset = np.array([left, top], dtype=np.float64)
                    yield Instance(class_id=c, polygon=exterior + offset, area=int(part.sum()),
                                   holes=[h + offset for h in holes])
