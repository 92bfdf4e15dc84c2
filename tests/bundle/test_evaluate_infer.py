"""`evaluating` (train.json + evaluate.json) and `inferring` (inference.json) on the shared tiny run."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from .conftest import INFERENCE, TINY_NET, bundle


def test_evaluating_scores_the_test_split(trained):
    proc = bundle(
        "evaluating",
        "['bundle/configs/train.json','bundle/configs/evaluate.json']",
        *TINY_NET,
        *trained["dir_args"],
        "--scales",
        "[0.5,1]",  # the scale sweep added to evaluating (tested in tests/evaluation)
    )
    assert "Restored all variables" in proc.stdout
    out = json.loads((trained["output_dir"] / "eval" / "metrics.json").read_text())
    metrics = out["metrics"]
    expected = {
        "test_iou",
        "test_iou_mean",
        "test_iou_pdist",
        "test_iou_pens",
        "test_iou_scale",
        "test_iou_head1",
        "test_iou_head2",
    }
    # instance metrics: every key present, nan here (the synthetic test items have no instance labels)
    instance = {
        f"test_{k}{s}"
        for k in ("pq", "sq", "rq", "aji", "f1", "dice_obj", "count_ratio")
        for s in ("", "_mean", "_pdist", "_pens", "_scale", "_head1", "_head2")
    }
    assert set(metrics) == expected | instance
    assert all(np.isnan(metrics[k]) for k in instance)
    assert all(0.0 <= v <= 1.0 or np.isnan(v) for v in metrics.values())
    assert metrics["test_iou"] == metrics["test_iou_pens"]  # the key metric uses the network's fusion
    assert out["split"] == "test" and out["scale"] == 1.0
    assert out["checkpoint"].endswith("model.pt")


def _inputs(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    rgb = rng.integers(0, 255, (40, 72, 3), dtype=np.uint8)  # not square: orientation must be kept
    Image.fromarray(rgb).save(folder / "wide.png")
    Image.fromarray(rgb[:, :, 0]).save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 72), 255, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (150, 90, 3), dtype=np.uint8)).save(folder / "large.tif")  # > window
    (folder / "notes.txt").write_text("not an image")
    return {"wide": (40, 72), "grey": (40, 72), "rgba": (40, 72), "large": (150, 90)}


def test_inferring_writes_one_mask_per_image(tmp_path, trained):
    """The contract command on ordinary images: a palette PNG mask, a mask TIFF, the instance TIFF, GeoJSON, the pictures and the
    summary per image (which lists every output and its meaning);
    `run` does the same as `inferring`; a second run skips finished images; output_dir == input_dir
    is refused even with --overwrite true."""
    import tifffile

    sizes = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    args = [
        *TINY_NET,
        "--ckpt_dir",
        str(trained["ckpt_dir"]),
        "--input_dir",
        str(tmp_path / "in"),
        "--output_dir",
        str(out),
        "--roi_size",
        "[64,64]",
        "--progress",
        "false",
    ]
    proc = bundle("inferring", INFERENCE, *args)
    assert "converting PIL mode 'L' to RGB" in proc.stdout and "converting PIL mode 'RGBA' to RGB" in proc.stdout
    assert "notes.txt: unsupported file type" in proc.stdout
    suffixes = (
        "_mask.png",
        "_mask.tif",
        "_instances.tif",
        ".geojson",
        "_overlay.png",
        "_heads.png",
        "_scale.png",
        "_summary.json",
    )
    names = sorted(p.name for p in out.iterdir() if p.name != ".seunet_run.lock")  # the run lock stays, as in training
    assert names == sorted(f"{k}{s}" for k in sizes for s in suffixes)
    for stem, (h, w) in sizes.items():
        png = Image.open(out / f"{stem}_mask.png")
        mask = np.asarray(png)
        assert png.mode == "P" and mask.shape == (h, w) and set(np.unique(mask)) <= {0, 1}
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_mask.tif"), mask)
        summary = json.loads((out / f"{stem}_summary.json").read_text())
        assert summary["size"] == [h, w] and summary["resolution"]["known"] is False
        assert sorted(summary["output_files"]) == sorted(f"{stem}{s}" for s in suffixes)
        assert Image.open(out / f"{stem}_overlay.png").size == (w, h)  # the overlay at full resolution
        assert json.loads((out / f"{stem}.geojson").read_text())["type"] == "FeatureCollection"
        labels = tifffile.imread(out / f"{stem}_instances.tif")
        assert labels.dtype == np.uint32 and labels.shape == (h, w)
        assert summary["nuclei"]["count"] == len(np.unique(labels[labels > 0]))  # counts from the instances
    # a second run (here through `run`, which does the same) skips the finished images, rewriting nothing
    before = (out / "wide_mask.png").stat().st_mtime_ns
    again = bundle("run", INFERENCE, *args)
    assert "wide.png: outputs present from a finished run, skipped" in again.stdout
    assert (out / "wide_mask.png").stat().st_mtime_ns == before
    # outputs are never written among the inputs, whatever --overwrite says
    inputs_before = sorted(p.name for p in (tmp_path / "in").iterdir())
    same = bundle(
        "inferring", INFERENCE, *args, "--output_dir", str(tmp_path / "in"), "--overwrite", "true", check=False
    )
    assert same.returncode != 0 and "is the input folder" in same.stdout
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == inputs_before


def test_inferring_refuses_16_bit_images(tmp_path, trained):
    folder = tmp_path / "in16"
    folder.mkdir()
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(folder / "deep.png")
    proc = bundle(
        "inferring",
        INFERENCE,
        *TINY_NET,
        "--ckpt_dir",
        str(trained["ckpt_dir"]),
        "--input_dir",
        str(folder),
        "--output_dir",
        str(tmp_path / "o"),
        "--roi_size",
        "[64,64]",
        check=False,
    )
    assert proc.returncode != 0
    assert "deep.png" in proc.stdout and "16-bit" in proc.stdout
    assert not (tmp_path / "o" / "deep.png").exists()


def test_run_of_the_evaluation_configs_evaluates(trained, tmp_path):
    """`run` with train.json + evaluate.json is the evaluation workflow, as in the model zoo (never a retraining)."""
    last = trained["ckpt_dir"] / "last.pt"
    stamp = last.stat().st_mtime_ns
    out = tmp_path / "eval_run"
    bundle(
        "run",
        "['bundle/configs/train.json','bundle/configs/evaluate.json']",
        *TINY_NET,
        *trained["dir_args"],
        "--eval_dir",
        str(out),
        "--scales",
        "[1]",
    )
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"
    assert last.stat().st_mtime_ns == stamp  # nothing was trained
