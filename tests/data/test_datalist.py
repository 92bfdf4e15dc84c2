"""Specification of the dataset_dir/datalist.json contract (seunet_monai.data.datalist)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seunet_monai.data.datalist import datalist_exists, load_datalist, write_datalist
from seunet_monai.data.io import atomic_save_png
from seunet_monai.errors import DatalistError


def _dataset(root: Path, n: int = 2) -> dict[str, list[dict[str, str]]]:
    """A tiny dataset: n training, 1 validation, 0 test pairs of 8x6 PNGs."""
    splits: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
    for split, k in (("training", n), ("validation", 1)):
        for i in range(k):
            atomic_save_png(root / "images" / f"{split}{i}.png", np.zeros((8, 6, 3), np.uint8))
            atomic_save_png(root / "labels" / f"{split}{i}.png", np.zeros((8, 6), np.uint8))
            splits[split].append({"image": f"images/{split}{i}.png", "label": f"labels/{split}{i}.png"})
    return splits


def _raw(root: Path, obj) -> None:
    (root / "datalist.json").write_text(json.dumps(obj))


def test_round_trip_gives_absolute_existing_paths(tmp_path):
    splits = _dataset(tmp_path)
    splits["training"][0]["image"] = tmp_path / "images" / "training0.png"  # absolute Path inside: stored relative
    splits["training"][0]["name"] = "first"
    assert not datalist_exists(tmp_path)
    path = write_datalist(tmp_path, splits)
    assert path == tmp_path / "datalist.json" and datalist_exists(tmp_path)
    stored = json.loads(path.read_text())
    assert stored["training"][0] == {"image": "images/training0.png", "label": "labels/training0.png", "name": "first"}
    assert stored["test"] == []

    d = load_datalist(tmp_path, check_sizes=True)
    assert list(d) == ["training", "validation", "test"]
    assert [len(v) for v in d.values()] == [2, 1, 0]
    for entries in d.values():
        for e in entries:
            assert Path(e["image"]).is_absolute() and Path(e["image"]).is_file()
            assert Path(e["label"]).is_absolute() and Path(e["label"]).is_file()
    assert d["training"][0]["name"] == "first"


def test_write_rejects_bad_splits_before_writing(tmp_path):
    with pytest.raises(DatalistError, match="unknown split.*train"):
        write_datalist(tmp_path, {"train": []})
    with pytest.raises(DatalistError, match=r"validation\[0\].*label"):
        write_datalist(tmp_path, {"validation": [{"image": "a.png"}]})
    with pytest.raises(DatalistError, match="leaves the dataset folder"):
        write_datalist(tmp_path, {"test": [{"image": "../a.png", "label": "b.png"}]})
    assert not datalist_exists(tmp_path)


def test_missing_folder_or_datalist(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_datalist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="datalist.json"):
        load_datalist(tmp_path)


def test_bad_json_and_bad_top_level(tmp_path):
    (tmp_path / "datalist.json").write_text('{"training": [')
    with pytest.raises(DatalistError, match="datalist.json is not valid JSON"):
        load_datalist(tmp_path)
    _raw(tmp_path, [1, 2])
    with pytest.raises(DatalistError, match="JSON object"):
        load_datalist(tmp_path)


def test_missing_and_unknown_keys_are_named(tmp_path):
    _raw(tmp_path, {"training": [], "validation": []})
    with pytest.raises(DatalistError, match=r"missing key\(s\) \['test'\]"):
        load_datalist(tmp_path)
    _raw(tmp_path, {"training": [], "validation": [], "test": [], "testing": []})
    with pytest.raises(DatalistError, match=r"unknown key\(s\) \['testing'\]"):
        load_datalist(tmp_path)
    _raw(tmp_path, {"training": {}, "validation": [], "test": []})
    with pytest.raises(DatalistError, match="'training' must be a list"):
        load_datalist(tmp_path)


def test_bad_entries_name_split_and_index(tmp_path):
    splits = _dataset(tmp_path)
    splits["training"][1] = {"image": "images/training1.png"}
    _raw(tmp_path, splits)
    with pytest.raises(DatalistError, match=r"training\[1\].*\['label'\]"):
        load_datalist(tmp_path)
    splits["training"][1] = {"image": "images/training1.png", "label": 3}
    _raw(tmp_path, splits)
    with pytest.raises(DatalistError, match=r"training\[1\]: 'label' must be a non-empty path"):
        load_datalist(tmp_path)
    splits["training"][1] = "images/training1.png"
    _raw(tmp_path, splits)
    with pytest.raises(DatalistError, match=r"training\[1\]: expected an object"):
        load_datalist(tmp_path)


def test_missing_file_names_file_split_and_index(tmp_path):
    splits = _dataset(tmp_path)
    write_datalist(tmp_path, splits)
    (tmp_path / "labels" / "validation0.png").unlink()
    with pytest.raises(DatalistError, match=r"validation\[0\]: label file not found: .*labels/validation0.png"):
        load_datalist(tmp_path)
    d = load_datalist(tmp_path, check_files=False)  # the check can be turned off
    assert d["validation"][0]["label"] == str(tmp_path.resolve() / "labels" / "validation0.png")


def test_size_mismatch_names_both_files(tmp_path):
    splits = _dataset(tmp_path)
    atomic_save_png(tmp_path / "labels" / "training1.png", np.zeros((8, 7), np.uint8))
    write_datalist(tmp_path, splits)
    load_datalist(tmp_path)  # sizes are only compared on request
    with pytest.raises(
        DatalistError,
        match=r"training\[1\]: image .*images/training1.png has size 8x6 but label .*labels/training1.png has size 8x7",
    ):
        load_datalist(tmp_path, check_sizes=True)


def test_size_check_reads_nifti_with_monai_axis_order(tmp_path):
    # A NIfTI image stored (x, y, c) matches a PNG label of H = y rows and W = x columns, as MONAI loads them.
    nib = pytest.importorskip("nibabel")
    splits = _dataset(tmp_path, n=1)
    nib.save(nib.Nifti1Image(np.zeros((6, 8, 3), np.float32), np.eye(4)), tmp_path / "images" / "t.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((7, 8, 3), np.float32), np.eye(4)), tmp_path / "images" / "u.nii.gz")
    splits["test"] = [{"image": "images/t.nii.gz", "label": "labels/training0.png"}]
    write_datalist(tmp_path, splits)
    load_datalist(tmp_path, check_sizes=True)
    splits["test"] = [{"image": "images/u.nii.gz", "label": "labels/training0.png"}]
    write_datalist(tmp_path, splits)
    with pytest.raises(DatalistError, match=r"test\[0\]: image .*u.nii.gz has size 8x7"):
        load_datalist(tmp_path, check_sizes=True)


def test_instance_key_is_made_absolute_and_checked(tmp_path):
    splits = _dataset(tmp_path)
    atomic_save_png(tmp_path / "instances" / "v.png", np.zeros((8, 6), np.uint16))
    splits["validation"][0]["instance"] = "instances/v.png"
    write_datalist(tmp_path, splits)
    d = load_datalist(tmp_path)
    assert d["validation"][0]["instance"] == str(tmp_path / "instances" / "v.png")
    assert "instance" not in d["training"][0]  # optional
    (tmp_path / "instances" / "v.png").unlink()
    with pytest.raises(DatalistError, match="instance file not found"):
        load_datalist(tmp_path)
