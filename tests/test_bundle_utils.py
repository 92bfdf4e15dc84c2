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
    check_outputs,
    check_state_dict,
    ensure_dataset,
    list_images,
    resolve_path,
    to_rgb,
)

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
    with pytest.raises(NotADirectoryError, match="dataset_dir"):
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
