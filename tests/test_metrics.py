"""Specification of the dataset-wide IoU and the equivariance error (eq. 10, 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_iou, get_confusion_matrix

from seunet_monai.metrics import (
    ConfusionIoU,
    SegmentationScores,
    confusion_counts,
    dataset_iou,
    masked_onehot,
    reduce_class_scores,
    scale_correlation,
)


def _img(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows).view(1, 1, len(rows), len(rows[0]))


# binary case: image A has a big nucleus predicted perfectly, image B a tiny nucleus missed and 1 FP pixel
LAB_A = _img([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
PRED_A = LAB_A.clone()
LAB_B = _img([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
PRED_B = _img([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_binary_dataset_iou_against_hand_counts() -> None:
    s = SegmentationScores(num_classes=2)
    s.update(PRED_A, LAB_A)
    s.update(PRED_B, LAB_B)
    # class 1 over both images: TP = 8, FP = 1, FN = 1 -> 8 / 10
    r = s.compute()
    assert r["iou"] == pytest.approx(0.8)
    # per image: A -> 1.0, B -> 0 / 2 = 0.0 ; mean 0.5 (differs from the dataset-wide score)
    assert r["iou_per_image"] == pytest.approx(0.5)
    assert r["dice"] == pytest.approx(0.5)  # A: 1, B: 0
    assert r["num_images"] == 2
    assert r["iou"] != pytest.approx(r["iou_per_image"])


def test_dataset_iou_of_summed_counts_is_the_accumulated_score_for_any_leading_shape() -> None:
    counts = confusion_counts(torch.cat([PRED_A, PRED_B]), torch.cat([LAB_A, LAB_B]), 2)  # (2, C, 4) per image
    assert float(dataset_iou(counts.sum(0))) == pytest.approx(0.8)  # TP 8, FP 1, FN 1
    assert dataset_iou(counts).tolist() == pytest.approx([1.0, 0.0])  # one IoU per leading index
    lab, pred = _img([[0, 0, 1, 1], [2, 2, 255, 255]]), _img([[0, 1, 1, 1], [2, 0, 2, 1]])
    s = SegmentationScores(num_classes=3, ignore_index=255)
    s.update(pred, lab)
    assert float(dataset_iou(confusion_counts(pred, lab, 3, 255)[0], 255)) == s.compute()["iou"]


def test_confusion_iou_metric_matches_and_accumulates() -> None:
    m = ConfusionIoU(num_classes=2)
    m(PRED_A, LAB_A)
    m([PRED_B[0]], [LAB_B[0]])  # decollated list form, no batch dimension
    assert m.aggregate().item() == pytest.approx(0.8)
    m.reset()
    m(PRED_B, LAB_B)
    assert m.aggregate().item() == pytest.approx(0.0)


def test_confusion_iou_accepts_scores_and_onehot() -> None:
    scores = torch.cat([1 - PRED_A, PRED_A], 1).float() * 0.7 + 0.15  # (1, 2, H, W) class scores
    onehot_label = torch.cat([1 - LAB_A, LAB_A], 1)
    m = ConfusionIoU(num_classes=2)
    m(scores, onehot_label)
    assert m.aggregate().item() == pytest.approx(1.0)


def test_multiclass_with_ignore_value_against_hand_counts() -> None:
    lab = _img([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = _img([[0, 1, 1, 1], [2, 0, 2, 1]])
    # ignored pixels (label 255) are dropped, whatever was predicted there.
    # class 0: TP 1 (0,0), FP 1 (1,1), FN 1 (0,1) -> 1/3
    # class 1: TP 2, FP 1 (0,1), FN 0 -> 2/3
    # class 2: TP 1, FP 0, FN 1 -> 1/2
    s = SegmentationScores(num_classes=3, ignore_index=255)
    s.update(pred, lab)
    assert s.per_class_iou().tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert s.compute()["iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    m = ConfusionIoU(num_classes=3, ignore_index=255)
    m(pred, lab)
    assert m.aggregate().item() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_ignore_value_that_is_a_class_is_left_out_of_the_mean() -> None:
    lab = _img([[0, 1, 2, 2]])
    pred = _img([[1, 1, 2, 0]])
    # pixel with label 0 ignored; class 1: TP1 FP0 FN0 ->1 ; class 2: TP1 FN1 -> 1/2 ; mean of classes 1, 2
    s = SegmentationScores(num_classes=3, ignore_index=0)
    s.update(pred, lab)
    assert s.compute()["iou"] == pytest.approx(0.75)


def test_absent_class_is_left_out_not_counted_as_zero() -> None:
    lab = _img([[0, 0, 1, 1]])
    pred = _img([[0, 0, 1, 1]])
    s = SegmentationScores(num_classes=3)  # class 2 never appears
    s.update(pred, lab)
    assert math.isnan(s.per_class_iou()[2].item())
    assert s.compute()["iou"] == pytest.approx(1.0)
    b = SegmentationScores(num_classes=2)
    b.update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert math.isnan(b.compute()["iou"])  # binary: no foreground anywhere -> undefined


def test_bad_label_values_error() -> None:
    with pytest.raises(ValueError, match=r"label values must lie in \[0, 2\)"):
        masked_onehot(_img([[0, 1]]), _img([[0, 5]]), num_classes=2)
    with pytest.raises(ValueError, match="same batch and spatial shape"):
        masked_onehot(_img([[0, 1]]), _img([[0, 1, 1]]), num_classes=2)


def test_usable_as_ignite_key_metric() -> None:
    from ignite.engine import Engine
    from monai.handlers import IgniteMetricHandler, from_engine

    batches = [{"pred": [PRED_A[0]], "label": [LAB_A[0]]}, {"pred": [PRED_B[0]], "label": [LAB_B[0]]}]
    engine = Engine(lambda e, b: b)
    handler = IgniteMetricHandler(
        metric_fn=ConfusionIoU(num_classes=2), output_transform=from_engine(["pred", "label"])
    )
    handler.attach(engine, "val_iou")
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["val_iou"] == pytest.approx(0.8)


@pytest.mark.parametrize("num_classes, ignore_index", [(2, None), (2, 255), (3, 255), (4, 0)])
def test_confusion_counts_and_per_image_scores_equal_monais(num_classes: int, ignore_index: int | None) -> None:
    g = torch.Generator().manual_seed(num_classes)
    label = torch.randint(0, num_classes, (3, 1, 17, 13), generator=g)
    label[1][label[1] == num_classes - 1] = 0  # one image without the last class: per-image nan (ignore_empty)
    if ignore_index is not None:
        label[torch.rand(label.shape, generator=g) < 0.2] = ignore_index
    pred = torch.randn(3, num_classes, 17, 13, generator=g)  # scores: argmax over C
    p_oh, y_oh = masked_onehot(pred, label, num_classes, ignore_index)
    expected = get_confusion_matrix(p_oh, y_oh, include_background=True)
    assert torch.equal(confusion_counts(pred, label, num_classes, ignore_index), expected.double())
    scores = SegmentationScores(num_classes, ignore_index)
    scores.update(pred, label)
    iou = reduce_class_scores(compute_iou(p_oh, y_oh, include_background=True, ignore_empty=True), ignore_index)
    dice = reduce_class_scores(compute_dice(p_oh, y_oh, include_background=True, ignore_empty=True), ignore_index)
    assert np.allclose(scores.image_iou, iou.tolist(), equal_nan=True)
    assert np.allclose(scores.image_dice, dice.tolist(), equal_nan=True)


def test_scale_correlation_of_estimates_with_the_true_scales() -> None:
    scales = [0.5, 1.0, 2.0]
    c = scale_correlation(np.array([[0.5, 1.0, 2.0], [0.5, 1.0, 2.0]]), scales)
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(1.0) and c["num_pairs"] == 6
    assert scale_correlation(np.array([[2.0, 1.0, 0.5]]), scales)["spearman"] == pytest.approx(-1.0)
    constant = scale_correlation(np.ones((2, 3)), scales)  # e.g. one head: every estimate the same
    assert math.isnan(constant["spearman"]) and math.isnan(constant["pearson"])
