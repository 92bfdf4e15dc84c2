"""``NAME_summary.json``: what one input's outputs say in numbers, and what made them.

:func:`slide_summary` gives the record: input and outputs, sizes, level and resolution (with where it came from,
the resampling and the warnings), tissue (fraction, area, detector), objects (count, areas, density per mm² of
tissue), class pixels, the winning heads (PDist) over inferred and over object pixels with each head's σ
(:func:`head_sigmas`), the scale relative to training estimated by the calibrated ``scale`` fusion
(:func:`scale_entry`), the windows run, the regions of ``NAME_regions.png``, the wall time and the provenance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seunet_monai.networks.base import last_layer_log_sigmas
from seunet_monai.runtime.distributed import unwrap

from .outputs import OUTPUT_FILES, output_stem
from .slide import InferredSlide

__all__ = ["head_sigmas", "scale_entry", "scale_histogram", "slide_summary"]


def scale_histogram(scales: np.ndarray) -> dict[str, int]:
    """Counts of per-window scale estimates in octave-quarter bins ``2^(k/4)`` (the sweep's scales)."""
    k = np.rint(4.0 * np.log2(scales)).astype(int)
    return {f"{2.0 ** (v / 4.0):.3g}": int((k == v).sum()) for v in sorted(set(k.tolist()))}


def head_sigmas(network: torch.nn.Module, num_heads: int) -> list[float] | None:
    """σ of each of the ``num_heads`` heads (the last GD layer's), ``None`` without heads or known σ."""
    if num_heads == 0:
        return None
    log_sigmas, source = last_layer_log_sigmas(unwrap(network), num_heads)
    return None if source == "head index" else [float(v) for v in log_sigmas.exp()]


def scale_entry(
    mpp: float | None, target_mpp: float | None, window_log_scales: Sequence[float], num_heads: int
) -> dict[str, Any]:
    """The summary's ``scale``: the resolution relative to training and, with a scale-fusion calibration, the
    distribution of the per-window scale estimates (:func:`~seunet_monai.fusion.scale.estimate_log_scale`; its
    median is ``estimated_scale_relative_to_training``). Without one that estimate is ``None``, with a note when
    the network has heads (``num_heads > 0``) and could be calibrated."""
    entry: dict[str, Any] = {
        "resolution_relative_to_training": (target_mpp / mpp) if (mpp and target_mpp) else None,
        "estimated_scale_relative_to_training": None,
    }
    regions = np.exp(np.asarray(window_log_scales, dtype=np.float64))
    if not regions.size:
        if num_heads:
            entry["note"] = "uncalibrated: calibrate the network (`run calibrating`) to get the estimated scale"
        return entry
    q = np.percentile(regions, [10, 25, 50, 75, 90])
    entry["estimated_scale_relative_to_training"] = float(q[2])
    entry["per_region"] = {
        "source": "scale fusion calibration (model.pt fusion_* buffers), one estimate per window",
        "windows": int(regions.size),
        "percentiles": {p: float(v) for p, v in zip(("p10", "p25", "median", "p75", "p90"), q)},
        "histogram": scale_histogram(regions),
    }
    return entry


def slide_summary(
    slide: InferredSlide,
    names: Sequence[str],
    nuclei: dict,
    regions: list[dict],
    network: torch.nn.Module,
    class_names: Sequence[str],
    tissue_method: str,
    target_mpp: float | None,
    provenance: dict,
    start: float,
) -> dict[str, Any]:
    """The summary of one inferred input (see the module docstring).

    Args:
        slide: the inferred input.
        names: its output files, the summary last.
        nuclei: the objects' entry (:mod:`~seunet_monai.apps.wsi.objects`).
        regions: the crops of ``NAME_regions.png`` (:func:`~seunet_monai.apps.wsi.figures.write_figures`).
        network: the network (the heads' σ).
        class_names: name per class.
        tissue_method: the ``tissue_mask`` setting.
        target_mpp: the resolution the model was trained at.
        provenance: what made the outputs (:mod:`~seunet_monai.apps.wsi.provenance`).
        start: ``time.perf_counter()`` when the input was started.
    """
    mpp, tissue, acc, plan = slide.mpp, slide.tissue, slide.accumulator, slide.plan
    cell_area = (slide.factor * mpp) ** 2 * 1e-6 if mpp else None  # mm² per thumbnail pixel
    tissue_mm2 = int(tissue.sum()) * cell_area if cell_area else None
    omega = acc.num_heads

    def dist(counts: np.ndarray | None) -> dict | None:
        if counts is None or counts.sum() == 0:
            return None
        return {f"head{k + 1}": float(v) for k, v in enumerate(counts / counts.sum())}

    summary = {
        "input": str(slide.path),
        "outputs": list(names),
        "output_files": {n: OUTPUT_FILES[n[len(output_stem(slide.path)) :]] for n in names},
        "size_level0": [int(v) for v in slide.base_reader.get_size(slide.wsi, 0)],
        "level": int(plan.level),
        "size": list(slide.size),
        "downsample": float(slide.downsample),
        "resolution": {
            "mpp": mpp,
            "target_mpp": target_mpp,
            "known": mpp is not None,
            "resampled": plan.resampled or False,
            **({} if mpp else {"note": "no resolution metadata: inferred at full resolution (level 0)"}),
        },
        "tissue": {
            "method": tissue_method,
            "fraction": float(tissue.mean()) if tissue.size else 0.0,
            "area_mm2": tissue_mm2,
        },
        "nuclei": {**nuclei, "density_per_mm2": (nuclei["count"] / tissue_mm2) if tissue_mm2 else None},
        "class_pixels": {n: int(v) for n, v in zip(class_names, acc.class_pixels)},
        "winning_heads": {
            "num_heads": omega,
            "head_sigmas": head_sigmas(network, omega),
            "inferred_pixels": dist(acc.winner_pixels),
            "object_pixels": dist(acc.winner_foreground),
        },
        "scale": scale_entry(mpp, target_mpp, slide.window_log_scales, omega),
        "patches": {"run": slide.splitter.num_patches, "total": slide.splitter.num_locations},
        "wall_time_s": round(time.perf_counter() - start, 3),
        "regions": regions,
    }
    summary["resolution"]["warnings"] = plan.warnings
    summary["resolution"]["source"] = plan.source
    if plan.warnings and not mpp:
        summary["resolution"]["note"] = "resolution not used (see warnings): inferred as stored"
    summary["tissue"]["detector"] = slide.detector
    summary["provenance"] = provenance
    return summary
