"""Specification of ``seunet_monai.runtime.checks``: the bundle's argument checks name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seunet_monai.errors import ConfigValueError
from seunet_monai.runtime.checks import check_arguments, check_scales

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"epochs": 2.5}, "--epochs"),
        ({"learning_rate": 0.0}, "--learning_rate"),
        ({"learning_rate": float("inf")}, "--learning_rate"),
        ({"batch_size": 0}, "--batch_size"),
        ({"num_classes": 2, "ignore_index": 1}, "--ignore_index 1"),
        ({"patch_size": [64, 0]}, "--patch_size"),
        ({"scale_range": [2.0, 0.5]}, "--scale_range"),
        ({"scales": []}, "--scales"),
        ({"scales": [1.0, 1.0]}, "repeats"),
    ],
)
def test_check_arguments_names_the_key(kwargs, match):
    with pytest.raises(ConfigValueError, match=match):
        check_arguments(**kwargs)


def test_check_arguments_accepts_the_defaults():
    cfg = json.loads((REPO / "bundle" / "configs" / "train.json").read_text())
    keys = [
        "epochs",
        "batch_size",
        "val_batch_size",
        "val_interval",
        "log_interval",
        "num_workers",
        "num_classes",
        "ignore_index",
        "learning_rate",
        "weight_decay",
        "patch_size",
        "scale_range",
    ]
    assert check_arguments(**{k: cfg[k] for k in keys}) is True
    assert check_scales([0.25, 1, 4]) == [0.25, 1.0, 4.0]
