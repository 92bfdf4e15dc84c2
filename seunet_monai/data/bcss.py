"""BCSS preparation: 22 annotation codes to the paper's 5 classes, split by institution, 512 x 512 tiles.

Input (as the dataset ships): ``--images`` holds RGB regions of interest (``TCGA-XX-YYYY-DX1_xmin..._MPP-0.2500.png``),
``--masks`` integer masks of the same file name with the codes of ``gtruth_codes.tsv`` (:data:`BCSS_CODES`).
Image and mask are matched by file stem; a missing partner, a size mismatch, an unreadable file or an unmapped
code is an error naming the file (``skip_bad``: skipped and reported).

Class mapping (:data:`DEFAULT_CLASS_MAP`, overridable with a JSON or TSV file, see :func:`load_class_map`)
    ====  ===================  ==========================================================================
    id    class                BCSS codes
    ====  ===================  ==========================================================================
    0     tumour               tumor (1), angioinvasion (19), dcis (20)
    1     stroma               stroma (2)
    2     inflammatory         lymphocytic_infiltrate (3), plasma_cells (10), other_immune_infiltrate (11)
    3     necrosis             necrosis_or_debris (4)
    4     other                glandular_secretion (5), blood (6), metaplasia_NOS (8), fat (9),
                               mucoid_material (12), normal_acinus_or_duct (13), lymphatics (14), nerve (16),
                               skin_adnexa (17), blood_vessel (18), other (21)
    255   ignore               outside_roi (0), exclude (7), undetermined (15)
    ====  ===================  ==========================================================================

    Choices: angioinvasion (tumour cells inside vessels) and DCIS (in-situ carcinoma) are tumour epithelium,
    so they join ``tumour`` (our reading of the BCSS authors' grouping of the predominant classes). ``exclude``
    marks regions the annotators excluded and ``undetermined`` tissue whose class they could not decide: neither
    is evidence for any of the five classes, so both are ignored (value :data:`IGNORE_VALUE`, excluded from the
    loss and the metrics) rather than counted as ``other``.

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
    the border (:mod:`seunet_monai.data.preparation`); a region smaller than the tile is refused. Tiles with no
    labelled pixel (all ignore) are dropped and counted (``dropped_empty_tiles``).

Stain normalisation defaults to ``none`` here: the BCSS distribution commonly used (``rgbs_colorNormalized``)
is already colour-normalised by its authors; ``--stain-norm vahadane`` applies the paper's method per region,
with the reference chosen as for MoNuSeg (the most tissue-rich tile of the first training region, saved as
``stain_reference.png``).

Output (``DST``): ``datalist.json``, ``prepare_report.json`` and
``{training,validation,test}/{images,labels}/<stem>_r<row>_c<col>.png`` (labels ``uint8``: 0..4 and 255).
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seunet_monai.data.datalist import write_datalist
from seunet_monai.data.io import IMAGE_SUFFIXES, atomic_save_png, read_label, read_rgb
from seunet_monai.data.preparation import (
    PREPARE_MARKER,
    BadFileLog,
    most_tissue_tile,
    pick_validation,
    record_conversion,
    tile_boxes,
)
from seunet_monai.data.stain.normalizers import STAIN_METHODS, get_stain_normalizer
from seunet_monai.errors import PreparationError
from seunet_monai.runtime.files import atomic_write_json, check_not_overlapping, prepare_output_dir

__all__ = [
    "BCSS_CODES",
    "CLASS_NAMES",
    "IGNORE_VALUE",
    "DEFAULT_CLASS_MAP",
    "DEFAULT_TEST_INSTITUTIONS",
    "institution_of",
    "slide_of",
    "load_class_map",
    "map_classes",
    "prepare_bcss",
]

#: The 22 codes of BCSS ``gtruth_codes.tsv``.
BCSS_CODES: dict[int, str] = {
    0: "outside_roi",
    1: "tumor",
    2: "stroma",
    3: "lymphocytic_infiltrate",
    4: "necrosis_or_debris",
    5: "glandular_secretion",
    6: "blood",
    7: "exclude",
    8: "metaplasia_NOS",
    9: "fat",
    10: "plasma_cells",
    11: "other_immune_infiltrate",
    12: "mucoid_material",
    13: "normal_acinus_or_duct",
    14: "lymphatics",
    15: "undetermined",
    16: "nerve",
    17: "skin_adnexa",
    18: "blood_vessel",
    19: "angioinvasion",
    20: "dcis",
    21: "other",
}
#: The paper's five classes, in label order.
CLASS_NAMES = ("tumour", "stroma", "inflammatory", "necrosis", "other")
#: Label value of unlabelled pixels (excluded from loss and metrics).
IGNORE_VALUE = 255
_GROUPS = {
    0: ("tumor", "angioinvasion", "dcis"),
    1: ("stroma",),
    2: ("lymphocytic_infiltrate", "plasma_cells", "other_immune_infiltrate"),
    3: ("necrosis_or_debris",),
    IGNORE_VALUE: ("outside_roi", "exclude", "undetermined"),
}
_CODE_OF = {name: code for code, name in BCSS_CODES.items()}
#: BCSS code -> class id (0..4) or :data:`IGNORE_VALUE`; see the module docstring.
DEFAULT_CLASS_MAP: dict[int, int] = {
    code: next((cls for cls, names in _GROUPS.items() if name in names), 4) for code, name in BCSS_CODES.items()
}
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


def _class_value(value: Any, where: str) -> int:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in CLASS_NAMES:
            return CLASS_NAMES.index(v)
        if v == "ignore":
            return IGNORE_VALUE
        try:
            value = int(v)
        except ValueError as e:
            raise PreparationError(
                f"{where}: class {value!r} is neither an integer nor one of {list(CLASS_NAMES) + ['ignore']}."
            ) from e
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 255:
        raise PreparationError(f"{where}: class {value!r} must be an integer in [0, 255] or a class name.")
    return int(value)


def _code_value(key: Any, where: str) -> int:
    k = str(key).strip()
    if k in _CODE_OF:
        return _CODE_OF[k]
    try:
        code = int(k)
    except ValueError as e:
        raise PreparationError(f"{where}: code {key!r} is neither an integer nor a BCSS code name.") from e
    if not 0 <= code <= 255:
        raise PreparationError(f"{where}: code {code} outside [0, 255].")
    return code


def load_class_map(path: str | os.PathLike) -> dict[int, int]:
    """Read a class-map override and merge it onto :data:`DEFAULT_CLASS_MAP`.

    Formats: JSON object ``{"code": class}`` or TSV/CSV lines ``code<TAB>class`` (a header line and ``#``
    comments allowed). Codes are integers or BCSS code names (``"dcis"``); classes are integers in [0, 255] or
    names among :data:`CLASS_NAMES` and ``"ignore"`` (= :data:`IGNORE_VALUE`). Codes not in the file keep their
    default class.

    Args:
        path: the JSON (``.json``) or TSV/CSV file.

    Returns:
        the merged map code -> class.

    Raises:
        PreparationError: for an unreadable or malformed file (the message names the file and the entry).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PreparationError(f"{path}: cannot read the class map ({e}).") from e
    pairs: list[tuple[Any, Any, str]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PreparationError(f"{path}: invalid JSON class map ({e}).") from e
        if not isinstance(data, dict):
            raise PreparationError(f"{path}: expected a JSON object code -> class, got {type(data).__name__}.")
        pairs = [(k, v, f"{path} entry {k!r}") for k, v in data.items()]
    else:
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r and not r[0].startswith("#")]
        for i, row in enumerate(rows):
            if len(row) < 2:
                raise PreparationError(f"{path} line {i + 1}: expected 'code<TAB>class', got {row!r}.")
            if i == 0 and row[0].strip() not in _CODE_OF and not row[0].strip().isdigit():
                continue  # header
            pairs.append((row[0], row[1], f"{path} line {i + 1}"))
    out = dict(DEFAULT_CLASS_MAP)
    for key, value, where in pairs:
        out[_code_value(key, where)] = _class_value(value, where)
    return out


def map_classes(mask: np.ndarray, class_map: Mapping[int, int], where: str = "mask") -> np.ndarray:
    """Map a BCSS code mask to class ids with a lookup table.

    Args:
        mask: ``(H, W)`` integer codes.
        class_map: code -> class id (0..255).
        where: name used in error messages (the file).

    Returns:
        ``(H, W)`` uint8 class ids.

    Raises:
        PreparationError: for codes outside [0, 255] or without an entry in ``class_map``.
    """
    mask = np.asarray(mask)
    lo, hi = int(mask.min()), int(mask.max())
    if lo < 0 or hi > 255:
        raise PreparationError(f"{where}: codes in [{lo}, {hi}] outside [0, 255].")
    lut = np.full(256, -1, dtype=np.int32)
    for code, cls in class_map.items():
        lut[int(code)] = int(cls)
    out = lut[mask.astype(np.intp)]
    if (out < 0).any():
        unknown = sorted(int(c) for c in np.unique(mask[out < 0]))
        raise PreparationError(f"{where}: code(s) {unknown} have no class in the class map.")
    return out.astype(np.uint8)


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
            :data:`DEFAULT_CLASS_MAP`).
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
    if class_map is None:
        cmap = dict(DEFAULT_CLASS_MAP)
    elif isinstance(class_map, (str, os.PathLike)):
        cmap = load_class_map(class_map)
    else:
        cmap = {int(k): _class_value(v, f"class_map[{k}]") for k, v in class_map.items()}
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
            log.bad(mp, f"{mp}: mask size {mask.shape[0]}x{mask.shape[1]} differs from image {ip} "
                        f"size {image.shape[0]}x{image.shape[1]}")
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
    normalizer, reference_desc, ref_tile = None, None, None
    if stain_norm != "none":  # built before dst is touched: a bad reference fails early
        ref: Any = None
        if stain_reference is not None:
            ref, reference_desc = str(stain_reference), str(stain_reference)
        else:
            first = next((g for g in good if split_of[g[0]] == "training"), None)
            if first is not None:
                img, _ = read_rgb(first[1])
                r, c = most_tissue_tile(img, tile, tile)
                ref = ref_tile = np.ascontiguousarray(img[r : r + tile, c : c + tile])
                reference_desc = {"image": first[0], "rows": [r, r + tile], "cols": [c, c + tile],
                                  "saved_as": "stain_reference.png"}
            else:
                reference_desc = "built-in"
        normalizer = get_stain_normalizer(stain_norm, reference=ref)
    dst = prepare_output_dir(dst, overwrite=overwrite, inputs=[images, masks], marker=PREPARE_MARKER)
    if ref_tile is not None:
        atomic_save_png(dst / "stain_reference.png", ref_tile)

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
            entry = {"image": f"{split}/images/{name}.png", "label": f"{split}/labels/{name}.png",
                     "name": name, "source": stem, "institution": inst}
            atomic_save_png(dst / entry["image"], np.ascontiguousarray(image[r : r + tile, c : c + tile]))
            atomic_save_png(dst / entry["label"], np.ascontiguousarray(lab))
            pixels[split] += np.bincount(lab.ravel(), minlength=256)
            splits[split].append(entry)
            kept += 1
        per_image[stem] = {"split": split, "institution": inst, "slide": slide_of(stem),
                           "shape": [int(image.shape[0]), int(image.shape[1])], "tiles": kept}

    write_datalist(dst, splits)
    names = {**{i: n for i, n in enumerate(CLASS_NAMES)}, IGNORE_VALUE: "ignore"}
    stain_report: dict[str, Any] = {"method": stain_norm}
    if normalizer is not None:
        stain_report.update(normalizer.describe())
        stain_report["reference"] = reference_desc
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
        "institutions": {
            s: sorted({inst for k, _, _, inst in good if split_of[k] == s}) for s in split_names
        },
        "tiles": {s: len(v) for s, v in splits.items()},
        "dropped_empty_tiles": dropped,
        "class_pixels": {
            s: {names.get(v, str(v)): int(n) for v, n in enumerate(pixels[s]) if n} for s in split_names
        },
        "stain_normalisation": stain_report,
        "conversions": conversions,
        "converted_files": converted_files,
        "skipped_files": log.report(),
        "per_image": per_image,
        "seconds": round(time.time() - t_start, 2),
    }
    atomic_write_json(dst / PREPARE_MARKER, report)  # last: it marks a complete folder written here
    return report
