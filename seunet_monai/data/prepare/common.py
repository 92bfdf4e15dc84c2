"""What the dataset preparations (:mod:`~seunet_monai.data.prepare.monuseg`, :mod:`~seunet_monai.data.prepare.bcss`)
share: tiling, the validation split, the bad-file log, image reading and the stain normalisation's reference.

Tiling rule (both datasets): tile origins along one axis are ``0, stride, 2 * stride, ...`` while the tile fits;
when the last of them does not reach the border, one more tile flush with the border (origin
``length - tile``) is added, so every pixel is covered and every tile has the full size. A 1000-pixel side with
tile 400 and stride 200 gives origins 0, 200, 400, 600 (4 per axis, 16 tiles); 1100 gives 0, 200, 400, 600, 700.
An image smaller than the tile in either dimension is refused (:class:`PreparationError`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.utils import dense_patch_slices

from seunet_monai.data.io import describe_conversion, read_rgb
from seunet_monai.data.stain.estimation import tissue_mask
from seunet_monai.data.stain.normalizers import StainNormalizer, get_stain_normalizer
from seunet_monai.errors import PreparationError

__all__ = [
    "PREPARE_MARKER",
    "tile_starts",
    "tile_boxes",
    "most_tissue_tile",
    "pick_validation",
    "BadFileLog",
    "record_conversion",
    "read_image",
    "STAIN_REFERENCE_TILE",
    "stain_normalizer",
    "stain_report",
]


PREPARE_MARKER = "prepare_report.json"
"""Written last into every dataset folder a preparation script produces: ``--overwrite`` only ever empties a
folder that holds it (see :func:`seunet_monai.runtime.files.prepare_output_dir`)."""
STAIN_REFERENCE_TILE = "stain_reference.png"
"""The training tile used as the stain normalisation's reference, saved in the dataset folder."""


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Origins of the tiles along one axis (see the module docstring for the rule).

    Args:
        length: image size along the axis.
        tile: tile size.
        stride: step between tile origins.

    Returns:
        sorted list of origins; every origin ``s`` satisfies ``0 <= s <= length - tile``.

    Raises:
        ValueError: for non-positive ``tile``/``stride`` or ``length < tile``.
    """
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}.")
    if length < tile:
        raise ValueError(f"image side {length} is smaller than the tile size {tile}.")
    if stride <= tile:  # MONAI's dense_patch_slices gives exactly this rule when tiles touch or overlap
        return [int(sl[0].start) for sl in dense_patch_slices((length,), (tile,), (stride,))]
    # with gaps between tiles (stride > tile) dense_patch_slices stops at the first tile reaching past the last
    # stride and may drop the tile flush with the border (1000 px, tile 400, stride 500: only origin 0, where this
    # rule gives 0, 500, 600); keep ours there (tests/data/prepare/test_common.py compares the two)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tile_boxes(shape: Sequence[int], tile: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(row, col)`` of the tiles of an image of ``shape`` ``(H, W, ...)``, row-major."""
    return [(r, c) for r in tile_starts(int(shape[0]), tile, stride) for c in tile_starts(int(shape[1]), tile, stride)]


def most_tissue_tile(image: np.ndarray, tile: int, stride: int) -> tuple[int, int]:
    """Top-left corner of the tile (of :func:`tile_boxes`) with the most tissue pixels (first one on ties).

    Used as the default stain-normalisation reference: a fixed, tissue-rich training tile.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        tile: tile size.
        stride: tile stride.
    """
    boxes = tile_boxes(image.shape, tile, stride)
    tissue = tissue_mask(image)
    counts = [int(tissue[r : r + tile, c : c + tile].sum()) for r, c in boxes]
    return boxes[int(np.argmax(counts))]


def pick_validation(names: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Choose the validation members of a group of names (whole images or slides), deterministically.

    ``round(fraction * n)`` names are drawn with ``numpy.random.RandomState(seed)`` from the sorted names; at
    least one is drawn when ``fraction > 0`` and ``n >= 2``, and at least one name is always left for training.

    Args:
        names: candidate names (duplicates ignored).
        fraction: validation fraction in ``[0, 1)``.
        seed: random seed.

    Returns:
        the set of validation names.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}.")
    uniq = sorted(set(names))
    n = len(uniq)
    if n < 2 or fraction == 0.0:
        return set()
    n_val = min(n - 1, max(1, int(round(fraction * n))))
    order = np.random.RandomState(seed).permutation(n)
    return {uniq[i] for i in order[:n_val]}


class BadFileLog:
    """Collects bad input files: raises at once unless ``skip_bad``, else records them for the report."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.items: list[dict[str, str]] = []

    def bad(self, path: str | os.PathLike, message: str) -> None:
        """Report a bad file: raise :class:`PreparationError` or (``skip_bad``) record it and warn on stderr.

        Args:
            path: the bad file.
            message: what is wrong; should name the file (it is used as the error message).
        """
        if not self.skip_bad:
            raise PreparationError(message + " (use --skip-bad to skip such files)")
        print(f"skipping: {message}", file=sys.stderr)
        self.items.append({"file": str(Path(path)), "reason": message})

    def report(self) -> list[dict[str, Any]]:
        """The recorded files, for ``prepare_report.json``."""
        return list(self.items)


def record_conversion(
    path: str | os.PathLike, info: dict[str, Any], counts: dict[str, int], files: list[dict[str, str]]
) -> str | None:
    """Record (for the report) and print (on stderr) what :func:`seunet_monai.data.io.read_rgb` did to an image.

    Args:
        path: the image file.
        info: the ``info`` returned by ``read_rgb``.
        counts: ``{conversion: number of files}``, updated.
        files: ``[{"file", "conversion"}, ...]``, appended to.

    Returns:
        the one-line description, ``None`` when the image was used as stored.
    """
    desc = describe_conversion(info)
    if desc is not None:
        counts[desc] = counts.get(desc, 0) + 1
        files.append({"file": str(path), "conversion": desc})
        print(f"converted {path}: {desc}", file=sys.stderr)
    return desc


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`seunet_monai.data.io.read_rgb`, with an unreadable file as a :class:`PreparationError` naming it."""
    try:
        return read_rgb(path)
    except (OSError, ValueError) as e:
        raise PreparationError(f"{path}: unreadable image ({e}).") from e


def stain_normalizer(
    stain_norm: str,
    stain_reference: str | os.PathLike | None,
    first_training: tuple[str, Path] | None,
    tile: int,
    stride: int,
) -> tuple[StainNormalizer | None, Any, np.ndarray | None]:
    """The stain normaliser of a preparation and its reference.

    The reference is ``stain_reference`` when given, else the tile (of :func:`tile_boxes`) with the most tissue
    of the first training image, else (no training image) the built-in reference.

    Args:
        stain_norm: a method of :data:`~seunet_monai.data.stain.normalizers.STAIN_METHODS` (``"none"``: no
            normaliser).
        stain_reference: a reference image, or ``None``.
        first_training: ``(name, path)`` of the first training image, or ``None``.
        tile: tile size.
        stride: tile stride.

    Returns:
        ``(normalizer, reference description for the report, reference tile or None)``; the tile, when it is the
        reference, is to be saved as :data:`STAIN_REFERENCE_TILE`.
    """
    if stain_norm == "none":
        return None, None, None
    ref_image: Any = None
    ref_tile = None
    reference_desc: Any = "built-in"
    if stain_reference is not None:
        reference_desc = ref_image = str(stain_reference)
    elif first_training is not None:
        name, path = first_training
        img, _ = read_image(path)
        r, c = most_tissue_tile(img, tile, stride)
        ref_image = ref_tile = np.ascontiguousarray(img[r : r + tile, c : c + tile])
        reference_desc = {"image": name, "rows": [r, r + tile], "cols": [c, c + tile], "saved_as": STAIN_REFERENCE_TILE}
    normalizer = get_stain_normalizer(stain_norm, reference=ref_image)
    if ref_tile is not None:  # name the training tile, not "array", in stain_reference.json
        normalizer.reference_name = f"{name} rows {r}:{r + tile} cols {c}:{c + tile} ({STAIN_REFERENCE_TILE})"
    return normalizer, reference_desc, ref_tile


def stain_report(stain_norm: str, normalizer: StainNormalizer | None, reference_desc: Any) -> dict[str, Any]:
    """The ``stain_normalisation`` entry of ``prepare_report.json``: method, fitted target, fallbacks, reference."""
    report: dict[str, Any] = {"method": stain_norm}
    if normalizer is not None:
        report.update(normalizer.describe())
        report["reference"] = reference_desc
    return report
