"""The inputs of the MoNuSeg preparation (:mod:`seunet_monai.data.prepare.monuseg_inputs`): images and labels
matched in the official layout and in flat folders, each checked before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seunet_monai.cli.prepare_monuseg import main
from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.prepare.monuseg import prepare_monuseg
from seunet_monai.errors import PreparationError
from tests.data.monuseg_files import (
    SQUARE,
    expected_mask,
    flat_args,
    flat_kwargs,
    make_flat,
    make_monuseg,
    rgb,
    xml_text,
)


def test_image_without_annotation_and_skip_bad(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=3)
    (src / "MoNuSegTrainingData" / "Annotations" / "TCGA-TR-0001.xml").unlink()
    with pytest.raises(PreparationError, match="TCGA-TR-0001.tif.*without an annotation"):
        prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none")
    assert not (tmp_path / "dst").exists()  # checked before writing anything
    (src / "MoNuSegTestData" / "TCGA-TE-0000.xml").write_text("<Annotations><Annotation>")  # truncated
    code = main(
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
            "--skip-bad",
        ]
    )
    assert code == 0
    rep = json.loads((tmp_path / "dst" / "prepare_report.json").read_text())
    skipped = {Path(s["file"]).name for s in rep["skipped_files"]}
    assert skipped == {"TCGA-TR-0001.tif", "TCGA-TE-0000.xml"}
    assert rep["images"]["training"] + rep["images"]["validation"] == 2 and rep["images"]["test"] == 0


def test_small_image_refused(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=1, n_test=0, sizes={"TCGA-TR-0000": (20, 64)})
    with pytest.raises(PreparationError, match="TCGA-TR-0000.tif.*smaller than the tile"):
        prepare_monuseg(src, tmp_path / "dst", tile=32, stain_norm="none")


def test_flat_folders_xml_first_then_png_and_sources_recorded(tmp_path):
    root = make_flat(tmp_path / "raw")
    dst = tmp_path / "dst"
    assert main(flat_args(root, dst, "--val-images", "TCGA-FL-0003")) == 0
    rep = json.loads((dst / "prepare_report.json").read_text())
    assert rep["label_sources"] == {
        "TCGA-FL-0000": "xml",
        "TCGA-FL-0001": "xml",
        "TCGA-FL-0002": "png",
        "TCGA-FL-0003": "png",
    }
    assert rep["images"] == {"training": 3, "validation": 1, "test": 0}  # no test split without --test-images
    assert rep["split_images"]["validation"] == ["TCGA-FL-0003"]
    dl = load_datalist(dst)
    for e in dl["training"] + dl["validation"]:  # both sources give the same 0/1 mask
        r, c = (int(v[1:]) for v in e["name"].split("_")[-2:])
        np.testing.assert_array_equal(np.asarray(Image.open(e["label"])), expected_mask()[r : r + 32, c : c + 32])
    inst = np.asarray(Image.open(dst / dl["validation"][0]["instance"]))
    assert inst.max() >= 3  # PNG masks: connected components stand in for instances


def test_flat_folders_bad_masks_and_unlabelled_images(tmp_path, capsys):
    root = make_flat(tmp_path / "raw", xml_for=(), png_for=(0, 1))
    dst = tmp_path / "dst"
    assert main(flat_args(root, dst)) == 1  # images 2 and 3 have neither XML nor PNG
    assert "TCGA-FL-0002.tif" in capsys.readouterr().err and not dst.exists()
    assert main(flat_args(root, dst, "--skip-bad")) == 0
    rep = json.loads((dst / "prepare_report.json").read_text())
    assert {Path(s["file"]).name for s in rep["skipped_files"]} == {"TCGA-FL-0002.tif", "TCGA-FL-0003.tif"}
    root = make_flat(tmp_path / "raw2", xml_for=(), png_for=(0, 1, 2, 3))
    Image.fromarray((expected_mask() * 7).astype(np.uint8)).save(root / "masks" / "TCGA-FL-0000.png")
    assert main(flat_args(root, tmp_path / "d2")) == 1
    err = capsys.readouterr().err
    assert "TCGA-FL-0000.png" in err and "{0, 1} or {0, 255}" in err


def test_suspicious_annotations_warn_and_fail_with_strict(tmp_path, capsys):
    """Item 10 of issue 12: an annotation with no region, or whose regions mostly fall outside the image (here
    the image was halved), is reported per file; --strict makes it a bad file."""
    src = make_monuseg(tmp_path / "src", n_train=3, n_test=0, sizes={"TCGA-TR-0002": (40, 40)})
    xml = src / "MoNuSegTrainingData" / "Annotations"
    (xml / "TCGA-TR-0001.xml").write_text(xml_text([]))
    far = [[(x + 45, y + 45) for x, y in SQUARE], [(x + 40, y + 30) for x, y in SQUARE], SQUARE]
    (xml / "TCGA-TR-0002.xml").write_text(xml_text(far))  # 2 of 3 regions outside the 40 x 40 image
    args = ["--src", str(src), "--stain-norm", "none", "--tile", "32", "--val-fraction", "0"]
    assert main([*args, "--dst", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "TCGA-TR-0001.xml: no nucleus annotated" in err and "TCGA-TR-0002.xml: 2 of 3 regions lie outside" in err
    assert "TCGA-TR-0000" not in err
    report = json.loads((tmp_path / "a" / "prepare_report.json").read_text())
    assert sorted(Path(w["file"]).name for w in report["annotation_warnings"]) == [
        "TCGA-TR-0001.xml",
        "TCGA-TR-0002.xml",
    ]
    assert main([*args, "--dst", str(tmp_path / "b"), "--strict"]) == 1
    assert "TCGA-TR-0001.xml: no nucleus annotated" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert main([*args, "--dst", str(tmp_path / "c"), "--strict", "--skip-bad"]) == 0
    report = json.loads((tmp_path / "c" / "prepare_report.json").read_text())
    assert len(report["skipped_files"]) == 2 and report["images"]["training"] == 1


def test_two_images_of_one_name_are_refused(tmp_path):
    """Issue 25, item 11: `X.tif` and a different `X.png` in --images: the PNG was silently ignored."""
    root = make_flat(tmp_path / "flat", n=2)
    Image.fromarray(rgb((64, 64), 7)).save(root / "images" / "TCGA-FL-0001.png")
    with pytest.raises(PreparationError, match=r"TCGA-FL-0001.png and TCGA-FL-0001.tif have the same name"):
        prepare_monuseg(None, tmp_path / "dst", **flat_kwargs(root))
    assert not (tmp_path / "dst").exists()
