"""Specification of ``seunet_monai.evaluation.pretrained``: the nucleus IoU used to check the shipped model."""

from __future__ import annotations

import math

import numpy as np

from seunet_monai.evaluation.pretrained import nucleus_iou


def test_nucleus_iou_is_class_one_intersection_over_union():
    pred = np.array([[1, 1, 0], [0, 2, 0]])
    label = np.array([[1, 0, 0], [1, 1, 0]])
    assert nucleus_iou(pred, label) == 1 / 4  # class 2 is not nucleus
    assert math.isnan(nucleus_iou(np.zeros((2, 2)), np.zeros((2, 2))))
