"""The experiment runner and the variant override files, end to end through ``monai.bundle`` subprocesses.

One session run trains every non-default variant for one epoch (2 iterations) on the tiny embedded
dataset and sweeps two scales; the other tests reuse it (skip on rerun, failure isolation) or its dataset
(resume after a killed training). Subprocesses get ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from seunet_monai.data.synthetic.histology import make_synthetic_dataset
from seunet_monai.evaluation.report import read_csv_rows
from seunet_monai.experiments import runner, scale_shift
from seunet_monai.experiments.state import STATE_FILE

REPO = Path(__file__).resolve().parents[2]
SCALES = [0.5, 1.0]
VARIANTS = ["unet", "cnn", "sesn", "disco", "seunet_fixed", "seunet_free"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    # laid out as the scale-shift benchmark expects (data/scale_1, runs/), so that its test reuses the run
    root = tmp_path_factory.mktemp("experiment")
    data = root / "data" / "scale_1"
    make_synthetic_dataset(data, n_train=4, n_val=2, n_test=2, size=64, scale=1.0, seed=0)
    lines: list[str] = []
    result = runner.run_experiment(
        data, root / "runs", VARIANTS, epochs=1, tiny=True, scales=SCALES, env=_env(), log=lines.append
    )
    return {"root": root, "out": root / "runs", "data": data, "lines": lines, "result": result}


def test_every_variant_trains_and_sweeps_two_scales(run):
    assert run["result"]["failed"] == {}, run["result"]["failed"]
    out = run["out"]
    for v in VARIANTS:
        rows = read_csv_rows(out / v / "eval" / "scale_sweep.csv")
        assert {float(r["scale"]) for r in rows} == set(SCALES)
        strategies = {r["strategy"] for r in rows}
        if v in ("unet", "cnn"):  # one head: every fusion equal to it
            # cnn is the SEUNet architecture (calibration buffers, calibrated at the end of training): "scale" too
            fusions = ("mean", "pdist", "pens") + (("scale",) if v == "cnn" else ())
            assert strategies == {"head1", *fusions}
            by = {(r["strategy"], r["scale"]): r["iou"] for r in rows}
            assert all(by[(s, sc)] == by[("head1", sc)] for s in fusions for sc in SCALES)
        else:
            # SEUNet-like variants are calibrated at the end of training, so the sweep has the "scale" fusion too
            assert strategies == {f"head{k}" for k in range(1, 6)} | {"mean", "pdist", "pens", "scale"}
            assert (out / v / "models" / "model_uncalibrated.pt").is_file()
        assert (out / v / "models" / "model.pt").is_file() and (out / v / "models" / "last.pt").is_file()
        state = json.loads((out / v / STATE_FILE).read_text())
        assert state["training_finished"] and state["evaluation_finished"] and state["max_epochs"] == 1
        assert state["parameters"] > 0 and f"[{v}] {state['parameters']} trainable parameters" in run["lines"]
    assert any(line.startswith("[sesn] epoch 1/1") and "ETA" in line for line in run["lines"])


def test_variant_networks_are_what_the_override_files_say(run):
    out = run["out"]
    sweeps = {v: json.loads((out / v / "eval" / "scale_sweep.json").read_text()) for v in VARIANTS}
    assert sweeps["unet"]["num_heads"] == 1 and sweeps["sesn"]["num_heads"] == 5
    assert sweeps["cnn"]["num_heads"] == 1 and sweeps["disco"]["num_heads"] == 5
    cnn = torch.load(out / "cnn" / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert cnn["enc1.conv1.conv.weight"].shape == (5, 3, 3, 3) and "enc1.norm1.running_mean" in cnn
    disco = torch.load(out / "disco" / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert disco["enc1.conv1.basis4"].shape == (9, 11, 11) and disco["enc1.conv1.weight"].shape[-1] == 9
    unet = torch.load(out / "unet" / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("conv_0.") for k in unet)  # BasicUNet's first block
    sesn = torch.load(out / "sesn" / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert "enc1.conv1.basis4" in sesn and "enc1.conv1.weight" in sesn
    # σ ablation: fixed σ stays at the configured midpoints, free σ moved during training
    for v, moved in (("seunet_fixed", False), ("seunet_free", True)):
        cfg = json.loads((REPO / "bundle" / "configs" / "variants" / f"{v}.json").read_text())
        assert cfg == {"network_def#sigma_mode": v.split("_")[1]}
        sd = torch.load(out / v / "models" / "last.pt", map_location="cpu", weights_only=True)["model"]
        from seunet_monai.networks import SEUNet

        fresh = SEUNet(channels=(5, 10, 20, 40, 80), sigma_mode=v.split("_")[1]).state_dict()
        keys = [k for k in fresh if "scales" in k]
        assert keys, "SEUNet state has no σ entries"
        changed = any(not torch.equal(fresh[k], sd[k]) for k in keys)
        assert changed is moved, v


def test_comparison_tables_and_figure(run):
    out = run["out"]
    rows = read_csv_rows(out / "comparison.csv")
    assert {"model", "strategy", "scale", "iou"} <= set(rows[0])
    assert {r["model"] for r in rows} == set(VARIANTS)
    md = (out / "comparison.md").read_text()
    assert "Table 2 form" in md and "Table 3 form" in md and "training time" in md
    for v in VARIANTS:
        params = json.loads((out / v / STATE_FILE).read_text())["parameters"]
        assert f"| {v} | {params} |" in md
    assert (out / "iou_vs_scale.png").stat().st_size > 0


def test_rerun_skips_finished_variants_and_refuses_other_arguments(run):
    lines: list[str] = []
    t0 = time.perf_counter()
    res = runner.run_experiment(
        run["data"], run["out"], ["unet", "sesn"], epochs=1, tiny=True, scales=SCALES, env=_env(), log=lines.append
    )
    assert time.perf_counter() - t0 < 20 and res["failed"] == {}
    assert "[unet] already trained and evaluated: skipped" in " ".join(lines)
    res = runner.run_experiment(
        run["data"], run["out"], ["unet"], epochs=2, tiny=True, scales=SCALES, env=_env(), log=lines.append
    )
    assert "other arguments" in res["failed"]["unet"]


def test_failing_variant_is_reported_and_others_still_run(run, monkeypatch, tmp_path, capsys):
    real = runner.run_variant

    def flaky(name, *args, **kwargs):
        if name == "sesn":
            raise RuntimeError("training failed (exit status 1)")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(runner, "run_variant", flaky)
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_experiment_script", REPO / "scripts" / "run_experiment.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rc = script.main(
        [
            "--dataset-dir",
            str(run["data"]),
            "--out",
            str(run["out"]),
            "--variants",
            "sesn,unet",
            "--epochs",
            "1",
            "--tiny",
            "--scales",
            "0.5,1",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 1 and "[sesn] FAILED" in text and "[unet] already trained" in text and "comparison:" in text


def test_interrupted_training_resumes_from_last_pt(run, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "run_experiment.py"),
        "--dataset-dir",
        str(run["data"]),
        "--out",
        str(out),
        "--variants",
        "unet",
        "--epochs",
        "3",
        "--tiny",
        "--scales",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=str(REPO), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    last = out / "unet" / "models" / "last.pt"
    deadline = time.time() + 120
    try:
        while not last.is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its bundle subprocess (a session we started)
        proc.wait()
    assert last.is_file(), "no last.pt was written before the deadline"
    state = json.loads((out / "unet" / STATE_FILE).read_text())
    assert not state.get("training_finished")
    lines: list[str] = []
    res = runner.run_experiment(
        run["data"], out, ["unet"], epochs=3, tiny=True, scales=[1.0], env=_env(), log=lines.append
    )
    assert res["failed"] == {}, res["failed"]
    text = "\n".join(lines)
    assert "training (resuming from last.pt)" in text and "[unet] resumed at epoch" in text
    state = json.loads((out / "unet" / STATE_FILE).read_text())
    assert state["training_finished"] and state["evaluation_finished"]
    # epochs 2 and 3 ran in the resumed attempt (epoch 1's time is lost when the kill came before its log line)
    assert {"2", "3"} <= set(state["epoch_times_s"]) <= {"1", "2", "3"}
    assert "resumed from" in (out / "unet" / "train.log").read_text()


def test_scale_shift_benchmark_evaluates_generated_test_sets(run):
    lines: list[str] = []
    res = scale_shift.run_scale_shift_benchmark(
        run["root"],
        ["unet"],
        SCALES,
        n_train=4,
        n_val=2,
        n_test=2,
        size=64,
        epochs=1,
        tiny=True,
        env=_env(),
        log=lines.append,
    )
    assert res["failed"] == {}, res["failed"]
    text = "\n".join(lines)
    assert "[unet] already trained and evaluated: skipped" in text  # trained once, at scale 1
    assert "generating the synthetic test set at scale 0.5" in text
    gen = json.loads((run["root"] / "data" / "scale_0.5" / "datalist.json").read_text())
    assert len(gen["test"]) == 2
    # same field of view: the scale-0.5 images show the scale-1 test tissue in 32-px images (64 * 0.5)
    half = np.asarray(PIL.Image.open(run["root"] / "data" / "scale_0.5" / "labels" / "test_0000.png")) > 0
    full = np.asarray(PIL.Image.open(run["root"] / "data" / "scale_1" / "labels" / "test_0000.png")) > 0
    assert half.shape == (32, 32) and full.shape == (64, 64)
    assert abs(half.mean() - full.mean()) < 0.05
    native = read_csv_rows(run["out"] / "unet" / "eval_native_0.5" / "scale_sweep.csv")
    assert {float(r["scale"]) for r in native} == {1.0}  # the generated set itself, not resampled
    rows = read_csv_rows(run["root"] / "scale_shift.csv")
    keys = {(r["test_scale"], r["test_set"]) for r in rows if r["strategy"] == "head1"}
    assert keys == {(0.5, "generated"), (0.5, "resampled"), (1.0, "generated"), (1.0, "resampled")}
    by = {(r["test_scale"], r["test_set"]): r["iou"] for r in rows if r["strategy"] == "head1"}
    assert by[(0.5, "generated")] == next(r["iou"] for r in native if r["strategy"] == "head1")
    assert by[(1.0, "generated")] == by[(1.0, "resampled")]
    assert "| unet | head1 |" in (run["root"] / "scale_shift.md").read_text()
