"""Specification of ``seunet_monai.runtime.run_lock.claim_ckpt_dir`` (issue 25, items 1 and 2): a training never writes
over a model file it did not write (the shipped model, an earlier run's files) unless told to; ``--resume true``
continues the run that wrote them; and the bundle's default checkpoint folder is a run folder, not the one of the
shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from seunet_monai.errors import ExistingPathError
from seunet_monai.runtime.run_lock import claim_ckpt_dir

CONFIGS = Path(__file__).resolve().parents[2] / "bundle" / "configs"


def _files(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    return folder


def test_a_model_that_no_run_here_wrote_is_refused_without_overwrite(tmp_path):
    shipped = _files(tmp_path / "models", "model.pt")
    for resume in (False, "true"):  # --resume true without last.pt is a fresh run as well
        with pytest.raises(ExistingPathError, match="no training run in this folder wrote.*--overwrite true"):
            claim_ckpt_dir(shipped, resume=resume)
    assert (shipped / "model.pt").read_bytes() == b"model.pt"
    assert claim_ckpt_dir(tmp_path / "new") == tmp_path / "new"  # a missing or empty folder is fine


def test_an_earlier_run_is_refused_resumed_or_replaced_and_says_which(tmp_path):
    run = _files(tmp_path / "run", "last.pt", "model.pt", "model_uncalibrated.pt", "stain_reference.json")
    with pytest.raises(
        ExistingPathError,
        match=r"earlier training run \(last.pt, model.pt, model_uncalibrated.pt\)"
        r".*--resume true.*--output_dir",
    ):
        claim_ckpt_dir(run, resume="false")
    assert claim_ckpt_dir(run, resume="true") == run and (run / "model.pt").is_file()  # the same run goes on
    claim_ckpt_dir(run, resume=False, overwrite="true")  # nothing of the earlier run is taken for the new one
    assert sorted(p.name for p in run.iterdir()) == ["stain_reference.json"]
    assert claim_ckpt_dir(_files(tmp_path / "rank1", "model.pt"), enabled=False)  # non-zero ranks check nothing


def test_default_training_folder_is_a_run_folder_and_evaluation_keeps_the_shipped_model():
    train = ConfigParser()
    train.read_config(str(CONFIGS / "train.json"))
    root = Path(train.get_parsed_content("bundle_root"))
    ckpt = Path(train.get_parsed_content("ckpt_dir"))
    assert ckpt == Path(train.get_parsed_content("output_dir")) / "models" and ckpt != root / "models"
    assert train["overwrite"] is False and "$@run_folder" in train["training"]
    multi = ConfigParser()
    multi.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")])
    assert "$@run_folder" in multi["training"]
    evaluate = ConfigParser()
    evaluate.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    assert Path(evaluate.get_parsed_content("eval_checkpoint")) == root / "models" / "model.pt"


def test_an_output_dir_that_is_a_file_is_one_error_naming_it(tmp_path):
    from seunet_monai.runtime.run_lock import lock_run_folders

    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ExistingPathError, match=r"out is a file, not a folder; choose another --output_dir"):
        lock_run_folders([tmp_path / "out" / "models", tmp_path / "out"])
    assert (tmp_path / "out").read_text() == "not a folder"
