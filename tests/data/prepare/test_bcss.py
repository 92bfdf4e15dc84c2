"""BCSS preparation (:mod:`seunet_monai.data.prepare.bcss`): institution split, tiles, dropped empty tiles, report,
stain normalisation, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.prepare.bcss import DEFAULT_TEST_INSTITUTIONS, institution_of, prepare_bcss
from seunet_monai.data.prepare.bcss_classes import (
    IGNORE_VALUE,
)
from seunet_monai.errors import PreparationError
from tests.data.bcss_files import NAMES, make_bcss


def test_institution_codes():
    assert institution_of("TCGA-OL-A5D6-DX1_xmin1.png") == "OL"
    assert institution_of("x/TCGA-e2-A14N-DX1.png") == "E2"
    with pytest.raises(PreparationError, match="slide_42.png"):
        institution_of("slide_42.png")
    assert len(DEFAULT_TEST_INSTITUTIONS) == 6


def test_prepare_split_tiles_and_report(tmp_path):
    images, masks = make_bcss(tmp_path, NAMES)
    dst = tmp_path / "dst"
    rep = prepare_bcss(images, masks, dst, tile=16, val_fraction=0.34, seed=0)
    # per region: 3 x 4 tiles of 16; the top row's 4 tiles are all ignore (outside_roi / undetermined)
    n = len(NAMES)
    assert rep["images"]["test"] == 2 and rep["images"]["training"] + rep["images"]["validation"] == 4
    assert sum(rep["tiles"].values()) == 8 * n and sum(rep["dropped_empty_tiles"].values()) == 4 * n
    assert rep["institutions"]["test"] == ["E2", "OL"]
    seen = set(rep["institutions"]["training"] + rep["institutions"]["validation"])
    assert not set(rep["institutions"]["test"]) & seen
    assert rep["slides"]["validation"] == 1  # round(0.34 * 3 slides)
    per = rep["per_image"]
    a0cm = {per[s]["split"] for s in NAMES if "A0CM" in s}
    assert len(a0cm) == 1  # both regions of one slide on the same side
    px = rep["class_pixels"]["test"]
    assert px["tumour"] == 2 * 512 and px["inflammatory"] == 2 * 512 and px["ignore"] == 2 * 128
    dl = load_datalist(dst, check_sizes=True)
    labels = np.concatenate([np.asarray(Image.open(e["label"])).ravel() for e in dl["test"]])
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4, IGNORE_VALUE}
    assert all(np.asarray(Image.open(e["image"])).shape == (16, 16, 3) for e in dl["training"])
    assert {e["institution"] for e in dl["test"]} == {"OL", "E2"}


def test_bad_inputs(tmp_path):
    images, masks = make_bcss(tmp_path, NAMES[:3])
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(masks / f"{NAMES[1]}.png")  # size mismatch
    with pytest.raises(PreparationError, match=f"{NAMES[1]}.png.*differs"):
        prepare_bcss(images, masks, tmp_path / "dst", tile=16)
    assert not (tmp_path / "dst").exists()
    (images / "no_code_here.png").write_bytes((images / f"{NAMES[0]}.png").read_bytes())
    (masks / "no_code_here.png").write_bytes((masks / f"{NAMES[0]}.png").read_bytes())
    (images / f"{NAMES[2]}.png").write_bytes(b"garbage")  # unreadable
    (images / "TCGA-ZZ-0000-DX1.png").write_bytes((images / f"{NAMES[0]}.png").read_bytes())  # no mask
    rep = prepare_bcss(images, masks, tmp_path / "dst", tile=16, skip_bad=True)
    skipped = sorted(Path(s["file"]).name for s in rep["skipped_files"])
    assert skipped == sorted([f"{NAMES[1]}.png", f"{NAMES[2]}.png", "no_code_here.png", "TCGA-ZZ-0000-DX1.png"])
    assert rep["images"]["training"] + rep["images"]["validation"] == 1
    # RGBA and grey regions are converted and counted
    rgb = np.asarray(Image.open(images / f"{NAMES[0]}.png"))
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(images / f"{NAMES[0]}.png")
    rep = prepare_bcss(images, masks, tmp_path / "dst", tile=16, skip_bad=True, overwrite=True)
    assert rep["conversions"] == {"rgba->rgb": 1}
    # nothing usable: error and non-zero exit
    for p in list(images.iterdir()):
        p.unlink()
    with pytest.raises(PreparationError, match="no usable image/mask pair"):
        prepare_bcss(images, masks, tmp_path / "d3", tile=16, skip_bad=True)
    assert not (tmp_path / "d3").exists()


def test_stain_normalisation_with_the_most_tissue_training_tile_as_reference(tmp_path):
    images, masks = make_bcss(tmp_path, NAMES)
    rep = prepare_bcss(images, masks, tmp_path / "dst", tile=16, stain_norm="vahadane", val_fraction=0)
    st = rep["stain_normalisation"]
    first = sorted(n for n in NAMES if institution_of(n) not in DEFAULT_TEST_INSTITUTIONS)[0]
    assert st["method"] == "vahadane" and st["reference"]["image"] == first
    assert st["reference"]["saved_as"] == "stain_reference.png" and (tmp_path / "dst" / "stain_reference.png").is_file()
    assert np.asarray(st["target_stain_matrix"]).shape == (2, 3)
    assert prepare_bcss(images, masks, tmp_path / "off", tile=16)["stain_normalisation"] == {"method": "none"}
