"""Merging several scale-sweep outputs into one comparison (Table 2 form) and one IoU-vs-scale figure."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seunet_monai.evaluation import plots
from seunet_monai.evaluation.report import SWEEP_COLUMNS, comparison_markdown, read_csv_rows, summarise, write_csv_rows
from seunet_monai.runtime.files import atomic_write_text

__all__ = ["COMPARISON_FILES", "compare_evaluations", "find_sweep_dir"]

COMPARISON_FILES = ("comparison.csv", "comparison.md", "iou_vs_scale.png")


def find_sweep_dir(path: str | os.PathLike) -> Path:
    """The folder holding ``scale_sweep.csv``: ``path`` itself or ``path/eval``.

    Raises:
        FileNotFoundError: naming ``path`` when neither holds the file.
    """
    p = Path(path)
    for cand in (p, p / "eval"):
        if (cand / "scale_sweep.csv").is_file():
            return cand
    raise FileNotFoundError(f"{p}: no scale_sweep.csv in it or in {p / 'eval'} (run the evaluating step first).")


def compare_evaluations(
    eval_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    strategies: Sequence[str] = ("mean", "pdist", "pens"),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Merge scale sweeps into ``comparison.csv``, ``comparison.md`` and ``iou_vs_scale.png`` in ``out_dir``.

    Args:
        eval_dirs: evaluation folders (``.../eval``) or run folders holding ``eval/``.
        out_dir: output folder (created).
        strategies: strategies drawn in the figure (every strategy is in the tables).
        overwrite: replace existing comparison files (otherwise ``FileExistsError``).

    Model names come from the ``model`` column; a name seen twice gets its folder name appended.

    Returns:
        ``{"files": [...], "summary": [...]}``.
    """
    if not eval_dirs:
        raise ValueError("compare_evaluations: give at least one evaluation folder.")
    out = Path(out_dir)
    existing = [out / n for n in COMPARISON_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite) or another --out folder.")
    all_rows: list[dict[str, Any]] = []
    extras: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for d in eval_dirs:
        sweep_dir = find_sweep_dir(d)
        rows = read_csv_rows(sweep_dir / "scale_sweep.csv")
        meta_path = sweep_dir / "scale_sweep.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        models = {str(r["model"]) for r in rows}
        rename = {}
        for m in models:
            new = m if m not in seen else f"{m} ({Path(d).resolve().name})"
            rename[m] = new
            seen.add(new)
        for r in rows:
            r["model"] = rename[str(r["model"])]
            all_rows.append(r)
        for m, new in rename.items():
            extras[new] = {
                "equivariance_error": meta.get("equivariance_error_mean"),
                "parameters": meta.get("parameters"),
                "training_time_s": meta.get("training_time_s"),
                "source": str(sweep_dir),
            }
    summary = summarise(all_rows)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_csv_rows(out / "comparison.csv", all_rows, SWEEP_COLUMNS)]
    md = [
        "# Comparison of scale sweeps",
        "",
        "Mean over test scales (Table 2 form); best per column in bold.",
        "",
        comparison_markdown(summary, extras),
        "Sources:",
        "",
    ]
    md += [f"- {m}: {e['source']}" for m, e in extras.items()]

    files.append(atomic_write_text(out / "comparison.md", "\n".join(md) + "\n"))
    files.append(
        plots.plot_iou_vs_scale(all_rows, out / "iou_vs_scale.png", title="IoU vs test scale", strategies=strategies)
    )
    return {"files": [str(f) for f in files], "summary": summary}
