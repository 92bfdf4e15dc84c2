"""Nucleus annotations as masks: Aperio ImageScope XML polygons (MoNuSeg's annotations) and binary PNG masks.

Coordinate convention and rasterisation rule (:data:`RASTERISATION_RULE`)
    An Aperio vertex ``(X, Y)`` is in pixel units of the full-resolution image, ``X`` along columns and ``Y``
    along rows, with **pixel centres on integer coordinates**: pixel ``(i, j)`` (row ``i``, column ``j``) is the
    point ``(X, Y) = (j, i)``. A pixel belongs to a region iff that point lies inside the *closed* polygon
    (points exactly on an edge or a vertex count as inside). This is the convention of the community's binary
    MoNuSeg masks (``skimage.draw.polygon(Y, X, shape)``; the comparison is in ``bundle/docs/benchmarks.md``). A
    region with integer corners ``[10, 20] x [10, 20]`` covers the 11 x 11 pixels with rows and columns 10..20.
    The test uses :func:`skimage.measure.grid_points_in_poly` (which labels grid points outside / inside / on a
    vertex / on an edge, so the closed-polygon rule is explicit rather than left to a crossing test's
    tie-breaking), evaluated only on the region's bounding box clipped to the image.

Quirks of real files
    - Fractional coordinates are used as they are (no rounding).
    - Vertices outside ``[0, W] x [0, H]`` are counted (``clipped_vertices``); the polygon is clipped to the
      image exactly (only pixel centres inside the image are tested), not by clamping the coordinates, which
      would bend the edges that cross the border.
    - Regions with fewer than 3 vertices are skipped and counted (``skipped_regions``); regions whose polygon
      contains no pixel centre of the image are kept but counted (``empty_regions``).
    - A missing ``MicronsPerPixel`` attribute is recorded as ``None``.
    - Every ``Region`` of every ``Annotation`` is a nucleus polygon (MoNuSeg uses only freehand polygons,
      ``Type="0"``; other Aperio region types are rasterised from their vertices in the same way).

Masks
    The binary mask has nucleus = 1, background = 0 (``uint8``). The instance mask gives every kept region its
    own id ``1..N`` in file order; where regions overlap, the later region overwrites the earlier one (so an
    overlapped region may lose pixels, or all of them).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.measure import grid_points_in_poly

from seunet_monai.data.io import read_label
from seunet_monai.errors import PreparationError

__all__ = [
    "RASTERISATION_RULE",
    "AperioAnnotation",
    "RasterStats",
    "parse_aperio_xml",
    "rasterise_regions",
    "read_png_mask",
    "OUTSIDE_WARN_FRACTION",
    "annotation_warning",
]

#: The rasterisation rule in one line (recorded in ``prepare_report.json``).
RASTERISATION_RULE = (
    "Aperio vertex (X, Y) in pixel units with pixel centres on integer coordinates: pixel (row i, col j) is the "
    "point (X, Y) = (j, i) and is inside a region iff that point lies in the closed polygon "
    "(skimage.measure.grid_points_in_poly, boundary included); vertices outside the image counted, polygon "
    "clipped exactly; regions with < 3 vertices skipped; later regions overwrite earlier ones in the instance mask."
)


@dataclass
class AperioAnnotation:
    """Regions of one Aperio ImageScope XML file.

    Attributes:
        path: the XML file.
        regions: polygons with at least 3 vertices, each a float64 ``(N, 2)`` array of ``(X, Y)``.
        skipped_regions: regions with fewer than 3 vertices (not in ``regions``).
        microns_per_pixel: the ``MicronsPerPixel`` attribute of the root, or ``None`` when absent.
    """

    path: Path
    regions: list[np.ndarray] = field(default_factory=list)
    skipped_regions: int = 0
    microns_per_pixel: float | None = None


@dataclass
class RasterStats:
    """Counts from :func:`rasterise_regions`: vertices outside the image, regions with no pixel centre."""

    clipped_vertices: int = 0
    empty_regions: int = 0


def _float_attr(elem: ET.Element, name: str, path: Path, where: str) -> float:
    value = elem.get(name)
    if value is None:
        raise PreparationError(f"{path}: {where} lacks the attribute {name!r}.")
    try:
        out = float(value)
    except ValueError as e:
        raise PreparationError(f"{path}: {where} has a non-numeric {name}={value!r}.") from e
    if not math.isfinite(out):
        raise PreparationError(f"{path}: {where} has a non-finite {name}={value!r}.")
    return out


def parse_aperio_xml(path: str | os.PathLike) -> AperioAnnotation:
    """Read the polygons of an Aperio ImageScope XML file (``Annotations/Annotation/Regions/Region/Vertices``).

    Args:
        path: the XML file.

    Returns:
        an :class:`AperioAnnotation` (regions in file order; those with fewer than 3 vertices only counted).

    Raises:
        PreparationError: for a malformed or truncated file, a root other than ``Annotations``, a vertex without
            numeric finite ``X``/``Y``, or a non-numeric ``MicronsPerPixel`` (the message names the file).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise PreparationError(f"{path}: malformed or truncated Aperio XML ({e}).") from e
    except OSError as e:
        raise PreparationError(f"{path}: cannot read the annotation file ({e}).") from e
    if root.tag != "Annotations":
        raise PreparationError(f"{path}: expected an Aperio <Annotations> root element, got <{root.tag}>.")
    out = AperioAnnotation(path=path)
    mpp = root.get("MicronsPerPixel")
    if mpp is not None and mpp.strip() != "":
        out.microns_per_pixel = _float_attr(root, "MicronsPerPixel", path, "<Annotations>")
    for a_idx, annotation in enumerate(root.findall("Annotation")):
        for r_idx, region in enumerate(annotation.findall("Regions/Region")):
            where = f"Annotation {annotation.get('Id', a_idx)} Region {region.get('Id', r_idx)}"
            vertices = region.findall("Vertices/Vertex")
            xy = np.array(
                [(_float_attr(v, "X", path, where), _float_attr(v, "Y", path, where)) for v in vertices],
                dtype=np.float64,
            ).reshape(-1, 2)
            if xy.shape[0] < 3:
                out.skipped_regions += 1
                continue
            out.regions.append(xy)
    return out


def rasterise_regions(
    regions: Sequence[np.ndarray], shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, RasterStats]:
    """Rasterise polygons to a binary and an instance mask (the rule of the module docstring).

    Args:
        regions: polygons, each ``(N, 2)`` of ``(X, Y)`` vertices (``N >= 3``).
        shape: image ``(H, W)`` (extra trailing dimensions ignored).

    Returns:
        ``(binary, instance, stats)``: ``(H, W)`` uint8 nucleus mask (0/1), ``(H, W)`` int32 instance ids
        (region ``k`` of ``regions`` has id ``k + 1``; later regions overwrite earlier ones), and the counts.
    """
    h, w = int(shape[0]), int(shape[1])
    instance = np.zeros((h, w), dtype=np.int32)
    stats = RasterStats()
    for k, xy in enumerate(regions):
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 3:
            raise ValueError(f"region {k}: expected an (N >= 3, 2) array of (X, Y) vertices, got {xy.shape}.")
        x, y = xy[:, 0], xy[:, 1]
        stats.clipped_vertices += int(((x < 0) | (x > w) | (y < 0) | (y > h)).sum())
        # pixel i is a candidate iff its centre (the point i) lies within [min, max] of the vertices, in the image
        r0, r1 = max(0, math.ceil(y.min())), min(h - 1, math.floor(y.max()))
        c0, c1 = max(0, math.ceil(x.min())), min(w - 1, math.floor(x.max()))
        if r1 < r0 or c1 < c0:
            stats.empty_regions += 1
            continue
        # grid point (r, c) of the box is pixel (r0 + r, c0 + c), the point (X, Y) = (c0 + c, r0 + r)
        verts = np.stack([y - r0, x - c0], axis=1)
        labels = grid_points_in_poly((r1 - r0 + 1, c1 - c0 + 1), verts, binarize=False)
        inside = labels > 0  # 1 inside, 2 on a vertex, 3 on an edge: the closed polygon
        if not inside.any():
            stats.empty_regions += 1
            continue
        box = instance[r0 : r1 + 1, c0 : c1 + 1]
        box[inside] = k + 1
    binary = (instance > 0).astype(np.uint8)
    return binary, instance, stats


def read_png_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a binary nucleus mask stored as {0, 1} or {0, 255}; returns uint8 0/1.

    Raises:
        PreparationError: unreadable file or other values (the message names the file).
    """
    try:
        arr = read_label(path)
    except (OSError, ValueError) as e:
        raise PreparationError(f"{path}: unreadable mask ({e}).") from e
    values = set(np.unique(arr).tolist())
    if not values <= {0, 1} and not values <= {0, 255}:
        shown = sorted(values)[:8]
        raise PreparationError(
            f"{path}: a binary mask must hold values {{0, 1}} or {{0, 255}}, found {shown}; "
            "convert it to nucleus = 1 (or 255), background = 0."
        )
    return (arr > 0).astype(np.uint8)


OUTSIDE_WARN_FRACTION = 0.5
"""An annotation whose regions lie outside its image for more than this fraction (centroid outside) is
suspicious: the image was probably resized, or the annotation belongs to another image."""


def annotation_warning(
    regions: Sequence[np.ndarray], shape: Sequence[int], label_file: Path, image: Path
) -> str | None:
    """A warning for a suspicious annotation, else ``None``: no region at all, or more than
    :data:`OUTSIDE_WARN_FRACTION` of the regions with their centroid outside the image.

    Args:
        regions: the polygons, ``(N, 2)`` arrays of ``(X, Y)`` (for a PNG mask: one entry per nucleus).
        shape: the image ``(H, W, ...)``.
        label_file: the annotation file (named in the warning).
        image: the image file (named in the warning).
    """
    h, w = int(shape[0]), int(shape[1])
    if len(regions) == 0:
        return f"{label_file}: no nucleus annotated for {image} (empty annotation?)"
    centres = np.array([np.asarray(r, dtype=np.float64).mean(axis=0) for r in regions])
    outside = int(((centres[:, 0] < 0) | (centres[:, 0] > w) | (centres[:, 1] < 0) | (centres[:, 1] > h)).sum())
    if outside > OUTSIDE_WARN_FRACTION * len(regions):
        return (
            f"{label_file}: {outside} of {len(regions)} regions lie outside the {h}x{w} image {image} "
            "(image resized, or the annotation of another image?)"
        )
    return None
