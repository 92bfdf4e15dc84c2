"""The separation overlays (``variants/separation_boundary.json``, ``separation_centre.json``): training learns the
extra map from the datalist's instance labels, evaluating scores the instances it guides (metrics.json and the
sweep), inferring separates the nuclei with it, and the plain bundle is left as it was."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from seunet_monai.data.datalist import write_datalist
from seunet_monai.data.io import atomic_save_png
from seunet_monai.data.synthetic.histology import synthesize_sample
from seunet_monai.errors import ConfigValueError, find_seunet_error

from .conftest import CONFIGS, EVALUATE, INFERENCE, TINY_NET, TRAIN, bundle


def _dataset_with_instances(root) -> None:
    """A tiny synthetic dataset whose items carry their instance labels (``instance``, 16-bit PNG)."""
    splits = {}
    for split, n in (("training", 4), ("validation", 1), ("test", 1)):
        entries = []
        for i in range(n):
            image, label, inst = synthesize_sample(
                np.random.default_rng([7, len(splits), i]), size=64, return_instances=True
            )
            stem = f"{split}_{i}.png"
            for sub, arr in (("images", image), ("labels", label), ("instances", inst.astype(np.uint16))):
                atomic_save_png(root / sub / stem, arr)
            entries.append({"image": f"images/{stem}", "label": f"labels/{stem}", "instance": f"instances/{stem}"})
        splits[split] = entries
    write_datalist(root, splits)


@pytest.mark.parametrize("mode", ["boundary", "centre"])
def test_training_and_evaluating_with_a_separation_overlay(tmp_path, mode):
    data = tmp_path / "data"
    _dataset_with_instances(data)
    overlay = str(CONFIGS / "variants" / f"separation_{mode}.json")
    dirs = ["--dataset_dir", str(data), "--output_dir", str(tmp_path / "logs"), "--ckpt_dir", str(tmp_path / "models")]
    bundle(
        "training",
        f"['{TRAIN}','{overlay}']",
        *TINY_NET,
        *dirs,
        "--patch_size",
        "[64,64]",
        "--epochs",
        "1",
        "--batch_size",
        "2",
        "--calibrate_fusion",
        "false",
        "--progress",
        "false",
    )
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    model = state.get("model", state)
    assert model["aux_head.weight"].shape[0] == 1 and model["head.weight"].shape[0] == 2  # the class head unchanged
    bundle(
        "evaluating",
        f"['{TRAIN}','{EVALUATE}','{overlay}']",
        *TINY_NET,
        *dirs,
        "--scales",
        "[1.0]",
        "--pixel_size_um",
        "0.5",
        "--progress",
        "false",
    )
    metrics = json.loads((tmp_path / "logs" / "eval" / "metrics.json").read_text())["metrics"]
    assert math.isfinite(metrics["test_pq"]) and math.isfinite(metrics["test_iou"])
    assert {"test_aji_pens", "test_count_ratio_head2"} <= set(metrics)
    sweep = json.loads((tmp_path / "logs" / "eval" / "scale_sweep.json").read_text())
    assert sweep["instance_metrics"]["separation"] == mode and sweep["instance_metrics"]["images"] == 1
    assert sweep["num_classes"] == 2
    # inference loads the model with the same overlay, and its fused map guides the nuclei
    out = tmp_path / "predictions"
    bundle(
        "inferring",
        f"['{INFERENCE}','{overlay}']",
        *TINY_NET,
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--input_dir",
        str(data / "images"),
        "--output_dir",
        str(out),
        "--roi_size",
        "[64,64]",
        "--progress",
        "false",
    )
    assert (out / "test_0_instances.tif").is_file() and (out / "test_0_summary.json").is_file()
    nuclei = json.loads((out / "test_0_summary.json").read_text())["nuclei"]
    assert f"guided by the network's {mode} map" in nuclei["objects"]
    assert json.loads((out / "test_0_summary.json").read_text())["provenance"]["settings"]["separation"] == mode


def _parser(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(list(files))
    parser["network_def#channels"] = [5, 10, 20, 40, 80]
    return parser


def test_the_bundle_without_an_overlay_is_unchanged_and_one_key_switches_it_on():
    plain = _parser(TRAIN, EVALUATE)
    assert plain["separation"] is None
    assert plain.get_parsed_content("network_def").aux_head is None
    assert plain.get_parsed_content("loss").aux_channels == 0
    names = [type(t).__name__ for t in plain.get_parsed_content("train#preprocessing").transforms]
    assert names.count("LoadImaged") == 2 and "SeparationTargetd" not in names
    assert plain.get_parsed_content("validate#postprocessing") is None
    assert plain.get_parsed_content("validate#inferer").aux is False
    on = _parser(TRAIN, EVALUATE)
    on["separation"] = "centre"  # the same as the overlay, or --separation centre on the command line
    assert on.get_parsed_content("network_def").aux_channels == 1 and on.get_parsed_content("loss").aux_channels == 1
    target = [
        t for t in on.get_parsed_content("train#preprocessing").transforms if type(t).__name__ == "SeparationTargetd"
    ]
    assert len(target) == 1 and target[0].target.mode == "centre"
    assert on.get_parsed_content("sweep")().separation == "centre"  # the component is a callable (_mode_)
    assert on.get_parsed_content("validate#instance_metrics").separation == "centre"
    assert on.get_parsed_content("validate#inferer").aux is True
    assert type(on.get_parsed_content("validate#postprocessing")).__name__ == "SplitSeparationd"


def test_a_separation_that_is_not_a_formulation_stops_the_bundle_with_one_line():
    bad = _parser(TRAIN)
    bad["separation"] = "contour"
    with pytest.raises(Exception) as info:  # MONAI wraps the component's error in a RuntimeError
        bad.get_parsed_content("network_def")
    error = find_seunet_error(info.value)
    assert isinstance(error, ConfigValueError) and "separation must be one of" in str(error)
