"""The report of an instance preset (``seunet-experiment --preset instances-cpu``): the jobs' object-level scores
side by side, ``instances.csv`` and ``instances.md``.

Every job's scale sweep (``<job>/eval/scale_sweep.csv``) holds, per scale and fusion, the dataset-wide instance
columns (PQ, SQ, RQ, AJI, F1, object Dice, predicted / annotated count) beside the class-mask IoU. The report gives,
per job and fusion, the scores at scale 1 and their means over the swept scales, and marks the best job per column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seunet_monai.evaluation.report import read_csv_rows, write_csv_rows
from seunet_monai.experiments.presets import Preset
from seunet_monai.runtime.files import atomic_write_text

__all__ = ["INSTANCE_REPORT_COLUMNS", "instance_rows", "write_instance_comparison"]

#: the scores of the report, in table order
INSTANCE_REPORT_COLUMNS = ("pq", "aji", "f1", "count_ratio", "sq", "dice_obj", "iou")

_FUSIONS = ("mean", "pdist", "pens", "scale")


def _mean(values: Sequence[float]) -> float:
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    return sum(v) / len(v) if v else math.nan


def instance_rows(out: str | os.PathLike, preset: Preset) -> tuple[list[dict[str, Any]], list[str]]:
    """``(rows, pending jobs)``: per finished job and fusion, ``{job, variant, strategy, <col>_s1, <col>_mean}`` for
    :data:`INSTANCE_REPORT_COLUMNS` (scale 1 and the mean over the scales where the column was measured)."""
    out = Path(out)
    rows: list[dict[str, Any]] = []
    pending: list[str] = []
    for job in preset.jobs:
        path = out / job.name / "eval" / "scale_sweep.csv"
        if not path.is_file():
            pending.append(job.name)
            continue
        sweep = read_csv_rows(path)
        strategies = [s for s in _FUSIONS if any(r["strategy"] == s for r in sweep)] or ["head1"]
        for st in strategies:
            mine = [r for r in sweep if r["strategy"] == st]
            row: dict[str, Any] = {"job": job.name, "variant": job.variant, "strategy": st}
            for col in INSTANCE_REPORT_COLUMNS:
                at1 = [r.get(col) for r in mine if r.get("scale") is not None and math.isclose(float(r["scale"]), 1.0)]
                row[f"{col}_s1"] = _mean(at1)
                row[f"{col}_mean"] = _mean([r.get(col) for r in mine])
            rows.append(row)
    return rows, pending


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


def _best_job(group: Sequence[dict[str, Any]], key: str, towards_one: bool) -> str | None:
    """The job with the best value of ``key`` in ``group`` (the largest, or the closest to 1 with ``towards_one``);
    ``None`` when fewer than two jobs have a value or the best is tied."""
    scored = [(-abs(r[key] - 1.0) if towards_one else r[key], r["job"]) for r in group if not math.isnan(r[key])]
    if len(scored) < 2:
        return None
    scored.sort(reverse=True)
    return scored[0][1] if scored[0][0] > scored[1][0] else None


def write_instance_comparison(out: str | os.PathLike, preset: Preset) -> list[str]:
    """Write ``instances.csv`` and ``instances.md`` in ``out`` from the finished jobs of ``preset`` (rerun after each
    job; unfinished jobs are listed as such). Returns the paths written."""
    out = Path(out)
    rows, pending = instance_rows(out, preset)
    columns = ["job", "variant", "strategy"] + [f"{c}_{w}" for c in INSTANCE_REPORT_COLUMNS for w in ("s1", "mean")]
    files = [str(write_csv_rows(out / "instances.csv", rows, columns))]
    scales = ", ".join(f"{s:.3g}" for s in preset.scales)
    md = [
        f"# Nucleus instances: preset `{preset.name}`",
        "",
        preset.description + ".",
        "",
        "Dataset-wide scores of the nucleus instances on the swept images (PQ = SQ × RQ; F1 = detection F1 at IoU "
        "0.5; count = predicted / annotated objects; IoU = the class mask's nucleus IoU), at scale 1 and as the mean "
        f"over the scales {scales}. Bold: the best job of a fusion (count: the closest to 1; none on a tie).",
        "",
    ]
    for window, title in (("s1", "At scale 1"), ("mean", "Mean over the scales")):
        md += [
            f"## {title}",
            "",
            "| job | variant | fusion | " + " | ".join(INSTANCE_REPORT_COLUMNS) + " |",
            "|---|---|---|" + "---|" * len(INSTANCE_REPORT_COLUMNS),
        ]
        for st in dict.fromkeys(r["strategy"] for r in rows):
            group = [r for r in rows if r["strategy"] == st]
            best = {col: _best_job(group, f"{col}_{window}", col == "count_ratio") for col in INSTANCE_REPORT_COLUMNS}
            for r in group:
                cells = []
                for col in INSTANCE_REPORT_COLUMNS:
                    text = _fmt(r[f"{col}_{window}"], 4 if col == "iou" else 3)
                    cells.append(f"**{text}**" if best[col] == r["job"] else text)
                md.append(f"| {r['job']} | {r['variant']} | {st} | " + " | ".join(cells) + " |")
        md.append("")
    if pending:
        md += [f"Jobs not finished in `{out.name}`: {', '.join(pending)}.", ""]
    atomic_write_text(out / "instances.md", "\n".join(md))
    files.append(str(out / "instances.md"))
    return files
