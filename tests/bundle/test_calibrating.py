"""The "scale" fusion in the bundle: calibrated at the end of `training`, re-calibrated by `calibrating`
(train.json + calibrate.json; both call the one `calibration` component), and named by the `fusion` key of every
config."""

from __future__ import annotations

import json

import torch
from monai.bundle import ConfigParser

from .conftest import CALIBRATE, EVALUATE, INFERENCE, TINY_NET, TRAIN, bundle


def _calibrated_rows(path) -> list[float]:
    from seunet_monai.fusion.scale import BUFFER_NAMES, ScaleProfile

    state = torch.load(path, map_location="cpu", weights_only=True)
    profile = ScaleProfile.from_buffers(*(state[n] for n in BUFFER_NAMES))  # the rows the fusion uses
    return [] if profile is None else [round(v, 6) for v in profile.scales.tolist()]


def test_training_calibrates_model_pt_and_calibrating_redoes_it(trained):
    ckpt = trained["ckpt_dir"]
    # end of training (handler ScaleFusionCalibration): model.pt calibrated, the original kept
    assert (ckpt / "model_uncalibrated.pt").is_file()
    assert len(_calibrated_rows(ckpt / "model.pt")) >= 1
    original = (ckpt / "model_uncalibrated.pt").read_bytes()
    bundle(
        "calibrating",
        f"['{TRAIN}','{CALIBRATE}']",
        *TINY_NET,
        *trained["dir_args"],
        "--calibration#scales",
        "[0.5,1,2]",
        "--calibration#max_images",
        "1",
    )
    assert _calibrated_rows(ckpt / "model.pt") == [0.5, 1.0, 2.0]
    assert (ckpt / "model_uncalibrated.pt").read_bytes() == original
    report = json.loads((trained["output_dir"] / "eval" / "scale_calibration.json").read_text())
    assert report["scales"] == [0.5, 1.0, 2.0] and report["num_images"] == 1
    assert len(report["iou"][0]) == 2  # Ω = 2 heads of the tiny network


def test_fusion_key_scale_reaches_network_and_postprocessing():
    from seunet_monai.apps.wsi.inferers import HeadsPatchPredictor
    from seunet_monai.fusion.strategies import fuse

    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["fusion"] = "scale"
    parser["network_def#channels"] = [5, 10, 20, 40, 80]
    parser["device"] = "$torch.device('cpu')"
    net = parser.get_parsed_content("network").eval()
    assert net.fusion == "scale"
    torch.manual_seed(0)
    with torch.no_grad():  # a calibration in which head 2 is best at every scale
        net.fusion_iou.copy_(torch.tensor([0.1, 0.9, 0.2, 0.2, 0.2]).expand_as(net.fusion_iou))
        net.fusion_signature.copy_(torch.rand_like(net.fusion_signature))
    probs = torch.softmax(torch.randn(1, 5, 2, 16, 16), dim=2)
    fused = HeadsPatchPredictor(net).fused(probs)  # what slide inference fuses per window
    torch.testing.assert_close(fused, fuse(probs, "scale", profile=net))
    torch.testing.assert_close(fused, probs[:, 1], atol=1e-3, rtol=0)  # the calibrated best head wins
    train = ConfigParser()
    train.read_config([TRAIN, EVALUATE])
    assert train["calibrate_fusion"] is True


def test_calibrating_and_the_end_of_training_share_the_calibration_component():
    calibrate = ConfigParser()
    calibrate.read_config([TRAIN, CALIBRATE])
    assert calibrate["run"] == "@calibrating" and calibrate["calibrating"][-1] == "$@calibration()"
    handler = next(h for h in calibrate["train#handlers"] if h["_target_"].endswith("ScaleFusionCalibration"))
    assert handler["calibration"] == "@calibration"
    assert (
        calibrate["calibration#data"] == "@validate#dataset"
    )  # calibrate.json points validate# at the validation split
    assert calibrate["validate#dataset#data#split"] == "validation"
