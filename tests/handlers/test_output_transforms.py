"""Specification of ``seunet_monai.handlers.output_transforms``: display helpers and the trainer's loss."""

from __future__ import annotations

import torch

from seunet_monai.handlers import display_batch_transform, display_output_transform, loss_from_output


def test_display_transforms_are_in_unit_range():
    pred = torch.softmax(torch.randn(2, 3, 5, 6), dim=1)
    items = [{"image": torch.rand(3, 5, 6), "label": torch.tensor([[0, 2, 255]]).repeat(5, 2)[None], "pred": pred}]
    images, labels = display_batch_transform(3)(items)
    assert images[0].shape == (3, 5, 6) and labels[0].shape == (1, 5, 6)
    assert labels[0].min() >= 0 and labels[0].max() <= 1 and labels[0][0, 0, 1] == 1.0
    out = display_output_transform("pens")(items)
    assert out[0].shape == (1, 5, 6) and out[0].min() >= 0 and out[0].max() <= 1
    assert loss_from_output({"loss": 3}) == 3 and loss_from_output([{"loss": 4}]) == 4
