"""``seunet-prepare-bcss`` (``scripts/prepare_bcss.py``): options, exit codes, and inputs never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seunet_monai.cli.prepare_bcss import main
from tests.data.bcss_files import NAMES, make_bcss


def test_cli_test_institutions_and_class_map(tmp_path):
    images, masks = make_bcss(tmp_path, NAMES)
    cmap = tmp_path / "m.json"
    cmap.write_text(json.dumps({"15": 4}))  # undetermined -> other: the top-right tiles are kept
    args = [
        "--images",
        str(images),
        "--masks",
        str(masks),
        "--dst",
        str(tmp_path / "dst"),
        "--tile",
        "16",
        "--test-institutions",
        "a1,bh",
        "--class-map",
        str(cmap),
        "--val-fraction",
        "0",
    ]
    assert main(args) == 0
    rep = json.loads((tmp_path / "dst" / "prepare_report.json").read_text())
    assert rep["test_institutions"] == ["A1", "BH"] and rep["images"]["test"] == 2
    assert sum(rep["dropped_empty_tiles"].values()) == 2 * len(NAMES)
    assert main(args) == 1  # non-empty dst refused
    assert main(args + ["--overwrite"]) == 0


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["images", "masks", "parent", "inside"])
def test_overwrite_never_touches_the_inputs(tmp_path, capsys, where):
    """Item 1 of issue 12: --dst equal to an input folder, a parent of it or inside it is refused, whatever
    --overwrite says, before any work; the raw files survive."""
    images, masks = make_bcss(tmp_path / "raw", NAMES[:2])
    before = _tree(tmp_path / "raw")
    dst = {"images": images, "masks": masks, "parent": tmp_path / "raw", "inside": images / "out"}[where]
    code = main(["--images", str(images), "--masks", str(masks), "--dst", str(dst), "--tile", "16", "--overwrite"])
    assert code == 1 and "overlaps the input" in capsys.readouterr().err
    assert _tree(tmp_path / "raw") == before


def test_overwrite_replaces_only_a_folder_it_wrote(tmp_path, capsys):
    images, masks = make_bcss(tmp_path / "raw", NAMES[:2])
    args = ["--images", str(images), "--masks", str(masks), "--tile", "16", "--overwrite"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not ours")
    assert main([*args, "--dst", str(other)]) == 1
    assert "prepare_report.json" in capsys.readouterr().err and (other / "notes.txt").is_file()
    dst = tmp_path / "dst"
    assert main([*args, "--dst", str(dst)]) == 0
    (dst / "stale.png").write_bytes(b"old run")
    assert main([*args, "--dst", str(dst)]) == 0  # our own output (prepare_report.json) is replaced
    assert not (dst / "stale.png").exists() and (dst / "prepare_report.json").is_file()
