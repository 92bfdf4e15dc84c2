"""BCSS preparation: class mapping, ignore value, institution split, dropped empty tiles, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seunet_monai.cli.prepare_bcss import main
from seunet_monai.data.bcss import (
    DEFAULT_CLASS_MAP,
    DEFAULT_TEST_INSTITUTIONS,
    IGNORE_VALUE,
    institution_of,
    load_class_map,
    map_classes,
    prepare_bcss,
)
from seunet_monai.data.datalist import load_datalist
from seunet_monai.errors import PreparationError


def code_mask(h: int = 48, w: int = 64) -> np.ndarray:
    """Codes laid out in 16 x 16 blocks; the top-left 16 x 32 tiles are all outside_roi (dropped)."""
    m = np.zeros((h, w), np.uint8)
    m[16:32, 0:16] = 1  # tumor
    m[16:32, 16:32] = 20  # dcis -> tumour
    m[16:32, 32:48] = 3  # lymphocytic -> inflammatory
    m[16:32, 48:64] = 10  # plasma cells -> inflammatory
    m[32:48, 0:16] = 2  # stroma
    m[32:48, 16:32] = 4  # necrosis
    m[32:48, 32:48] = 9  # fat -> other
    m[32:40, 48:64] = 7  # exclude -> ignore
    m[40:48, 48:64] = 6  # blood -> other
    m[0:16, 32:64] = 15  # undetermined -> ignore
    return m


def make_bcss(root: Path, names, size=(48, 64)) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for n in names:
        Image.fromarray(rng.randint(100, 255, size=(*size, 3)).astype(np.uint8)).save(images / f"{n}.png")
        Image.fromarray(code_mask(*size)).save(masks / f"{n}.png")
    return images, masks


NAMES = [
    "TCGA-A1-A0SK-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-A2-A0CM-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-A2-A0CM-DX1_xmin9_ymin9_MPP-0.2500",  # second region of the same slide
    "TCGA-BH-A0BG-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-OL-A5D6-DX1_xmin1_ymin2_MPP-0.2500",  # default test institution
    "TCGA-E2-A14N-DX1_xmin1_ymin2_MPP-0.2500",  # default test institution
]


def test_default_map_and_mapping():
    assert DEFAULT_CLASS_MAP[0] == DEFAULT_CLASS_MAP[7] == DEFAULT_CLASS_MAP[15] == IGNORE_VALUE
    assert DEFAULT_CLASS_MAP[1] == DEFAULT_CLASS_MAP[19] == DEFAULT_CLASS_MAP[20] == 0
    assert [DEFAULT_CLASS_MAP[c] for c in (2, 3, 10, 11, 4)] == [1, 2, 2, 2, 3]
    assert {DEFAULT_CLASS_MAP[c] for c in (5, 6, 8, 9, 12, 13, 14, 16, 17, 18, 21)} == {4}
    assert len(DEFAULT_CLASS_MAP) == 22
    out = map_classes(code_mask(), DEFAULT_CLASS_MAP)
    assert out.dtype == np.uint8
    assert (out[16:32, 0:32] == 0).all() and (out[16:32, 32:64] == 2).all()
    assert out[40, 8] == 1 and out[40, 24] == 3 and out[40, 40] == 4
    assert out[34, 56] == IGNORE_VALUE and out[44, 56] == 4
    assert (out[0:16] == IGNORE_VALUE).all()
    with pytest.raises(PreparationError, match="m.png.*code\\(s\\) \\[30\\]"):
        map_classes(np.array([[1, 30]]), DEFAULT_CLASS_MAP, "m.png")


def test_institution_codes():
    assert institution_of("TCGA-OL-A5D6-DX1_xmin1.png") == "OL"
    assert institution_of("x/TCGA-e2-A14N-DX1.png") == "E2"
    with pytest.raises(PreparationError, match="slide_42.png"):
        institution_of("slide_42.png")
    assert len(DEFAULT_TEST_INSTITUTIONS) == 6


def test_class_map_files_override(tmp_path):
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"20": "other", "exclude": 4, "undetermined": "ignore"}))
    m = load_class_map(j)
    assert m[20] == 4 and m[7] == 4 and m[15] == IGNORE_VALUE and m[1] == 0
    t = tmp_path / "map.tsv"
    t.write_text("code\tclass\n# comment\n19\tstroma\n0\t255\n")
    m = load_class_map(t)
    assert m[19] == 1 and m[0] == 255 and m[20] == 0
    t.write_text("19\tbanana\n")
    with pytest.raises(PreparationError, match="map.tsv line 1"):
        load_class_map(t)


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


def test_cli_test_institutions_and_class_map(tmp_path):
    images, masks = make_bcss(tmp_path, NAMES)
    cmap = tmp_path / "m.json"
    cmap.write_text(json.dumps({"15": 4}))  # undetermined -> other: the top-right tiles are kept
    args = ["--images", str(images), "--masks", str(masks), "--dst", str(tmp_path / "dst"), "--tile", "16",
            "--test-institutions", "a1,bh", "--class-map", str(cmap), "--val-fraction", "0"]
    assert main(args) == 0
    rep = json.loads((tmp_path / "dst" / "prepare_report.json").read_text())
    assert rep["test_institutions"] == ["A1", "BH"] and rep["images"]["test"] == 2
    assert sum(rep["dropped_empty_tiles"].values()) == 2 * len(NAMES)
    assert main(args) == 1  # non-empty dst refused
    assert main(args + ["--overwrite"]) == 0


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
    assert main(["--images", str(images), "--masks", str(masks), "--dst", str(tmp_path / "d3"), "--skip-bad"]) == 1


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
