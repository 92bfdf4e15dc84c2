"""The comparison of an experiment's finished variants: ``comparison.csv``, ``comparison.md`` (Table 2 and Table 3
forms, parameters, training times) and ``iou_vs_scale.png``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seunet_monai.evaluation.compare import compare_evaluations
from seunet_monai.evaluation.report import comparison_markdown, read_csv_rows, summarise
from seunet_monai.experiments.state import read_json
from seunet_monai.runtime.files import atomic_write_text

__all__ = [
    "write_comparison",
]


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
        meta = read_json(out / n / "eval" / "scale_sweep.json")
        extras[n] = {
            "equivariance_error": meta.get("equivariance_error_mean"),
            "parameters": states[n].get("parameters", meta.get("parameters")),
        }

    def fmt_s(v: Any) -> str:
        return "–" if v is None else f"{float(v):.1f}"

    md = [
        "# Experiment comparison",
        "",
        "Every variant was trained and evaluated by the same bundle commands (same data, seed, epochs, "
        "augmentation); IoU is the dataset-wide IoU of the test split, averaged over the test scales.",
        "",
        "## Table 2 form: mean IoU over scales per model and strategy",
        "",
        comparison_markdown(summary, extras),
        "## Parameters and training time",
        "",
        "| model | parameters | epochs | training time (s) | evaluation time (s) |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        s = states[n]
        md.append(
            f"| {n} | {s.get('parameters', '')} | {s.get('max_epochs', '')} | {fmt_s(s.get('training_time_s'))} "
            f"| {fmt_s(s.get('evaluation_time_s'))} |"
        )
    md.append("")
    md.append("Training time: sum of the trainer's per-epoch times (validation included) over all attempts.")
    md.append("")
    ablation = [n for n in ("seunet", "seunet_fixed", "seunet_free") if n in names]
    if len(ablation) > 1:
        md += [
            "## Table 3 form: σ ablation (constrained / fixed at the midpoints / free)",
            "",
            comparison_markdown([r for r in summary if r["model"] in ablation], extras),
        ]
    md += ["Sources:", ""] + [f"- {n}: {out / n / 'eval'}" for n in names]
    atomic_write_text(out / "comparison.md", "\n".join(md) + "\n")
    return result["files"]
