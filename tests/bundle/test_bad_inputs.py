"""Bad input fails early with an error naming the file or key, before any output is overwritten; and
`check_properties` of the training and inference workflows."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from PIL import Image

from .conftest import EVALUATE, INFERENCE, TRAIN

TINY = {
    "network_def#num_scales": 2,
    "network_def#channels": [4, 8, 16, 32, 64],
    "epochs": 1,
    "batch_size": 2,
    "patch_size": [64, 64],
}


def _chain(exc: BaseException) -> str:
    """Messages of an exception and its causes (MONAI wraps errors raised inside config expressions)."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _workflow(config, run_id, workflow_type=None, **override):
    wf = ConfigWorkflow(
        config_file=config, run_id=run_id, workflow_type=workflow_type, logging_file=False, **{**TINY, **override}
    )
    wf.initialize()
    return wf


@pytest.fixture
def dataset(tmp_path, trained):
    """A private copy of the tiny dataset, and output folders holding files from an earlier run."""
    data = tmp_path / "data"
    shutil.copytree(trained["dataset_dir"], data)
    ckpt, logs = tmp_path / "models", tmp_path / "logs"
    ckpt.mkdir()
    logs.mkdir()
    shutil.copy(trained["ckpt_dir"] / "last.pt", ckpt / "last.pt")
    (logs / "keep.txt").write_text("earlier run")
    dirs = {"dataset_dir": str(data), "ckpt_dir": str(ckpt), "output_dir": str(logs)}
    return data, ckpt, logs, dirs


def _assert_untouched(ckpt, logs, before):
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt"]
    assert (ckpt / "last.pt").stat().st_mtime_ns == before
    assert sorted(p.name for p in logs.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("damage", ["images_folder_missing", "entry_file_missing", "size_mismatch"])
def test_bad_dataset_fails_before_writing(dataset, damage):
    data, ckpt, logs, dirs = dataset
    before = (ckpt / "last.pt").stat().st_mtime_ns
    if damage == "images_folder_missing":
        shutil.rmtree(data / "images")
        expect = "images"
    elif damage == "entry_file_missing":
        (data / "labels" / "training_0001.png").unlink()
        expect = "training_0001.png"
    else:
        Image.fromarray(np.zeros((70, 64), np.uint8)).save(data / "labels" / "validation_0000.png")
        expect = "validation_0000.png"
    wf = _workflow(TRAIN, "training", **dirs)
    with pytest.raises(Exception) as err:
        wf.run()
    text = _chain(err.value)
    assert expect in text and "datalist" in text.lower(), text[-2000:]
    _assert_untouched(ckpt, logs, before)


def test_resume_from_checkpoint_of_another_architecture(dataset):
    data, ckpt, logs, dirs = dataset
    before = (ckpt / "last.pt").stat().st_mtime_ns
    wf = _workflow(TRAIN, "training", resume=True, **{**dirs, "network_def#channels": [6, 12, 24, 48, 96]})
    with pytest.raises(Exception) as err:
        wf.run()
    text = _chain(err.value)
    assert "last.pt" in text and "network_def" in text, text[-2000:]
    assert (ckpt / "last.pt").stat().st_mtime_ns == before
    assert not (ckpt / "model.pt").exists()


def test_evaluating_checkpoint_of_another_architecture(tmp_path, trained):
    out = tmp_path / "logs"
    wf = _workflow(
        [TRAIN, EVALUATE],
        "evaluating",
        dataset_dir=str(trained["dataset_dir"]),
        ckpt_dir=str(trained["ckpt_dir"]),
        output_dir=str(out),
        **{"network_def#channels": [6, 12, 24, 48, 96]},
    )
    with pytest.raises(Exception) as err:
        wf.run()
    text = _chain(err.value)
    assert "model.pt" in text and "network_def" in text and "shape" in text, text[-2000:]
    assert not (out / "eval" / "metrics.json").exists()


def test_check_properties(tmp_path, trained):
    wf = _workflow(
        TRAIN,
        "training",
        "train",
        dataset_dir=str(trained["dataset_dir"]),
        ckpt_dir=str(tmp_path / "m"),
        output_dir=str(tmp_path / "l"),
    )
    assert wf.check_properties() == []
    wf = _workflow(
        INFERENCE,
        "inferring",
        "infer",
        input_dir=str(trained["dataset_dir"] / "images"),
        ckpt_dir=str(trained["ckpt_dir"]),
        output_dir=str(tmp_path / "p"),
    )
    assert wf.check_properties() == []
