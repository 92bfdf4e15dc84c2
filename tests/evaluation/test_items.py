"""Specification of ``seunet_monai.evaluation.items``: the test items of a split, their names and their checked
``(image, label)`` tensors."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, MetaTensor

from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item


def test_iterate_items_decollates_a_dataloader_and_passes_a_list_through():
    items = [{"image": torch.full((1, 2, 2), float(i))} for i in range(3)]
    assert list(iterate_items(items)) == items
    out = list(iterate_items(DataLoader(items, batch_size=2)))
    assert len(out) == 3 and [float(o["image"].mean()) for o in out] == [0.0, 1.0, 2.0]
    assert out[0]["image"].shape == (1, 2, 2)


def test_item_name_is_the_file_stem_else_a_numbered_name():
    image = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "/data/a.nii.gz"})
    assert item_name({"image": image}, "image", 3) == "a"
    assert item_name({"image_meta_dict": {"filename_or_obj": ["/d/b.png"]}}, "image", 0) == "b"
    assert item_name({"image": torch.zeros(1, 2, 2)}, "image", 7) == "image0007"


def test_prepare_item_returns_float_image_and_int64_label_with_a_channel():
    image = torch.zeros(3, 4, 5, dtype=torch.uint8)
    label = torch.tensor([[0.0, 1.0, 0.9, 0.2, 0.0]] * 4)
    img, lab = prepare_item({"image": image, "label": label}, "image", "label", 0)
    assert img.dtype == torch.float32 and img.shape == (3, 4, 5)
    assert lab.dtype == torch.int64 and lab.shape == (1, 4, 5) and lab[0, 0].tolist() == [0, 1, 1, 0, 0]


def test_prepare_item_names_missing_keys_and_mismatched_shapes():
    with pytest.raises(KeyError, match="test item 2"):
        prepare_item({"image": torch.zeros(1, 4, 4)}, "image", "label", 2)
    with pytest.raises(ValueError, match="same spatial size"):
        prepare_item({"image": torch.zeros(1, 4, 4), "label": torch.zeros(1, 4, 5)}, "image", "label", 0)
