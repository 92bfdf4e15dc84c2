"""The paper's Table 2 as a named, resumable protocol: ``seunet-experiment --preset NAME --source DIR --out DIR``.

A preset (:mod:`seunet_monai.experiments.presets`) fixes everything a comparison depends on. Every model is trained and swept by the same bundle commands as
:func:`seunet_monai.experiments.runner.run_experiment` (the variant override files of ``bundle/configs/variants/``), one
job at a time. Layout of ``out``::

    out/preset_state.json            the preset, the source, the wall time of every finished step
    out/data/tiles/                  training (400-px tiles) and validation tiles (checkpoint selection)
    out/data/sweep/                  the whole validation images as the ``test`` split (the scale sweep)
    out/<job>/                       one job (``seunet``, ``cnn``, ..., ``seunet-seed1``), as run_experiment's
    out/reproduction.md, reproduction.csv, reproduction_iou_vs_scale.png   (an instance preset: instances.md, .csv)

Resuming: the same command continues where it stopped; a finished preparation or job is never redone, an
interrupted training continues from its ``last.pt``. ``dry_run`` lists every step with its state and estimated
time and runs nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seunet_monai.data.prepare.monuseg import prepare_monuseg
from seunet_monai.evaluation.report import read_csv_rows, write_csv_rows
from seunet_monai.experiments.instance_comparison import write_instance_comparison
from seunet_monai.experiments.presets import (
    MONUSEG_VALIDATION_IMAGES,
    PAPER_EQUIVARIANCE,
    PAPER_TABLE2,
    PRESETS,
    Job,
    Preset,
)
from seunet_monai.experiments.runner import run_variant
from seunet_monai.experiments.state import STATE_FILE, fmt_time, write_json
from seunet_monai.experiments.variants import VARIANTS
from seunet_monai.runtime.files import atomic_write_text

__all__ = [
    "STATE",
    "plan_preset",
    "run_preset",
    "write_reproduction",
]

STATE = "preset_state.json"


def _check_source(source: Path) -> None:
    missing = [d for d in ("images", "masks") if not (source / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"--source {source} has no {' or '.join(d + '/' for d in missing)} folder: give the MoNuSeg training set "
            "folder holding images/, masks/ and annotations/ (e.g. ../shared/data/monuseg-train)."
        )
    stems = {p.stem for p in (source / "images").iterdir()}
    absent = [s for s in MONUSEG_VALIDATION_IMAGES if s not in stems]
    if absent:
        raise FileNotFoundError(
            f"--source {source}/images lacks the validation images {absent}: this preset needs "
            "the MoNuSeg 2018 training set."
        )


def _read_state(out: Path) -> dict[str, Any]:
    path = out / STATE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}; use another --out folder.") from None


def _prepare_tiles(source: Path, dst: Path) -> None:
    ann = source / "annotations"
    prepare_monuseg(
        None,
        dst,
        images=source / "images",
        annotations=ann if ann.is_dir() else None,
        masks=source / "masks",
        val_images=list(MONUSEG_VALIDATION_IMAGES),
        overwrite=dst.exists(),
    )


def _prepare_sweep_set(source: Path, tiles: Path, dst: Path) -> None:
    """The whole validation images, stain-normalised with the tiles' reference, as the ``test`` split."""
    flat = dst.parent / "sweep_source"
    for sub in ("images", "masks", "annotations"):
        (flat / sub).mkdir(parents=True, exist_ok=True)
        folder = source / sub
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            link = flat / sub / f.name
            if f.stem in MONUSEG_VALIDATION_IMAGES and not link.exists():
                link.symlink_to(f.resolve())
    ann = flat / "annotations"
    prepare_monuseg(
        None,
        dst,
        images=flat / "images",
        annotations=ann if any(ann.iterdir()) else None,
        masks=flat / "masks",
        test_images=list(MONUSEG_VALIDATION_IMAGES),
        stain_reference=tiles / "stain_reference.png",
        overwrite=dst.exists(),
    )


def _job_state(out: Path, job: Job) -> dict[str, Any]:
    try:
        return json.loads((out / job.name / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def plan_preset(preset: Preset, out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every step of ``preset`` in ``out``: ``{"step", "state" ("done", "partial", "pending"), "estimate_s"}``.

    A finished step's estimate is its recorded wall time; a pending job's is its variant's measured epoch time
    times the remaining epochs plus its sweep time.
    """
    out = Path(out)
    state = _read_state(out)
    steps: list[dict[str, Any]] = []
    done = state.get("steps", {})
    steps.append(
        {
            "step": "prepare",
            "state": "done" if "prepare" in done else "pending",
            "estimate_s": done.get("prepare", {}).get("wall_s", preset.prepare_s),
        }
    )
    for job in preset.jobs:
        js = _job_state(out, job)
        epochs_done = len(js.get("epoch_times_s", {}))
        if js.get("evaluation_finished"):
            est, st = js.get("training_wall_s", 0.0) + js.get("evaluation_time_s", 0.0), "done"
        else:
            left = 0 if js.get("training_finished") else preset.epochs - epochs_done
            est = left * preset.epoch_s.get(job.variant, 60.0) + preset.sweep_s.get(job.variant, 400.0)
            st = "partial" if js else "pending"
        steps.append(
            {"step": f"{job.name} (variant {job.variant}, seed {job.seed})", "state": st, "estimate_s": float(est)}
        )
    return steps


def run_preset(
    name: str,
    source: str | os.PathLike,
    out: str | os.PathLike,
    dry_run: bool = False,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run preset ``name`` (a key of :data:`PRESETS`) from the MoNuSeg folder ``source`` into ``out``.

    Returns:
        ``{"plan": [...], "states": {job: state}, "failed": {job: message}, "files": [...]}``.

    Raises:
        ValueError: unknown preset, or ``out`` holds another preset's or source's run.
        FileNotFoundError: ``source`` is not the MoNuSeg training set.
    """
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {name!r}.")
    preset = PRESETS[name]
    out = Path(out).resolve()
    source = Path(source).resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder.")
    _check_source(source)
    state = _read_state(out)
    if state and (state.get("preset") != name or state.get("source") != str(source)):
        raise ValueError(
            f"{out / STATE} holds preset {state.get('preset')!r} from {state.get('source')}; "
            "refusing to mix runs: use the same --preset and --source, or another --out."
        )
    plan = plan_preset(preset, out)
    total = sum(s["estimate_s"] for s in plan if s["state"] != "done")
    log(f"preset {name}: {preset.description}")
    for s in plan:
        log(f"  {s['state']:8s} {fmt_time(s['estimate_s'])}  {s['step']}")
    log(f"  remaining (estimated): {fmt_time(total)}")
    if dry_run:
        return {"plan": plan, "states": {}, "failed": {}, "files": []}

    out.mkdir(parents=True, exist_ok=True)
    state = state or {"preset": name, "source": str(source), "steps": {}}
    tiles, sweep = out / "data" / "tiles", out / "data" / "sweep"
    if "prepare" not in state["steps"]:
        log("preparing the tiles and the whole-image sweep set")
        t0 = time.perf_counter()
        _prepare_tiles(source, tiles)
        _prepare_sweep_set(source, tiles, sweep)
        state["steps"]["prepare"] = {"wall_s": round(time.perf_counter() - t0, 1)}
        write_json(out / STATE, state)
    python = python or sys.executable
    env = dict(os.environ if env is None else env)
    env.pop("SEUNET_BUNDLE_ROOT", None)
    states: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    files: list[str] = []
    for i, job in enumerate(preset.jobs):
        log(f"== job {i + 1}/{len(preset.jobs)}: {job.name}")
        try:
            states[job.name] = run_variant(
                job.variant,
                tiles,
                out,
                preset.epochs,
                False,
                preset.scales,
                job.seed,
                python,
                env,
                log,
                list(preset.widths),
                dict(preset.train_overrides),
                job=job.name,
                eval_dataset_dir=sweep,
                eval_extra=dict(preset.eval_overrides),
            )
        except Exception as e:  # noqa: BLE001 - a failing job is reported; the others still run
            failed[job.name] = f"{type(e).__name__}: {e}"
            log(f"[{job.name}] FAILED: {failed[job.name]}")
            continue
        report = write_instance_comparison if preset.report == "instances" else write_reproduction
        files = report(out, preset)
    return {"plan": plan, "states": states, "failed": failed, "files": files}


def _sweep_rows(out: Path, job: Job) -> list[dict[str, Any]]:
    path = out / job.name / "eval" / "scale_sweep.csv"
    return read_csv_rows(path) if path.is_file() else []


#: the row of a multi-head model that takes, at each scale, its best head there (chosen on the swept images
#: themselves, so in-sample: an upper bound for a fusion, not a method)
BEST_HEAD = "best_head"


def _model_strategies(strategies: Sequence[str]) -> list[str]:
    """The rows a model contributes to Table 2: a one-head model its single output (its fusions equal it), a
    multi-head model every fusion its sweep has, then each head alone (:data:`BEST_HEAD` is added from them)."""
    if "head2" not in strategies:
        return ["head1"]
    heads = sorted((s for s in strategies if re.fullmatch(r"head\d+", s)), key=lambda s: int(s[4:]))
    return [s for s in ("mean", "pdist", "pens", "scale") if s in strategies] + heads


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def write_reproduction(out: str | os.PathLike, preset: Preset) -> list[str]:
    """``reproduction.csv``, ``reproduction.md`` and ``reproduction_iou_vs_scale.png`` in ``out`` from the finished
    jobs (rerun after each job; unfinished jobs are listed as such).

    Seeds of one variant are pooled: the table gives the mean over seeds and, where there are several, their
    standard deviation (``±``) and range.
    """
    out = Path(out)
    # per (variant, strategy): {seed: {scale: iou}}
    curves: dict[tuple[str, str], dict[int, dict[float, float]]] = defaultdict(dict)
    meta: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"seeds": [], "params": None, "train_s": [], "sweep_s": [], "eq": [], "best_val": []}
    )
    pending: list[str] = []
    for job in preset.jobs:
        rows = _sweep_rows(out, job)
        js = _job_state(out, job)
        if not rows or not js.get("evaluation_finished"):
            pending.append(job.name)
            continue
        strategies = sorted({r["strategy"] for r in rows})
        for strat in _model_strategies(strategies):
            curves[(job.variant, strat)][job.seed] = {
                float(r["scale"]): float(r["iou"]) for r in rows if r["strategy"] == strat
            }
        heads = [curves[(job.variant, h)][job.seed] for h in _model_strategies(strategies) if h.startswith("head")]
        if len(heads) > 1:
            curves[(job.variant, BEST_HEAD)][job.seed] = {sc: max(h[sc] for h in heads) for sc in heads[0]}
        m = meta[job.variant]
        m["seeds"].append(job.seed)
        m["params"] = js.get("parameters")
        m["train_s"].append(js.get("training_wall_s") or js.get("training_time_s") or float("nan"))
        m["sweep_s"].append(js.get("evaluation_time_s") or float("nan"))
        m["eq"].append(
            js.get("equivariance_error_mean") if js.get("equivariance_error_mean") is not None else float("nan")
        )
        m["best_val"].append(js.get("best_val_iou") if js.get("best_val_iou") is not None else float("nan"))
    csv_rows = [
        {"model": v, "strategy": s, "seed": seed, "scale": sc, "iou": iou}
        for (v, s), by_seed in curves.items()
        for seed, c in by_seed.items()
        for sc, iou in sorted(c.items())
    ]
    files = [str(write_csv_rows(out / "reproduction.csv", csv_rows, ["model", "strategy", "seed", "scale", "iou"]))]

    def seed_means(v: str, s: str) -> np.ndarray:
        return np.array([100 * np.mean(list(c.values())) for c in curves[(v, s)].values()])

    md = [
        f"# Table 2 reproduction: preset `{preset.name}`",
        "",
        preset.description + ".",
        "",
        "Mean IoU (%) over the scales per model (dataset-wide IoU of the nucleus class at each scale, then the mean); "
        "with several seeds, mean ± standard deviation over seeds [min, max].",
        "",
        "| model | fusion | ours | seeds | paper | equivariance error (ours / paper) | parameters | best val IoU "
        "| training wall (s) | sweep wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = [v for v in VARIANTS if any(k[0] == v for k in curves)]
    for v in order:
        m = meta[v]
        for s in [k[1] for k in curves if k[0] == v]:
            vals = seed_means(v, s)
            ours = _fmt(float(vals.mean()))
            if len(vals) > 1:
                ours += f" ± {vals.std(ddof=1):.2f} [{vals.min():.2f}, {vals.max():.2f}]"
            paper = PAPER_TABLE2.get(v, {}).get(s)
            eq = f"{_fmt(float(np.nanmean(m['eq'])), 3)} / {_fmt(PAPER_EQUIVARIANCE.get(v), 2)}"
            md.append(
                f"| {v} | {s} | {ours} | {len(vals)} | {_fmt(paper)} | {eq} | {m['params']} | "
                f"{_fmt(100 * float(np.nanmean(m['best_val'])))} | {_fmt(float(np.nanmean(m['train_s'])), 0)} | "
                f"{_fmt(float(np.nanmean(m['sweep_s'])), 0)} |"
            )
    md += ["", "## Per scale (IoU %, mean over seeds)", ""]
    scales = sorted({sc for c in curves.values() for cs in c.values() for sc in cs})
    md.append("| model | fusion | " + " | ".join(f"{sc:.2f}" for sc in scales) + " |")
    md.append("|---|---|" + "---|" * len(scales))
    for (v, s), by_seed in curves.items():
        cells = []
        for sc in scales:
            xs = [c[sc] for c in by_seed.values() if sc in c]
            cells.append(_fmt(100 * float(np.mean(xs))) if xs else "–")
        md.append(f"| {v} | {s} | " + " | ".join(cells) + " |")
    if pending:
        md += ["", f"Jobs not finished in `{out.name}`: {', '.join(pending)}."]
    atomic_write_text(out / "reproduction.md", "\n".join(md) + "\n")
    files.append(str(out / "reproduction.md"))

    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    for v in order:
        s = "pens" if (v, "pens") in curves else "head1"
        by_seed = curves[(v, s)]
        arr = np.array([[100 * c.get(sc, np.nan) for sc in scales] for c in by_seed.values()])
        mean = np.nanmean(arr, axis=0)
        (line,) = ax.plot(scales, mean, marker="o", ms=3, label=f"{v} ({s}, {len(arr)} seed{'s' * (len(arr) > 1)})")
        if len(arr) > 1:
            ax.fill_between(scales, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("test scale (log)")
    ax.set_ylabel("nucleus IoU (%)")
    ax.set_title(f"MoNuSeg validation images, preset {preset.name} (shaded: seed range)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out / ".reproduction_iou_vs_scale.png.tmp"
    fig.savefig(tmp, format="png", dpi=120)
    os.replace(tmp, out / "reproduction_iou_vs_scale.png")
    files.append(str(out / "reproduction_iou_vs_scale.png"))
    return files
