"""scripts/compare.py on two small result folders."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from seunet_monai.evaluation.report import write_csv_rows

REPO = Path(__file__).resolve().parents[2]


def _fake_eval(root: Path, model: str, ious: dict[str, list[float]], scales=(0.5, 1.0, 2.0)) -> Path:
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


def test_compare_two_folders(tmp_path) -> None:
    a = _fake_eval(
        tmp_path / "a", "seunet", {"head1": [0.5, 0.6, 0.4], "pens": [0.6, 0.7, 0.5], "mean": [0.55, 0.7, 0.5]}
    )
    b = _fake_eval(tmp_path / "b", "unet", {"head1": [0.3, 0.7, 0.2], "pens": [0.3, 0.7, 0.2]})
    out = tmp_path / "cmp"
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), str(a), str(b / "eval"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    with open(out / "comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 + 6 and {r["model"] for r in rows} == {"seunet", "unet"}
    md = (out / "comparison.md").read_text()
    assert "| seunet | pens | **60.00** |" in md  # best mean IoU in bold
    assert "**0.300**" in md  # lowest equivariance error in bold
    assert "| unet | pens | 40.00 |" in md
    assert (out / "iou_vs_scale.png").stat().st_size > 0
    # refuses to overwrite without --overwrite; a missing folder is named
    r2 = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), str(a), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r2.returncode == 2 and "comparison" in r2.stderr
    r3 = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), str(tmp_path / "nope"), "--out", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r3.returncode == 2 and "nope" in r3.stderr


def test_same_model_name_twice_is_disambiguated(tmp_path) -> None:
    from seunet_monai.evaluation.compare import compare_evaluations

    a = _fake_eval(tmp_path / "run1", "seunet", {"pens": [0.6, 0.7, 0.5]})
    b = _fake_eval(tmp_path / "run2", "seunet", {"pens": [0.5, 0.6, 0.4]})
    res = compare_evaluations([a, b], tmp_path / "out")
    assert {s["model"] for s in res["summary"]} == {"seunet", "seunet (run2)"}
    with pytest.raises(FileExistsError):
        compare_evaluations([a], tmp_path / "out")
