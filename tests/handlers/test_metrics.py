"""Specification of ``seunet_monai.handlers.metrics``: the dataset-wide IoU of fused per-head probabilities."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.fusion.strategies import fuse
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


def _ignite_iou(scores, labels, num_classes):
    from ignite.metrics import ConfusionMatrix, IoU

    cm = ConfusionMatrix(num_classes=num_classes)
    iou = IoU(cm)
    iou.reset()
    cm.reset()
    for s, y in zip(scores, labels):
        cm.update((s, y[:, 0]))
    return iou.compute()


def _ours(scores, labels, num_classes, ignore_index):
    from seunet_monai.metrics import ConfusionIoU

    metric = ConfusionIoU(num_classes, ignore_index=ignore_index)
    for s, y in zip(scores, labels):
        metric(s, y)
    return float(metric.aggregate())


@pytest.mark.parametrize("num_classes", [2, 4])
def test_ignite_iou_agrees_when_every_class_is_present(num_classes):
    """Ignite's ConfusionMatrix + IoU give the same dataset-wide IoU (ignored label values dropped by both)."""
    g = torch.Generator().manual_seed(num_classes)
    scores = [torch.rand(2, num_classes, 8, 8, generator=g) for _ in range(3)]
    labels = [torch.randint(0, num_classes, (2, 1, 8, 8), generator=g) for _ in range(3)]
    labels[0][0, 0, :2] = 255  # ignore_index
    per_class = _ignite_iou(scores, labels, num_classes)
    expected = float(per_class[1]) if num_classes == 2 else float(per_class.mean())
    assert _ours(scores, labels, num_classes, 255) == pytest.approx(expected, abs=1e-6)


def test_ignite_iou_counts_an_absent_class_as_zero_where_ours_leaves_it_out():
    scores = [torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 2]]), 4).permute(0, 2, 1).float()[..., None]]
    labels = [torch.tensor([[0, 1, 2, 2]]).reshape(1, 1, 4, 1)]  # class 3 neither predicted nor labelled
    ignite = _ignite_iou(scores, labels, 4)
    assert float(ignite[3]) == 0.0
    assert _ours(scores, labels, 4, None) == pytest.approx(float(ignite[:3].mean()))
    assert float(ignite.mean()) < _ours(scores, labels, 4, None)
