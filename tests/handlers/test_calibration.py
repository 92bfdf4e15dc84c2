"""Specification of ``seunet_monai.handlers.ScaleFusionCalibration``: at the end of a training it runs the bundle's
calibration with a time budget taken from the training, a status file that says ``calibrating`` until it is done,
and a Ctrl-C that keeps ``model.pt`` and says how to calibrate later."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine

from seunet_monai import errors
from seunet_monai.evaluation.checkpoint_calibration import CheckpointCalibration
from seunet_monai.handlers import RunStatus, ScaleFusionCalibration
from seunet_monai.networks import SEUNet
from seunet_monai.runtime.status import read_status


def _net() -> SEUNet:
    torch.manual_seed(0)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32), fusion="scale").eval()


def _items(n: int = 2) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        label = (torch.rand(1, 32, 32, generator=g) > 0.6).long()
        out.append({"image": torch.rand(3, 32, 32, generator=g) * 0.2 + label.float() * 0.6, "label": label})
    return out


def _run(tmp_path, net: torch.nn.Module, **kwargs) -> Engine:
    """A one-epoch 'training' followed by the calibration, with the bundle's handler order."""
    trainer = Engine(lambda engine, batch: 0.0)
    calibration = CheckpointCalibration(net, tmp_path / "model.pt", _items(), scales=[0.5, 1.0], **kwargs)
    ScaleFusionCalibration(calibration, status=tmp_path / "status.json").attach(trainer)
    RunStatus(tmp_path / "status.json").attach(trainer)
    trainer.run([0, 1], max_epochs=1)
    return trainer


def test_status_says_calibrating_until_done_and_the_budget_follows_the_training(tmp_path, caplog):
    net = _net()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    states = []
    heads = SEUNet.forward_heads

    def spy(self, x):  # what a tool reading the status file sees while the calibration predicts (on a copy of net)
        states.append(read_status(tmp_path / "status.json"))
        return heads(self, x)

    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.calibration"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SEUNet, "forward_heads", spy)
            _run(tmp_path, net, time_fraction=0.5)
    assert states and all(s["state"] == "calibrating" for s in states)
    assert states[-1]["calibration"]["scales_total"] == 2 and states[-1]["epoch_times_s"]
    final = read_status(tmp_path / "status.json")
    assert final["state"] == "finished" and final["epoch"] == 1
    assert (tmp_path / "model_uncalibrated.pt").is_file()
    plan = next(r.getMessage() for r in caplog.records if "expected about" in r.getMessage())
    assert "= 50% of the training's" in plan


def test_networks_without_a_calibration_and_missing_checkpoints_are_skipped(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="seunet_monai.handlers.calibration"):
        _run(tmp_path, torch.nn.Conv2d(3, 2, 1))
        _run(tmp_path, _net())  # no model.pt written (no validation ran)
    assert "Conv2d has no fusion_* buffers" in caplog.text and "does not exist" in caplog.text
    assert read_status(tmp_path / "status.json")["state"] == "finished"


def test_ctrl_c_during_calibration_keeps_model_pt_and_says_how_to_calibrate(tmp_path, capsys):
    net = _net()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    original = (tmp_path / "model.pt").read_bytes()

    def interrupted(self, x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as mp:
        mp.setattr(SEUNet, "forward_heads", interrupted)
        _run(tmp_path, net)
    assert (tmp_path / "model.pt").read_bytes() == original and not (tmp_path / "model_uncalibrated.pt").exists()
    status = read_status(tmp_path / "status.json")
    assert status["state"] == "interrupted" and "run calibrating" in status["error"]
    with pytest.raises(SystemExit) as stop:
        errors._excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert stop.value.code == errors.INTERRUPT_STATUS
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("interrupted: training finished")
    assert f"--ckpt_dir {tmp_path}" in lines[0] and "run calibrating" in lines[0] and "calibrate.json" in lines[0]
