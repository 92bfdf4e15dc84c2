"""Specification of ``seunet_monai.data.dataset``: the embedded default dataset, splits, inference inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seunet_monai.data.dataset import check_label_values, ensure_dataset
from seunet_monai.data.io import list_images
from seunet_monai.errors import DataError
from seunet_monai.runtime.checks import check_outputs

SMALL = {"n_train": 2, "n_val": 1, "n_test": 1, "size": 32}


def test_ensure_dataset_generates_the_embedded_default_once(tmp_path, caplog):
    small = {"n_train": 2, "n_val": 1, "n_test": 1, "size": 32}
    with caplog.at_level("WARNING"):
        dl = ensure_dataset(tmp_path / "d", synthetic=small)
    assert "embedded default" in caplog.text
    assert [len(dl[k]) for k in ("training", "validation", "test")] == [2, 1, 1]
    assert Path(dl["training"][0]["image"]).is_absolute()
    mtime = (tmp_path / "d" / "datalist.json").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = ensure_dataset(tmp_path / "d", synthetic=small)
    assert again == dl and "embedded default" not in caplog.text
    assert (tmp_path / "d" / "datalist.json").stat().st_mtime_ns == mtime
    # a datalist whose files went missing is an error naming the file, not a regeneration
    Path(dl["test"][0]["label"]).unlink()
    with pytest.raises(Exception, match=Path(dl["test"][0]["label"]).name):
        ensure_dataset(tmp_path / "d", synthetic=small)
    (tmp_path / "f").write_text("")
    with pytest.raises(DataError, match="dataset_dir.*not a folder"):
        ensure_dataset(tmp_path / "f")


def test_list_images_and_check_outputs(tmp_path):
    for name in ("b.PNG", "a.tif", "c.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    items = list_images(tmp_path)
    assert [Path(i["image"]).name for i in items] == ["a.tif", "b.PNG", "c.tiff"]
    with pytest.raises(FileNotFoundError, match="input_dir"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        list_images(tmp_path / "empty")
    out = tmp_path / "out"
    check_outputs(items, out)  # nothing there yet
    out.mkdir()
    (out / "b.png").write_bytes(b"")
    with pytest.raises(FileExistsError, match="b.png"):
        check_outputs(items, out)
    check_outputs(items, out, overwrite=True)
    with pytest.raises(ValueError, match="both write"):
        check_outputs([{"image": "x/a.png"}, {"image": "y/a.tif"}], out)


def test_ensure_dataset_generates_only_in_an_empty_or_missing_folder(tmp_path):
    """Items 3 and 7: raw data is never generated into (whatever the synthetic overrides say); evaluation
    (generate=False) never generates at all."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "image.tif").write_bytes(b"raw")
    for kwargs in (SMALL, {**SMALL, "overwrite": True}):
        with pytest.raises(DataError, match="raw.*holds files but no datalist.json.*prepare_monuseg.py"):
            ensure_dataset(raw, synthetic=kwargs)
        assert [p.name for p in raw.iterdir()] == ["image.tif"]
    with pytest.raises(DataError, match="typo.*no datalist.json.*prepare_monuseg.py"):
        ensure_dataset(tmp_path / "typo", synthetic=SMALL, generate=False)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    assert len(ensure_dataset(tmp_path / "empty", synthetic=SMALL)["training"]) == 2


def test_ensure_dataset_required_splits_and_label_values(tmp_path):
    """Items 8 and 9: empty required splits and label values outside 0..num_classes-1 (+ ignore_index) fail."""
    dl = ensure_dataset(
        tmp_path / "d", synthetic=SMALL, required_splits=["training", "validation"], num_classes=2, ignore_index=255
    )
    datalist = json.loads((tmp_path / "d" / "datalist.json").read_text())
    (tmp_path / "d" / "datalist.json").write_text(json.dumps({**datalist, "validation": []}))
    with pytest.raises(DataError, match="'validation' split is empty"):
        ensure_dataset(tmp_path / "d", required_splits=["training", "validation"])
    assert ensure_dataset(tmp_path / "d", required_splits=["test"])["validation"] == []

    label = Path(dl["training"][1]["label"])
    mask = np.asarray(Image.open(label)).copy()
    mask[0, 0] = 255  # ignore_index: allowed
    Image.fromarray(mask).save(label)
    check_label_values(dl, 2, 255)
    mask[0, 1] = 4
    Image.fromarray(mask).save(label)
    with pytest.raises(DataError, match=r"training_0001.png.*\(training\[1\]\).*\[4\].*--num_classes 5"):
        check_label_values(dl, 2, 255)
    check_label_values(dl, 5, 255)


def test_labels_stored_as_0_255(tmp_path):
    dl = ensure_dataset(tmp_path / "d", synthetic=SMALL)
    for split in dl.values():
        for e in split:
            Image.fromarray(np.asarray(Image.open(e["label"])) * 255).save(e["label"])
    with pytest.raises(DataError, match="never 1.*0/255"):
        check_label_values(dl, 2, 255)  # 255 is ignore_index: every nucleus would be ignored
    with pytest.raises(DataError, match="holds 0/255.*label // 255"):
        check_label_values(dl, 2, 254)


def test_ensure_dataset_for_volumes_generates_them_and_refuses_the_other_dimensionality(tmp_path, caplog):
    """spatial_dims=3 (variants/3d/): the embedded default is volumes, label values are read as volumes, and a
    dataset of the other dimensionality is one error naming a file, in both directions."""
    small = {"n_train": 1, "n_val": 1, "n_test": 0, "size": 16}
    with caplog.at_level("WARNING"):
        dl = ensure_dataset(tmp_path / "v", synthetic=small, num_classes=2, ignore_index=255, spatial_dims=3)
    assert "fluorescence-like 3D" in caplog.text and dl["training"][0]["image"].endswith(".nii.gz")
    with pytest.raises(DataError, match="holds a volume.*network is 2D.*variants/3d/"):
        ensure_dataset(tmp_path / "v", generate=False, num_classes=2)
    ensure_dataset(tmp_path / "i", synthetic=small)  # 2D default
    with pytest.raises(DataError, match="holds a 2D image.*network is 3D"):
        ensure_dataset(tmp_path / "i", generate=False, num_classes=2, spatial_dims=3)


@pytest.mark.parametrize(
    "text",
    [
        '{"method": "vahadane", "target_stain',
        "{}",
        '{"method": "sepia"}',
        '{"method": "macenko", "target_stain_matrix": [[NaN, 0.5, 0.2], [0.1, 0.8, 0.3]], '
        '"target_max_concentrations": [1.5, 1.0]}',
    ],
)
def test_a_corrupt_stain_reference_stops_training_before_it_is_copied(tmp_path, text):
    """Issue 25: a corrupt stain_reference.json is one error naming the file, not a model carrying it."""
    from seunet_monai.data.dataset import copy_stain_reference

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stain_reference.json").write_text(text)
    with pytest.raises(DataError, match="stain_reference.json"):
        copy_stain_reference(tmp_path / "data", tmp_path / "models")
    assert not (tmp_path / "models" / "stain_reference.json").exists()


def test_a_truncated_training_image_is_named_before_any_work(tmp_path):
    """Issue 25: a truncated training PNG was a 121-line MONAI error that never named the file."""
    dl = ensure_dataset(tmp_path / "d", synthetic=SMALL, required_splits=["training", "validation"])
    image = Path(dl["validation"][0]["image"])
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"{image.name}' \(validation\[0\] of .*datalist.json\) cannot be decoded"):
        ensure_dataset(tmp_path / "d", required_splits=["training", "validation"])
    assert ensure_dataset(tmp_path / "d", required_splits=["training"])  # a split this run does not read
