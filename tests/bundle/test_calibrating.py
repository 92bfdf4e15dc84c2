"""The "scale" fusion in the bundle: calibrated at the end of `training`, re-calibrated by `calibrating`,
and named by the `fusion` key of every config."""

from __future__ import annotations

import json

import torch
from monai.bundle import ConfigParser

from seunet_monai.fusion import Fused

from .conftest import EVALUATE, INFERENCE, TINY_NET, TRAIN, bundle


def _calibrated_rows(path) -> list[float]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    ok = torch.isfinite(state["fusion_iou"]).all(1) & torch.isfinite(state["fusion_signature"]).all(1)
    return state["fusion_scales"][ok].tolist()


def test_training_calibrates_model_pt_and_calibrating_redoes_it(trained):
    ckpt = trained["ckpt_dir"]
    # end of training (handler ScaleFusionCalibration): model.pt calibrated, the original kept
    assert (ckpt / "model_uncalibrated.pt").is_file()
    assert len(_calibrated_rows(ckpt / "model.pt")) >= 1
    original = (ckpt / "model_uncalibrated.pt").read_bytes()
    bundle(
        "calibrating",
        f"['{TRAIN}','{EVALUATE}']",
        *TINY_NET,
        *trained["dir_args"],
        "--calibration#scales", "[0.5,1,2]",
        "--calibration#max_images", "1",
    )
    assert _calibrated_rows(ckpt / "model.pt") == [0.5, 1.0, 2.0]
    assert (ckpt / "model_uncalibrated.pt").read_bytes() == original
    report = json.loads((trained["output_dir"] / "eval" / "scale_calibration.json").read_text())
    assert report["scales"] == [0.5, 1.0, 2.0] and report["num_images"] == 1
    assert len(report["iou"][0]) == 2  # Ω = 2 heads of the tiny network


def test_fusion_key_scale_reaches_network_and_postprocessing():
    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["fusion"] = "scale"
    parser["network_def#channels"] = [5, 10, 20, 40, 80]
    parser["device"] = "$torch.device('cpu')"
    net = parser.get_parsed_content("network")
    post = parser.get_parsed_content("postprocessing")
    fused = next(t for t in post.transforms if isinstance(t, Fused))
    assert net.fusion == "scale" and fused.fuser.strategy == "scale" and fused.fuser.profile is net
    train = ConfigParser()
    train.read_config([TRAIN, EVALUATE])
    assert train["calibrate_fusion"] is True and "calibrating" in train.config
