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


def test_monai_save_image_writes_the_same_mask_transposed(tmp_path):
    """MONAI's SaveImage (PILWriter) gives the same class ids, but in (W, H) order for an input loaded with
    PILReader(reverse_indexing=False), and writes in place (not atomically): why SaveLabelMaskd is ours."""
    from monai.transforms import SaveImage

    probs = torch.softmax(torch.randn(2, 5, 7), 0)
    image = MetaTensor(torch.zeros(3, 5, 7), meta={"filename_or_obj": "/somewhere/slide_01.tif"})
    SaveLabelMaskd("pred", tmp_path / "ours")({"pred": probs, "image": image})
    mask = MetaTensor(probs.argmax(0, keepdim=True).to(torch.uint8), meta={"filename_or_obj": "/somewhere/slide_01.tif"})
    SaveImage(output_dir=str(tmp_path / "monai"), output_ext=".png", output_postfix="", separate_folder=False,
              output_dtype=np.uint8, scale=None, resample=False, writer="PILWriter")(mask)
    ours = np.asarray(Image.open(tmp_path / "ours" / "slide_01.png"))
    monai = np.asarray(Image.open(tmp_path / "monai" / "slide_01.png"))
    assert ours.shape == (5, 7) and monai.shape == (7, 5)
    np.testing.assert_array_equal(monai.T, ours)
