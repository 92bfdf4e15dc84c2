"""Specification of ``seunet_monai.transforms.post``: saving predicted masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from seunet_monai.transforms.post import SaveLabelMaskd


def test_save_label_maskd_writes_mask_and_probabilities(tmp_path):
    probs = torch.softmax(torch.randn(2, 5, 7), 0)
    image = MetaTensor(torch.zeros(3, 5, 7), meta={"filename_or_obj": "/somewhere/slide_01.tif"})
    SaveLabelMaskd("pred", tmp_path, save_probabilities=True)({"pred": probs, "image": image})
    mask = np.asarray(Image.open(tmp_path / "slide_01.png"))
    np.testing.assert_array_equal(mask, probs.argmax(0).numpy())
    import tifffile

    np.testing.assert_allclose(tifffile.imread(tmp_path / "slide_01_prob.tif"), probs.numpy(), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slide_01.png", "slide_01_prob.tif"]
    with pytest.raises(ValueError, match="filename_or_obj"):
        SaveLabelMaskd("pred", tmp_path)({"pred": probs, "image": torch.zeros(3, 5, 7)})
