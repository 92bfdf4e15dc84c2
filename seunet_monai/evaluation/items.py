"""The test / validation items the scale sweep and the calibration read: iterate a split, name an item, check it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from monai.data import decollate_batch
from monai.utils import convert_to_tensor

from seunet_monai.data.volumes import volume_stem

__all__ = ["item_name", "iterate_items", "prepare_item"]


def iterate_items(dataset: Any) -> Iterable[Mapping[str, Any]]:
    """The items of a split one by one: those of a sequence / iterable of dicts, or a ``DataLoader``'s batches
    decollated."""
    if isinstance(dataset, torch.utils.data.DataLoader):
        for batch in dataset:
            yield from decollate_batch(batch)
    else:
        yield from dataset


def item_name(item: Mapping[str, Any], key: str, index: int) -> str:
    """The base name of the item's ``key`` file (``meta["filename_or_obj"]``, without its extensions: ``a.nii.gz``
    -> ``a``), else ``image<index>``."""
    meta = getattr(item.get(key), "meta", None) or item.get(f"{key}_meta_dict") or {}
    name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    return volume_stem(str(name)) if name else f"image{index:04d}"  # a.nii.gz -> a


def prepare_item(
    item: Mapping[str, Any], image_key: str, label_key: str, index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image (C, *spatial) float, label (1, *spatial) int64)`` of one test item, checked.

    Raises:
        KeyError: a key is missing.
        ValueError: image and label do not match.
    """
    if image_key not in item or label_key not in item:
        raise KeyError(
            f"test item {index}: expected keys {image_key!r} and {label_key!r}, found {sorted(map(str, item))}."
        )
    image = convert_to_tensor(item[image_key], track_meta=False)
    label = convert_to_tensor(item[label_key], track_meta=False)
    if not image.is_floating_point():
        image = image.float()
    if label.ndim == image.ndim - 1:
        label = label.unsqueeze(0)
    if label.ndim != image.ndim or label.shape[0] != 1 or label.shape[1:] != image.shape[1:]:
        raise ValueError(
            f"test item {index}: image {tuple(image.shape)} and label {tuple(label.shape)} must be (C, *spatial) "
            "and (1, *spatial) of the same spatial size."
        )
    return image, label.round().long() if label.is_floating_point() else label.long()
