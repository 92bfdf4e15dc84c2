"""Specification of ``seunet_monai.engine_utils``: per-head inferer, fused metrics, display helpers, mask saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from PIL import Image

from seunet_monai.engine_utils import (
    HeadsInferer,
    SaveLabelMaskd,
    dataset_iou,
    display_batch_transform,
    display_output_transform,
    fused_output_transform,
    fusion_iou_metrics,
    head_probabilities,
    loss_from_output,
)
from seunet_monai.fusion import fuse


class _Heads(torch.nn.Module):
    """Pointwise 2-head network: ``forward_heads`` gives (B, 2, 2, H, W) logits."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward_heads(self, x):
        return self.conv(x).reshape(x.shape[0], 2, 2, *x.shape[2:])

    def forward(self, x):
        return self.forward_heads(x)


def test_head_probabilities_for_multi_head_and_plain_networks():
    x = torch.rand(2, 3, 8, 8)
    net = _Heads()
    p = head_probabilities(net, x)
    assert p.shape == (2, 2, 2, 8, 8)
    torch.testing.assert_close(p.sum(2), torch.ones(2, 2, 8, 8))
    plain = torch.nn.Conv2d(3, 3, 1)
    q = head_probabilities(plain, x)
    assert q.shape == (2, 1, 3, 8, 8)


def test_heads_inferer_with_sliding_window_matches_whole_image():
    torch.manual_seed(0)
    net = _Heads().eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        whole = HeadsInferer()(x, net)
        windows = HeadsInferer(SlidingWindowInferer(roi_size=(8, 8), overlap=0.25))(x, net)
    assert windows.shape == whole.shape == (1, 2, 2, 20, 28)
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)  # pointwise net: windows change nothing
    # an image smaller than the window is not padded up to it: the network sees it whole
    seen = []
    net.conv.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    with torch.no_grad():
        HeadsInferer(SlidingWindowInferer(roi_size=(32, 32)))(x, net)
    assert seen == [(1, 3, 20, 28)]


def test_fused_output_transform_and_dataset_iou_on_hand_counts():
    # one image, 2 heads, 2 classes, 1x4 pixels; head 1 says [0, 1, 1, 1], head 2 says [0, 0, 1, 1] (weaker)
    h1 = torch.tensor([[0.9, 0.1, 0.1, 0.1], [0.1, 0.9, 0.9, 0.9]]).reshape(2, 1, 4)
    h2 = torch.tensor([[0.8, 0.6, 0.4, 0.4], [0.2, 0.4, 0.6, 0.6]]).reshape(2, 1, 4)
    pred = torch.stack([h1, h2])  # (Ω, C, 1, 4)
    label = torch.tensor([0, 0, 1, 255]).reshape(1, 1, 4)
    items = [{"pred": pred, "label": label}]
    scores, lab = fused_output_transform("mean")(items)
    torch.testing.assert_close(scores, fuse(pred[None], "mean"))
    assert lab.shape == (1, 1, 1, 4)
    metrics = fusion_iou_metrics(2, strategies=("mean", "head:2"), prefix="m", ignore_index=255)
    assert sorted(metrics) == ["m_head2", "m_mean"]
    # compute directly: mean predicts [0, 1, 1, 1] -> pixel 3 ignored: TP=1 (px 2), FP=1 (px 1) -> IoU 1/2
    metric = dataset_iou(2, fused_output_transform("mean"), ignore_index=255)
    metric.reset()
    metric.metric_fn(*fused_output_transform("mean")(items))
    assert float(metric.metric_fn.aggregate()) == pytest.approx(0.5)
    metric.reset()
    metric.metric_fn(*fused_output_transform("head:2")(items))
    assert float(metric.metric_fn.aggregate()) == pytest.approx(1.0)  # head 2: [0, 0, 1, 1] -> perfect
    with pytest.raises(ValueError):
        dataset_iou(1)


def test_display_transforms_are_in_unit_range():
    pred = torch.softmax(torch.randn(2, 3, 5, 6), dim=1)
    items = [{"image": torch.rand(3, 5, 6), "label": torch.tensor([[0, 2, 255]]).repeat(5, 2)[None], "pred": pred}]
    images, labels = display_batch_transform(3)(items)
    assert images[0].shape == (3, 5, 6) and labels[0].shape == (1, 5, 6)
    assert labels[0].min() >= 0 and labels[0].max() <= 1 and labels[0][0, 0, 1] == 1.0
    out = display_output_transform("pens")(items)
    assert out[0].shape == (1, 5, 6) and out[0].min() >= 0 and out[0].max() <= 1
    assert loss_from_output({"loss": 3}) == 3 and loss_from_output([{"loss": 4}]) == 4


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
