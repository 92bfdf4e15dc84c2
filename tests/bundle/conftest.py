"""Shared pieces of the bundle tests: one tiny trained bundle run per session, subprocess helpers.

Every run uses a tiny SEUNet (2 scale groups, channels 4..64) on a tiny synthetic dataset (4 training,
2 validation, 2 test images of 64x64 px) so that the whole folder runs in a few minutes on 2 CPU cores.
Nothing is written inside the repository: every dataset, log and checkpoint folder is under tmp_path.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
TRAIN = str(CONFIGS / "train.json")
EVALUATE = str(CONFIGS / "evaluate.json")
CALIBRATE = str(CONFIGS / "calibrate.json")
INFERENCE = str(CONFIGS / "inference.json")
MULTI_GPU = str(CONFIGS / "multi_gpu_train.json")

TINY_NET = ["--network_def#num_scales", "2", "--network_def#channels", "[4,8,16,32,64]"]
TINY_DATA = [
    "--synthetic#n_train",
    "4",
    "--synthetic#n_val",
    "2",
    "--synthetic#n_test",
    "2",
    "--synthetic#size",
    "64",
    "--patch_size",
    "[64,64]",
    "--shift",
    "8",
]
TINY_TRAIN = TINY_NET + TINY_DATA + ["--epochs", "2", "--batch_size", "2", "--num_workers", "0"]


def run_cmd(
    args: list[str], cwd: str | Path = REPO, timeout: int = 300, check: bool = True
) -> subprocess.CompletedProcess:
    """Run a command, return the completed process (stdout and stderr merged into ``stdout``)."""
    env = dict(os.environ)
    env.pop("SEUNET_BUNDLE_ROOT", None)
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        args, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(args)}\n{proc.stdout[-6000:]}")
    return proc


def bundle(run_id: str, config_file: str, *overrides: str, cwd: str | Path = REPO, check: bool = True):
    """``python -m monai.bundle run RUN_ID --config_file CONFIG ...`` in a subprocess."""
    return run_cmd(
        [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_file, *overrides],
        cwd=cwd,
        check=check,
    )


def scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar under ``log_dir``: ``{tag: [(step, value), ...]}``, and image tags under ``"images"``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {"images": []}
    for f in sorted(glob.glob(str(Path(log_dir) / "events.out.tfevents.*"))):
        ea = EventAccumulator(f, size_guidance={"scalars": 0, "images": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
        out["images"].extend(ea.Tags()["images"])
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """Train the tiny bundle for 2 epochs with the issue's command from the repository root (embedded default
    dataset generated in a temporary dataset_dir); shared by the evaluation, inference and export tests."""
    root = tmp_path_factory.mktemp("trained")
    dirs = {"dataset_dir": root / "data", "output_dir": root / "logs", "ckpt_dir": root / "models"}
    proc = bundle(
        "training",
        "bundle/configs/train.json",
        *TINY_TRAIN,
        *[a for k, v in dirs.items() for a in (f"--{k}", str(v))],
    )
    return {
        **dirs,
        "root": root,
        "log": proc.stdout,
        "dir_args": [a for k, v in dirs.items() for a in (f"--{k}", str(v))],
    }
