"""Issue 12 through real ``python -m monai.bundle run ...`` commands: nothing is lost, nothing wrong passes
silently, and every error we detect is one readable line on stderr with exit status 2.

Each case uses the tiny network and dataset of ``conftest.py`` and fails before or early in training.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from .conftest import EVALUATE, REPO, TINY_NET, TINY_TRAIN, TRAIN


def run(run_id: str, configs: list[str], *overrides: str, env: dict | None = None, timeout: int = 300):
    """``python -m monai.bundle run`` in a subprocess, stdout and stderr kept apart."""
    config = configs[0] if len(configs) == 1 else "[" + ",".join(f"'{c}'" for c in configs) + "]"
    full_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), **(env or {})}
    full_env.pop("SEUNET_BUNDLE_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config, *overrides],
        cwd=str(REPO),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc, *expected: str) -> str:
    """Exit status 2, no traceback, and one ``error: ...`` line on stderr that holds every ``expected`` text."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    assert len(proc.stderr.splitlines()) <= 12, proc.stderr  # the MONAI notice, a progress bar, our 2 lines
    return lines[0]


def dirs(tmp_path, data) -> list[str]:
    return ["--dataset_dir", str(data), "--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "logs")]


def copy_data(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained["dataset_dir"], data)
    return data


# ------------------------------------------------------------------------------------------------- data loss
def test_raw_data_folder_is_never_generated_into(tmp_path):
    """Items 3 and 7: a dataset_dir holding raw data (no datalist.json) is refused, even with the override the old
    error suggested (--synthetic#overwrite true), and is left untouched."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "slide.tif").write_bytes(b"raw image")
    (raw / "slide.xml").write_text("<Annotations/>")
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, raw), "--synthetic#overwrite", "true")
    assert_one_line_error(proc, str(raw), "no datalist.json", "prepare_monuseg.py")
    assert sorted(p.name for p in raw.iterdir()) == ["slide.tif", "slide.xml"]
    assert (raw / "slide.tif").read_bytes() == b"raw image"
    assert not (tmp_path / "models" / "last.pt").exists()


def test_evaluating_never_generates_data(tmp_path, trained):
    """Item 7: a mistyped dataset_dir in evaluating is an error naming the path and the preparation scripts."""
    typo = tmp_path / "dataa"
    proc = run(
        "evaluating",
        [TRAIN, EVALUATE],
        *TINY_NET,
        "--dataset_dir",
        str(typo),
        "--ckpt_dir",
        str(trained["ckpt_dir"]),
        "--output_dir",
        str(tmp_path / "logs"),
        "--scales",
        "[1.0]",
    )
    assert_one_line_error(proc, str(typo), "no datalist.json", "prepare_monuseg.py")
    assert not typo.exists() and not (tmp_path / "logs" / "eval" / "metrics.json").exists()


def test_second_training_into_a_locked_ckpt_dir_fails_at_once(tmp_path, trained):
    """Item 5: a folder held by another run (here: this test process) is refused, naming it and the pid."""
    from seunet_monai.runtime.run_lock import lock_run_folders

    data = copy_data(trained, tmp_path)
    lock = lock_run_folders([tmp_path / "models"])
    try:
        proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, data))
    finally:
        lock.release()
    assert_one_line_error(proc, str(tmp_path / "models"), f"pid {os.getpid()}", "in use by another run")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".seunet_run.lock"]
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").glob("events.*"))


# ------------------------------------------------------------------------------------------------- loud
def test_labels_stored_as_0_255_are_refused(tmp_path, trained):
    """Item 8: 0/255 masks with ignore_index 255 would ignore every nucleus; refused before training."""
    data = copy_data(trained, tmp_path)
    for f in (data / "labels").glob("*.png"):
        Image.fromarray((np.asarray(Image.open(f)) * 255).astype(np.uint8)).save(f)
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, data))
    assert_one_line_error(proc, "0/255", "label // 255")
    assert not (tmp_path / "models" / "model.pt").exists() and not (tmp_path / "models" / "last.pt").exists()


def test_label_values_beyond_num_classes_name_the_file_and_key(tmp_path, trained):
    data = copy_data(trained, tmp_path)
    label = data / "labels" / "validation_0001.png"
    mask = np.asarray(Image.open(label)).copy()
    mask[:4, :4] = 4
    Image.fromarray(mask).save(label)
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, data))
    assert_one_line_error(proc, "validation_0001.png", "--num_classes 5", "BCSS")


def test_empty_validation_split_is_refused(tmp_path, trained):
    """Item 9: without validation no model.pt would ever be written; refused with a clear message."""
    data = copy_data(trained, tmp_path)
    datalist = json.loads((data / "datalist.json").read_text())
    (data / "datalist.json").write_text(json.dumps({**datalist, "validation": []}))
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, data))
    assert_one_line_error(proc, "'validation' split is empty", "--val-fraction")


def test_divergence_stops_with_epoch_and_iteration_and_no_nan_checkpoint(tmp_path, trained):
    """Item 11: --learning_rate 1e12 stops at the first NaN loss, naming the epoch and iteration; no checkpoint
    with NaN weights is ever written."""
    data = copy_data(trained, tmp_path)
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, data), "--learning_rate", "1e12")
    line = assert_one_line_error(proc, "training diverged at epoch", "iteration", "--learning_rate")
    for name in ("last.pt", "model.pt"):
        path = tmp_path / "models" / name
        if path.exists():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            weights = ckpt["model"] if name == "last.pt" else ckpt
            # every tensor finite, except the fusion calibration buffers (NaN until calibrated, by design)
            bad = [
                k
                for k, v in weights.items()
                if v.is_floating_point() and not k.startswith("fusion_") and not torch.isfinite(v).all()
            ]
            assert bad == [], (name, bad, line)


# ------------------------------------------------------------------------------------------------- readable
def test_bad_scales_fail_before_the_test_evaluation(tmp_path, trained):
    proc = run(
        "evaluating",
        [TRAIN, EVALUATE],
        *TINY_NET,
        *trained["dir_args"][:2],
        "--ckpt_dir",
        str(trained["ckpt_dir"]),
        "--output_dir",
        str(tmp_path / "logs"),
        "--scales",
        "[0.5,-1]",
    )
    assert_one_line_error(proc, "--scales", "positive")
    assert not (tmp_path / "logs" / "eval").exists()


def test_bad_arguments_are_checked_before_any_work(tmp_path):
    proc = run("training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, tmp_path / "data"), "--epochs", "0")
    assert_one_line_error(proc, "--epochs 0", "integer >= 1")
    assert not (tmp_path / "data").exists() and not (tmp_path / "models").exists()


def test_last_pt_given_as_the_model_is_named_as_such(tmp_path, trained):
    proc = run(
        "evaluating",
        [TRAIN, EVALUATE],
        *TINY_NET,
        *trained["dir_args"],
        "--output_dir",
        str(tmp_path / "l"),
        "--eval_checkpoint",
        str(trained["ckpt_dir"] / "last.pt"),
        "--scales",
        "[1.0]",
    )
    assert_one_line_error(proc, "last.pt", "resumable training checkpoint", "model.pt")


def test_debug_switch_gives_the_full_traceback(tmp_path):
    proc = run(
        "training", [TRAIN], *TINY_TRAIN, *dirs(tmp_path, tmp_path / "data"), "--epochs", "0", env={"SEUNET_DEBUG": "1"}
    )
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "--epochs 0" in proc.stderr
