"""BCSS preparation: 22 annotation codes to the paper's 5 classes, split by institution, 512 x 512 tiles.

Input (as the dataset ships): ``--images`` holds RGB regions of interest (``TCGA-XX-YYYY-DX1_xmin..._MPP-0.2500.png``),
``--masks`` integer masks of the same file name with the codes of ``gtruth_codes.tsv``
(:data:`~seunet_monai.data.prepare.bcss_classes.BCSS_CODES`, mapped to classes as
:mod:`~seunet_monai.data.prepare.bcss_classes` states). Image and mask are matched by file stem; a missing
partner, a size mismatch, an unreadable file or an unmapped code is an error naming the file (``skip_bad``:
skipped and reported).

Split by institution
    The institution is the TCGA tissue-source-site code, the two characters after ``TCGA-`` in the file name
    (an error names a file without it). The default held-out test institutions,
    :data:`DEFAULT_TEST_INSTITUTIONS` = OL, LL, E2, EW, GM, S3, are the ones of the BCSS authors' own baseline
    test split (Amgad et al. 2019, and the dataset's public code), which is the only published list. The
    SEUNet paper says it holds out *seven* institutions but does not name them, so its exact split cannot be
    reproduced; ``--test-institutions`` chooses another list (e.g. seven codes). Validation takes a fraction of
    the non-test *slides* (``TCGA-XX-YYYY``; every region of a slide on the same side), deterministic for
    ``seed``.

Tiles
    ``tile x tile`` (default 512) for every split, non-overlapping (stride = tile) with a last tile flush with
    the border (:mod:`~seunet_monai.data.prepare.common`); a region smaller than the tile is refused. Tiles with
    no labelled pixel (all ignore) are dropped and counted (``dropped_empty_tiles``).

Stain normalisation defaults to ``none`` here: the BCSS distribution commonly used (``rgbs_colorNormalized``)
is already colour-normalised by its authors; ``--stain-norm vahadane`` applies the paper's method per region,
with the reference chosen as for MoNuSeg (the most tissue-rich tile of the first training region, saved as
``stain_reference.png``).

Output (``DST``): ``datalist.json``, ``prepare_report.json`` and
``{training,validation,test}/{images,labels}/<stem>_r<row>_c<col>.png`` (labels ``uint8``: 0..4 and 255).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seunet_monai.data.datalist import write_datalist
from seunet_monai.data.io import IMAGE_SUFFIXES, atomic_save_png, read_label, read_rgb
from seunet_monai.data.prepare.bcss_classes import (
    BCSS_CODES,
    CLASS_NAMES,
    IGNORE_VALUE,
    as_class_map,
    map_classes,
)
from seunet_monai.data.prepare.common import (
    PREPARE_MARKER,
    STAIN_REFERENCE_TILE,
    BadFileLog,
    pick_validation,
    record_conversion,
    stain_normalizer,
    stain_report,
    tile_boxes,
)
from seunet_monai.data.stain.normalizers import STAIN_METHODS
from seunet_monai.errors import PreparationError
from seunet_monai.runtime.files import atomic_write_json, check_not_overlapping, prepare_output_dir

__all__ = ["DEFAULT_TEST_INSTITUTIONS", "SOURCE_SUFFIXES", "institution_of", "slide_of", "prepare_bcss"]

#: The BCSS authors' baseline test institutions (see the module docstring for why six, not the paper's seven).
DEFAULT_TEST_INSTITUTIONS = ("OL", "LL", "E2", "EW", "GM", "S3")
SOURCE_SUFFIXES = IMAGE_SUFFIXES + (".jpg", ".jpeg")
"""Image and mask files of the BCSS download (case-insensitive): the dataset's images, and JPEG."""
_INSTITUTION = re.compile(r"TCGA-([A-Za-z0-9]{2})(?=-|_|$)")
_SLIDE = re.compile(r"TCGA-[A-Za-z0-9]{2}-[A-Za-z0-9]{4}")


def institution_of(name: str) -> str:
    """TCGA tissue-source-site code of a BCSS file name (the two characters after ``TCGA-``), upper case.

    Raises:
        PreparationError: when the name holds no ``TCGA-XX`` code.
    """
    m = _INSTITUTION.search(Path(name).name)
    if m is None:
        raise PreparationError(f"{name}: no institution code in the file name (expected 'TCGA-XX-...').")
    return m.group(1).upper()


def slide_of(name: str) -> str:
    """Slide (case) id ``TCGA-XX-YYYY`` of a BCSS file name (the file stem when the pattern is absent)."""
    m = _SLIDE.search(Path(name).name)
    return m.group(0).upper() if m else Path(name).stem


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    if not folder.is_dir():
        raise PreparationError(f"{folder}: folder not found.")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    }


def prepare_bcss(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    dst: str | os.PathLike,
    tile: int = 512,
    test_institutions: Sequence[str] | None = None,
    class_map: Mapping[int, int] | str | os.PathLike | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    stain_norm: str = "none",
    stain_reference: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Prepare BCSS regions and masks as a dataset folder with ``datalist.json`` (see the module docstring).

    All inputs are checked (pairing, institution code, reading, sizes, codes) before ``dst`` is touched.

    Args:
        images: folder of RGB regions of interest.
        masks: folder of code masks with the same file stems.
        dst: output folder; must be empty or missing unless ``overwrite``.
        tile: tile size (all splits; stride = tile, last tile flush with the border).
        test_institutions: held-out institution codes (default :data:`DEFAULT_TEST_INSTITUTIONS`).
        class_map: code -> class mapping, or a JSON/TSV file merged onto the default (default
            :data:`~seunet_monai.data.prepare.bcss_classes.DEFAULT_CLASS_MAP`).
        overwrite: replace the content of a non-empty ``dst`` that this script wrote (it holds
            ``prepare_report.json``); a ``dst`` that is, contains or lies inside the inputs is always refused.
        skip_bad: skip bad files (recorded in the report) instead of failing.
        val_fraction: fraction of non-test slides for validation, in ``[0, 1)``.
        seed: seed of the validation split.
        stain_norm: ``"none"`` (default), ``"vahadane"`` or ``"macenko"``.
        stain_reference: reference image of stain normalisation (default: a training tile).

    Returns:
        the report (also written to ``dst/prepare_report.json``).
    """
    t_start = time.time()
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if stain_norm not in STAIN_METHODS:
        raise ValueError(f"stain_norm must be one of {list(STAIN_METHODS)}, got {stain_norm!r}.")
    tests = tuple(sorted({c.strip().upper() for c in (test_institutions or DEFAULT_TEST_INSTITUTIONS) if c.strip()}))
    bad_codes = [c for c in tests if not re.fullmatch(r"[A-Z0-9]{2}", c)]
    if bad_codes:
        raise ValueError(f"test institutions must be two-character TCGA site codes, got {bad_codes}.")
    cmap = as_class_map(class_map)
    dst = Path(dst)
    check_not_overlapping(dst, [images, masks])  # before any work; never write into or around the inputs
    if dst.exists() and dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {dst} is not empty; pass --overwrite to replace its content.")

    log = BadFileLog(skip_bad)
    img_files, mask_files = _files(Path(images), SOURCE_SUFFIXES), _files(Path(masks), SOURCE_SUFFIXES)
    good: list[tuple[str, Path, Path, str]] = []  # stem, image, mask, institution
    for stem in sorted(set(img_files) | set(mask_files)):
        if stem not in mask_files:
            log.bad(img_files[stem], f"{img_files[stem]}: image without a mask of the same name in {masks}")
            continue
        if stem not in img_files:
            log.bad(mask_files[stem], f"{mask_files[stem]}: mask without an image of the same name in {images}")
            continue
        ip, mp = img_files[stem], mask_files[stem]
        try:
            inst = institution_of(ip.name)
        except PreparationError as e:
            log.bad(ip, str(e))
            continue
        try:
            image, _ = read_rgb(ip)
        except (OSError, ValueError) as e:
            log.bad(ip, f"{ip}: unreadable image ({e})")
            continue
        try:
            mask = read_label(mp)
        except (OSError, ValueError) as e:
            log.bad(mp, f"{mp}: unreadable mask ({e})")
            continue
        if mask.shape != image.shape[:2]:
            log.bad(
                mp,
                f"{mp}: mask size {mask.shape[0]}x{mask.shape[1]} differs from image {ip} "
                f"size {image.shape[0]}x{image.shape[1]}",
            )
            continue
        if image.shape[0] < tile or image.shape[1] < tile:
            log.bad(ip, f"{ip}: image {image.shape[0]}x{image.shape[1]} is smaller than the tile {tile}x{tile}")
            continue
        try:
            map_classes(mask, cmap, str(mp))
        except PreparationError as e:
            log.bad(mp, str(e))
            continue
        good.append((stem, ip, mp, inst))
    if not good:
        raise PreparationError(f"{images}: no usable image/mask pair; nothing written.")

    slides = [slide_of(s) for s, _, _, inst in good if inst not in tests]
    val_slides = pick_validation(slides, val_fraction, seed)
    split_of = {
        s: "test" if inst in tests else "validation" if slide_of(s) in val_slides else "training"
        for s, _, _, inst in good
    }
    # built before dst is touched: a bad reference fails early
    first = next(((g[0], g[1]) for g in good if split_of[g[0]] == "training"), None)
    normalizer, reference_desc, ref_tile = stain_normalizer(stain_norm, stain_reference, first, tile, tile)
    dst = prepare_output_dir(dst, overwrite=overwrite, inputs=[images, masks], marker=PREPARE_MARKER)
    if ref_tile is not None:
        atomic_save_png(dst / STAIN_REFERENCE_TILE, ref_tile)

    split_names = ("training", "validation", "test")
    splits: dict[str, list[dict[str, str]]] = {s: [] for s in split_names}
    dropped = {s: 0 for s in split_names}
    pixels = {s: np.zeros(256, dtype=np.int64) for s in split_names}
    conversions: dict[str, int] = {}
    converted_files: list[dict[str, str]] = []
    per_image: dict[str, Any] = {}
    for stem, ip, mp, inst in good:
        split = split_of[stem]
        image, info = read_rgb(ip)
        record_conversion(ip, info, conversions, converted_files)
        label = map_classes(read_label(mp), cmap, str(mp))
        if normalizer is not None:
            image = normalizer(image)
        kept = 0
        for r, c in tile_boxes(image.shape, tile, tile):
            lab = label[r : r + tile, c : c + tile]
            if not (lab != IGNORE_VALUE).any():
                dropped[split] += 1
                continue
            name = f"{stem}_r{r}_c{c}"
            entry = {
                "image": f"{split}/images/{name}.png",
                "label": f"{split}/labels/{name}.png",
                "name": name,
                "source": stem,
                "institution": inst,
            }
            atomic_save_png(dst / entry["image"], np.ascontiguousarray(image[r : r + tile, c : c + tile]))
            atomic_save_png(dst / entry["label"], np.ascontiguousarray(lab))
            pixels[split] += np.bincount(lab.ravel(), minlength=256)
            splits[split].append(entry)
            kept += 1
        per_image[stem] = {
            "split": split,
            "institution": inst,
            "slide": slide_of(stem),
            "shape": [int(image.shape[0]), int(image.shape[1])],
            "tiles": kept,
        }

    write_datalist(dst, splits)
    names = {**{i: n for i, n in enumerate(CLASS_NAMES)}, IGNORE_VALUE: "ignore"}
    report = {
        "dataset": "BCSS",
        "images_dir": str(images),
        "masks_dir": str(masks),
        "settings": {"tile": tile, "val_fraction": val_fraction, "seed": seed, "skip_bad": skip_bad},
        "test_institutions": list(tests),
        "class_names": list(CLASS_NAMES),
        "ignore_value": IGNORE_VALUE,
        "class_map": {f"{code} {BCSS_CODES.get(code, '?')}": cls for code, cls in sorted(cmap.items())},
        "images": {s: sum(1 for v in split_of.values() if v == s) for s in split_names},
        "slides": {s: len({slide_of(k) for k, v in split_of.items() if v == s}) for s in split_names},
        "institutions": {s: sorted({inst for k, _, _, inst in good if split_of[k] == s}) for s in split_names},
        "tiles": {s: len(v) for s, v in splits.items()},
        "dropped_empty_tiles": dropped,
        "class_pixels": {s: {names.get(v, str(v)): int(n) for v, n in enumerate(pixels[s]) if n} for s in split_names},
        "stain_normalisation": stain_report(stain_norm, normalizer, reference_desc),
        "conversions": conversions,
        "converted_files": converted_files,
        "skipped_files": log.report(),
        "per_image": per_image,
        "seconds": round(time.time() - t_start, 2),
    }
    atomic_write_json(dst / PREPARE_MARKER, report)  # last: it marks a complete folder written here
    return report
