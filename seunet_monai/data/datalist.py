"""The ``dataset_dir/datalist.json`` contract shared by the synthetic generator, the MoNuSeg/BCSS preparation
scripts and the bundle.

Layout::

    {
      "training":   [{"image": "images/a.png", "label": "labels/a.png"}, ...],
      "validation": [...],
      "test":       [...]
    }

All three keys are required (a split may be an empty list); paths are relative to ``dataset_dir`` (forward
slashes; an absolute path is accepted when reading but never written). Extra keys in an entry (e.g.
``"instance"`` or ``"name"``) are kept; the optional file key ``"instance"`` (annotated instance labels,
uint16 PNG) is made absolute like ``image`` and ``label``, the others are left as they are.
:func:`load_datalist` returns absolute paths, so the result can go straight into MONAI's
``LoadImaged``/``Dataset``. Every validation error is raised before a caller writes anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import nibabel
import tifffile
from monai.transforms import LoadImage
from PIL import Image

from seunet_monai.errors import DatalistError
from seunet_monai.runtime.files import atomic_write_json

__all__ = [
    "DATALIST_NAME",
    "SPLITS",
    "datalist_path",
    "datalist_exists",
    "write_datalist",
    "load_datalist",
    "image_size",
]

DATALIST_NAME = "datalist.json"
SPLITS = ("training", "validation", "test")
_ENTRY_KEYS = ("image", "label")
_OPTIONAL_FILE_KEYS = ("instance",)

PathLike = str | os.PathLike


def datalist_path(dataset_dir: PathLike) -> Path:
    """Path of the datalist file inside ``dataset_dir``."""
    return Path(dataset_dir) / DATALIST_NAME


def datalist_exists(dataset_dir: PathLike) -> bool:
    """Whether ``dataset_dir/datalist.json`` exists (a file; its content is not checked here)."""
    return datalist_path(dataset_dir).is_file()


def _relative(dataset_dir: Path, p: PathLike, where: str) -> str:
    p = Path(p)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(dataset_dir.resolve())
        except ValueError as e:
            raise DatalistError(f"{where}: {p} is not inside the dataset folder {dataset_dir}.") from e
    if ".." in p.parts:
        raise DatalistError(f"{where}: path {p} leaves the dataset folder {dataset_dir}.")
    return p.as_posix()


def write_datalist(dataset_dir: PathLike, splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """Write ``dataset_dir/datalist.json`` atomically.

    Args:
        dataset_dir: the dataset folder (created if missing).
        splits: mapping with keys among ``"training"``, ``"validation"``, ``"test"`` (a missing key is written
            as an empty list), each a sequence of entries with at least ``"image"`` and ``"label"``. Paths
            may be relative to ``dataset_dir`` or absolute inside it; they are stored relative, with ``/``.

    Returns:
        the path of the written ``datalist.json``.

    Raises:
        DatalistError: for an unknown split key, an entry without ``image``/``label``, or a path outside
            ``dataset_dir``.
    """
    dataset_dir = Path(dataset_dir)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise DatalistError(f"write_datalist: unknown split key(s) {unknown}; expected keys among {list(SPLITS)}.")
    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        entries = []
        for i, item in enumerate(splits.get(split, [])):
            where = f"write_datalist: {split}[{i}]"
            if not isinstance(item, Mapping):
                raise DatalistError(f"{where}: expected a mapping with 'image' and 'label', got {type(item).__name__}.")
            missing = [k for k in _ENTRY_KEYS if k not in item]
            if missing:
                raise DatalistError(f"{where}: entry lacks key(s) {missing}.")
            entry = dict(item)
            for k in _ENTRY_KEYS:
                entry[k] = _relative(dataset_dir, item[k], where)
            entries.append(entry)
        out[split] = entries
    return atomic_write_json(datalist_path(dataset_dir), out)


def image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header where the format allows it.

    Args:
        path: a PNG/JPEG/TIFF/NIfTI file (header only); other formats are read fully by MONAI's ``LoadImage``.

    Returns:
        ``(H, W)``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            with tifffile.TiffFile(str(path)) as tif:
                page = tif.pages[0]
                shape = page.shape
                axes = page.axes
            h, w = shape[axes.index("Y")], shape[axes.index("X")]
            return int(h), int(w)
        if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
            with Image.open(path) as img:
                w, h = img.size
            return int(h), int(w)
        if path.name.lower().endswith((".nii", ".nii.gz")):
            shape = nibabel.load(str(path)).shape  # header only; stored (x, y[, ...]) = (W, H[, ...])
            return int(shape[1]), int(shape[0])
        arr = LoadImage(image_only=True, ensure_channel_first=False)(str(path))
        # MONAI's readers give the spatial axes as (x, y) = (W, H), as its PIL reader does for a PNG
        return int(arr.shape[1]), int(arr.shape[0])
    except Exception as e:  # noqa: BLE001 - one clear error naming the file
        raise DatalistError(f"cannot read the size of {path}: {type(e).__name__}: {e}") from e


def load_datalist(
    dataset_dir: PathLike, check_files: bool = True, check_sizes: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Read and validate ``dataset_dir/datalist.json``.

    Args:
        dataset_dir: the dataset folder.
        check_files: check that every ``image`` and ``label`` file exists.
        check_sizes: also check that each image and its label have the same height and width (reads the
            file headers; implies ``check_files``).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; every entry is a copy of the stored one
        with ``image``, ``label`` and (when present) ``instance`` made absolute.

    Raises:
        FileNotFoundError: when ``dataset_dir`` or its ``datalist.json`` is missing.
        DatalistError: for invalid JSON, a top level that is not an object, missing or unknown split keys, a
            split that is not a list, an entry without ``image``/``label`` or with a non-string path, a
            missing file (the message names the file, the split and the index) or, with ``check_sizes``,
            an image and label of different sizes (the message names both files).
    """
    dataset_dir = Path(dataset_dir)
    path = datalist_path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {dataset_dir}")
    if not path.is_file():
        raise FileNotFoundError(f"no {DATALIST_NAME} in dataset folder {dataset_dir} (expected {path}).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatalistError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise DatalistError(f"{path}: expected a JSON object with keys {list(SPLITS)}, got {type(data).__name__}.")
    missing = [k for k in SPLITS if k not in data]
    unknown = sorted(k for k in data if k not in SPLITS)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing key(s) {missing}")
        if unknown:
            parts.append(f"unknown key(s) {unknown}")
        raise DatalistError(f"{path}: {' and '.join(parts)}; expected exactly the keys {list(SPLITS)}.")
    root = dataset_dir.resolve()
    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        items = data[split]
        if not isinstance(items, list):
            raise DatalistError(f"{path}: '{split}' must be a list of entries, got {type(items).__name__}.")
        entries = []
        for i, item in enumerate(items):
            where = f"{path}: {split}[{i}]"
            if not isinstance(item, dict):
                raise DatalistError(f"{where}: expected an object with 'image' and 'label', got {item!r}.")
            lacking = [k for k in _ENTRY_KEYS if k not in item]
            if lacking:
                raise DatalistError(f"{where}: entry lacks key(s) {lacking} (got keys {sorted(item)}).")
            entry = dict(item)
            for k in (*_ENTRY_KEYS, *(k for k in _OPTIONAL_FILE_KEYS if k in item)):
                v = item[k]
                if not isinstance(v, str) or not v:
                    raise DatalistError(f"{where}: '{k}' must be a non-empty path string, got {v!r}.")
                p = Path(v)
                absolute = p if p.is_absolute() else root / p
                if (check_files or check_sizes) and not absolute.is_file():
                    raise DatalistError(f"{where}: {k} file not found: {absolute}")
                entry[k] = str(absolute)
            if check_sizes:
                si, sl = image_size(entry["image"]), image_size(entry["label"])
                if si != sl:
                    raise DatalistError(
                        f"{where}: image {entry['image']} has size {si[0]}x{si[1]} but label {entry['label']} "
                        f"has size {sl[0]}x{sl[1]} (H x W)."
                    )
            entries.append(entry)
        out[split] = entries
    return out
