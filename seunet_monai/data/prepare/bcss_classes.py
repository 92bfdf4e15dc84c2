"""BCSS annotation codes to the paper's five classes: :data:`DEFAULT_CLASS_MAP`, overridable with a JSON or TSV
file (:func:`load_class_map`), applied to a code mask by :func:`map_classes`.

Class mapping (:data:`DEFAULT_CLASS_MAP`)
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
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from seunet_monai.errors import PreparationError

__all__ = [
    "BCSS_CODES",
    "CLASS_NAMES",
    "IGNORE_VALUE",
    "DEFAULT_CLASS_MAP",
    "as_class_map",
    "load_class_map",
    "map_classes",
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


def as_class_map(value: Mapping[Any, Any] | str | os.PathLike | None = None) -> dict[int, int]:
    """The code -> class map of a preparation.

    Args:
        value: ``None`` (:data:`DEFAULT_CLASS_MAP`), a JSON or TSV file merged onto the default
            (:func:`load_class_map`), or a mapping code -> class (classes as integers or names).

    Raises:
        PreparationError: for a bad file or class value (naming it).
    """
    if value is None:
        return dict(DEFAULT_CLASS_MAP)
    if isinstance(value, (str, os.PathLike)):
        return load_class_map(value)
    return {int(k): _class_value(v, f"class_map[{k}]") for k, v in value.items()}
