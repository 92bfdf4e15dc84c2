"""Specification of ``seunet_monai.evaluation.checkpoint_calibration``: a checkpoint file calibrated in place with its
original kept, the bundle's ``calibration`` component that ``run calibrating`` and the end of training call, and
the same network and split outside the bundle (``load_bundle_setup``, used by ``tests/cli/test_scale_fusion_cv.py``
on a prepared dataset)."""

from __future__ import annotations

import json

import pytest
import torch

from seunet_monai.errors import ConfigValueError, MissingPathError
from seunet_monai.evaluation.checkpoint_calibration import (
    CheckpointCalibration,
    calibrate_checkpoint,
    load_bundle_setup,
)
from seunet_monai.networks import SEUNet
from tests.fusion_cache_items import random_items


def _net() -> SEUNet:
    torch.manual_seed(0)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32), fusion="scale").eval()


def _calibrated_rows(path) -> int:
    state = torch.load(path, weights_only=True)
    return int(torch.isfinite(state.get("model", state)["fusion_iou"]).all(1).sum())


def test_calibrate_checkpoint_writes_back_in_place_and_keeps_the_original(tmp_path) -> None:
    net = _net()
    ckpt = tmp_path / "model.pt"
    torch.save(
        net.state_dict(), ckpt
    )  # MONAI CheckpointSaver's layout for save_dict={"model": net}: the bare state dict
    original = ckpt.read_bytes()
    result = calibrate_checkpoint(_net(), ckpt, random_items(), [1.0], report=tmp_path / "cal.json")
    assert (tmp_path / "model_uncalibrated.pt").read_bytes() == original
    assert _calibrated_rows(ckpt) == 1
    assert result["scales"] == [1.0] and json.loads((tmp_path / "cal.json").read_text())["scales"] == [1.0]
    calibrate_checkpoint(_net(), ckpt, random_items(), [0.5, 1.0])  # again: the backup stays the original
    assert (tmp_path / "model_uncalibrated.pt").read_bytes() == original
    assert _calibrated_rows(ckpt) == 2
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": net.state_dict(), "epoch": 3}, wrapped)
    calibrate_checkpoint(_net(), wrapped, random_items(), [1.0], backup=None)
    data = torch.load(wrapped, weights_only=True)
    assert data["epoch"] == 3 and _calibrated_rows(wrapped) == 1


def test_the_component_calibrates_the_file_and_leaves_the_network_alone(tmp_path) -> None:
    net = _net()
    ckpt = tmp_path / "model.pt"
    torch.save(net.state_dict(), ckpt)
    with torch.no_grad():  # the configured network now differs from the file (after a training: the last epoch)
        net.head.bias.add_(1.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calibration = CheckpointCalibration(net, ckpt, random_items(), scales=[0.5, 1.0], report=tmp_path / "cal.json")
    assert calibration.can_calibrate()
    result = calibration(training_seconds=None)
    assert result["budget_s"] is None and result["checkpoint"] == str(ckpt)  # no training: no time budget
    assert _calibrated_rows(ckpt) == 2 and (tmp_path / "model_uncalibrated.pt").is_file()
    assert all(
        torch.equal(v, before[k]) or k.startswith("fusion_") and torch.equal(v.isnan(), before[k].isnan())
        for k, v in net.state_dict().items()
    )
    timed = CheckpointCalibration(net, ckpt, random_items(), scales=[1.0], time_fraction=0.5)(training_seconds=10.0)
    assert timed["budget_s"] == pytest.approx(5.0)
    assert not CheckpointCalibration(torch.nn.Conv2d(3, 2, 1), ckpt, random_items()).can_calibrate()


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"time_fraction": 0}, "time_fraction"),
        ({"max_images": 0}, "max_images"),
        ({"max_pixels": 1.5}, "max_pixels"),
        ({"scales": [0.6]}, "scales"),
        ({"scales": "some"}, "scales"),
    ],
)
def test_bad_settings_fail_when_the_component_is_built(tmp_path, bad, key) -> None:
    with pytest.raises(ConfigValueError, match=f"calibration#{key}"):
        CheckpointCalibration(_net(), tmp_path / "model.pt", random_items(), **bad)


def test_the_bundle_setup_names_a_missing_checkpoint_or_datalist(tmp_path) -> None:
    with pytest.raises(MissingPathError, match="does not exist"):
        load_bundle_setup(tmp_path / "model.pt", tmp_path)
    torch.save(_net().state_dict(), tmp_path / "model.pt")
    with pytest.raises(MissingPathError, match="holds no datalist.json"):
        load_bundle_setup(tmp_path / "model.pt", tmp_path)
