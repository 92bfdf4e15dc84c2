"""The multi-GPU override under torchrun with 2 CPU processes (gloo): trains, and only rank 0 writes."""

from __future__ import annotations

import re
import sys

import torch

from .conftest import MULTI_GPU, TINY_TRAIN, TRAIN, run_cmd


def test_two_process_gloo_training(tmp_path, trained):
    logs, ckpt = tmp_path / "logs", tmp_path / "models"
    proc = run_cmd(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            f"['{TRAIN}','{MULTI_GPU}']",
            *TINY_TRAIN,
            "--dataset_dir",
            str(trained["dataset_dir"]),
            "--output_dir",
            str(logs),
            "--ckpt_dir",
            str(ckpt),
        ],
        timeout=300,
    )
    assert "Traceback" not in proc.stdout
    last = torch.load(ckpt / "last.pt", map_location="cpu", weights_only=True)
    # 4 training images over 2 processes with batch 2: one iteration per epoch and process
    assert last["trainer"]["iteration"] == 2 and last["trainer"]["epoch_length"] == 1
    assert not any(k.startswith("module.") for k in last["model"])  # saved unwrapped from DDP
    assert (ckpt / "model.pt").is_file()
    # the loss weights η are trained too (their gradients are all-reduced like the network's)
    assert last["loss"]["eta"].abs().sum() > 0
    # every TensorBoard file comes from one process (rank 0)
    events = list(logs.glob("events.out.tfevents.*"))
    pids = {re.match(r"events\.out\.tfevents\.\d+\.[^.]+\.(\d+)\.", p.name).group(1) for p in events}
    assert len(pids) == 1, sorted(p.name for p in logs.iterdir())
    # rank 0 alone holds the run lock of both folders (issue 12, item 5): its pid is the event files' pid
    assert (ckpt / ".seunet_run.lock").read_text().strip() == (logs / ".seunet_run.lock").read_text().strip()
    assert (logs / ".seunet_run.lock").read_text().strip() in pids
    # console statistics come from rank 0 only: one validation line per epoch
    assert proc.stdout.count("Epoch[1] Metrics") == 1 and proc.stdout.count("Epoch[2] Metrics") == 1
