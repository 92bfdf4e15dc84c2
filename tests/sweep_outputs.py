"""Test helpers of the comparison tests: a fake evaluation folder (``eval/scale_sweep.csv`` and ``scale_sweep.json``)
as the scale sweep leaves it."""

from __future__ import annotations

from pathlib import Path

from seunet_monai.evaluation.report import write_csv_rows

__all__ = ["fake_eval"]


def fake_eval(root: Path, model: str, ious: dict[str, list[float]], scales=(0.5, 1.0, 2.0)) -> Path:
    rows = [
        {
            "model": model,
            "strategy": st,
            "scale": s,
            "iou": v,
            "iou_per_image": v - 0.01,
            "dice": v + 0.05,
            "num_images": 2,
        }
        for st, vals in ious.items()
        for s, v in zip(scales, vals)
    ]
    d = root / "eval"
    write_csv_rows(d / "scale_sweep.csv", rows)
    (d / "scale_sweep.json").write_text(
        '{"equivariance_error_mean": %s, "parameters": 1234}' % (0.3 if model == "seunet" else 0.6)
    )
    return root
