"""One-command experiments: train and scale-sweep several model variants through the bundle, then compare.

Every variant is trained and evaluated by the *same* bundle commands (``python -m monai.bundle run
training|evaluating``) with the same data, seed, epochs and augmentation; a variant differs only by its
override file ``configs/variants/NAME.json`` of the bundle (:func:`seunet_monai.runtime.resources.bundle_path`),
merged **last** (after ``train.json`` and, for evaluating, ``evaluate.json``) so that its keys win:

- ``seunet``: the bundle's default SEUNet (no override file),
- ``unet``: MONAI's ``BasicUNet`` (features 60..960, one head; the sweep reports it as ``head1`` with
  ``mean`` / ``pdist`` / ``pens`` equal to it),
- ``cnn``: :class:`~seunet_monai.networks.cnn.CNNUNet`, the SEUNet architecture and training path with
  learned 3×3 convolutions, one group, one head (the paper's conventional CNN, widths 60..960),
- ``sesn``: :class:`~seunet_monai.networks.sesn.SESNUNet`,
- ``disco``: :class:`~seunet_monai.networks.disco.DISCOUNet`,
- ``seunet_fixed`` / ``seunet_free``: the σ ablation (Table 3): ``sigma_mode`` ``"fixed"`` / ``"free"``.

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
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from seunet_monai.data.datalist import datalist_exists
from seunet_monai.data.synthetic import SYNTHETIC_MARKER, make_synthetic_dataset
from seunet_monai.evaluation.compare import compare_evaluations
from seunet_monai.evaluation.report import comparison_markdown, read_csv_rows, summarise, write_csv_rows
from seunet_monai.runtime.files import atomic_write_text
from seunet_monai.runtime.resources import bundle_path, config_path
from seunet_monai.runtime.status import read_status as read

__all__ = [
    "FIELDS_OF_VIEW",
    "TINY_DATA",
    "VARIANTS",
    "VariantSpec",
    "bundle_overrides",
    "check_generated_set",
    "count_parameters",
    "generated_size",
    "run_experiment",
    "run_scale_shift_benchmark",
    "write_comparison",
]

BUNDLE_DIR = bundle_path()  # the source checkout's bundle/ or the installed package data (seunet_monai.runtime.resources)
CONFIG_DIR = BUNDLE_DIR / "configs"
# working directory of the bundle commands: a source checkout's root (``python -m`` then imports this checkout's
# package, as before), else the installed bundle folder (no Python modules there to shadow anything)
COMMAND_DIR = BUNDLE_DIR.parent if (BUNDLE_DIR.parent / "seunet_monai").is_dir() else BUNDLE_DIR
STATE_FILE = "experiment_state.json"


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is built from the bundle.

    Args:
        override: file name under ``bundle/configs/variants/`` merged last, or None (the bundle default).
        width_key: ``network_def`` key holding the widths (``channels`` for SEUNet-like, ``features`` for
            ``BasicUNet``).
        tiny_widths: widths used with ``tiny=True``.
    """

    override: str | None
    width_key: str = "channels"
    tiny_widths: tuple[int, ...] = (5, 10, 20, 40, 80)


VARIANTS: dict[str, VariantSpec] = {
    "seunet": VariantSpec(None),
    "unet": VariantSpec("unet.json", "features", (5, 10, 20, 40, 80, 5)),
    "cnn": VariantSpec("cnn.json"),
    "sesn": VariantSpec("sesn.json"),
    "disco": VariantSpec("disco.json"),
    "seunet_fixed": VariantSpec("seunet_fixed.json"),
    "seunet_free": VariantSpec("seunet_free.json"),
}

#: tiny data (used when the embedded synthetic default is generated), patch and batch sizes
TINY_DATA: dict[str, Any] = {
    "synthetic#n_train": 4,
    "synthetic#n_val": 2,
    "synthetic#n_test": 2,
    "synthetic#size": 64,
    "patch_size": [64, 64],
    "shift": 8,
    "batch_size": 2,
}
#: tiny scale sweep settings (evaluating only)
TINY_SWEEP: dict[str, Any] = {"sweep#equivariance_images": 1, "sweep#equivariance_crop": 64, "sweep#num_examples": 1}

TRAINING_STATUS = "training_status.json"
"""Status file of a training run in its ``output_dir`` (written by :class:`seunet_monai.handlers.RunStatus`)."""
SWEEP_STATUS = "eval/sweep_status.json"
"""Status file of an evaluation's scale sweep in its ``output_dir`` (:class:`seunet_monai.evaluation.sweep.ScaleSweep`)."""
POLL_S = 1.0
"""How often a running bundle command's status file is read (seconds)."""


def _config_files(spec: VariantSpec, evaluating: bool) -> list[str]:
    """The bundle configs of a variant's command (a missing one raises ``MissingPathError``, naming it)."""
    names = ["train.json"] + (["evaluate.json"] if evaluating else [])
    names += [] if spec.override is None else [f"variants/{spec.override}"]
    return [str(config_path(n)) for n in names]


def _cli_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def bundle_overrides(
    name: str,
    dataset_dir: str | os.PathLike,
    variant_dir: str | os.PathLike,
    epochs: int | None = None,
    tiny: bool = False,
    seed: int = 0,
    widths: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle overrides (``{key: value}``) shared by a variant's training and evaluating commands.

    Args:
        name: variant name (a key of :data:`VARIANTS`).
        dataset_dir: the dataset folder (``datalist.json``; generated there when absent).
        variant_dir: the variant's folder (``output_dir``; ``ckpt_dir`` is ``variant_dir/models``).
        epochs: training epochs (None: the bundle's default).
        tiny: shrink the network (``VARIANTS[name].tiny_widths``) and the data (:data:`TINY_DATA`).
        seed: the bundle's ``seed``.
        widths: the five level widths for every variant (overrides ``tiny``'s; ``BasicUNet`` gets the first
            width again as its last feature count, as in the paper's (60, ..., 960, 60)).
        extra: further bundle overrides (``{key: value}``), applied last.
    """
    spec = VARIANTS[name]
    vdir = Path(variant_dir).resolve()
    ov: dict[str, Any] = {
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "output_dir": str(vdir),
        "ckpt_dir": str(vdir / "models"),
        "seed": int(seed),
    }
    if epochs is not None:
        ov["epochs"] = int(epochs)
    if tiny:
        ov[f"network_def#{spec.width_key}"] = list(spec.tiny_widths)
        ov.update(TINY_DATA)
    if widths is not None:
        w = [int(v) for v in widths]
        if len(w) != 5 or any(v < 1 for v in w):
            raise ValueError(f"widths must be 5 positive numbers (4 encoder levels + bottleneck), got {widths}.")
        ov[f"network_def#{spec.width_key}"] = w + [w[0]] if spec.width_key == "features" else w
    ov.update(dict(extra or {}))
    return ov


def _cli(overrides: Mapping[str, Any]) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", _cli_value(v))]


def count_parameters(name: str, overrides: Mapping[str, Any]) -> int:
    """Trainable parameters of variant ``name``'s ``network_def`` with ``overrides`` (built on the CPU)."""
    parser = ConfigParser()
    parser.read_config(_config_files(VARIANTS[name], evaluating=False))
    for k, v in overrides.items():
        if k.startswith("network_def") or k in ("num_classes", "fusion"):
            parser[k] = v
    net = parser.get_parsed_content("network_def", instantiate=True)
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


def read_status(path: Path) -> dict[str, Any] | None:
    """A run's status file (:func:`seunet_monai.runtime.status.read_status`)."""
    return read(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


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
        _write_json(self.state_path, self.state)
        this_attempt = [v for k, v in times.items() if int(k) > start] or list(times.values()) or [0.0]
        metrics = st.get("metrics") or {}
        val = ""
        if st.get("metrics_epoch") == epoch and metrics.get("val_iou") is not None:
            val = f", val_iou {metrics['val_iou']:.4f}"
        elapsed = time.perf_counter() - self.t0
        eta = sum(this_attempt) / len(this_attempt) * ((total or epoch) - epoch)  # mean epoch time of this attempt
        self.log(f"[{self.name}] epoch {epoch}/{total or epoch}{val}, elapsed {_fmt_time(elapsed)}, ETA {_fmt_time(eta)}")
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
        self.log(f"[{self.name}] scale sweep: image {self.done}/{st.get('num_images') or '?'} at "
                 f"{st.get('num_scales')} scales, {_fmt_time(float(st.get('elapsed_s') or 0.0))}")


def _run_logged(cmd: list[str], log_path: Path, env: Mapping[str, str], poll: Callable[[], None] | None = None) -> int:
    """Run ``cmd`` with stdout and stderr appended to ``log_path``; call ``poll`` every :data:`POLL_S` seconds
    while it runs and once after it ends (to read its status file)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=str(COMMAND_DIR), env=dict(env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")

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


def _run_variant(
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
        args["evaluation"] = {"dataset_dir": None if eval_dataset_dir is None else str(eval_dataset_dir),
                              "overrides": dict(eval_extra or {})}
    if state_path.is_file():
        state = _read_json(state_path)
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
    _write_json(state_path, state)

    if not state.get("training_finished"):
        resume = (vdir / "models" / "last.pt").is_file()
        cmd = [python, "-m", "monai.bundle", "run", "training", "--config_file",
               json.dumps(_config_files(spec, evaluating=False)), *_cli(ov), "--resume", _cli_value(resume)]
        log(f"[{name}] training{' (resuming from last.pt)' if resume else ''}; log: {vdir / 'train.log'}")
        progress = _Progress(name, log, state, state_path, vdir / TRAINING_STATUS)
        t_train = time.perf_counter()
        rc = _run_logged(cmd, vdir / "train.log", env, progress.poll)
        state["training_wall_s"] = round(state.get("training_wall_s", 0.0) + time.perf_counter() - t_train, 3)
        if rc != 0:
            raise RuntimeError(f"training failed (exit status {rc}); see {vdir / 'train.log'}")
        trained = read_status(vdir / TRAINING_STATUS) or {}  # _run_logged polled it a last time after the exit
        if trained.get("state") != "finished":
            raise RuntimeError(f"training exited with status 0 but {vdir / TRAINING_STATUS} does not say finished")
        state["training_finished"] = True  # only once verified: a rerun must not skip an unfinished training
        state["training_time_s"] = round(sum(state.get("epoch_times_s", {}).values()), 3)
        state["best_val_iou"], state["best_epoch"] = trained.get("best_metric"), trained.get("best_metric_epoch")
        _write_json(state_path, state)

    eval_ov = dict(ov)
    if tiny:
        eval_ov.update(TINY_SWEEP)
    if scales is not None:
        eval_ov["scales"] = [float(s) for s in scales]
    if eval_dataset_dir is not None:
        eval_ov["dataset_dir"] = str(eval_dataset_dir)
    eval_ov.update(dict(eval_extra or {}))
    eval_ov["sweep#model_name"] = name
    cmd = [python, "-m", "monai.bundle", "run", "evaluating", "--config_file",
           json.dumps(_config_files(spec, evaluating=True)), *_cli(eval_ov)]
    log(f"[{name}] evaluating (scale sweep); log: {vdir / 'evaluate.log'}")
    t0 = time.perf_counter()
    rc = _run_logged(cmd, vdir / "evaluate.log", env, _SweepProgress(name, log, vdir / SWEEP_STATUS).poll)
    if rc != 0:
        raise RuntimeError(f"evaluating failed (exit status {rc}); see {vdir / 'evaluate.log'}")
    swept = read_status(vdir / SWEEP_STATUS) or {}
    if swept.get("state") != "finished":
        raise RuntimeError(f"evaluating exited with status 0 but {vdir / SWEEP_STATUS} does not say finished")
    state["iou_mean_over_scales"] = swept.get("iou_mean_over_scales")
    state["equivariance_error_mean"] = swept.get("equivariance_error_mean")
    state["evaluation_time_s"] = round(time.perf_counter() - t0, 3)
    state["evaluation_finished"] = True
    _write_json(state_path, state)
    log(f"[{name}] done in {_fmt_time(time.perf_counter() - t0)} of evaluation")
    return state


def write_comparison(out: str | os.PathLike, states: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Write ``comparison.csv``, ``comparison.md`` and ``iou_vs_scale.png`` in ``out`` from finished variants.

    Uses :func:`seunet_monai.evaluation.compare.compare_evaluations` (CSV, figure, Table 2), then extends
    ``comparison.md`` with parameters and training times and the σ ablation (Table 3 form).

    Args:
        out: the experiment folder holding ``<variant>/eval``.
        states: per variant, its runner state (``parameters``, ``training_time_s``, ...).

    Returns:
        the written files.
    """
    out = Path(out)
    names = [n for n in states if (out / n / "eval" / "scale_sweep.csv").is_file()]
    if not names:
        raise ValueError(f"{out}: no finished variant evaluation to compare.")
    # the comparison is derived data of this folder: it is regenerated whenever a variant finishes
    result = compare_evaluations([out / n / "eval" for n in names], out, overwrite=True)
    rows = read_csv_rows(out / "comparison.csv")
    summary = summarise(rows)
    extras: dict[str, dict[str, Any]] = {}
    for n in names:
        meta = _read_json(out / n / "eval" / "scale_sweep.json")
        extras[n] = {"equivariance_error": meta.get("equivariance_error_mean"),
                     "parameters": states[n].get("parameters", meta.get("parameters"))}

    def fmt_s(v: Any) -> str:
        return "–" if v is None else f"{float(v):.1f}"

    md = ["# Experiment comparison", "",
          "Every variant was trained and evaluated by the same bundle commands (same data, seed, epochs, "
          "augmentation); IoU is the dataset-wide IoU of the test split, averaged over the test scales.", "",
          "## Table 2 form: mean IoU over scales per model and strategy", "",
          comparison_markdown(summary, extras),
          "## Parameters and training time", "",
          "| model | parameters | epochs | training time (s) | evaluation time (s) |", "|---|---|---|---|---|"]
    for n in names:
        s = states[n]
        md.append(f"| {n} | {s.get('parameters', '')} | {s.get('max_epochs', '')} | {fmt_s(s.get('training_time_s'))} "
                  f"| {fmt_s(s.get('evaluation_time_s'))} |")
    md.append("")
    md.append("Training time: sum of the trainer's per-epoch times (validation included) over all attempts.")
    md.append("")
    ablation = [n for n in ("seunet", "seunet_fixed", "seunet_free") if n in names]
    if len(ablation) > 1:
        md += ["## Table 3 form: σ ablation (constrained / fixed at the midpoints / free)", "",
               comparison_markdown([r for r in summary if r["model"] in ablation], extras)]
    md += ["Sources:", ""] + [f"- {n}: {out / n / 'eval'}" for n in names]
    atomic_write_text(out / "comparison.md", "\n".join(md) + "\n")
    return result["files"]


def run_experiment(
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    variants: Sequence[str] = tuple(VARIANTS),
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
        log(f"== variant {i + 1}/{len(variants)}: {name} (elapsed {_fmt_time(time.perf_counter() - t0)})")
        try:
            states[name] = _run_variant(name, dataset_dir, out, epochs, tiny, scales, seed, python, env, log,
                                        widths, overrides)
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


#: How the generated test sets of the scale-shift benchmark are framed (see :func:`run_scale_shift_benchmark`).
FIELDS_OF_VIEW = ("same", "fixed")


def generated_size(size: int, scale: float, field_of_view: str = "same") -> int:
    """Image side of the benchmark's set generated at ``scale``: ``round(size·scale)`` (at least 8) for the
    ``"same"`` field of view, ``size`` for ``"fixed"``."""
    return max(8, int(round(size * scale))) if field_of_view == "same" else int(size)


def check_generated_set(folder: Path, expected: Mapping[str, Any]) -> None:
    """Refuse to reuse a generated set made with other generator parameters (e.g. by an older benchmark layout).

    Raises:
        ValueError: naming the folder, the differing parameters and the fix.
    """
    report = folder / SYNTHETIC_MARKER
    try:
        params = json.loads(report.read_text())["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder} has a datalist.json but no readable {SYNTHETIC_MARKER}: it was not made by this "
                         "benchmark; use another --out.") from None
    diff = {k: (params.get(k), v) for k, v in expected.items()
            if not (params.get(k) == v or (isinstance(v, float) and params.get(k) is not None
                                           and math.isclose(float(params[k]), v)))}
    if diff:
        found = ", ".join(f"{k} {a!r} (this run needs {b!r})" for k, (a, b) in diff.items())
        raise ValueError(f"{folder} was generated with other parameters: {found}; use another --out (or remove that "
                         "folder so that it is generated again).")


def run_scale_shift_benchmark(
    out: str | os.PathLike,
    variants: Sequence[str] = ("seunet", "unet"),
    test_scales: Sequence[float] = (0.5, 1.0, 2.0),
    n_train: int = 16,
    n_val: int = 4,
    n_test: int = 4,
    size: int = 96,
    epochs: int | None = None,
    tiny: bool = False,
    widths: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
    field_of_view: str = "same",
) -> dict[str, Any]:
    """Controlled scale shift: train at synthetic scale 1, test on sets *generated* at other scales.

    1. ``out/data/scale_1``: a synthetic nuclei dataset at scale 1 (training, validation and test splits).
    2. :func:`run_experiment` trains every variant on it into ``out/runs`` and sweeps ``test_scales`` on
       **resampled** copies of its test split (the usual scale sweep).
    3. ``out/data/scale_K`` for each ``K``: test sets generated by the synthetic generator at scale ``K``
       (every length magnified ``K`` times; see ``field_of_view``), each evaluated at scale 1 with the bundle's
       evaluating command (``--dataset_dir out/data/scale_K --eval_dir out/runs/<variant>/eval_native_K``).
    4. ``out/scale_shift.csv`` (``model, strategy, test_scale, test_set, iou``, ``test_set`` = ``generated`` or
       ``resampled``) and ``out/scale_shift.md``.

    Args:
        out: benchmark folder.
        variants: variant names (see :data:`VARIANTS`).
        test_scales: scales ``K`` of the generated (and resampled) test sets.
        n_train: training samples at scale 1 (also ``n_val`` validation and ``n_test`` test samples per set).
        n_val: validation samples.
        n_test: test samples of every test set.
        size: image side in pixels of the scale-1 sets.
        epochs: training epochs.
        tiny: tiny networks (see :func:`bundle_overrides`).
        widths: five level widths of every variant.
        overrides: further bundle overrides (e.g. ``{"batch_size": 4, "patch_size": [96, 96]}``).
        seed: random seed of the generator and the training.
        python: interpreter for the bundle commands.
        env: environment of the bundle commands.
        log: progress sink.
        field_of_view: ``"same"`` (default): the set generated at scale ``K`` has images of ``round(size·K)``
            pixels, so it shows the *same tissue* as the scale-1 test split (the generator's per-sample seeds
            and physical units make ``test_000i`` the same field magnified ``K`` times), as when one slide is
            scanned at two magnifications; generated and resampled sets then differ only by how the scale
            change was made (rendering with pixel noise and optics vs. digital resampling). ``"fixed"``: images
            of ``size`` pixels at every scale (the layout until 0.3.0): the scale-``K`` set covers a ``K²``
            times smaller tissue area, so its tissue mix (e.g. how many small lymphocytes against large tumour
            nuclei) is a different, smaller sample, and scale and tissue sampling are confounded.

    Returns:
        ``{"rows": [...], "failed": {...}, "files": [...]}``.

    Raises:
        ValueError: for bad arguments, or an existing ``out/data/scale_K`` generated with other parameters.
    """
    out = Path(out).resolve()
    scales = [float(k) for k in test_scales]
    if not scales or any(not k > 0 for k in scales):
        raise ValueError(f"test_scales must be positive numbers, got {test_scales}.")
    if field_of_view not in FIELDS_OF_VIEW:
        raise ValueError(f"field_of_view must be one of {list(FIELDS_OF_VIEW)}, got {field_of_view!r}.")
    data = out / "data"

    def dataset(k: float, n_tr: int, n_v: int) -> Path:
        """The set at scale ``k``: generated when missing, else checked against this run's parameters."""
        d = data / f"scale_{k:g}"
        side = generated_size(size, k, field_of_view)
        if datalist_exists(d):
            check_generated_set(d, {"size": side, "scale": k, "seed": seed, "n_test": n_test})
        else:
            log(f"generating the synthetic test set at scale {k:g} ({side} px) in {d}")
            make_synthetic_dataset(d, task="nuclei", n_train=n_tr, n_val=n_v, n_test=n_test, size=side, scale=k,
                                   seed=seed)
        return d

    train_dir = dataset(1.0, n_train, n_val)
    generated = {k: dataset(k, 0, 0) for k in scales if k != 1.0}  # before the training: a bad kept set fails now
    runs = out / "runs"
    result = run_experiment(train_dir, runs, variants, epochs=epochs, tiny=tiny, scales=scales, seed=seed,
                            python=python, env=env, log=log, widths=widths, overrides=overrides)
    failed = dict(result["failed"])
    python = python or sys.executable
    env = dict(os.environ if env is None else env)
    env.pop("SEUNET_BUNDLE_ROOT", None)
    rows: list[dict[str, Any]] = []
    for name in variants:
        if name in failed:
            continue
        vdir = runs / name
        for r in read_csv_rows(vdir / "eval" / "scale_sweep.csv"):
            rows.append({"model": name, "strategy": r["strategy"], "test_scale": float(r["scale"]),
                         "test_set": "resampled", "iou": r["iou"]})
        for k in scales:
            if k == 1.0:  # the training set's own test split, already swept (resampling by 1 is the identity)
                rows += [dict(r, test_set="generated") for r in rows
                         if r["model"] == name and r["test_scale"] == 1.0 and r["test_set"] == "resampled"]
                continue
            d = generated[k]
            eval_dir = vdir / f"eval_native_{k:g}"
            if not (eval_dir / "scale_sweep.json").is_file():
                ov = bundle_overrides(name, d, vdir, epochs, tiny, seed, widths, overrides)
                if tiny:
                    ov.update(TINY_SWEEP)
                ov.update({"eval_dir": str(eval_dir), "scales": [1.0], "sweep#model_name": name})
                cmd = [python, "-m", "monai.bundle", "run", "evaluating", "--config_file",
                       json.dumps(_config_files(VARIANTS[name], evaluating=True)), *_cli(ov)]
                log(f"[{name}] evaluating on the test set generated at scale {k:g}")
                rc = _run_logged(cmd, vdir / "evaluate_native.log", env, None)
                if rc != 0:
                    failed[name] = f"evaluating at generated scale {k:g} failed (exit {rc}); see {vdir / 'evaluate_native.log'}"
                    log(f"[{name}] FAILED: {failed[name]}")
                    break
            for r in read_csv_rows(eval_dir / "scale_sweep.csv"):
                rows.append({"model": name, "strategy": r["strategy"], "test_scale": k, "test_set": "generated",
                             "iou": r["iou"]})
    files: list[str] = []
    if rows:
        files.append(str(write_csv_rows(out / "scale_shift.csv", rows,
                                        ("model", "strategy", "test_scale", "test_set", "iou"))))
        fov = (f"the same tissue as the scale-1 test split, images of round(K·{size}) px"
               if field_of_view == "same" else f"images of {size} px at every K, a K² times smaller tissue area")
        md = ["# Scale-shift benchmark", "",
              f"Trained at synthetic scale 1 ({n_train} images of {size} px); dataset-wide IoU (%) of {n_test} test "
              f"images per set. `generated`: test sets rendered by the synthetic generator at scale K ({fov}; "
              f"field of view `{field_of_view}`); `resampled`: the scale-1 test split resized by K.", ""]
        head = [f"{k:g} {t}" for k in scales for t in ("generated", "resampled")]
        md.append("| model | strategy | " + " | ".join(head) + " |")
        md.append("|---|---|" + "---|" * len(head))
        table = {(r["model"], r["strategy"], r["test_scale"], r["test_set"]): r["iou"] for r in rows}
        for name in variants:
            strategies = sorted({r["strategy"] for r in rows if r["model"] == name},
                                key=lambda s: (s.startswith("head"), s))
            for st in strategies:
                cells = []
                for k in scales:
                    for t in ("generated", "resampled"):
                        v = table.get((name, st, k, t))
                        cells.append("–" if v is None else f"{100 * float(v):.2f}")
                md.append(f"| {name} | {st} | " + " | ".join(cells) + " |")
        md += ["", f"Training and comparison of the resampled sweep: {runs / 'comparison.md'}"]
        atomic_write_text(out / "scale_shift.md", "\n".join(md) + "\n")
        files.append(str(out / "scale_shift.md"))
        log(f"scale-shift benchmark: {', '.join(files)}")
    return {"rows": rows, "failed": failed, "files": files + result["files"]}
