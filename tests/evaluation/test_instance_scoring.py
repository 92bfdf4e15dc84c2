"""Specification of ``seunet_monai.evaluation.instance_scoring``: instance metrics of fused probabilities, per key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS, InstanceScoring, instance_columns


def _two_nuclei(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(2, H, W)`` and instance labels ``(H, W)`` of two separate square nuclei."""
    labels = np.zeros((size, size), np.int64)
    labels[8:20, 8:20] = 1
    labels[28:40, 26:38] = 2
    nucleus = (labels > 0).astype(np.float32)
    return np.stack([1.0 - nucleus, nucleus]), labels


def test_columns_are_nan_when_not_measured_and_rename_dice():
    assert all(math.isnan(v) for v in instance_columns(None).values())
    scores = {"pq": 0.5, "sq": 0.8, "rq": 0.6, "aji": 0.4, "f1": 0.6, "dice": 0.7, "count_ratio": 1.1}
    assert instance_columns(scores) == {**{k: scores[k] for k in INSTANCE_COLUMNS if k != "dice_obj"}, "dice_obj": 0.7}


def test_perfect_probabilities_score_one_and_keys_are_kept_apart():
    probs, labels = _two_nuclei()
    scoring = InstanceScoring(pixel_size_um=0.25)
    own = scoring.update("pens", probs, labels)
    assert own["pq"] == pytest.approx(1.0) and own["aji"] == pytest.approx(1.0)
    empty = np.stack([np.ones_like(probs[0]), np.zeros_like(probs[0])])
    scoring.update(("0.5", "mean"), empty, labels, scale=0.5)
    assert scoring.columns("pens")["pq"] == pytest.approx(1.0)
    assert scoring.columns(("0.5", "mean"))["pq"] == pytest.approx(0.0)
    assert all(math.isnan(v) for v in scoring.columns("never").values())
    assert scoring.settings()["pixel_size_um"] == 0.25 and scoring.seconds > 0
