"""One-command experiments: train and scale-sweep several model variants through the bundle, then compare.

Every variant (:mod:`seunet_monai.experiments.variants`) is trained and evaluated by the *same* bundle commands
(``python -m monai.bundle run training|evaluating``) with the same data, seed, epochs and augmentation, one job at
a time.

Layout of ``out``::

    out/<variant>/            output_dir of the variant (TensorBoard, train.log, evaluate.log, eval/)
    out/<variant>/models/     ckpt_dir (last.pt, model.pt)
    out/<variant>/experiment_state.json   runner state (arguments, parameters, epoch times, finished steps)
    out/<variant>/training_status.json    written by the training (seunet_monai.handlers.RunStatus)
    out/<variant>/eval/sweep_status.json  written by the scale sweep (seunet_monai.evaluation.sweep.ScaleSweep)

Progress and results come from the two status files the bundle's runs write (atomically, as they go), not from
their log lines: the runner polls them while a command runs and copies epoch times, the best validation IoU, and
the sweep's mean IoU per strategy and equivariance error into the state file.
    out/comparison.csv, comparison.md, iou_vs_scale.png

Resuming: a variant whose evaluation finished is skipped; one whose training was interrupted continues from
its ``last.pt`` (``--resume true``); one whose training finished but evaluation did not is only evaluated.
A variant is never continued with different arguments (error naming the state file). A failing variant is
reported and the others still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seunet_monai.experiments.comparison import write_comparison
from seunet_monai.experiments.state import STATE_FILE, SWEEP_STATUS, TRAINING_STATUS, fmt_time, read_json, write_json
from seunet_monai.experiments.variants import (
    BUNDLE_DIR,
    DEFAULT_VARIANTS,
    TINY_SWEEP,
    VARIANTS,
    bundle_overrides,
    cli_args,
    cli_value,
    config_files,
    count_parameters,
)
from seunet_monai.runtime.status import read_status

__all__ = [
    "COMMAND_DIR",
    "POLL_S",
    "run_experiment",
    "run_logged",
    "run_variant",
]


# working directory of the bundle commands: a source checkout's root (``python -m`` then imports this checkout's
# package, as before), else the installed bundle folder (no Python modules there to shadow anything)
COMMAND_DIR = BUNDLE_DIR.parent if (BUNDLE_DIR.parent / "seunet_monai").is_dir() else BUNDLE_DIR

POLL_S = 1.0
"""How often a running bundle command's status file is read (seconds)."""


@dataclass
class _Progress:
    """Follows a training through its status file (``output_dir/training_status.json``), not its log lines."""

    name: str
    log: Callable[[str], None]
    state: dict[str, Any]
    state_path: Path
    status_path: Path
    t0: float = field(default_factory=time.perf_counter)
    stale: Any = None  # the file as an earlier attempt left it: ignored until the new run rewrites it
    last_epoch: int = 0
    resumed_logged: bool = False

    def __post_init__(self) -> None:
        self.stale = read_status(self.status_path)

    def poll(self) -> None:
        st = read_status(self.status_path)
        if not st or st == self.stale:
            return
        start, total = int(st.get("start_epoch") or 0), st.get("max_epochs")
        if total is not None:
            self.state["max_epochs"] = int(total)
        if start and not self.resumed_logged:
            self.resumed_logged = True
            self.last_epoch = max(self.last_epoch, start)
            self.log(f"[{self.name}] resumed at epoch {start}/{total}")
        epoch = int(st.get("epoch") or 0)
        if epoch <= self.last_epoch:
            return
        times = {str(k): float(v) for k, v in (st.get("epoch_times_s") or {}).items()}
        self.state["epoch_times_s"] = times
        write_json(self.state_path, self.state)
        this_attempt = [v for k, v in times.items() if int(k) > start] or list(times.values()) or [0.0]
        metrics = st.get("metrics") or {}
        val = ""
        if st.get("metrics_epoch") == epoch and metrics.get("val_iou") is not None:
            val = f", val_iou {metrics['val_iou']:.4f}"
        elapsed = time.perf_counter() - self.t0
        eta = sum(this_attempt) / len(this_attempt) * ((total or epoch) - epoch)  # mean epoch time of this attempt
        self.log(f"[{self.name}] epoch {epoch}/{total or epoch}{val}, elapsed {fmt_time(elapsed)}, ETA {fmt_time(eta)}")
        self.last_epoch = epoch


@dataclass
class _SweepProgress:
    """Follows a scale sweep through ``output_dir/eval/sweep_status.json``."""

    name: str
    log: Callable[[str], None]
    status_path: Path
    stale: Any = None
    done: int = 0

    def __post_init__(self) -> None:
        self.stale = read_status(self.status_path)

    def poll(self) -> None:
        st = read_status(self.status_path)
        if not st or st == self.stale or int(st.get("images_done") or 0) <= self.done:
            return
        self.done = int(st["images_done"])
        self.log(
            f"[{self.name}] scale sweep: image {self.done}/{st.get('num_images') or '?'} at "
            f"{st.get('num_scales')} scales, {fmt_time(float(st.get('elapsed_s') or 0.0))}"
        )


def run_logged(cmd: list[str], log_path: Path, env: Mapping[str, str], poll: Callable[[], None] | None = None) -> int:
    """Run ``cmd`` with stdout and stderr appended to ``log_path``; call ``poll`` every :data:`POLL_S` seconds
    while it runs and once after it ends (to read its status file)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=str(COMMAND_DIR),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)

        copier = threading.Thread(target=pump, daemon=True)
        copier.start()
        try:
            while proc.poll() is None:
                if poll is not None:
                    poll()
                time.sleep(POLL_S)
            copier.join()
            if poll is not None:
                poll()
            return proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise


def run_variant(
    name: str,
    dataset_dir: Path,
    out: Path,
    epochs: int | None,
    tiny: bool,
    scales: Sequence[float] | None,
    seed: int,
    python: str,
    env: Mapping[str, str],
    log: Callable[[str], None],
    widths: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
    job: str | None = None,
    eval_dataset_dir: Path | None = None,
    eval_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    variant, name = name, job or name  # the variant builds the network; the job name labels folder, logs and sweep
    spec = VARIANTS[variant]
    vdir = out / name
    state_path = vdir / STATE_FILE
    ov = bundle_overrides(variant, dataset_dir, vdir, epochs, tiny, seed, widths, extra)
    args = {"overrides": ov, "scales": None if scales is None else [float(s) for s in scales]}
    if eval_dataset_dir is not None or eval_extra:
        args["evaluation"] = {
            "dataset_dir": None if eval_dataset_dir is None else str(eval_dataset_dir),
            "overrides": dict(eval_extra or {}),
        }
    if state_path.is_file():
        state = read_json(state_path)
        if state.get("args") != json.loads(json.dumps(args)):
            raise ValueError(
                f"{state_path} was written with other arguments ({state.get('args')}); refusing to mix runs: pass "
                f"the same arguments or another --out folder."
            )
    else:
        state = {"variant": variant, "args": args}
    if state.get("evaluation_finished") and (vdir / "eval" / "scale_sweep.json").is_file():
        log(f"[{name}] already trained and evaluated: skipped ({vdir})")
        return state
    vdir.mkdir(parents=True, exist_ok=True)
    if "parameters" not in state:
        state["parameters"] = count_parameters(variant, ov)
    log(f"[{name}] {state['parameters']} trainable parameters")
    write_json(state_path, state)

    if not state.get("training_finished"):
        resume = (vdir / "models" / "last.pt").is_file()
        cmd = [
            python,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            json.dumps(config_files(spec, evaluating=False)),
            *cli_args(ov),
            "--resume",
            cli_value(resume),
        ]
        log(f"[{name}] training{' (resuming from last.pt)' if resume else ''}; log: {vdir / 'train.log'}")
        progress = _Progress(name, log, state, state_path, vdir / TRAINING_STATUS)
        t_train = time.perf_counter()
        rc = run_logged(cmd, vdir / "train.log", env, progress.poll)
        state["training_wall_s"] = round(state.get("training_wall_s", 0.0) + time.perf_counter() - t_train, 3)
        if rc != 0:
            raise RuntimeError(f"training failed (exit status {rc}); see {vdir / 'train.log'}")
        trained = read_status(vdir / TRAINING_STATUS) or {}  # run_logged polled it a last time after the exit
        if trained.get("state") != "finished":
            raise RuntimeError(f"training exited with status 0 but {vdir / TRAINING_STATUS} does not say finished")
        state["training_finished"] = True  # only once verified: a rerun must not skip an unfinished training
        state["training_time_s"] = round(sum(state.get("epoch_times_s", {}).values()), 3)
        state["best_val_iou"], state["best_epoch"] = trained.get("best_metric"), trained.get("best_metric_epoch")
        write_json(state_path, state)

    eval_ov = dict(ov)
    if tiny:
        eval_ov.update(TINY_SWEEP)
    if scales is not None:
        eval_ov["scales"] = [float(s) for s in scales]
    if eval_dataset_dir is not None:
        eval_ov["dataset_dir"] = str(eval_dataset_dir)
    eval_ov.update(dict(eval_extra or {}))
    eval_ov["sweep#model_name"] = name
    cmd = [
        python,
        "-m",
        "monai.bundle",
        "run",
        "evaluating",
        "--config_file",
        json.dumps(config_files(spec, evaluating=True)),
        *cli_args(eval_ov),
    ]
    log(f"[{name}] evaluating (scale sweep); log: {vdir / 'evaluate.log'}")
    t0 = time.perf_counter()
    rc = run_logged(cmd, vdir / "evaluate.log", env, _SweepProgress(name, log, vdir / SWEEP_STATUS).poll)
    if rc != 0:
        raise RuntimeError(f"evaluating failed (exit status {rc}); see {vdir / 'evaluate.log'}")
    swept = read_status(vdir / SWEEP_STATUS) or {}
    if swept.get("state") != "finished":
        raise RuntimeError(f"evaluating exited with status 0 but {vdir / SWEEP_STATUS} does not say finished")
    state["iou_mean_over_scales"] = swept.get("iou_mean_over_scales")
    state["equivariance_error_mean"] = swept.get("equivariance_error_mean")
    state["evaluation_time_s"] = round(time.perf_counter() - t0, 3)
    state["evaluation_finished"] = True
    write_json(state_path, state)
    log(f"[{name}] done in {fmt_time(time.perf_counter() - t0)} of evaluation")
    return state


def run_experiment(
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    epochs: int | None = None,
    tiny: bool = False,
    scales: Sequence[float] | None = None,
    seed: int = 0,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
    widths: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and scale-sweep every variant through the bundle into ``out/<variant>``, then compare them.

    Args:
        dataset_dir: dataset folder with ``datalist.json`` (the embedded synthetic default is generated
            there when it has none).
        out: experiment folder.
        variants: names from :data:`VARIANTS`.
        epochs: training epochs (None: the bundle's default).
        tiny: tiny networks and data (smoke tests).
        scales: test scales of the sweep (None: the bundle's default).
        seed: random seed of every run.
        python: interpreter for the bundle commands (default: this one).
        env: environment of the bundle commands (default: this process's).
        log: progress sink (one line per variant and epoch).
        widths: the five level widths of every variant (see :func:`bundle_overrides`).
        overrides: further bundle overrides for every command (``{key: value}``, e.g. ``{"batch_size": 4}``).

    Returns:
        ``{"states": {variant: state}, "failed": {variant: message}, "files": [...]}``.
    """
    variants = list(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        raise ValueError(f"variants must be names from {sorted(VARIANTS)}, got {variants}.")
    if len(set(variants)) != len(variants):
        raise ValueError(f"variants must not repeat, got {variants}.")
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder.")
    dataset_dir = Path(dataset_dir).resolve()
    python = python or sys.executable
    env = dict(os.environ if env is None else env)
    env.pop("SEUNET_BUNDLE_ROOT", None)  # the runner always uses this repository's bundle
    states: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    for i, name in enumerate(variants):
        log(f"== variant {i + 1}/{len(variants)}: {name} (elapsed {fmt_time(time.perf_counter() - t0)})")
        try:
            states[name] = run_variant(
                name, dataset_dir, out, epochs, tiny, scales, seed, python, env, log, widths, overrides
            )
        except Exception as e:  # noqa: BLE001 - a failing variant is reported; the others still run
            failed[name] = f"{type(e).__name__}: {e}"
            log(f"[{name}] FAILED: {failed[name]}")
    files: list[str] = []
    if states:
        files = write_comparison(out, states)
        log(f"comparison: {', '.join(files)}")
    if failed:
        log(f"{len(failed)} variant(s) failed: {', '.join(failed)}")
    return {"states": states, "failed": failed, "files": files}
