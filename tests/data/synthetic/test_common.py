"""Specification of what the synthetic generators share (:mod:`seunet_monai.data.synthetic.common`): per-sample
seeds, and a dataset folder published atomically, under a lock, replacing only a folder a generator wrote."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.synthetic import histology
from seunet_monai.data.synthetic.histology import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[3]


SMALL = dict(n_train=2, n_val=1, n_test=1, size=48)


def _env() -> dict[str, str]:
    """Environment for subprocesses: import this checkout's package (a script's folder comes first on sys.path)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_split_does_not_change_when_another_grows(tmp_path):
    a = _files(make_synthetic_dataset(tmp_path / "a", n_train=1, n_val=1, n_test=0, size=32).parent)
    b = _files(make_synthetic_dataset(tmp_path / "b", n_train=3, n_val=1, n_test=0, size=32).parent)
    assert a["images/validation_0000.png"] == b["images/validation_0000.png"]
    assert a["images/training_0000.png"] == b["images/training_0000.png"]


def test_refuses_non_empty_dst_and_overwrites_only_its_own_output(tmp_path):
    dst = tmp_path / "d"
    dst.mkdir()
    (dst / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_dataset(dst, **SMALL)
    # --overwrite never removes a folder the generator did not write (raw data, a prepared dataset...)
    with pytest.raises(ValueError, match="synthetic_report.json"):
        make_synthetic_dataset(dst, **SMALL, overwrite=True)
    assert sorted(p.name for p in dst.iterdir()) == ["old.txt"] and (dst / "old.txt").read_text() == "keep me"
    # its own output is replaced
    own = tmp_path / "own"
    make_synthetic_dataset(own, **SMALL)
    (own / "images" / "extra.png").write_bytes(b"stale")
    make_synthetic_dataset(own, **SMALL, overwrite=True)
    assert not (own / "images" / "extra.png").exists() and (own / "datalist.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_an_interrupted_run_leaves_dst_untouched_and_is_regenerated_without_overwrite(tmp_path, monkeypatch):
    dst = tmp_path / "d"
    calls = {"n": 0}
    real = histology.atomic_save_png

    def dying_save(path, array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(path, array)

    monkeypatch.setattr(histology, "atomic_save_png", dying_save)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(dst, **SMALL)
    monkeypatch.undo()
    # generated in a hidden sibling, renamed when complete: nothing half written under dst, no partial left
    assert not dst.exists() and [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []
    # a partial folder of a killed run (SIGKILL: no cleanup) is removed by the next run
    stale = tmp_path / ".d.partial-killed"
    (stale / "images").mkdir(parents=True)
    (stale / ".synthetic_in_progress").write_text("{}")
    make_synthetic_dataset(dst, **SMALL)
    assert not stale.exists()
    clean = make_synthetic_dataset(tmp_path / "ref", **SMALL).parent
    assert _files(dst) == _files(clean)


def test_concurrent_generations_into_one_folder_give_one_complete_dataset(tmp_path):
    """Item 6 of issue 12: two processes generating into the same folder neither mix nor delete files."""
    dst = tmp_path / "d"
    code = (
        "import sys; from seunet_monai.data.synthetic.histology import make_synthetic_dataset as m\n"
        "try:\n    m(sys.argv[1], n_train=6, n_val=1, n_test=1, size=48)\n"
        "except FileExistsError:\n    print('taken')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(dst)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(o.count("taken") for o, _ in outs) == 1  # the second waited, then found the folder taken
    d = load_datalist(dst, check_files=True, check_sizes=True)
    assert len(d["training"]) == 6
    assert sorted(p.name for p in (dst / "images").iterdir()) == sorted(
        Path(e["image"]).name for v in d.values() for e in v
    )
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_written_files_and_folders_have_ordinary_permissions(tmp_path):
    """Item 12 of issue 12: files are 0666 and folders 0777 less the umask, not mkstemp's/mkdtemp's 0700."""
    old = os.umask(0o022)
    try:
        dst = make_synthetic_dataset(tmp_path / "d", **SMALL).parent
    finally:
        os.umask(old)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o755
    assert stat.S_IMODE((dst / "datalist.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((dst / "images" / "training_0000.png").stat().st_mode) == 0o644
