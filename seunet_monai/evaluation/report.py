"""Tables of the scale sweep: CSV (long format), JSON and Markdown (Table 1 / Table 2 style).

Long format: one row per ``(model, strategy, scale)`` with at least ``model, strategy, scale, iou,
iou_per_image, dice`` (scores in [0, 1]; Markdown tables print them ×100 like the paper) and the instance
columns ``pq, sq, rq, aji, f1, dice_obj, count_ratio`` (``nan`` where not measured; ``count_ratio`` is a ratio,
printed as is).
Strategies are ordered ``head1 .. headΩ, mean, pdist, pens, scale``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seunet_monai.runtime.files import atomic_write_text

__all__ = [
    "SWEEP_COLUMNS",
    "comparison_markdown",
    "read_csv_rows",
    "strategy_names",
    "strategy_sort_key",
    "summarise",
    "sweep_markdown",
    "write_csv_rows",
]

_INSTANCE = ("pq", "sq", "rq", "aji", "f1", "dice_obj", "count_ratio")  # = instance_scoring.INSTANCE_COLUMNS
SWEEP_COLUMNS = ("model", "strategy", "scale", "iou", "iou_per_image", "dice", "num_images", *_INSTANCE)
_SCORES = ("iou", "iou_per_image", "dice", *_INSTANCE)


def strategy_names(num_heads: int) -> list[str]:
    """``["head1", ..., "headΩ", "mean", "pdist", "pens"]``."""
    return [f"head{k + 1}" for k in range(num_heads)] + ["mean", "pdist", "pens"]


def strategy_sort_key(strategy: str) -> tuple[int, int]:
    """Heads first (by index), then mean, pdist, pens, scale, then anything else."""
    m = re.fullmatch(r"head(\d+)", strategy)
    if m:
        return (0, int(m.group(1)))
    order = {"mean": 1, "pdist": 2, "pens": 3, "scale": 4}
    return (order.get(strategy, 5), 0)


def write_csv_rows(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as CSV atomically; ``columns`` default to the keys of the first row (then any others)."""
    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_value(r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return "" if v is None else v


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a CSV written by :func:`write_csv_rows`; numeric-looking fields become floats (``scale``, scores)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such results file: {p}")
    rows = []
    with p.open(newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({k: _parse(v) for k, v in r.items()})
    return rows


def _parse(v: str) -> Any:
    try:
        return float(v) if v not in ("",) else None
    except ValueError:
        return v


def summarise(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean over scales of each score per ``(model, strategy)`` (the paper's headline, Table 2): ``{score}_mean``
    over the scales where the score is measured (the instance columns: the sweep's ``instance_scales``)."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in _SCORES:
            if r.get(k) is not None:
                acc[(str(r["model"]), str(r["strategy"]))][k].append(float(r[k]))
    out = []
    for (model, strategy), vals in acc.items():
        row: dict[str, Any] = {"model": model, "strategy": strategy}
        for k in _SCORES:
            v = [x for x in vals.get(k, []) if not math.isnan(x)]
            row[f"{k}_mean"] = sum(v) / len(v) if v else float("nan")
        row["num_scales"] = len(vals.get("iou", []))
        out.append(row)
    out.sort(key=lambda r: (r["model"], strategy_sort_key(r["strategy"])))
    return out


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * float(v):.2f}"


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.{digits}f}"


def sweep_markdown(
    rows: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, Any],
    equivariance: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Markdown report: Table-1-style IoU per strategy × scale, and Table-2-style means over scales."""
    models = sorted({str(r["model"]) for r in rows})
    lines = ["# Scale sweep", ""]
    for key in ("model", "checkpoint", "dataset", "num_images", "elapsed_s", "peak_rss_mb"):
        if key in metadata:
            lines.append(f"- {key}: {metadata[key]}")
    if "scale_estimation" in metadata:
        sf = metadata["scale_estimation"].get("scale_fusion") or {}
        if sf.get("calibrated"):
            c = sf.get("correlation") or {}
            lines.append(
                f"- 'scale' fusion's calibrated estimate (log ŝ vs log s): Spearman {_num(c.get('spearman'))}, "
                f"Pearson {_num(c.get('pearson'))}"
            )
        elif sf:
            lines.append("- 'scale' fusion: not calibrated (no `scale` row; run the bundle's `calibrating` first)")
    lines.append("")
    for model in models:
        mrows = [r for r in rows if str(r["model"]) == model]
        scales = sorted({float(r["scale"]) for r in mrows})
        strategies = sorted({str(r["strategy"]) for r in mrows}, key=strategy_sort_key)
        table = {(str(r["strategy"]), float(r["scale"])): r for r in mrows}
        lines += [f"## {model}: dataset-wide IoU (%) per strategy and test scale (Table 1 style)", ""]
        lines.append("| strategy | " + " | ".join(f"{s:.2f}" for s in scales) + " | mean |")
        lines.append("|---" * (len(scales) + 2) + "|")
        summary = {r["strategy"]: r for r in summarise(mrows)}
        for st in strategies:
            cells = [_pct(table.get((st, s), {}).get("iou")) for s in scales]
            lines.append(f"| {st} | " + " | ".join(cells) + f" | {_pct(summary[st]['iou_mean'])} |")
        lines += ["", f"## {model}: mean over {len(scales)} scales (Table 2 style)", ""]
        lines.append("| strategy | IoU (%) | per-image IoU (%) | per-image Dice (%) |")
        lines.append("|---|---|---|---|")
        for st in strategies:
            s = summary[st]
            lines.append(f"| {st} | {_pct(s['iou_mean'])} | {_pct(s['iou_per_image_mean'])} | {_pct(s['dice_mean'])} |")
        lines.append("")
        lines += _instance_markdown(model, mrows, summary, strategies)
    if equivariance:
        lines += [
            "## Equivariance error (eq. 10, last-layer features, matched groups)",
            "",
            "Averaged over the groups k whose matched group k' has σ_k'/σ_k within 10% of the scale "
            "(pairs k>k'=error); groups without such a partner are listed and left out.",
            "",
        ]
        lines.append("| scale | error | pairs (k>k'=error) | groups without partner |")
        lines.append("|---|---|---|---|")
        for e in equivariance:
            pairs = e.get("pair_errors") or e.get("matched_groups", "")
            lines.append(
                f"| {float(e['scale']):.2f} | {_num(e['equivariance_error'], 4)} | {pairs} | "
                f"{e.get('groups_without_partner', '')} |"
            )
        if "equivariance_error_mean" in metadata:
            lines += ["", f"Mean over scales ≠ 1: {_num(metadata['equivariance_error_mean'], 4)}"]
        lines.append("")
    lines.append(
        "IoU: confusion matrix accumulated over the whole test split (class 1 for binary tasks, mean over "
        "classes otherwise). Per-image columns: mean of per-image scores (images without the class skipped)."
    )
    return "\n".join(lines) + "\n"


def _instance_markdown(
    model: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Mapping[str, Any]], strategies: Sequence[str]
) -> list[str]:
    """PQ per strategy and scale, and the means of the instance columns, where they were measured."""
    measured = [r for r in rows if r.get("pq") is not None and not math.isnan(float(r["pq"]))]
    if not measured:
        return []
    scales = sorted({float(r["scale"]) for r in measured})
    names = [st for st in strategies if any(str(r["strategy"]) == st for r in measured)]
    table = {(str(r["strategy"]), float(r["scale"])): r for r in measured}
    lines = [
        f"## {model}: instance PQ per strategy and test scale",
        "",
        "| strategy | " + " | ".join(f"{s:.2f}" for s in scales) + " | mean |",
        "|---" * (len(scales) + 2) + "|",
    ]
    for st in names:
        cells = [_num(table.get((st, s), {}).get("pq")) for s in scales]
        lines.append(f"| {st} | " + " | ".join(cells) + f" | {_num(summary[st]['pq_mean'])} |")
    lines += [
        "",
        f"## {model}: instance metrics, mean over {len(scales)} scales",
        "",
        "| strategy | " + " | ".join(_INSTANCE) + " |",
        "|---" * (len(_INSTANCE) + 1) + "|",
    ]
    for st in names:
        lines.append(f"| {st} | " + " | ".join(_num(summary[st][f"{k}_mean"]) for k in _INSTANCE) + " |")
    return [*lines, ""]


def comparison_markdown(summary_rows: Sequence[Mapping[str, Any]], extras: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 2 form over several evaluations: one row per (model, strategy), best value per column in bold.

    Args:
        summary_rows: output of :func:`summarise` over all models.
        extras: per model, optional ``equivariance_error`` (lower is better) and ``parameters``.
    """
    cols = [
        ("iou_mean", "IoU (%)", max, _pct),
        ("iou_per_image_mean", "per-image IoU (%)", max, _pct),
        ("dice_mean", "per-image Dice (%)", max, _pct),
    ]
    rows = [dict(r) for r in summary_rows]
    for r in rows:
        ex = extras.get(str(r["model"]), {})
        r["equivariance_error"] = ex.get("equivariance_error")
        r["parameters"] = ex.get("parameters")
    cols.append(("equivariance_error", "equivariance error", min, lambda v: _num(v, 3)))

    def best(key: str, pick) -> float | None:
        vals = [float(r[key]) for r in rows if r.get(key) is not None and not math.isnan(float(r[key]))]
        return pick(vals) if vals else None

    bests = {key: best(key, pick) for key, _, pick, _ in cols}
    lines = [
        "| model | strategy | " + " | ".join(c[1] for c in cols) + " | parameters |",
        "|---|---|" + "---|" * len(cols) + "---|",
    ]
    for r in rows:
        cells = []
        for key, _, _, fmt in cols:
            text = fmt(r.get(key))
            v = r.get(key)
            if v is not None and bests[key] is not None and not math.isnan(float(v)) and fmt(bests[key]) == text:
                text = f"**{text}**"
            cells.append(text)
        params = r.get("parameters")
        lines.append(
            f"| {r['model']} | {r['strategy']} | " + " | ".join(cells) + f" | {'' if params is None else int(params)} |"
        )
    return "\n".join(lines) + "\n"
