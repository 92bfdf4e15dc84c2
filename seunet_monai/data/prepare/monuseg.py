"""MoNuSeg preparation: Aperio XML polygons to masks, whole-image split, tiles, ``datalist.json``.

Inputs: the official layout or flat folders (:mod:`~seunet_monai.data.prepare.monuseg_inputs`); labels from the
XML where there is one (rasterised as :mod:`~seunet_monai.data.annotations` states), else the binary PNG mask
(its connected components, 8-connectivity, stand in for the instances). Instance masks are saved as 16-bit PNG
under ``instances/`` (at most 65535 regions per image).

Splits and tiles
    Training images are split into ``training`` and ``validation`` by whole image
    (:func:`~seunet_monai.data.prepare.common.pick_validation`, deterministic for ``seed``; or ``val_images``),
    then cut into ``tile x tile`` tiles with ``stride`` (400 and 200: 16 tiles per 1000 x 1000 image; a last
    tile flush with the border is added where the size is not a multiple of the stride, see
    :mod:`~seunet_monai.data.prepare.common`). Test images are kept whole (``test_tiles``: tiled like the
    others).

Output (``DST``)::

    datalist.json, prepare_report.json, stain_reference.json (with stain normalisation), stain_reference.png
    {training,validation}/{images,labels,instances}/<stem>_r<row>_c<col>.png
    test/{images,labels,instances}/<stem>.png

Stain normalisation (default Vahadane, as the paper) is applied to each whole image before tiling; the
reference is ``stain_reference`` when given, else the tile of the first training image (sorted by name) with
the most tissue pixels, saved as ``DST/stain_reference.png`` and recorded in the report; with no training
image, the built-in reference of :mod:`~seunet_monai.data.stain.normalizers`
(:func:`~seunet_monai.data.prepare.common.stain_normalizer`). The fitted target goes to
``DST/stain_reference.json`` (:mod:`~seunet_monai.data.stain.reference`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seunet_monai.data.annotations import RASTERISATION_RULE
from seunet_monai.data.datalist import write_datalist
from seunet_monai.data.io import IMAGE_SUFFIXES, atomic_save_png
from seunet_monai.data.prepare.common import (
    PREPARE_MARKER,
    STAIN_REFERENCE_TILE,
    BadFileLog,
    pick_validation,
    read_image,
    record_conversion,
    stain_normalizer,
    stain_report,
    tile_boxes,
    tile_starts,
)
from seunet_monai.data.prepare.monuseg_inputs import (
    LabelledImage,
    check_item,
    find_flat_items,
    find_monuseg_pairs,
    read_labels,
)
from seunet_monai.data.stain.normalizers import STAIN_METHODS
from seunet_monai.data.stain.reference import STAIN_REFERENCE_FILE
from seunet_monai.errors import PreparationError
from seunet_monai.runtime.files import atomic_write_json, check_not_overlapping, check_output_dir, publish_folder

__all__ = ["prepare_monuseg"]


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
    good: Sequence[LabelledImage],
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
            raise PreparationError(f"{flag}: no usable image named {missing} (known stems: {sorted(stems)[:5]}...).")
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
        strict: treat a suspicious annotation (:func:`~seunet_monai.data.annotations.annotation_warning`: no
            region, or most regions outside the image) as a bad file instead of a warning (printed on stderr and
            listed in the report under ``annotation_warnings``).

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
    if (
        stain_reference is not None
        and dst.expanduser().resolve() in Path(stain_reference).expanduser().resolve().parents
    ):
        raise ValueError(
            f"--stain-reference {stain_reference} lies inside --dst {dst}, whose old content is deleted before the new "
            "dataset is written (and the report would name a deleted file): copy the reference out of it and pass that path."
        )
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {dst} is not empty; pass --overwrite to replace its content.")
    log = BadFileLog(skip_bad)
    pairs = find_monuseg_pairs(src, log) if src is not None else find_flat_items(images, annotations, masks, log)

    # 1. validate everything before writing anything
    good: list[LabelledImage] = []
    warnings: list[dict[str, str]] = []
    for pair in pairs:
        usable, warning = check_item(pair, tile, log, strict)
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
    first = next(((p.stem, p.image) for p in good if split_of[p.stem] == "training"), None)
    normalizer, reference_desc, ref_tile = stain_normalizer(stain_norm, stain_reference, first, tile, stride)

    check_output_dir(dst, overwrite=overwrite, inputs=sources, marker=PREPARE_MARKER)  # before the work

    def write(dst: Path) -> dict[str, Any]:
        """Step 3 into the new folder ``dst`` that :func:`publish_folder` swaps in when it is complete."""
        if ref_tile is not None:
            atomic_save_png(dst / STAIN_REFERENCE_TILE, ref_tile)

        # 3. rasterise, normalise, tile, write
        splits: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
        per_image: dict[str, Any] = {}
        conversions: dict[str, int] = {}
        converted_files: list[dict[str, str]] = []
        totals = {"regions": 0, "skipped_regions": 0, "empty_regions": 0, "clipped_vertices": 0}
        for pair in good:
            split = split_of[pair.stem]
            image, info = read_image(pair.image)
            labels = read_labels(pair, image.shape)
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
            crops = _crops(
                pair.stem, split, image, labels.binary, labels.instance.astype(np.uint16), tile if tiled else 0, stride
            )
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

        if normalizer is not None:
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
            "split_images": {
                s: sorted(k for k, v in split_of.items() if v == s) for s in ("training", "validation", "test")
            },
            "label_sources": {stem: v["label_source"] for stem, v in per_image.items()},
            "tiles": {s: len(v) for s, v in splits.items()},
            **totals,
            "microns_per_pixel": {stem: v["microns_per_pixel"] for stem, v in per_image.items()},
            "stain_normalisation": stain_report(stain_norm, normalizer, reference_desc),
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
