"""`python -m monai.bundle run training`: outputs, TensorBoard content, bundle_root from another working
directory, seed repeatability and resume."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from .conftest import CONFIGS, TINY_TRAIN, bundle, scalars


def test_training_writes_data_checkpoints_and_tensorboard(trained):
    log = trained["log"]
    # the embedded default was generated (and the log says so)
    assert "generating the embedded default" in log
    datalist = json.loads((trained["dataset_dir"] / "datalist.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [4, 2, 2]
    # best model (a bare state dict) and the resumable checkpoint
    assert (trained["ckpt_dir"] / "model.pt").is_file()
    last = torch.load(trained["ckpt_dir"] / "last.pt", map_location="cpu", weights_only=True)
    assert set(last) == {"model", "optimizer", "scheduler", "loss", "trainer", "rng", "best"}
    # the best-model tracking of the epoch's validation is in last.pt (issue 12, item 4)
    assert last["best"]["best_metric_epoch"] in (1, 2) and 0.0 <= last["best"]["best_metric"] <= 1.0
    assert [f for _, f in last["best"]["saved"]] and last["rng"]["torch"].dtype == torch.uint8
    assert last["trainer"]["iteration"] == 4 and last["trainer"]["epoch_length"] == 2  # 4 images, batch 2
    assert last["loss"]["eta"].shape == (2,)
    # η is in the optimizer: it moved away from its zero initialisation
    assert last["loss"]["eta"].abs().sum() > 0
    tb = scalars(trained["output_dir"])
    for tag in (
        "train_loss",
        "loss/head1",
        "loss/head2",
        "loss_weight/omega1",
        "loss_weight/omega2",
        "lr",
        "val_iou",
        "val_iou_mean",
        "val_iou_pdist",
        "val_iou_pens",
    ):
        assert tag in tb, f"missing TensorBoard tag {tag}"
    assert [s for s, _ in tb["train_loss"]] == [1, 2, 3, 4]
    omegas = [v for _, v in tb["loss_weight/omega1"]]
    assert all(0.25 - 1e-6 <= w <= 0.75 + 1e-6 for w in omegas)  # [1/(2Ω), (Ω+1)/(2Ω)] with Ω = 2
    sigma_tags = [t for t in tb if "sigma" in t]
    assert len(sigma_tags) >= 2 * 18 and any(t.endswith("group2") for t in sigma_tags)
    lrs = [v for _, v in sorted(tb["lr"])]
    assert max(lrs) <= 0.015 + 1e-9 and len(set(lrs)) > 1  # 1-cycle schedule, stepped per iteration
    assert any(t.startswith("input_0") for t in tb["images"]) and any(t.startswith("output") for t in tb["images"])
    # console: one line per epoch (mean loss, lr, time), no per-iteration lines; no bar drawn into a pipe
    epoch_lines = re.findall(r"Epoch (\d+)/2 -- train_loss: ([\d.]+), lr: [\d.e+-]+, 2 iterations in [\d.]+ s", log)
    assert [e for e, _ in epoch_lines] == ["1", "2"]
    mean_epoch1 = (tb["train_loss"][0][1] + tb["train_loss"][1][1]) / 2
    assert float(epoch_lines[0][1]) == pytest.approx(mean_epoch1, abs=1e-4)
    assert "Iter:" not in log and "it/s" not in log and "%|" not in log


def test_training_from_another_directory_with_seed_and_resume(tmp_path, trained):
    """Copy of the configs (and the shipped model) in tmp_path/mybundle, run from an unrelated working directory
    with the absolute config path and no folder overrides: data, logs and checkpoints land next to the configs, the
    checkpoints in the run folder logs/models, never over the shipped models/model.pt (issue 25, item 1).
    Stop after epoch 1 of 2, then resume to epoch 2; a fresh run into that folder is then refused (item 2)."""
    bundle_dir = tmp_path / "mybundle"
    shutil.copytree(CONFIGS, bundle_dir / "configs")
    shutil.copytree(CONFIGS.parent / "models", bundle_dir / "models")
    shipped = (bundle_dir / "models" / "model.pt").read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(bundle_dir / "configs" / "train.json")
    run_dir = bundle_dir / "logs" / "models"

    first = bundle("training", config, *TINY_TRAIN, "--train#trainer#max_epochs", "1", cwd=elsewhere)
    assert (bundle_dir / "data" / "synthetic_nuclei" / "datalist.json").is_file()
    assert (run_dir / "last.pt").is_file() and (run_dir / "model.pt").is_file()
    assert (bundle_dir / "models" / "model.pt").read_bytes() == shipped and not (
        bundle_dir / "models" / "last.pt"
    ).exists()
    assert list(elsewhere.iterdir()) == []
    ckpt1 = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt1["trainer"]["iteration"] == 2 and ckpt1["trainer"]["epoch_length"] == 2  # epoch 1
    assert "epoch 1" in first.stdout

    # same seed, same data (the generator is deterministic): the first epoch's losses repeat exactly
    ours = dict(scalars(bundle_dir / "logs")["train_loss"])
    ref = dict(trained_losses := scalars(trained["output_dir"])["train_loss"])
    assert ours[1] == pytest.approx(ref[1], rel=1e-6) and ours[2] == pytest.approx(ref[2], rel=1e-6), (
        ours,
        trained_losses,
    )

    second = bundle("training", config, *TINY_TRAIN, "--resume", "true", cwd=elsewhere)
    assert "resumed from" in second.stdout and "epoch 1, iteration 2" in second.stdout
    ckpt2 = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    # the counters continued: 2 more iterations, not a fresh 2 epochs
    assert ckpt2["trainer"]["iteration"] == 4 and ckpt2["trainer"]["max_epochs"] == 2  # epoch 2
    assert ckpt2["scheduler"]["last_epoch"] == 4 and ckpt2["scheduler"]["total_steps"] == 4
    steps = {int(s["step"]) for s in ckpt2["optimizer"]["state"].values()}
    assert steps == {4}  # Adam's step count continued from 2
    # the weights continued from the epoch-1 checkpoint
    w1, w2 = ckpt1["model"], ckpt2["model"]
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    # only the resumed epoch's two iterations were logged by the second run
    all_steps = sorted(s for s, _ in scalars(bundle_dir / "logs")["train_loss"])
    assert all_steps == [1, 2, 3, 4]
    # issue 12, item 4: the resumed run repeats the uninterrupted one (`trained`: 2 epochs at once, same seed,
    # same data): same losses in epoch 2 (random crops, flips and shuffling restored), same weights, and the
    # same best model (the best score of epoch 1 was restored, so model.pt is replaced only by a better epoch)
    ours = dict(scalars(bundle_dir / "logs")["train_loss"])
    assert [ours[3], ours[4]] == pytest.approx([ref[3], ref[4]], rel=1e-5, abs=1e-7), (ours, ref)
    uninterrupted = torch.load(trained["ckpt_dir"] / "last.pt", map_location="cpu", weights_only=True)
    for k, v in uninterrupted["model"].items():
        assert torch.allclose(ckpt2["model"][k], v, rtol=1e-4, atol=1e-6, equal_nan=True), k
    assert ckpt2["best"]["best_metric_epoch"] == uninterrupted["best"]["best_metric_epoch"]
    assert ckpt2["best"]["best_metric"] == pytest.approx(uninterrupted["best"]["best_metric"], abs=1e-6)
    best = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    ref_best = torch.load(trained["ckpt_dir"] / "model.pt", map_location="cpu", weights_only=True)
    for k, v in ref_best.items():
        if k.startswith("fusion_"):  # the scale fusion's calibration (fitted after training), not a weight
            continue
        assert torch.allclose(best[k], v, rtol=1e-4, atol=1e-6, equal_nan=True), k
    # a fresh run into the finished run's folder, or into the shipped model's folder, is refused before training
    for extra in ([], ["--ckpt_dir", str(bundle_dir / "models")]):
        again = bundle("training", config, *TINY_TRAIN, *extra, cwd=elsewhere, check=False)
        assert again.returncode == 2 and "--overwrite true" in again.stdout and "Traceback" not in again.stdout
    assert (bundle_dir / "models" / "model.pt").read_bytes() == shipped
    assert torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)["trainer"]["iteration"] == 4
