"""Specification of ``seunet_monai.handlers.metrics``: the dataset-wide IoU of fused per-head probabilities."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.fusion import fuse
from seunet_monai.handlers import dataset_iou, fused_output_transform, fusion_iou_metrics


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
