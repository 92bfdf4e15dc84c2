"""Specification of ``seunet_monai.cli.compare`` (``seunet-compare``, run as scripts/compare.py): two result folders
merged into comparison.csv / .md / .png; an existing output or a missing folder is exit status 2 naming it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.sweep_outputs import fake_eval

REPO = Path(__file__).resolve().parents[2]


def test_compare_two_folders(tmp_path) -> None:
    a = fake_eval(
        tmp_path / "a", "seunet", {"head1": [0.5, 0.6, 0.4], "pens": [0.6, 0.7, 0.5], "mean": [0.55, 0.7, 0.5]}
    )
    b = fake_eval(tmp_path / "b", "unet", {"head1": [0.3, 0.7, 0.2], "pens": [0.3, 0.7, 0.2]})
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
