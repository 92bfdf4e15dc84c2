"""Specification of ``seunet_monai.evaluation.outputs``: a sweep's ``eval_dir`` holds every file of
``OUTPUT_FILES``, also for a network without heads, σ or filters, and ``scale_sweep.json`` is valid JSON."""

from __future__ import annotations

import json

import numpy as np
import torch

from seunet_monai.evaluation.outputs import OUTPUT_FILES, write_outputs
from seunet_monai.evaluation.report import read_csv_rows, summarise


def test_write_outputs_writes_every_file_for_a_plain_network(tmp_path):
    rows = [
        {"model": "plain", "strategy": "pens", "scale": s, "iou": v, "iou_per_image": v, "dice": v, "num_images": 1}
        for s, v in ((0.5, 0.5), (1.0, float("nan")))
    ]
    files = write_outputs(
        tmp_path,
        torch.nn.Conv2d(3, 2, 1),
        rows,
        summarise(rows),
        {"model": "plain"},
        eq_rows=[],
        eq_matrix_rows=[],
        eq_matrices={1.0: np.eye(2)},
        examples=[],
        tensorboard=False,
    )
    assert sorted(p.split("/")[-1] for p in files) == sorted(OUTPUT_FILES)
    assert files[-1].endswith("scale_sweep.json")  # written last: marks a finished run
    for name in OUTPUT_FILES:
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "tensorboard").exists()
    payload = json.loads((tmp_path / "scale_sweep.json").read_text())
    assert payload["model"] == "plain" and payload["rows"][1]["iou"] is None  # NaN is written as null
    assert payload["equivariance_matrix"] == {"1": [[1.0, 0.0], [0.0, 1.0]]}
    assert [r["scale"] for r in read_csv_rows(tmp_path / "scale_sweep.csv")] == [0.5, 1.0]


def test_write_outputs_adds_tensorboard_scalars_on_request(tmp_path):
    rows = [{"model": "m", "strategy": "mean", "scale": 1.0, "iou": 0.5, "num_images": 1}]
    write_outputs(tmp_path, torch.nn.Identity(), rows, summarise(rows), {"model": "m"}, [], [], {}, [], True)
    assert any((tmp_path / "tensorboard").iterdir())
