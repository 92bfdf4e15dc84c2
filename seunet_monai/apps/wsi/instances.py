"""Objects of a stitched class-id mask, band by band: separated nuclei, or connected components, as polygons.

:func:`iter_nucleus_bands` (a nucleus model: images and slides alike) labels the nuclei of the nucleus pixels of
the mask with :class:`~seunet_monai.transforms.instances.NucleusInstances`, reading a band of rows at a time with a
margin above and below. Each connected component of the hole-filled nucleus mask belongs to the band that holds its
first row and is separated in a window where it is whole, so every nucleus is reported once, and the nuclei are
exactly those of one call of the transform over the whole mask (whose result for a component depends on that
component alone; the module docstring of :mod:`seunet_monai.transforms.instances`):

- the window starts ``g`` rows above the band, ``g = ⌊max_hole_area_um2 / pixel area⌋ + 1`` (one more than the
  largest hole the transform fills, in pixels): a small hole beside a component of the band lies in the window
  without touching its top row, so it is filled there as in the whole mask;
- it ends ``margin_um`` and ``g`` rows below the band; while a component of the band comes within ``g`` rows of
  the window's bottom (unless that is the image's), the rows below the band are doubled and the band redone, so a
  component of any height is separated whole (memory grows with the tallest such component only; a nucleus
  mask's clusters of touching nuclei reach less than ``margin_um`` below the band they start in).

:func:`iter_instances` (models of other classes) yields the 4-connected components of each non-background class
(scikit-image ``label``). The mask is read in bands of rows (plus ``margin`` rows below); a component belongs to the
band that holds its first row, so each is reported once. A component that reaches the bottom of the rows read may
continue below: it is followed (flood fill in a box that doubles towards every side the component touches, reading
only the rows it needs) until it is whole, so an object of any height is one polygon, however the bands cut it.

:func:`iter_label_instances` yields the polygons of the objects of an instance label map, one per label, in label
order.

Polygons (``find_contours`` on the zero-padded component, background 8-connected as the 4-connected
labelling implies) are the outer boundary and one interior ring per hole, in the pixel coordinates of the
mask where pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` (QuPath's convention), closed (first point
repeated last), exterior counter-clockwise and holes clockwise in ``(x, y)`` (RFC 7946).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours, label, regionprops

from seunet_monai.transforms.instances import NucleusInstances, nucleus_components, pixel_size_of

__all__ = ["Instance", "NucleusBand", "iter_instances", "iter_label_instances", "iter_nucleus_bands"]

#: rows below a band read at once by :func:`iter_nucleus_bands` (µm): twice the largest nucleus diameter
NUCLEUS_MARGIN_UM = 30.0


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
        yield Instance(
            class_id=int(class_id),
            polygon=exterior + offset,
            area=int(crop.sum()),
            holes=[h + offset for h in holes],
            label=k,
        )


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


def _whole_component(
    read, shape: tuple[int, int], class_id: int, seed: tuple[int, int], box: tuple[int, int, int, int]
) -> tuple[np.ndarray, int, int]:
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


def _rows_of(source: Any):
    """``read(y0, y1)`` of an object with ``read_rows`` (a :class:`~.accumulator.RawMask`) or of an array."""
    return source.read_rows if hasattr(source, "read_rows") else (lambda a, b: np.asarray(source)[max(a, 0) : b])


def iter_instances(mask, num_classes: int, band: int = 1024, margin: int = 128) -> Iterator[Instance]:
    """Yield every connected component of the classes ``1..num_classes-1`` of ``mask`` (module docstring).

    Args:
        mask: ``(H, W)`` class ids: an array or an object with ``shape`` and ``read_rows(y0, y1)``.
        num_classes: number of classes (0 is background).
        band: rows per band.
        margin: rows read below each band at once (objects reaching further are followed: module docstring).
    """
    read = _rows_of(mask)
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
                    if any(
                        t <= sy < t + im.shape[0] and l <= sx < l + im.shape[1] and im[sy - t, sx - l]
                        for t, l, im in followed
                    ):
                        continue  # another part of an object already followed
                    image, top, left = _whole_component(read, (height, width), c, (sy, sx), (w0 + r0, bottom, c0, c1))
                    followed.append((top, left, image))
                    if top < y0:
                        continue  # its first row is in an earlier band, which reported it whole
                exterior, holes = _rings(image)
                offset = np.array([left, top], dtype=np.float64)
                yield Instance(
                    class_id=c, polygon=exterior + offset, area=int(image.sum()), holes=[h + offset for h in holes]
                )


@dataclass
class NucleusBand:
    """The nuclei that one band of rows owns (:func:`iter_nucleus_bands`).

    Attributes:
        top: the image row of the first row of ``labels`` (the band's first row).
        labels: ``(n, W)`` labels (the transform's dtype) of rows ``top .. top + n - 1``: this band's nuclei
            numbered ``1..count`` in raster order of their first pixel, 0 elsewhere (the nuclei of other bands
            included). The rows end with the last row of this band's nuclei.
        count: the number of nuclei.
    """

    top: int
    labels: np.ndarray
    count: int


def iter_nucleus_bands(
    mask: Any,
    instances: NucleusInstances,
    pixel_size_um: float | Sequence[float],
    band: int = 512,
    margin_um: float = NUCLEUS_MARGIN_UM,
    boundary: Any = None,
    centre: Any = None,
    nucleus_class: int = 1,
) -> Iterator[NucleusBand]:
    """Yield the separated nuclei of ``mask`` band by band, each nucleus once (module docstring).

    Args:
        mask: ``(H, W)`` class ids: an array or an object with ``shape`` and ``read_rows(y0, y1)`` (a
            :class:`~.accumulator.RawMask`); only the rows of one window are read at a time.
        instances: the separation (its ``fill_holes`` and ``separate`` steps, sizes in µm).
        pixel_size_um: µm per pixel of the mask, one value or ``(row, column)``.
        band: rows per band (>= 1).
        margin_um: rows read below each band at once besides the ``g`` of the module docstring, in µm (components
            reaching further are followed).
        boundary: optional ``(H, W)`` boundary probability, read like ``mask``.
        centre: optional ``(H, W)`` centre probability, read like ``mask``.
        nucleus_class: the class id of the nucleus pixels.

    Yields:
        one :class:`NucleusBand` per band that owns any nucleus, top to bottom. Numbering the nuclei of band after
        band on from the previous bands' count gives labels unique across the mask.
    """
    if int(band) < 1:
        raise ValueError(f"band must be >= 1 row, got {band}.")
    size = pixel_size_of(None, pixel_size_um)
    read = _rows_of(mask)
    maps = {name: _rows_of(m) for name, m in (("boundary", boundary), ("centre", centre)) if m is not None}
    height = int(mask.shape[0])
    guard = math.floor(instances.max_hole_area_um2 / (size[0] * size[1])) + 1
    below = guard + math.ceil(float(margin_um) / size[0])
    for y0 in range(0, height, int(band)):
        y1 = min(height, y0 + int(band))
        top, extra = max(0, y0 - guard), below
        while True:
            bottom = min(height, y1 + extra)
            nuclei = instances.fill_holes(read(top, bottom) == nucleus_class, size)
            components, boxes = nucleus_components(nuclei)
            del nuclei
            owned = [k for k, b in enumerate(boxes, start=1) if b is not None and y0 <= top + b[0].start < y1]
            if bottom == height or all(top + boxes[k - 1][0].stop <= bottom - guard for k in owned):
                break
            extra *= 2  # a component of this band comes near the rows not read: read twice as many below
        if not owned:
            continue
        extra_maps = {name: r(top, bottom) for name, r in maps.items()}
        labels, count = instances.label_components(components, boxes, size, which=owned, **extra_maps)
        del components, extra_maps
        if count:
            last = max(boxes[k - 1][0].stop for k in owned)
            yield NucleusBand(top=y0, labels=labels[y0 - top : last], count=count)
