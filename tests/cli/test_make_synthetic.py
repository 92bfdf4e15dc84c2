"""Specification of ``seunet-make-synthetic`` (``scripts/make_synthetic.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.synthetic.tissue import TISSUE_CLASSES

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """Environment for subprocesses: import this checkout's package (a script's folder comes first on sys.path)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_script_end_to_end_and_refusal(tmp_path):
    dst = tmp_path / "syn"
    cmd = [sys.executable, str(REPO / "scripts" / "make_synthetic.py"), "--dst", str(dst), "--task", "tissue",
           "--n-train", "2", "--n-val", "1", "--n-test", "1", "--size", "40", "--scale", "1.5", "--seed", "4"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "datalist.json" in r.stdout
    d = load_datalist(dst, check_sizes=True)
    assert len(d["training"]) == 2
    report = json.loads((dst / "synthetic_report.json").read_text())
    assert report["parameters"]["scale"] == 1.5 and report["class_names"] == list(TISSUE_CLASSES)
    before = _files(dst)

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not empty" in r.stderr and "--overwrite" in r.stderr
    assert _files(dst) == before
    r = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _files(dst) == before  # deterministic re-run


@pytest.mark.parametrize("where", ["raw", "parent"])
def test_script_overwrite_never_removes_raw_data(tmp_path, where):
    """Item 1 of issue 12: --overwrite with --dst on (or above) raw data refuses and deletes nothing."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "slide.tif").write_bytes(b"raw image")
    (raw / "slide.xml").write_text("<Annotations/>")
    dst = raw if where == "raw" else raw.parent
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "make_synthetic.py"), "--dst", str(dst), "--overwrite",
                        "--n-train", "1", "--n-val", "0", "--n-test", "0", "--size", "16"],
                       capture_output=True, text=True, timeout=120, env=_env())  # fmt: skip
    assert r.returncode == 2 and "synthetic_report.json" in r.stderr, r.stderr
    assert (raw / "slide.tif").read_bytes() == b"raw image" and (raw / "slide.xml").is_file()
    assert sorted(p.name for p in raw.iterdir()) == ["slide.tif", "slide.xml"]
