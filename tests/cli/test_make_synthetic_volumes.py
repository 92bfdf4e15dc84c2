"""Specification of ``seunet-make-synthetic-volumes`` (``scripts/make_synthetic_volumes.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_script_writes_refuses_and_overwrites_only_its_own_output(tmp_path):
    dst = tmp_path / "vol"
    cmd = [sys.executable, str(REPO / "scripts" / "make_synthetic_volumes.py"), "--dst", str(dst), "--n-train", "1",
           "--n-val", "1", "--n-test", "0", "--size", "16", "--spacing", "1,1,2"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr
    before = _files(dst)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 2 and "not empty" in r.stderr
    r = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0 and _files(dst) == before
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "stack.tif").write_bytes(b"raw")
    r = subprocess.run(
        cmd[:2] + ["--dst", str(raw), "--overwrite"], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert r.returncode == 2 and "synthetic_report.json" in r.stderr
    assert (raw / "stack.tif").read_bytes() == b"raw"
