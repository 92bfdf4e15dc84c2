"""``seunet-prepare-monuseg`` (``scripts/prepare_monuseg.py``): exit codes and one-line errors."""

from __future__ import annotations

import pytest

from seunet_monai.cli.prepare_monuseg import main
from seunet_monai.data.datalist import load_datalist
from tests.data.monuseg_files import (
    make_monuseg,
    tree,
)


def test_nothing_written_exits_nonzero(tmp_path, capsys):
    src = make_monuseg(tmp_path / "src", n_train=1, n_test=0)
    (src / "MoNuSegTrainingData" / "Tissue Images" / "TCGA-TR-0000.tif").write_bytes(b"not a tiff")
    args = ["--src", str(src), "--dst", str(tmp_path / "dst"), "--stain-norm", "none", "--tile", "32"]
    assert main(args) == 1 and "TCGA-TR-0000.tif" in capsys.readouterr().err  # unreadable image named
    assert main(args + ["--skip-bad"]) == 1
    assert main(["--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "d2")]) == 1


@pytest.mark.parametrize("where", ["src", "parent", "images"])
def test_overwrite_never_touches_the_inputs(tmp_path, capsys, where):
    """Item 1 of issue 12: --dst equal to the source, a parent of it or inside it: refused before any work,
    whatever --overwrite says; the raw images and XML survive."""
    src = make_monuseg(tmp_path / "data" / "src", n_train=2, n_test=0)
    before = tree(src)
    dst = {"src": src, "parent": tmp_path / "data", "images": src / "MoNuSegTrainingData"}[where]
    code = main(["--src", str(src), "--dst", str(dst), "--overwrite", "--stain-norm", "none", "--tile", "32"])
    assert code == 1 and "overlaps the input" in capsys.readouterr().err
    assert tree(src) == before


def test_test_tiles_flag_on_the_command_line(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=1)
    rc = main(
        [
            "--src",
            str(src),
            "--dst",
            str(tmp_path / "dst"),
            "--tile",
            "32",
            "--stride",
            "32",
            "--stain-norm",
            "none",
            "--val-fraction",
            "0",
            "--test-tiles",
        ]
    )
    assert rc in (0, None)
    assert len(load_datalist(tmp_path / "dst")["test"]) == 4  # 2 x 2 tiles of the one test image
