"""The report of an instance preset: per job and fusion, the object scores at scale 1 and over the scales, the best
job of each column marked, unfinished jobs listed."""

from __future__ import annotations

import math

import pytest

from seunet_monai.evaluation.report import read_csv_rows, write_csv_rows
from seunet_monai.experiments.instance_comparison import instance_rows, write_instance_comparison
from seunet_monai.experiments.presets import Job, Preset

PRESET = Preset(
    "inst",
    "test preset",
    (Job("plain", "seunet", 0), Job("boundary", "separation_boundary", 0), Job("centre", "separation_centre", 0)),
    1,
    (2, 2, 2, 2, 2),
    (0.5, 1.0),
    {},
    {},
    report="instances",
)


def _sweep(out, job: str, pq: dict[float, float], count: float) -> None:
    rows = []
    for st in ("mean", "pens", "head1"):
        for scale, v in pq.items():
            rows.append(
                {
                    "model": job,
                    "strategy": st,
                    "scale": scale,
                    "iou": 0.6,
                    "pq": v,
                    "aji": v - 0.1,
                    "f1": v + 0.1,
                    "sq": 0.75,
                    "dice_obj": 0.7,
                    "count_ratio": count,
                }
            )
    (out / job / "eval").mkdir(parents=True)
    write_csv_rows(out / job / "eval" / "scale_sweep.csv", rows)


def test_the_report_puts_the_jobs_side_by_side(tmp_path):
    _sweep(tmp_path, "plain", {0.5: 0.30, 1.0: 0.50}, 1.01)
    _sweep(tmp_path, "boundary", {0.5: 0.40, 1.0: 0.56}, 0.95)
    rows, pending = instance_rows(tmp_path, PRESET)
    assert pending == ["centre"]
    assert [(r["job"], r["strategy"]) for r in rows] == [
        ("plain", "mean"),
        ("plain", "pens"),
        ("boundary", "mean"),
        ("boundary", "pens"),
    ]  # the fusions, not the single heads
    b = rows[3]
    assert (
        b["pq_s1"] == pytest.approx(0.56) and b["pq_mean"] == pytest.approx(0.48) and b["aji_s1"] == pytest.approx(0.46)
    )
    files = write_instance_comparison(tmp_path, PRESET)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["instances.csv", "instances.md"]
    md = (tmp_path / "instances.md").read_text()
    assert "| boundary | separation_boundary | pens | **0.560** | **0.460** | **0.660** | 0.950 |" in md
    assert "| plain | seunet | pens | 0.500 | 0.400 | 0.600 | **1.010** |" in md  # count: closest to 1
    assert "| **1.010** | 0.750 | 0.700 | 0.6000 |" in md  # a tie is not marked
    assert "Mean over the scales" in md and "Jobs not finished in" in md and "centre" in md.split("not finished")[1]
    csv_rows = read_csv_rows(tmp_path / "instances.csv")
    assert len(csv_rows) == 4 and math.isclose(csv_rows[0]["iou_s1"], 0.6)
