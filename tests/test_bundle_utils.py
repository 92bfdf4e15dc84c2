"""Specification of ``seunet_monai.bundle_utils``: bundle root, embedded default dataset, inputs, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seunet_monai import bundle_utils
from seunet_monai.bundle_utils import (
    bundle_root,
    check_arguments,
    check_label_values,
    check_scales,
    check_outputs,
    check_state_dict,
    ensure_dataset,
    list_images,
    resolve_path,
    to_rgb,
)
from seunet_monai.errors import ConfigValueError, DataError, SeunetError, find_seunet_error

REPO = Path(__file__).resolve().parents[1]


def test_bundle_root_from_environment_workflow_and_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("SEUNET_BUNDLE_ROOT", str(tmp_path))
    assert bundle_root() == str(tmp_path.resolve())
    monkeypatch.delenv("SEUNET_BUNDLE_ROOT")
    # outside any monai.bundle call: the bundle folder of the source checkout
    assert bundle_root() == str(REPO / "bundle")
    # inside a ConfigWorkflow: the folder above the configs' folder, whatever the working directory
    from monai.bundle import ConfigWorkflow

    (tmp_path / "b" / "configs").mkdir(parents=True)
    cfg = tmp_path / "b" / "configs" / "x.json"
    cfg.write_text(json.dumps({"imports": ["$import seunet_monai", "$import seunet_monai.bundle_utils"],
                               "root": "$seunet_monai.bundle_utils.bundle_root()", "run": ["$@root"]}))
    monkeypatch.chdir(tmp_path)
    wf = ConfigWorkflow(config_file=str(cfg), workflow_type=None, logging_file=False)
    wf.initialize()
    assert wf.run() == [str((tmp_path / "b").resolve())]
    assert bundle_utils._root_from_config_file(f"['{cfg}']") == (tmp_path / "b").resolve()


def test_resolve_path(tmp_path):
    assert resolve_path("x/y", tmp_path) == str((tmp_path / "x" / "y").resolve())
    assert resolve_path(str(tmp_path), "/elsewhere") == str(tmp_path)


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



def test_ensure_dataset_for_volumes_generates_them_and_refuses_the_other_dimensionality(tmp_path, caplog):
    """spatial_dims=3 (variants/3d.json): the embedded default is volumes, label values are read as volumes, and a
    dataset of the other dimensionality is one error naming a file, in both directions."""
    small = {"n_train": 1, "n_val": 1, "n_test": 0, "size": 16}
    with caplog.at_level("WARNING"):
        dl = ensure_dataset(tmp_path / "v", synthetic=small, num_classes=2, ignore_index=255, spatial_dims=3)
    assert "fluorescence-like 3D" in caplog.text and dl["training"][0]["image"].endswith(".nii.gz")
    with pytest.raises(DataError, match="holds a volume.*network is 2D.*3d.json"):
        ensure_dataset(tmp_path / "v", generate=False, num_classes=2)
    ensure_dataset(tmp_path / "i", synthetic=small)  # 2D default
    with pytest.raises(DataError, match="holds a 2D image.*network is 3D"):
        ensure_dataset(tmp_path / "i", generate=False, num_classes=2, spatial_dims=3)

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


def test_to_rgb_converts_or_refuses():
    rgb = Image.fromarray(np.zeros((4, 5, 3), np.uint8))
    assert to_rgb(rgb) is rgb
    assert to_rgb(Image.fromarray(np.zeros((4, 5), np.uint8))).mode == "RGB"
    assert to_rgb(Image.fromarray(np.zeros((4, 5, 4), np.uint8))).mode == "RGB"
    with pytest.raises(ValueError, match="16-bit"):
        to_rgb(Image.fromarray(np.zeros((4, 5), np.uint16)))


def test_check_state_dict(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    torch.save({"network": net.state_dict(), "optimizer": {}}, tmp_path / "dict.pt")
    check_state_dict(net, tmp_path / "bare.pt")
    check_state_dict(net, tmp_path / "dict.pt")
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 2, 1))
    with pytest.raises(ValueError, match=r"bare\.pt.*shape"):
        check_state_dict(other, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="missing keys"):
        check_state_dict(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1), torch.nn.ReLU(),
                                             torch.nn.Conv2d(2, 2, 1)), tmp_path / "bare.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        check_state_dict(net, tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        check_state_dict(net, tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------- issue 12
SMALL = {"n_train": 2, "n_val": 1, "n_test": 1, "size": 32}


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
    dl = ensure_dataset(tmp_path / "d", synthetic=SMALL, required_splits=["training", "validation"],
                        num_classes=2, ignore_index=255)
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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"epochs": 2.5}, "--epochs"),
        ({"learning_rate": 0.0}, "--learning_rate"),
        ({"learning_rate": float("inf")}, "--learning_rate"),
        ({"batch_size": 0}, "--batch_size"),
        ({"num_classes": 2, "ignore_index": 1}, "--ignore_index 1"),
        ({"patch_size": [64, 0]}, "--patch_size"),
        ({"scale_range": [2.0, 0.5]}, "--scale_range"),
        ({"scales": []}, "--scales"),
        ({"scales": [1.0, 1.0]}, "repeats"),
    ],
)
def test_check_arguments_names_the_key(kwargs, match):
    with pytest.raises(ConfigValueError, match=match):
        check_arguments(**kwargs)


def test_check_arguments_accepts_the_defaults():
    cfg = json.loads((REPO / "bundle" / "configs" / "train.json").read_text())
    keys = ["epochs", "batch_size", "val_batch_size", "val_interval", "log_interval", "num_workers", "num_classes",
            "ignore_index", "learning_rate", "weight_decay", "patch_size", "scale_range"]
    assert check_arguments(**{k: cfg[k] for k in keys}) is True
    assert check_scales([0.25, 1, 4]) == [0.25, 1.0, 4.0]


def test_seunet_errors_are_found_through_monai_wrapping():
    try:
        try:
            raise DataError("dataset_dir '/x' holds no datalist.json")
        except DataError as e:
            raise RuntimeError("Failed to evaluate ConfigExpression") from e
    except RuntimeError as wrapped:
        found = find_seunet_error(wrapped)
    assert isinstance(found, SeunetError) and isinstance(found, ValueError) and "/x" in str(found)
    assert find_seunet_error(RuntimeError("other")) is None
