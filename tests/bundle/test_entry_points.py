"""Entry points as in the model zoo: `run` is each config's complete workflow (train.json: training, + evaluate.json:
evaluating, inference.json: inferring; the named ids are aliases of it), and `ConfigWorkflow.check_properties()`
finds every property MONAI's `TrainProperties` / `InferProperties` require, on a fresh copy of the bundle (only
the tracked files: configs, the shipped model.pt and stain reference; no generated data, logs or last.pt)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import monai.bundle
import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from .conftest import CONFIGS, EVALUATE, INFERENCE, MULTI_GPU, REPO, TRAIN

MONAI_MAIN = str(Path(monai.bundle.__file__).with_name("__main__.py"))  # sys.argv[0] of python -m monai.bundle
TINY = {"network_def#num_scales": 2, "network_def#channels": [4, 8, 16, 32, 64]}
TINY_SYNTHETIC = {
    "synthetic#n_train": 2,
    "synthetic#n_val": 1,
    "synthetic#n_test": 1,
    "synthetic#size": 64,
    "patch_size": [64, 64],
    "shift": 8,
    "batch_size": 2,
}


def _parser(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(list(files))
    return parser


@pytest.mark.parametrize(
    "files, alias",
    [
        ((TRAIN,), "training"),
        ((TRAIN, EVALUATE), "evaluating"),
        ((INFERENCE,), "inferring"),
        ((TRAIN, MULTI_GPU), "training"),
    ],
    ids=["train", "train+evaluate", "inference", "train+multi_gpu"],
)
def test_run_is_the_configs_workflow_and_the_named_id_its_alias(files, alias):
    parser = _parser(*files)
    assert parser["run"] == f"@{alias}"
    assert isinstance(parser[alias], list) and parser[alias]
    if files[-1] == EVALUATE:  # evaluating never trains
        assert not any("trainer.run" in str(e) for e in parser[alias])
    if files[-1] == MULTI_GPU:  # the multi-GPU override's own training list (no per-rank stain copy)
        assert parser["training"][-1] == "$@train#trainer.run()"
        assert "$@stain_reference_copy" not in parser["training"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """A fresh bundle: the tracked files of ``bundle/`` only, and a tiny dataset outside of it."""
    from seunet_monai.data.synthetic.histology import make_synthetic_dataset

    root = tmp_path_factory.mktemp("fresh")
    bundle = root / "bundle"
    shutil.copytree(CONFIGS, bundle / "configs")
    (bundle / "models").mkdir()
    for name in ("model.pt", "stain_reference.json"):
        shutil.copy(REPO / "bundle" / "models" / name, bundle / "models" / name)
    make_synthetic_dataset(root / "data", n_train=2, n_val=1, n_test=1, size=64, seed=0)
    return {"bundle": bundle, "data": root / "data"}


def _check(monkeypatch, config_files: list[Path], workflow_type: str, **override) -> ConfigWorkflow:
    """The workflow of ``python -m monai.bundle run --config_file CONFIG_FILES`` (the command line as MONAI's
    entry point sees it: the configs name the bundle root), initialised, with all its properties."""
    files = [str(f) for f in config_files]
    monkeypatch.setattr(sys, "argv", [MONAI_MAIN, "run", "--config_file", json.dumps(files)])
    wf = ConfigWorkflow(config_file=files, workflow_type=workflow_type, logging_file=False, **{**TINY, **override})
    wf.initialize()
    assert wf.check_properties() == []
    return wf


def test_train_properties_on_a_fresh_bundle(fresh, monkeypatch):
    """No dataset_dir given: the embedded default is generated next to the configs, as training would do."""
    bundle = fresh["bundle"]
    wf = _check(monkeypatch, [bundle / "configs" / "train.json"], "train", **TINY_SYNTHETIC)
    assert wf.bundle_root == str(bundle.resolve())
    assert wf.dataset_dir == str(bundle.resolve() / "data" / "synthetic_nuclei")
    assert wf.max_epochs == 70 and len(wf.train_dataset) == 2
    assert wf.evaluator is wf.parser.get_parsed_content("validate#evaluator")
    assert not (bundle / "models" / "last.pt").exists()  # nothing was trained


def test_evaluate_properties_on_a_fresh_bundle(fresh, monkeypatch):
    bundle = fresh["bundle"]
    wf = _check(
        monkeypatch,
        [bundle / "configs" / "train.json", bundle / "configs" / "evaluate.json"],
        "eval",
        dataset_dir=str(fresh["data"]),
    )
    assert len(wf.dataset) == 1  # the test split
    assert wf.evaluator is wf.parser.get_parsed_content("validate#evaluator")  # evaluate.json overlays validate#
    assert wf.inferer is wf.parser.get_parsed_content("validate#inferer")
    assert wf.parser.get_parsed_content("eval_checkpoint") == str(bundle.resolve() / "models" / "model.pt")


def test_inference_properties_on_a_fresh_bundle(fresh, monkeypatch):
    bundle = fresh["bundle"]
    wf = _check(monkeypatch, [bundle / "configs" / "inference.json"], "infer", input_dir=str(fresh["data"] / "images"))
    assert wf.bundle_root == str(bundle.resolve())
    assert len(wf.dataset) == 4 and type(wf.network_def).__name__ == "SEUNet"
    assert wf.parser.get_parsed_content("checkpoint") == str(bundle.resolve() / "models" / "model.pt")


def test_3d_inference_properties_on_a_fresh_bundle(fresh, monkeypatch, tmp_path):
    """The 3D overlay replaces the slide inferer by the package's per-head inferer over 3D windows (the slide
    workflow's components are neither inherited nor built)."""
    import nibabel as nib
    import numpy as np

    from seunet_monai.inferers import HeadsInferer

    volumes = tmp_path / "volumes"
    volumes.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), volumes / "v.nii.gz")
    configs = fresh["bundle"] / "configs"
    wf = _check(
        monkeypatch,
        [configs / "inference.json", configs / "variants" / "3d" / "inference.json"],
        "infer",
        input_dir=str(volumes),
        output_dir=str(tmp_path / "out"),
    )
    assert len(wf.dataset) == 1 and wf.network_def.spatial_dims == 3
    assert isinstance(wf.inferer, HeadsInferer) and wf.inferer.spatial_dims == 3
    assert "stain_transform" not in wf.parser.config
