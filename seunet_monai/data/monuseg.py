"""MoNuSeg preparation: Aperio ImageScope XML polygons to masks, whole-image split, tiles, ``datalist.json``.

Input (the official extracted layout; either part may be absent)::

    SRC/MoNuSegTrainingData/Tissue Images/*.tif   SRC/MoNuSegTrainingData/Annotations/*.xml
    SRC/MoNuSegTestData/*.tif + *.xml (side by side)

Images and annotations are matched by file stem; an image without annotation (or the reverse) is an error
naming the file.

Coordinate convention and rasterisation rule
    An Aperio vertex ``(X, Y)`` is in pixel units of the full-resolution image, ``X`` along columns and ``Y``
    along rows, with **pixel centres on integer coordinates**: pixel ``(i, j)`` (row ``i``, column ``j``) is the
    point ``(X, Y) = (j, i)``. A pixel belongs to a region iff that point lies inside the *closed* polygon
    (points exactly on an edge or a vertex count as inside). This is the convention of the community's binary
    MoNuSeg masks (``skimage.draw.polygon(Y, X, shape)``): measured on the 13 training images that have both an
    XML and a PNG mask, it agrees with the PNG at Dice 0.991-1.000 on 12 of them, where the half-pixel rule
    (centres at ``(j + 0.5, i + 0.5)``) agrees only at 0.956-0.976; the 13th, ``TCGA-B0-5710-01Z-00-DX1``, has
    a PNG drawn half a pixel up-left of its XML. A region with integer corners ``[10, 20] x [10, 20]`` covers
    the 11 x 11 pixels with rows and columns 10..20. The test uses
    :func:`skimage.measure.grid_points_in_poly` (which labels grid points outside / inside / on a vertex / on
    an edge, so the closed-polygon rule is explicit rather than left to a crossing test's tie-breaking),
    evaluated only on the region's bounding box clipped to the image.

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
    overlapped region may lose pixels, or all of them). Instance masks are saved as 16-bit PNG under
    ``instances/`` (at most 65535 regions per image).

Splits and tiles
    Training images are split into ``training`` and ``validation`` by whole image
    (:func:`~seunet_monai.data.preparation.pick_validation`, deterministic for ``seed``), then cut into
    ``tile x tile`` tiles with ``stride`` (400 and 200: 16 tiles per 1000 x 1000 image; a last tile flush with
    the border is added where the size is not a multiple of the stride, see
    :mod:`seunet_monai.data.preparation`). Test images are kept whole.

Output (``DST``)::

    datalist.json, prepare_report.json, stain_reference.png (when stain normalisation used a training tile)
    {training,validation}/{images,labels,instances}/<stem>_r<row>_c<col>.png
    test/{images,labels,instances}/<stem>.png

Stain normalisation (default Vahadane, as the paper) is applied to each whole image before tiling; the
reference is ``stain_reference`` when given, else the tile of the first training image (sorted by name) with
the most tissue pixels, saved as ``DST/stain_reference.png`` and recorded in the report; with no training
image, the built-in reference of :mod:`seunet_monai.data.stain.normalizers`.
"""

from __future__ import annotations

import math
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import grid_points_in_poly
from skimage.measure import label as connected_components

from seunet_monai.data.datalist import write_datalist
from seunet_monai.data.io import IMAGE_SUFFIXES, atomic_save_png, read_label, read_rgb
from seunet_monai.data.preparation import (
    PREPARE_MARKER,
    BadFileLog,
    most_tissue_tile,
    pick_validation,
    record_conversion,
    tile_boxes,
    tile_starts,
)
from seunet_monai.data.stain.normalizers import STAIN_METHODS, get_stain_normalizer
from seunet_monai.data.stain.reference import STAIN_REFERENCE_FILE
from seunet_monai.errors import PreparationError
from seunet_monai.runtime.files import atomic_write_json, check_not_overlapping, check_output_dir, publish_folder

__all__ = [
    "AperioAnnotation",
    "RasterStats",
    "parse_aperio_xml",
    "rasterise_regions",
    "find_monuseg_pairs",
    "prepare_monuseg",
    "RASTERISATION_RULE",
    "OUTSIDE_WARN_FRACTION",
    "annotation_warning",
]

TRAIN_DIR = "MoNuSegTrainingData"
TEST_DIR = "MoNuSegTestData"
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
    """Rasterise polygons to a binary and an instance mask (rule: module docstring, :data:`RASTERISATION_RULE`).

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


@dataclass
class _Pair:
    """One image and its label source: the Aperio XML when there is one, else a binary PNG mask."""

    stem: str
    image: Path
    xml: Path | None
    part: str  # "train" or "test"
    mask: Path | None = None

    @property
    def label_source(self) -> str:
        return "xml" if self.xml is not None else "png"

    @property
    def label_file(self) -> Path:
        return self.xml if self.xml is not None else self.mask  # type: ignore[return-value]


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{stem: file}`` of the files of ``folder`` with one of ``suffixes``.

    Raises:
        PreparationError: for two files of one stem (``X.tif`` and ``X.png``): which one is meant is unknown.
    """
    out: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
                if p.stem in out:
                    raise PreparationError(
                        f"{folder}: {out[p.stem].name} and {p.name} have the same name {p.stem!r} (images and labels "
                        "are matched by name): move one of them out of the folder."
                    )
                out[p.stem] = p
    return out


def find_monuseg_pairs(src: str | os.PathLike, log: BadFileLog) -> list[_Pair]:
    """Match the images and annotations of the official MoNuSeg layout under ``src`` by stem.

    Args:
        src: the extracted dataset folder.
        log: where unmatched files go (raise, or record with ``skip_bad``).

    Returns:
        matched pairs, training part first, each part sorted by stem.

    Raises:
        PreparationError: when ``src`` holds neither ``MoNuSegTrainingData`` nor ``MoNuSegTestData``, or
            (without ``skip_bad``) for an image without annotation or the reverse.
    """
    src = Path(src)
    train_root, test_root = src / TRAIN_DIR, src / TEST_DIR
    if not train_root.is_dir() and not test_root.is_dir():
        raise PreparationError(
            f"{src}: expected the official MoNuSeg layout with {TRAIN_DIR}/ and/or {TEST_DIR}/ inside, found neither."
        )
    parts = []
    if train_root.is_dir():
        img_dir, xml_dir = train_root / "Tissue Images", train_root / "Annotations"
        for d in (img_dir, xml_dir):
            if not d.is_dir():
                raise PreparationError(f"{d}: folder missing (expected {TRAIN_DIR}/Tissue Images and /Annotations).")
        parts.append(("train", _files(img_dir, IMAGE_SUFFIXES), _files(xml_dir, (".xml",))))
    if test_root.is_dir():
        parts.append(("test", _files(test_root, IMAGE_SUFFIXES), _files(test_root, (".xml",))))
    pairs = []
    for part, images, xmls in parts:
        for stem in sorted(set(images) | set(xmls)):
            if stem not in xmls:
                log.bad(images[stem], f"{images[stem]}: image without an annotation XML of the same name")
            elif stem not in images:
                log.bad(xmls[stem], f"{xmls[stem]}: annotation XML without an image of the same name")
            else:
                pairs.append(_Pair(stem, images[stem], xmls[stem], part))
    stems = [p.stem for p in pairs]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise PreparationError(f"{src}: image name(s) {dup} appear in both the training and the test part.")
    return pairs


def find_flat_items(
    images: str | os.PathLike,
    annotations: str | os.PathLike | None,
    masks: str | os.PathLike | None,
    log: BadFileLog,
) -> list[_Pair]:
    """Match flat folders of images, Aperio XML and binary PNG masks by stem (all in the training part).

    The label source of an image is its XML when there is one, else its PNG mask; an image with neither goes
    to ``log`` (an error, or skipped with ``skip_bad``). Annotations or masks without an image are ignored.

    Args:
        images: folder of ``.tif``/``.tiff``/``.png`` images.
        annotations: folder of ``.xml`` files, or ``None``.
        masks: folder of ``.png`` masks (values {0, 1} or {0, 255}), or ``None``.
        log: where images without labels go.

    Raises:
        PreparationError: a given folder is missing, or holds no image.
    """
    folders = {"--images": images, "--annotations": annotations, "--masks": masks}
    for flag, folder in folders.items():
        if folder is not None and not Path(folder).is_dir():
            raise PreparationError(f"{flag} {folder}: folder not found.")
    found = _files(Path(images), IMAGE_SUFFIXES)
    if not found:
        raise PreparationError(f"--images {images}: no .tif, .tiff or .png image in this folder.")
    xmls = _files(Path(annotations), (".xml",)) if annotations is not None else {}
    pngs = _files(Path(masks), (".png",)) if masks is not None else {}
    pairs = []
    for stem, path in found.items():
        if stem not in xmls and stem not in pngs:
            log.bad(path, f"{path}: image without an annotation XML or a PNG mask of the same name")
            continue
        pairs.append(_Pair(stem, path, xmls.get(stem), "train", None if stem in xmls else pngs[stem]))
    return pairs


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


def _read_image(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        return read_rgb(path)
    except (OSError, ValueError) as e:
        raise PreparationError(f"{path}: unreadable image ({e}).") from e


@dataclass
class _Labels:
    binary: np.ndarray
    instance: np.ndarray
    regions: int
    skipped_regions: int
    empty_regions: int
    clipped_vertices: int
    microns_per_pixel: float | None


def _read_labels(pair: _Pair, shape: Sequence[int]) -> _Labels:
    """Binary and instance masks of one image from its label source (XML polygons, or a PNG mask).

    A PNG mask has no instances: its connected components (8-connectivity) stand in for them.
    """
    if pair.xml is not None:
        ann = parse_aperio_xml(pair.xml)
        if len(ann.regions) > 65535:
            raise PreparationError(f"{pair.xml}: {len(ann.regions)} regions do not fit a 16-bit instance mask.")
        binary, instance, stats = rasterise_regions(ann.regions, shape)
        return _Labels(binary, instance, len(ann.regions), ann.skipped_regions, stats.empty_regions,
                       stats.clipped_vertices, ann.microns_per_pixel)

    binary = read_png_mask(pair.mask)  # type: ignore[arg-type]
    if binary.shape != tuple(shape[:2]):
        raise PreparationError(
            f"{pair.mask}: mask size {binary.shape[0]}x{binary.shape[1]} differs from its image "
            f"{pair.image} ({shape[0]}x{shape[1]})."
        )
    instance = connected_components(binary, connectivity=2).astype(np.int32)
    if instance.max() > 65535:
        raise PreparationError(f"{pair.mask}: {instance.max()} nuclei do not fit a 16-bit instance mask.")
    return _Labels(binary, instance, int(instance.max()), 0, 0, 0, None)


OUTSIDE_WARN_FRACTION = 0.5
"""An annotation whose regions lie outside its image for more than this fraction (centroid outside) is
suspicious: the image was probably resized, or the annotation belongs to another image."""


def annotation_warning(regions: Sequence[np.ndarray], shape: Sequence[int], label_file: Path, image: Path) -> str | None:
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


def _check_pair(pair: _Pair, tile: int, log: BadFileLog, strict: bool = False) -> tuple[bool, str | None]:
    """Parse the label source and decode the image of one pair.

    Returns ``(usable, warning)``: a bad file goes to ``log`` (``usable`` False); ``warning`` is the
    :func:`annotation_warning` of the pair (a bad file with ``strict``).
    """
    ann = None
    if pair.xml is not None:
        try:
            ann = parse_aperio_xml(pair.xml)
        except PreparationError as e:
            log.bad(pair.xml, str(e))
            return False, None
    try:
        image, _ = _read_image(pair.image)
        if pair.part == "train" and (image.shape[0] < tile or image.shape[1] < tile):
            raise PreparationError(
                f"{pair.image}: image {image.shape[0]}x{image.shape[1]} is smaller than the tile {tile}x{tile}."
            )
    except PreparationError as e:
        log.bad(pair.image, str(e))
        return False, None
    if ann is not None:
        warning = annotation_warning(ann.regions, image.shape, pair.label_file, pair.image)
    else:
        try:
            labels = _read_labels(pair, image.shape)
        except PreparationError as e:
            log.bad(pair.mask, str(e))  # type: ignore[arg-type]
            return False, None
        warning = None if labels.regions else annotation_warning([], image.shape, pair.label_file, pair.image)
    if warning is not None and strict:
        log.bad(pair.label_file, f"{warning} (refused by --strict)")
        return False, None
    return True, warning


def _parse_stems(value: str | Sequence[str] | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    stems = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    stems = [v for v in stems if v]
    for v in stems:
        if Path(v).suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"{flag}: give image stems without extension, got {v!r}.")
    return stems


def _assign_splits(
    good: Sequence[_Pair],
    val_fraction: float,
    val_images: Sequence[str] | None,
    test_images: Sequence[str] | None,
    seed: int,
) -> dict[str, str]:
    """Split name of every stem: listed stems first, then ``val_fraction`` of the remaining training images."""
    stems = {p.stem: p for p in good}
    for flag, listed in (("--val-images", val_images), ("--test-images", test_images)):
        missing = [v for v in listed or [] if v not in stems]
        if missing:
            raise PreparationError(
                f"{flag}: no usable image named {missing} (known stems: {sorted(stems)[:5]}...)."
            )
    overlap = sorted(set(val_images or []) & set(test_images or []))
    if overlap:
        raise ValueError(f"--val-images and --test-images both list {overlap}.")
    split_of = {p.stem: "test" if p.part == "test" else "training" for p in good}
    for stem in test_images or []:
        split_of[stem] = "test"
    if val_images is not None:
        for stem in val_images:
            split_of[stem] = "validation"
    else:
        train_stems = [s for s, v in split_of.items() if v == "training"]
        for stem in pick_validation(train_stems, val_fraction, seed):
            split_of[stem] = "validation"
    return split_of


def _stain_normalizer(
    stain_norm: str, stain_reference: Any, good: Sequence[_Pair], split_of: dict[str, str], tile: int, stride: int
) -> tuple[Any, Any, np.ndarray | None]:
    """Normaliser, reference description and (when a training tile is the reference) that tile."""
    if stain_norm == "none":
        return None, None, None
    ref_image: Any = None
    ref_tile = None
    if stain_reference is not None:
        reference_desc: Any = str(stain_reference)
        ref_image = str(stain_reference)
    else:
        first_train = next((p for p in good if split_of[p.stem] == "training"), None)
        if first_train is not None:
            img, _ = _read_image(first_train.image)
            r, c = most_tissue_tile(img, tile, stride)
            ref_image = ref_tile = np.ascontiguousarray(img[r : r + tile, c : c + tile])
            reference_desc = {
                "image": first_train.stem,
                "rows": [r, r + tile],
                "cols": [c, c + tile],
                "saved_as": "stain_reference.png",
            }
        else:
            reference_desc = "built-in"
    normalizer = get_stain_normalizer(stain_norm, reference=ref_image)
    if ref_tile is not None:  # name the training tile, not "array", in stain_reference.json
        d = reference_desc
        normalizer.reference_name = f"{d['image']} rows {d['rows'][0]}:{d['rows'][1]} cols {d['cols'][0]}:{d['cols'][1]} (stain_reference.png)"
    return normalizer, reference_desc, ref_tile


def _crops(stem: str, split: str, image, binary, instance16, tile: int, stride: int) -> list[tuple]:
    if split == "test" and tile <= 0:
        return [(stem, image, binary, instance16)]
    return [
        (
            f"{stem}_r{r}_c{c}",
            image[r : r + tile, c : c + tile],
            binary[r : r + tile, c : c + tile],
            instance16[r : r + tile, c : c + tile],
        )
        for r, c in tile_boxes(image.shape, tile, stride)
    ]


def prepare_monuseg(
    src: str | os.PathLike | None,
    dst: str | os.PathLike,
    val_fraction: float = 0.2,
    tile: int = 400,
    stride: int = 200,
    stain_norm: str = "vahadane",
    stain_reference: str | os.PathLike | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    seed: int = 0,
    images: str | os.PathLike | None = None,
    annotations: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
    val_images: str | Sequence[str] | None = None,
    test_images: str | Sequence[str] | None = None,
    test_tiles: bool = False,
    strict: bool = False,
) -> dict[str, Any]:
    """Prepare MoNuSeg as a dataset folder with ``datalist.json`` (module docstring).

    Every input is checked (pairing, label parsing, image decoding, size against the tile) before ``dst`` is
    touched; without ``skip_bad`` the first bad file raises and nothing is written.

    Args:
        src: the extracted official dataset (``MoNuSegTrainingData/``, ``MoNuSegTestData/``), or ``None`` with
            ``images``.
        dst: output folder; must be empty or missing unless ``overwrite``.
        val_fraction: fraction of training images (whole images) moved to ``validation``, in ``[0, 1)``
            (ignored when ``val_images`` is given).
        tile: tile size of training/validation tiles.
        stride: tile stride.
        stain_norm: ``"vahadane"``, ``"macenko"`` or ``"none"``.
        stain_reference: reference image for stain normalisation (default: a training tile, see module doc).
        overwrite: replace a non-empty ``dst`` (only a folder this project wrote): the new dataset is written
            into a hidden folder beside it and swapped in only when complete, so a failure (a full disk, Ctrl-C)
            leaves the old dataset as it was.
        skip_bad: skip bad files (recorded in the report) instead of failing.
        seed: seed of the training/validation split.
        images: flat folder of images (instead of ``src``); every image is in the training part.
        annotations: flat folder of Aperio XML (with ``images``).
        masks: flat folder of binary PNG masks (with ``images``), used where an image has no XML.
        val_images: stems (list or comma-separated) of the validation images, instead of ``val_fraction``.
        test_images: stems moved to the ``test`` split (with ``images`` the test split is otherwise empty).
        test_tiles: cut test images into tiles like training ones (the paper's protocol) instead of keeping
            them whole.
        strict: treat a suspicious annotation (:func:`annotation_warning`: no region, or most regions outside
            the image) as a bad file instead of a warning (printed on stderr and listed in the report under
            ``annotation_warnings``).

    Returns:
        the report (also written to ``dst/prepare_report.json``).

    Raises:
        PreparationError: bad inputs (naming the file), or nothing left to write.
        FileExistsError: non-empty ``dst`` without ``overwrite``.
        ValueError: bad arguments.
    """
    t_start = time.time()
    if stain_norm not in STAIN_METHODS:
        raise ValueError(f"stain_norm must be one of {list(STAIN_METHODS)}, got {stain_norm!r}.")
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if (src is None) == (images is None):
        raise ValueError("give exactly one input: --src (official layout) or --images (flat folders).")
    if images is None and (annotations is not None or masks is not None):
        raise ValueError("--annotations and --masks go with --images, not with --src.")
    val_list, test_list = _parse_stems(val_images, "--val-images"), _parse_stems(test_images, "--test-images")
    dst = Path(dst)
    sources = [Path(p) for p in (src, images, annotations, masks) if p is not None]
    check_not_overlapping(dst, sources)  # before any work; never write into or around the inputs
    if stain_reference is not None and dst.expanduser().resolve() in Path(stain_reference).expanduser().resolve().parents:
        raise ValueError(
            f"--stain-reference {stain_reference} lies inside --dst {dst}, whose old content is deleted before the new "
            "dataset is written (and the report would name a deleted file): copy the reference out of it and pass that path."
        )
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {dst} is not empty; pass --overwrite to replace its content.")
    log = BadFileLog(skip_bad)
    pairs = find_monuseg_pairs(src, log) if src is not None else find_flat_items(images, annotations, masks, log)

    # 1. validate everything before writing anything
    good: list[_Pair] = []
    warnings: list[dict[str, str]] = []
    for pair in pairs:
        usable, warning = _check_pair(pair, tile, log, strict)
        if not usable:
            continue
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
            warnings.append({"file": str(pair.label_file), "warning": warning})
        good.append(pair)
    if not good:
        raise PreparationError(f"{src or images}: no usable image with labels; nothing written.")
    split_of = _assign_splits(good, val_fraction, val_list, test_list, seed)

    # 2. stain normaliser and its reference (built before dst is touched: a bad reference fails early)
    normalizer, reference_desc, ref_tile = _stain_normalizer(stain_norm, stain_reference, good, split_of, tile, stride)

    check_output_dir(dst, overwrite=overwrite, inputs=sources, marker=PREPARE_MARKER)  # before the work

    def write(dst: Path) -> dict[str, Any]:
        """Step 3 into the new folder ``dst`` that :func:`publish_folder` swaps in when it is complete."""
        if ref_tile is not None:
            atomic_save_png(dst / "stain_reference.png", ref_tile)

        # 3. rasterise, normalise, tile, write
        splits: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
        per_image: dict[str, Any] = {}
        conversions: dict[str, int] = {}
        converted_files: list[dict[str, str]] = []
        totals = {"regions": 0, "skipped_regions": 0, "empty_regions": 0, "clipped_vertices": 0}
        for pair in good:
            split = split_of[pair.stem]
            image, info = _read_image(pair.image)
            labels = _read_labels(pair, image.shape)
            conversion = record_conversion(pair.image, info, conversions, converted_files)
            if normalizer is not None:
                image = normalizer(image)
            per_image[pair.stem] = {
                "split": split,
                "label_source": pair.label_source,
                "label_file": str(pair.label_file),
                "shape": [int(image.shape[0]), int(image.shape[1])],
                "regions": labels.regions,
                "skipped_regions": labels.skipped_regions,
                "empty_regions": labels.empty_regions,
                "clipped_vertices": labels.clipped_vertices,
                "microns_per_pixel": labels.microns_per_pixel,
                "nucleus_fraction": round(float(labels.binary.mean()), 6),
                "conversion": conversion,
            }
            for key in totals:
                totals[key] += per_image[pair.stem][key]
            tiled = split != "test" or test_tiles
            crops = _crops(pair.stem, split, image, labels.binary, labels.instance.astype(np.uint16),
                           tile if tiled else 0, stride)
            for name, img_c, lab_c, inst_c in crops:
                entry = {
                    "image": f"{split}/images/{name}.png",
                    "label": f"{split}/labels/{name}.png",
                    "instance": f"{split}/instances/{name}.png",
                    "name": name,
                    "source": pair.stem,
                }
                atomic_save_png(dst / entry["image"], np.ascontiguousarray(img_c))
                atomic_save_png(dst / entry["label"], np.ascontiguousarray(lab_c))
                atomic_save_png(dst / entry["instance"], np.ascontiguousarray(inst_c))
                splits[split].append(entry)
            per_image[pair.stem]["tiles"] = len(crops)

        stain_report: dict[str, Any] = {"method": stain_norm}
        if normalizer is not None:
            stain_report.update(normalizer.describe())
            stain_report["reference"] = reference_desc
            atomic_write_json(dst / STAIN_REFERENCE_FILE, normalizer.reference_record())
        report = {
            "dataset": "MoNuSeg",
            "src": str(src) if src is not None else None,
            "inputs": {"images": _opt_str(images), "annotations": _opt_str(annotations), "masks": _opt_str(masks)},
            "settings": {
                "val_fraction": val_fraction if val_list is None else None,
                "val_images": val_list,
                "test_images": test_list,
                "test_protocol": "tiles" if test_tiles else "whole images",
                "tile": tile,
                "stride": stride,
                "tiles_per_axis_1000": len(tile_starts(1000, tile, stride)) if tile <= 1000 else None,
                "seed": seed,
                "skip_bad": skip_bad,
            },
            "rasterisation": RASTERISATION_RULE,
            "images": {s: sum(1 for v in split_of.values() if v == s) for s in ("training", "validation", "test")},
            "split_images": {s: sorted(k for k, v in split_of.items() if v == s) for s in ("training", "validation", "test")},
            "label_sources": {stem: v["label_source"] for stem, v in per_image.items()},
            "tiles": {s: len(v) for s, v in splits.items()},
            **totals,
            "microns_per_pixel": {stem: v["microns_per_pixel"] for stem, v in per_image.items()},
            "stain_normalisation": stain_report,
            "conversions": conversions,
            "converted_files": converted_files,
            "skipped_files": log.report(),
            "annotation_warnings": warnings,
            "per_image": per_image,
            "seconds": round(time.time() - t_start, 2),
        }
        write_datalist(dst, splits)
        atomic_write_json(dst / PREPARE_MARKER, report)  # last: it marks a complete folder written here
        return report

    return publish_folder(dst, write, overwrite=overwrite, inputs=sources, marker=PREPARE_MARKER)


def _opt_str(p: Any) -> str | None:
    return None if p is None else str(p)
