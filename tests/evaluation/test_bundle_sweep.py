"""The scale sweep through the bundle: `monai.bundle run evaluating` with train.json + evaluate.json."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"


def test_evaluating_runs_the_sweep(tmp_path) -> None:
    from seunet_monai.evaluation.outputs import OUTPUT_FILES
    from seunet_monai.networks import SEUNet

    torch.manual_seed(0)
    net = SEUNet(spatial_dims=2, in_channels=3, out_channels=2, num_scales=2, channels=[4, 8, 16, 32, 64])
    with torch.no_grad():  # an untrained net predicts background only (IoU 0): push it to foreground instead
        net.head.bias.copy_(torch.tensor([0.0, 5.0]))
    from seunet_monai.data.synthetic.histology import make_synthetic_dataset

    make_synthetic_dataset(
        tmp_path / "data", n_train=1, n_val=1, n_test=2, size=48, seed=0
    )  # evaluation never generates
    (tmp_path / "ckpt").mkdir()
    torch.save({"model": net.state_dict()}, tmp_path / "ckpt" / "model.pt")
    config = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'evaluate.json'}']"
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "evaluating",
        "--config_file",
        config,
        "--network_def#num_scales",
        "2",
        "--network_def#channels",
        "[4,8,16,32,64]",
        "--patch_size",
        "[48,48]",
        "--dataset_dir",
        str(tmp_path / "data"),
        "--output_dir",
        str(tmp_path / "out"),
        "--ckpt_dir",
        str(tmp_path / "ckpt"),
        "--scales",
        "[0.5,1]",
        "--sweep#equivariance_images",
        "1",
        "--sweep#equivariance_crop",
        "32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(args, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    eval_dir = tmp_path / "out" / "eval"
    for name in OUTPUT_FILES:
        assert (eval_dir / name).is_file(), name
    with open(eval_dir / "scale_sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * (2 + 3) and {r["model"] for r in rows} == {"SEUNet"}
    meta = json.loads((eval_dir / "scale_sweep.json").read_text())
    assert meta["scales"] == [0.5, 1.0] and meta["num_images"] == 2
    assert meta["checkpoint"].endswith("model.pt")
    # the scale-1 sweep row agrees with the evaluator's own dataset-wide IoU (same checkpoint, same metric)
    metrics = json.loads((eval_dir / "metrics.json").read_text())["metrics"]
    pens_1 = next(float(r["iou"]) for r in rows if r["strategy"] == "pens" and float(r["scale"]) == 1.0)
    assert 0 < pens_1 < 1
    assert abs(pens_1 - metrics["test_iou_pens"]) < 1e-6
    # the sweep is the configured component and reports its state in a status file
    status = json.loads((eval_dir / "sweep_status.json").read_text())
    assert status["state"] == "finished" and status["images_done"] == status["num_images"] == 2
    assert status["model"] == "SEUNet" and status["iou_mean_over_scales"]["pens"] > 0
    cfg = json.loads((CONFIGS / "evaluate.json").read_text())
    assert cfg["sweep"]["_target_"] == "seunet_monai.evaluation.sweep.ScaleSweep"  # settings: --sweep#KEY
    assert cfg["sweep_run"]["_target_"] == "$@sweep().run" and cfg["evaluating"][-1] == "$@sweep_run"
