"""MoNuSeg preparation: Aperio ImageScope XML polygons to masks, whole-image split, tiles, ``datalist.json``.

Input (the official extracted layout; either part may be absent)::

    SRC/MoNuSegTrainingData/Tissue Images/*.tif   SRC/MoNuSegTrainingData/Annotations/*.xml
    SRC/MoNuSegTestData/*.tif + *.xml (side by side)

Images and annotations are matched by file stem; an image without annotation (or the reverse) is an error
naming the file.

Coordinate convention and rasterisation rule
    An Aperio vertex ``(X, Y)`` is in pixel units of the full-resolution image, ``X`` along columns and ``Y``
    along rows, with the image covering the continuous square ``[0, W] x [0, H]``: pixel ``(i, j)`` (row ``i``,
    column ``j``) is the unit square ``[j, j + 1] x [i, i + 1]`` with its centre at ``(j + 0.5, i + 0.5)``.
    A pixel belongs to a region iff its centre lies inside the *closed* polygon (centres exactly on an edge or
    a vertex count as inside). With this convention a region with integer corners ``[10, 20] x [10, 20]``
    covers exactly the 10 x 10 pixels with rows and columns 10..19, and a polygon's pixel count approximates
    its area; the alternative (pixel centres on integer coordinates) would put every centre of such a square's
    border on the polygon's boundary. The test uses :func:`skimage.measure.grid_points_in_poly` (which labels
    grid points outside / inside / on a vertex / on an edge, so the closed-polygon rule is explicit rather than
    left to a crossing test's tie-breaking), evaluated only on the region's bounding box clipped to the image.

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
image, the built-in reference of :mod:`seunet_monai.data.stain`.
"""

from __future__ import annotations

import argparse
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

from seunet_monai.data.preparation import (
    BadFileLog,
    PreparationError,
    most_tissue_tile,
    pick_validation,
    tile_boxes,
    tile_starts,
)
from seunet_monai.data.stain import STAIN_METHODS, get_stain_normalizer

__all__ = [
    "AperioAnnotation",
    "RasterStats",
    "parse_aperio_xml",
    "rasterise_regions",
    "find_monuseg_pairs",
    "prepare_monuseg",
    "main",
    "RASTERISATION_RULE",
]

TRAIN_DIR = "MoNuSegTrainingData"
TEST_DIR = "MoNuSegTestData"
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
RASTERISATION_RULE = (
    "Aperio vertex (X, Y) in pixel units, image = [0, W] x [0, H]; pixel (row i, col j) has centre "
    "(j + 0.5, i + 0.5) and is inside a region iff its centre lies in the closed polygon "
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
        # pixel i is a candidate iff its centre i + 0.5 lies within [min, max] of the vertices, clipped to the image
        r0, r1 = max(0, math.ceil(y.min() - 0.5)), min(h - 1, math.floor(y.max() - 0.5))
        c0, c1 = max(0, math.ceil(x.min() - 0.5)), min(w - 1, math.floor(x.max() - 0.5))
        if r1 < r0 or c1 < c0:
            stats.empty_regions += 1
            continue
        # grid point (r, c) of the box is pixel (r0 + r, c0 + c) whose centre is (c0 + c + 0.5, r0 + r + 0.5)
        verts = np.stack([y - 0.5 - r0, x - 0.5 - c0], axis=1)
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
    stem: str
    image: Path
    xml: Path
    part: str  # "train" or "test"


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
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


def _load_pair(pair: _Pair) -> tuple[np.ndarray, dict[str, Any], AperioAnnotation]:
    ann = parse_aperio_xml(pair.xml)
    return _read_image(pair.image) + (ann,)


def _read_image(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from seunet_monai.data.io import read_rgb

    try:
        return read_rgb(path)
    except (OSError, ValueError) as e:
        raise PreparationError(f"{path}: unreadable image ({e}).") from e


def prepare_monuseg(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    val_fraction: float = 0.2,
    tile: int = 400,
    stride: int = 200,
    stain_norm: str = "vahadane",
    stain_reference: str | os.PathLike | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Prepare MoNuSeg in the official layout as a dataset folder with ``datalist.json`` (module docstring).

    Every input is checked (pairing, XML parsing, image decoding, size against the tile) before ``dst`` is
    touched; without ``skip_bad`` the first bad file raises and nothing is written.

    Args:
        src: the extracted official dataset.
        dst: output folder; must be empty or missing unless ``overwrite``.
        val_fraction: fraction of training images (whole images) moved to ``validation``, in ``[0, 1)``.
        tile: tile size of training/validation tiles.
        stride: tile stride.
        stain_norm: ``"vahadane"``, ``"macenko"`` or ``"none"``.
        stain_reference: reference image for stain normalisation (default: a training tile, see module doc).
        overwrite: replace the content of a non-empty ``dst``.
        skip_bad: skip bad files (recorded in the report) instead of failing.
        seed: seed of the training/validation split.

    Returns:
        the report (also written to ``dst/prepare_report.json``).

    Raises:
        PreparationError: bad inputs (naming the file), or nothing left to write.
        FileExistsError: non-empty ``dst`` without ``overwrite``.
        ValueError: bad arguments.
    """
    from seunet_monai.data.datalist import write_datalist
    from seunet_monai.data.io import atomic_save_png, atomic_write_json, prepare_output_dir

    t_start = time.time()
    if stain_norm not in STAIN_METHODS:
        raise ValueError(f"stain_norm must be one of {list(STAIN_METHODS)}, got {stain_norm!r}.")
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    src, dst = Path(src), Path(dst)
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {dst} is not empty; pass --overwrite to replace its content.")
    log = BadFileLog(skip_bad)
    pairs = find_monuseg_pairs(src, log)

    # 1. validate everything before writing anything
    good: list[_Pair] = []
    for pair in pairs:
        try:
            parse_aperio_xml(pair.xml)
        except PreparationError as e:
            log.bad(pair.xml, str(e))
            continue
        try:
            image, _ = _read_image(pair.image)
            if pair.part == "train" and (image.shape[0] < tile or image.shape[1] < tile):
                raise PreparationError(
                    f"{pair.image}: image {image.shape[0]}x{image.shape[1]} is smaller than the tile {tile}x{tile}."
                )
        except PreparationError as e:
            log.bad(pair.image, str(e))
            continue
        good.append(pair)
    if not good:
        raise PreparationError(f"{src}: no usable image/annotation pair; nothing written.")

    train_stems = [p.stem for p in good if p.part == "train"]
    val_stems = pick_validation(train_stems, val_fraction, seed)
    split_of = {
        p.stem: "test" if p.part == "test" else "validation" if p.stem in val_stems else "training" for p in good
    }

    # 2. stain normaliser and its reference (built before dst is touched: a bad reference fails early)
    normalizer = None
    reference_desc: Any = None
    ref_tile: np.ndarray | None = None
    if stain_norm != "none":
        ref_image: Any = None
        if stain_reference is not None:
            reference_desc = str(stain_reference)
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

    dst = prepare_output_dir(dst, overwrite=overwrite)
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
        image, info, ann = _load_pair(pair)
        if info.get("conversion"):
            conversions[info["conversion"]] = conversions.get(info["conversion"], 0) + 1
            converted_files.append({"file": str(pair.image), "conversion": info["conversion"]})
        if len(ann.regions) > 65535:
            raise PreparationError(f"{pair.xml}: {len(ann.regions)} regions do not fit a 16-bit instance mask.")
        binary, instance, stats = rasterise_regions(ann.regions, image.shape)
        if normalizer is not None:
            image = normalizer(image)
        per_image[pair.stem] = {
            "split": split,
            "shape": [int(image.shape[0]), int(image.shape[1])],
            "regions": len(ann.regions),
            "skipped_regions": ann.skipped_regions,
            "empty_regions": stats.empty_regions,
            "clipped_vertices": stats.clipped_vertices,
            "microns_per_pixel": ann.microns_per_pixel,
            "nucleus_fraction": round(float(binary.mean()), 6),
            "conversion": info.get("conversion"),
        }
        totals["regions"] += len(ann.regions)
        totals["skipped_regions"] += ann.skipped_regions
        totals["empty_regions"] += stats.empty_regions
        totals["clipped_vertices"] += stats.clipped_vertices
        instance16 = instance.astype(np.uint16)
        if split == "test":
            crops = [(pair.stem, image, binary, instance16)]
        else:
            crops = [
                (
                    f"{pair.stem}_r{r}_c{c}",
                    image[r : r + tile, c : c + tile],
                    binary[r : r + tile, c : c + tile],
                    instance16[r : r + tile, c : c + tile],
                )
                for r, c in tile_boxes(image.shape, tile, stride)
            ]
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

    write_datalist(dst, splits)
    stain_report: dict[str, Any] = {"method": stain_norm}
    if normalizer is not None:
        stain_report.update(normalizer.describe())
        stain_report["reference"] = reference_desc
    report = {
        "dataset": "MoNuSeg",
        "src": str(src),
        "settings": {
            "val_fraction": val_fraction,
            "tile": tile,
            "stride": stride,
            "tiles_per_axis_1000": len(tile_starts(1000, tile, stride)) if tile <= 1000 else None,
            "seed": seed,
            "skip_bad": skip_bad,
        },
        "rasterisation": RASTERISATION_RULE,
        "images": {s: sum(1 for v in split_of.values() if v == s) for s in ("training", "validation", "test")},
        "tiles": {s: len(v) for s, v in splits.items()},
        **totals,
        "microns_per_pixel": {stem: v["microns_per_pixel"] for stem, v in per_image.items()},
        "stain_normalisation": stain_report,
        "conversions": conversions,
        "converted_files": converted_files,
        "skipped_files": log.report(),
        "per_image": per_image,
        "seconds": round(time.time() - t_start, 2),
    }
    atomic_write_json(dst / "prepare_report.json", report)
    return report


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``scripts/prepare_monuseg.py``."""
    p = argparse.ArgumentParser(
        prog="prepare_monuseg.py",
        description="Turn the official MoNuSeg folders into a dataset folder with datalist.json (tiles + masks).",
    )
    p.add_argument("--src", required=True, help="folder holding MoNuSegTrainingData/ and/or MoNuSegTestData/")
    p.add_argument("--dst", required=True, help="output dataset folder (must be empty unless --overwrite)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of training images for validation")
    p.add_argument("--tile", type=int, default=400, help="tile size (training/validation)")
    p.add_argument("--stride", type=int, default=200, help="tile stride")
    p.add_argument("--stain-norm", choices=STAIN_METHODS, default="vahadane", help="stain normalisation")
    p.add_argument("--stain-reference", default=None, help="reference image (default: a training tile)")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --dst")
    p.add_argument("--skip-bad", action="store_true", help="skip (and report) bad files instead of failing")
    p.add_argument("--seed", type=int, default=0, help="seed of the training/validation split")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 when something was written)."""
    args = build_parser().parse_args(argv)
    try:
        report = prepare_monuseg(
            args.src,
            args.dst,
            val_fraction=args.val_fraction,
            tile=args.tile,
            stride=args.stride,
            stain_norm=args.stain_norm,
            stain_reference=args.stain_reference,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            seed=args.seed,
        )
    except (PreparationError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"prepare_monuseg: error: {e}", file=sys.stderr)
        return 1
    print(
        f"prepare_monuseg: images {report['images']}, tiles {report['tiles']}, regions {report['regions']} "
        f"(skipped {report['skipped_regions']}, clipped vertices {report['clipped_vertices']}), "
        f"skipped files {len(report['skipped_files'])} -> {Path(args.dst) / 'datalist.json'}"
    )
    return 0
