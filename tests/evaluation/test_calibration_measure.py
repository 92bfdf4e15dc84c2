"""Specification of ``seunet_monai.evaluation.calibration_measure``: one (image, scale) pass gives the rescaled
per-head probabilities, label, signature and confusion counts; the profile is the IoU of the counts summed over the
images and the mean signature where finite; images within the sweep's budget are predicted whole."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.evaluation.calibration_measure import calibration_inferer, measure_heads, profile_from_measurements
from seunet_monai.evaluation.heads import output_heads_mode
from tests.scale_heads import ScaleBandHeads, disk_items


def test_one_pass_gives_the_rescaled_heads_label_signature_and_counts() -> None:
    net, item = ScaleBandHeads(radii=(3.0, 6.0, 12.0)), disk_items(1.0, 1, size=48)[0]
    with output_heads_mode(net):
        probs, label, signature, confusion = measure_heads(net, item["image"], item["label"], 2.0, 2)
    assert probs.shape == (3, 2, 96, 96) and label.shape == (96, 96) and signature.shape == (9,)
    assert confusion.shape == (3, 2, 4) and confusion[..., [0, 3]].sum(-1)[:, 1].tolist() == [float(label.sum())] * 3


def test_the_profile_means_each_signature_component_where_it_is_finite() -> None:
    nan = float("nan")
    signature = torch.tensor([[[1.0, nan, nan]], [[3.0, 2.0, nan]]])  # (N=2, P=1, 3)
    confusion = torch.tensor(
        [[[[[5.0, 0, 5, 0], [3, 1, 5, 1]]]], [[[[5.0, 0, 5, 0], [1, 0, 8, 1]]]]]
    )  # (2, 1, 1, 2, 4)
    iou, sig = profile_from_measurements(confusion, signature)
    assert iou.tolist() == [[pytest.approx(4 / 7)]]  # class 1 of the summed counts: TP 4, FP 1, FN 2
    assert sig[0, :2].tolist() == [2.0, 2.0] and torch.isnan(sig[0, 2])


def test_images_within_the_sweeps_budget_are_predicted_whole() -> None:
    assert calibration_inferer((64, 64)) is None
    assert calibration_inferer((64, 64), roi_size=32).roi_size == (32, 32)
    assert calibration_inferer((4096, 4096)).roi_size[0] < 4096  # the sweep's windows
