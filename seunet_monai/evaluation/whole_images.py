"""The images of a split, whole: tiles written by the preparation scripts put back together.

The preparation scripts cut an image into tiles named ``<source>_r<row>_c<col>`` (items with ``source`` and
``name``); :func:`whole_images` yields consecutive tiles of one source as the image they cover, so that work done
per image (the calibration of the ``"scale"`` fusion) does not repeat the pixels overlapping tiles share. Tiles
that leave holes (e.g. tiles dropped as empty) and other items come as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.layers.rescale import scaled_size

__all__ = ["WholeImage", "whole_images"]

_TILE_NAME = r"_r(\d+)_c(\d+)"


@dataclass
class WholeImage:
    """One image of a split: ``image (C, *spatial)`` float, ``label (1, *spatial)`` int64, and how many items
    (tiles) it was put together from."""

    name: str
    image: torch.Tensor
    label: torch.Tensor
    tiles: int = 1

    def pixels(self, scales: Sequence[float]) -> int:
        """Pixels of this image rescaled to each of ``scales``, summed (:func:`~seunet_monai.layers.rescale.scaled_size`)."""
        return sum(math.prod(scaled_size(self.image.shape[1:], s)) for s in scales)


def _tile_origin(item: Mapping[str, Any], name: str, image: torch.Tensor) -> tuple[str, int, int] | None:
    """``(source, row, col)`` of a 2D tile named ``<source>_r<row>_c<col>``, else ``None``."""
    source = item.get("source")
    if not isinstance(source, str) or not source or image.ndim != 3:
        return None
    match = re.fullmatch(re.escape(source) + _TILE_NAME, name)
    return None if match is None else (source, int(match[1]), int(match[2]))


def _stitch(source: str, tiles: list[tuple[str, int, int, torch.Tensor, torch.Tensor]]) -> list[WholeImage]:
    """The image the tiles cover, or the tiles as they are when they leave holes."""
    height = max(r + img.shape[1] for _, r, _, img, _ in tiles)
    width = max(c + img.shape[2] for _, _, c, img, _ in tiles)
    covered = torch.zeros(height, width, dtype=torch.bool)
    for _, r, c, img, _ in tiles:
        covered[r : r + img.shape[1], c : c + img.shape[2]] = True
    if not bool(covered.all()):
        return [WholeImage(name, img, lab) for name, _, _, img, lab in tiles]
    image = torch.zeros(tiles[0][3].shape[0], height, width, dtype=tiles[0][3].dtype)
    label = torch.zeros(1, height, width, dtype=tiles[0][4].dtype)
    for _, r, c, img, lab in tiles:
        image[:, r : r + img.shape[1], c : c + img.shape[2]] = img
        label[:, r : r + img.shape[1], c : c + img.shape[2]] = lab
    return [WholeImage(source, image, label, len(tiles))]


def whole_images(data: Any, image_key: str = "image", label_key: str = "label") -> Iterator[WholeImage]:
    """The images of a split, whole: consecutive 2D tiles of one ``source`` named ``<source>_r<row>_c<col>`` are put
    back together when they cover their image; other items come as they are.

    Args:
        data: the split: dicts with ``image_key`` ``(C, *spatial)`` and ``label_key`` ``(1, *spatial)`` (a
            ``monai.data.Dataset``, a list, or a ``DataLoader`` whose batches are decollated).
        image_key: image key of the items.
        label_key: label key of the items.
    """
    source, pending = "", []  # the tiles of the current source, in order
    for index, item in enumerate(iterate_items(data)):
        image, label = prepare_item(item, image_key, label_key, index)
        name = item.get("name") if isinstance(item.get("name"), str) else item_name(item, image_key, index)
        origin = _tile_origin(item, name, image)
        if pending and (origin is None or origin[0] != source):
            yield from _stitch(source, pending)
            pending = []
        if origin is None:
            yield WholeImage(name, image, label)
        else:
            source = origin[0]
            pending.append((name, origin[1], origin[2], image, label))
    if pending:
        yield from _stitch(source, pending)
