"""MoNuSeg preparation (:mod:`seunet_monai.data.prepare.monuseg`): splits, tiles, the test protocol, stain
normalisation, the report, and a dataset folder replaced only when complete."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from seunet_monai.cli.prepare_monuseg import main
from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.prepare.monuseg import prepare_monuseg
from seunet_monai.errors import PreparationError
from tests.data.monuseg_files import (
    expected_mask,
    flat_args,
    flat_kwargs,
    make_flat,
    make_monuseg,
    rgb,
    tree,
)


def test_prepare_end_to_end(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=4, sizes={"TCGA-TR-0003": (70, 64)})
    dst = tmp_path / "dst"
    rep = prepare_monuseg(src, dst, val_fraction=0.25, tile=32, stride=16, stain_norm="none", seed=1)
    assert rep["images"] == {"training": 3, "validation": 1, "test": 1}
    per = rep["per_image"]
    assert {s: per[s]["tiles"] for s in per} == {
        "TCGA-TR-0000": 9,
        "TCGA-TR-0001": 9,
        "TCGA-TR-0002": 9,
        "TCGA-TR-0003": 12,
        "TCGA-TE-0000": 1,
    }
    assert rep["regions"] == 25 and rep["skipped_regions"] == 5 and rep["clipped_vertices"] == 25
    assert rep["microns_per_pixel"]["TCGA-TR-0000"] is None and rep["microns_per_pixel"]["TCGA-TR-0001"] == 0.25
    assert rep["stain_normalisation"]["method"] == "none"
    assert json.loads((dst / "prepare_report.json").read_text())["tiles"] == rep["tiles"]

    dl = load_datalist(dst, check_sizes=True)
    assert sum(rep["tiles"].values()) == sum(len(v) for v in dl.values())
    train_src = {e["source"] for e in dl["training"]}
    val_src = {e["source"] for e in dl["validation"]}
    assert train_src and val_src and not train_src & val_src  # split by whole image
    assert {e["source"] for e in dl["test"]} == {"TCGA-TE-0000"}

    # a training tile's label is the right crop of the full-image mask; the test image is kept whole
    full = expected_mask()
    entry = next(e for e in dl["training"] + dl["validation"] if e["name"] == "TCGA-TR-0001_r16_c32")
    np.testing.assert_array_equal(np.asarray(Image.open(entry["label"])), full[16:48, 32:64])
    test = dl["test"][0]
    np.testing.assert_array_equal(np.asarray(Image.open(test["label"])), full)
    inst = np.asarray(Image.open(test["instance"]))  # made absolute like image and label
    assert inst.dtype in (np.uint16, np.int32) and inst.max() == 5 and inst.shape == (64, 64)
    img = tifffile.imread(src / "MoNuSegTestData" / "TCGA-TE-0000.tif")
    np.testing.assert_array_equal(np.asarray(Image.open(test["image"])), img)


def test_training_part_only_and_seed_determinism(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=5, n_test=0)
    (src / "MoNuSegTestData").rmdir()
    r1 = prepare_monuseg(src, tmp_path / "a", tile=32, stride=32, stain_norm="none", seed=7)
    r2 = prepare_monuseg(src, tmp_path / "b", tile=32, stride=32, stain_norm="none", seed=7)
    split = lambda r: {s: v["split"] for s, v in r["per_image"].items()}  # noqa: E731
    assert split(r1) == split(r2) and r1["images"] == {"training": 4, "validation": 1, "test": 0}
    assert r1["tiles"] == {"training": 16, "validation": 4, "test": 0}


def test_stain_norm_reference_recorded(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="macenko", val_fraction=0.0)
    st = rep["stain_normalisation"]
    assert st["method"] == "macenko" and st["reference"]["image"] == "TCGA-TR-0000"
    assert (tmp_path / "dst" / "stain_reference.png").is_file()
    assert np.asarray(st["target_stain_matrix"]).shape == (2, 3)


def test_grey_rgba_converted_and_counted(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0, modes={"TCGA-TR-0000": "grey", "TCGA-TR-0001": "rgba"})
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none", val_fraction=0)
    assert rep["conversions"] == {"grey->rgb": 1, "rgba->rgb": 1}
    dl = load_datalist(tmp_path / "dst")
    assert all(np.asarray(Image.open(e["image"])).shape == (32, 32, 3) for e in dl["training"])


def test_non_empty_dst_refused_and_overwrite_clean(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none")
    assert (dst / "stale.png").exists()
    assert main(["--src", str(src), "--dst", str(dst), "--tile", "32", "--stain-norm", "none"]) == 1
    # --overwrite never cleans a folder this project did not write (no prepare_report.json)
    with pytest.raises(ValueError, match="did not write it"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert (dst / "stale.png").exists()
    (dst / "stale.png").unlink()
    prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none")
    (dst / "training" / "stale.png").write_bytes(b"x")  # left over in a folder we wrote: removed
    rep = prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert not (dst / "training" / "stale.png").exists()
    files = {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}
    assert not any(".tmp" in f for f in files)
    assert len([f for f in files if f.startswith(("training/images", "validation/images"))]) == sum(
        rep["tiles"].values()
    )


def test_bad_stain_reference_fails_before_touching_dst(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("previous run")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((32, 32, 3), 250, np.uint8)).save(blank)
    with pytest.raises(ValueError, match="blank.png.*tissue"):
        prepare_monuseg(src, dst, tile=32, stain_norm="vahadane", stain_reference=blank, overwrite=True)
    assert (dst / "keep.txt").read_text() == "previous run"


def test_dst_overlapping_the_inputs_is_refused_and_inputs_survive(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for dst in (src, tmp_path, src / "MoNuSegTrainingData" / "out"):
        with pytest.raises(ValueError, match="overlaps the input"):
            prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_flat_folders_test_images_tiles_and_bad_stems(tmp_path):
    root = make_flat(tmp_path / "raw", png_scale=1)
    rep = prepare_monuseg(
        None,
        tmp_path / "a",
        images=root / "images",
        annotations=root / "annotations",
        masks=root / "masks",
        tile=32,
        stride=32,
        stain_norm="none",
        val_images="TCGA-FL-0001",
        test_images=["TCGA-FL-0002"],
    )
    assert rep["images"] == {"training": 2, "validation": 1, "test": 1}
    assert rep["per_image"]["TCGA-FL-0002"]["tiles"] == 1  # test images whole by default
    rep = prepare_monuseg(
        None,
        tmp_path / "b",
        images=root / "images",
        masks=root / "masks",
        annotations=root / "annotations",
        tile=32,
        stride=32,
        stain_norm="none",
        test_images="TCGA-FL-0002",
        test_tiles=True,
    )
    assert rep["per_image"]["TCGA-FL-0002"]["tiles"] == 4 and rep["settings"]["test_protocol"] == "tiles"
    with pytest.raises(PreparationError, match="--val-images.*TCGA-XX"):
        prepare_monuseg(
            None,
            tmp_path / "c",
            images=root / "images",
            annotations=root / "annotations",
            masks=root / "masks",
            tile=32,
            stain_norm="none",
            val_images="TCGA-XX",
        )
    assert not (tmp_path / "c").exists()


def test_bit_depth_scaling_is_reported(tmp_path, capsys):
    """Item 13 of issue 12: a 12-bit TIFF is scaled by its stated depth (>> 4), and the report and the log say so."""
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    img = src / "MoNuSegTrainingData" / "Tissue Images" / "TCGA-TR-0000.tif"
    rgb8 = tifffile.imread(img)
    tifffile.imwrite(img, (rgb8.astype(np.uint16) << 4), photometric="rgb", bitspersample=12)  # packed 12-bit
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none", val_fraction=0)
    desc = "uint16->uint8: 12-bit values >> 4 (x 255/4095, truncated)"
    assert rep["conversions"] == {desc: 1} and rep["per_image"]["TCGA-TR-0000"]["conversion"] == desc
    assert f"TCGA-TR-0000.tif: {desc}" in capsys.readouterr().err
    tile = load_datalist(tmp_path / "dst")["training"][0]
    assert np.array_equal(np.asarray(Image.open(tile["image"])), rgb8[:32, :32])


def test_stain_reference_inside_dst_is_refused_and_kept(tmp_path):
    """Item 3: --dst D --overwrite --stain-reference D/ref.png would delete the reference it reads."""
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", val_fraction=0.0)
    ref = dst / "ref.png"
    Image.fromarray(rgb((32, 32), seed=3)).save(ref)
    before = ref.read_bytes()
    with pytest.raises(ValueError, match="lies inside --dst"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="macenko", stain_reference=ref, overwrite=True)
    assert ref.read_bytes() == before and (dst / "datalist.json").is_file()


def test_overwrite_on_a_full_disk_keeps_the_old_dataset(tmp_path, monkeypatch, capsys):
    """Issue 25: `--overwrite` on a full disk wiped the complete old dataset first, then failed (22-line traceback)
    and a rerun was refused. The new dataset is written beside the old one and swapped in when complete."""
    import errno

    import seunet_monai.data.prepare.monuseg as io_module  # the module whose writes fail

    root = make_flat(tmp_path / "flat", n=3)
    dst = tmp_path / "dst"
    prepare_monuseg(None, dst, **flat_kwargs(root))
    before = tree(dst)
    real_save, calls = io_module.atomic_save_png, []

    def full_disk(path, array):
        calls.append(path)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, array)

    monkeypatch.setattr(io_module, "atomic_save_png", full_disk)
    assert main(flat_args(root, dst, "--overwrite")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and f"--dst {dst} is unchanged" in err[0]
    assert tree(dst) == before and sorted(p.name for p in tmp_path.iterdir()) == ["dst", "flat"]
    monkeypatch.setattr(io_module, "atomic_save_png", real_save)
    report = prepare_monuseg(None, dst, **flat_kwargs(root), overwrite=True, seed=1)
    assert json.loads((dst / "prepare_report.json").read_text())["settings"]["seed"] == 1 == report["settings"]["seed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "flat"]


def test_test_tiles_cut_test_images_like_training_ones(tmp_path):
    """The test protocol: test images kept whole (default) or tiled like training ones (``test_tiles``, the
    paper's 16 tiles per 1000-px image); the report records which."""
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=2)
    whole = prepare_monuseg(src, tmp_path / "whole", val_fraction=0.0, tile=32, stride=16, stain_norm="none")
    tiled = prepare_monuseg(
        src, tmp_path / "tiled", val_fraction=0.0, tile=32, stride=16, stain_norm="none", test_tiles=True
    )
    assert whole["settings"]["test_protocol"] == "whole images"
    assert tiled["settings"]["test_protocol"] == "tiles"
    # 64-px images, 32-px tiles, stride 16: 3 x 3 tiles per image, as for the training images
    assert whole["tiles"]["test"] == 2 and tiled["tiles"]["test"] == 2 * 9
    assert tiled["tiles"]["training"] == whole["tiles"]["training"] == 2 * 9
    dl = load_datalist(tmp_path / "tiled", check_sizes=True)
    assert all(Image.open(e["image"]).size == (32, 32) for e in dl["test"])
    # a test tile is the crop of the whole test image and its mask written by the default protocol
    whole_test = {e["source"]: e for e in load_datalist(tmp_path / "whole")["test"]}
    entry = next(e for e in dl["test"] if e["name"] == "TCGA-TE-0001_r16_c32")
    for key in ("image", "label"):
        full = np.asarray(Image.open(whole_test["TCGA-TE-0001"][key]))
        np.testing.assert_array_equal(np.asarray(Image.open(entry[key])), full[16:48, 32:64])
