"""Out-of-sample (leave-one-image-out, LOIO) validation of the ``scale`` fusion (:mod:`seunet_monai.fusion.scale`),
offline, from a fusion cache (:mod:`seunet_monai.evaluation.fusion_cache`, filled by
:func:`~seunet_monai.evaluation.fusion_cache_build.build_cache`).

**Score** (:func:`score_cache`): for each whole image held out, the profile is built from the *other* images'
cached statistics as the calibration aggregates them (:func:`fold_profile`, with
:func:`~seunet_monai.evaluation.calibration_measure.profile_from_measurements`: per scale, each head's IoU of the summed
confusion counts and the mean signature over items, NaN components left out), from whole images or from the tiles
of the other images; the held-out image's scale is estimated from its cached signature
(:func:`~seunet_monai.fusion.scale.estimate_log_scale_from_signature`), each candidate rule
(:data:`~seunet_monai.fusion.scale_rules.CANDIDATE_RULES`) fuses its cached heads, and the confusion counts are
summed per scale over the held-out images. Reported per scale: the dataset-wide IoU of every rule, of ``pens``,
``mean`` and each head, the best head at each scale (oracle), the gaps to it and to PEns, and the estimate's error.

**Report** (:func:`write_report`): ``cv_report.json`` (the scores and what produced them) and ``cv_report.md``
(the tables).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from seunet_monai.errors import ConfigValueError, DataError
from seunet_monai.evaluation.calibration_measure import profile_from_measurements
from seunet_monai.evaluation.fusion_cache import (
    EVAL_RANGE,
    EVAL_SCALES,
    PAPER_SCALES,
    TILE,
    WHOLE,
    FusionCache,
    in_eval_range,
    scale_key,
)
from seunet_monai.fusion.heads import argmax, fuse_heads
from seunet_monai.fusion.scale import ScaleProfile, estimate_log_scale_from_signature
from seunet_monai.fusion.scale_rules import CANDIDATE_RULES, FoldProfile, Rule, RuleInput
from seunet_monai.layers.rescale import scaled_size
from seunet_monai.metrics import confusion_counts, dataset_iou
from seunet_monai.runtime.files import atomic_write_json, atomic_write_text
from seunet_monai.runtime.progress import format_duration as _secs
from seunet_monai.runtime.progress import format_megapixels as _mpx

__all__ = ["ItemStats", "fold_profile", "score_cache", "write_report"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemStats:
    """The cached statistics of one calibration item at the profile scales: ``signature (P, 3Ω)``,
    ``confusion (P, Ω, C, 4)``; ``image_name`` is the whole image it belongs to."""

    name: str
    image_name: str
    signature: torch.Tensor
    confusion: torch.Tensor


def fold_profile(
    stats: Sequence[ItemStats], scales: Sequence[float], num_classes: int, ignore_index: int | None = None
) -> FoldProfile:
    """The profile a calibration on ``stats``' items would store
    (:func:`~seunet_monai.evaluation.calibration_measure.profile_from_measurements`, the calibration's own aggregation: at
    each scale, head k's IoU of the confusion counts summed over the items, and the mean signature over the items
    where it is finite), with the standard error of each head's IoU across the items' images.

    Args:
        stats: the calibration items' statistics at ``scales`` (same order of scales).
        scales: ``(P,)`` profile scales.
        num_classes: ``C`` (for the counts' shape check).
        ignore_index: label value left out of the IoU.

    Raises:
        DataError: no item, or no scale with a finite IoU for every head.
    """
    if not stats:
        raise DataError("fold_profile: no calibration item.")
    conf = torch.stack([st.confusion for st in stats])  # (N, P, Ω, C, 4)
    if conf.shape[-2] != num_classes:
        raise DataError(f"fold_profile: the counts are for {conf.shape[-2]} classes, not {num_classes}.")
    iou, signature = profile_from_measurements(conf, torch.stack([st.signature for st in stats]), ignore_index)
    profile = ScaleProfile.from_buffers(torch.tensor([float(s) for s in scales], dtype=torch.float64), iou, signature)
    if profile is None:
        raise DataError("fold_profile: no scale has a finite IoU for every head (no foreground in the labels?).")
    images = tuple(dict.fromkeys(st.image_name for st in stats))
    per_image = torch.stack(
        [
            dataset_iou(conf[[i for i, st in enumerate(stats) if st.image_name == name]].sum(0), ignore_index)
            for name in images
        ]
    )  # (n, P, Ω)
    finite = torch.isfinite(per_image)
    n = finite.sum(0).double()
    centred = torch.where(finite, per_image - per_image.nan_to_num(0.0).sum(0) / n.clamp_min(1), 0.0)
    se = torch.where(n > 1, (centred.pow(2).sum(0) / (n - 1).clamp_min(1)).sqrt() / n.sqrt(), 0.0)  # (P, Ω)
    rows = [min(range(len(scales)), key=lambda j: abs(math.log(float(scales[j]) / float(s)))) for s in profile.scales]
    return FoldProfile(profile, se[rows], len(images), images)


def _profile_scales(choice: str | int | Sequence[float]) -> list[float]:
    if isinstance(choice, (str, int)) and str(choice) in ("9", "17"):
        return list(EVAL_SCALES if str(choice) == "9" else PAPER_SCALES)
    if isinstance(choice, str):
        raise ConfigValueError(f"profile scales must be 9, 17 or a list of scales, got {choice!r}.")
    return [float(s) for s in choice]


def _calibration_stats(cache: FusionCache, kind: str, scales: Sequence[float]) -> list[ItemStats]:
    items = cache.items(kind)
    if not items:
        raise DataError(
            f"fusion cache {str(cache.root)!r} holds no {kind} items; fill it with "
            + ("`cache ... --with-tiles`." if kind == TILE else "`cache ...`.")
        )
    missing = [(it["name"], s) for it in items for s in scales if not cache.has(kind, it["name"], s)]
    if missing:
        name, s = missing[0]
        raise DataError(
            f"fusion cache {str(cache.root)!r} lacks {len(missing)} {kind} file(s) at the profile scales (e.g. "
            f"{name} at {s:.4g}); run the cache command again with those scales (the 17 paper scales: "
            + ("--with-tiles --tile-scales paper17)." if kind == TILE else "--scales paper17).")
        )
    out = []
    for it in items:
        pairs = [cache.stats(kind, it["name"], s) for s in scales]
        out.append(
            ItemStats(it["name"], it["image"], torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
        )
    return out


def _scale_pixels(shapes: Sequence[Sequence[int]], scales: Sequence[float]) -> int:
    return sum(math.prod(scaled_size(shape, s)) for shape in shapes for s in scales)


def score_cache(
    cache: str | Path | FusionCache,
    calibration: str = WHOLE,
    profile_scales: str | int | Sequence[float] = "9",
    eval_scales: Sequence[float] | None = None,
    rules: Mapping[str, Rule] | None = None,
    loio: bool = True,
    grid_steps: int = 8,
) -> dict[str, Any]:
    """Leave-one-image-out scores of the candidate ``rules`` on a fusion cache (no network).

    Args:
        cache: the cache folder (or an open :class:`FusionCache`).
        calibration: ``"whole"`` (the calibration's default: the other whole images) or ``"tiles"`` (the items as
            they are, the tiles of the other images: the calibration with ``whole=False``).
        profile_scales: ``"9"`` (:data:`~seunet_monai.evaluation.fusion_cache.EVAL_SCALES`), ``"17"``
            (:data:`~seunet_monai.evaluation.fusion_cache.PAPER_SCALES`) or a list: the profile's scales; the
            calibration items must be cached at all of them.
        eval_scales: the held-out images' scales (default: their cached scales within
            :data:`~seunet_monai.evaluation.fusion_cache.EVAL_RANGE`).
        rules: name -> :data:`~seunet_monai.fusion.scale_rules.Rule` (default
            :data:`~seunet_monai.fusion.scale_rules.CANDIDATE_RULES`).
        loio: ``False`` calibrates on every image, the held-out one included (the in-sample figure).
        grid_steps: the estimate's interpolation points per profile interval.

    Returns:
        a JSON-ready dict: ``scales``, ``iou`` (row name -> IoU per scale: ``oracle``, ``pens``, ``mean``, heads
        ``head1..``, then the rules), ``oracle_head`` (1-based per scale), ``rules`` (per rule: ``gap`` to the oracle
        per scale, ``worst_gap``, ``mean``, ``mean_gap``, ``vs_pens`` per scale, ``under_pens`` (scales),
        ``meets_goal``: within 0.5 IoU points of the oracle everywhere and never under PEns), ``estimate`` (mean
        error in octaves, Spearman correlation with the true scale, per image and scale), ``calibration`` (source,
        images, profile scales, megapixels a full calibration predicts) and ``cache`` (its manifest's identity).

    Raises:
        DataError: an empty or incomplete cache, fewer than two whole images for LOIO, an unknown calibration.
    """
    fc = cache if isinstance(cache, FusionCache) else FusionCache.open(cache)
    if calibration not in (WHOLE, "tiles"):
        raise ConfigValueError(f"calibration must be 'whole' or 'tiles', got {calibration!r}.")
    rules = dict(CANDIDATE_RULES if rules is None else rules)
    settings = fc.manifest["settings"]
    classes, ignore = int(settings["num_classes"]), settings.get("ignore_index")
    wholes = fc.items(WHOLE)
    if loio and len(wholes) < 2:
        raise DataError(
            f"fusion cache {str(fc.root)!r}: leave-one-image-out needs at least 2 whole images, it has {len(wholes)}."
        )
    if eval_scales is None:
        common = set.intersection(*({scale_key(s) for s in it["scales"] if in_eval_range(s)} for it in wholes))
        eval_scales = sorted(float(k) for k in common)
    eval_scales = [float(s) for s in eval_scales]
    if not eval_scales:
        raise DataError(f"fusion cache {str(fc.root)!r}: no scale within {EVAL_RANGE} is cached for every whole image.")
    missing = [(it["name"], s) for it in wholes for s in eval_scales if not fc.has(WHOLE, it["name"], s)]
    if missing:
        raise DataError(
            f"fusion cache {str(fc.root)!r} is incomplete: {len(missing)} whole-image file(s) missing "
            f"(e.g. {missing[0][0]} at {missing[0][1]:.4g}); run the cache command again to finish it."
        )
    pscales = sorted(_profile_scales(profile_scales))
    kind = WHOLE if calibration == WHOLE else TILE
    stats = _calibration_stats(fc, kind, pscales)

    names = [it["name"] for it in wholes]
    rows = ["pens", "mean", *rules]
    counts = {r: {scale_key(s): torch.zeros(classes, 4, dtype=torch.float64) for s in eval_scales} for r in rows}
    omega = int(settings["num_heads"])
    head_counts = torch.zeros(len(eval_scales), omega, classes, 4, dtype=torch.float64)
    estimates: list[dict[str, Any]] = []
    folds: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for h in names:
        fold = fold_profile([st for st in stats if not loio or st.image_name != h], pscales, classes, ignore)
        folds[h] = list(fold.images)
        for j, s in enumerate(eval_scales):
            signature, confusion = fc.stats(WHOLE, h, s)
            head_counts[j] += confusion
            t_hat = float(estimate_log_scale_from_signature(signature[None], fold.profile, grid_steps)[0])
            estimates.append({"image": h, "scale": s, "estimate": math.exp(t_hat)})
            probs, label = fc.heads(h, s)
            pens = fuse_heads(probs, "pens")
            fused = {"pens": pens, "mean": fuse_heads(probs, "mean")}
            x = RuleInput(probs, pens, t_hat, fold)
            for name, rule in rules.items():
                fused[name] = rule(x)
            for name, p in fused.items():
                pred = argmax(p, 1, keepdim=True)
                counts[name][scale_key(s)] += confusion_counts(pred, label, classes, ignore).sum(0)
        logger.info(
            "fusion scoring: %s held out (%d calibration image(s)), %s elapsed",
            h,
            fold.num_images,
            _secs(time.perf_counter() - t0),
        )

    iou: dict[str, list[float]] = {}
    heads = dataset_iou(head_counts, ignore).tolist()  # (scales, Ω)
    iou["oracle"] = [max(hs) for hs in heads]
    oracle_head = [int(np.argmax(hs)) + 1 for hs in heads]
    for r in ("pens", "mean"):
        iou[r] = [float(dataset_iou(counts[r][scale_key(s)], ignore)) for s in eval_scales]
    for k in range(omega):
        iou[f"head{k + 1}"] = [hs[k] for hs in heads]
    for r in rules:
        iou[r] = [float(dataset_iou(counts[r][scale_key(s)], ignore)) for s in eval_scales]

    def mean(v: Sequence[float]) -> float:
        return float(np.mean(v))

    summary = {}
    for r in rules:
        gap = [a - b for a, b in zip(iou[r], iou["oracle"])]
        vs_pens = [a - b for a, b in zip(iou[r], iou["pens"])]
        under = [s for s, d in zip(eval_scales, vs_pens) if d < 0]
        summary[r] = {
            "gap": gap,
            "worst_gap": min(gap),
            "mean": mean(iou[r]),
            "mean_gap": mean(gap),
            "vs_pens": vs_pens,
            "min_vs_pens": min(vs_pens),
            "under_pens": under,
            "meets_goal": min(gap) >= -0.005 and not under,
        }
    true = np.array([e["scale"] for e in estimates])
    est = np.array([e["estimate"] for e in estimates])
    rho = spearmanr(true, est)[0] if len(set(true.tolist())) > 1 and len(set(est.tolist())) > 1 else float("nan")
    all_items = fc.items(kind)
    return {
        "scales": eval_scales,
        "iou": iou,
        "oracle_head": oracle_head,
        "rules": summary,
        "estimate": {
            "octave_error": float(np.mean(np.abs(np.log2(est / true)))),
            "spearman": float(rho),
            "per_scale_geomean": [float(np.exp(np.mean(np.log(est[true == s])))) for s in eval_scales],
            "items": estimates,
        },
        "calibration": {
            "source": calibration,
            "loio": loio,
            "profile_scales": pscales,
            "images": names,
            "items": len(all_items),
            "folds": folds,
            "pixels": _scale_pixels([it["shape"] for it in all_items], pscales),
        },
        "evaluation_pixels": _scale_pixels([it["shape"] for it in wholes], eval_scales),
        "cache": {
            "path": str(fc.root),
            "checkpoint": fc.manifest["checkpoint"],
            "code": fc.manifest.get("code"),
            "settings": settings,
        },
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }


def _pct(v: float) -> str:
    return "nan" if v != v else f"{100 * v:.2f}"


def _signed(v: float) -> str:
    return "nan" if v != v else f"{100 * v:+.2f}"


def write_report(result: Mapping[str, Any], out: str | Path, provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``out/cv_report.json`` (``result`` plus ``provenance``) and ``out/cv_report.md`` (the tables), atomically.

    Returns:
        the two paths.
    """
    out = Path(out)
    report = {"provenance": dict(provenance or {}), **result}
    scales = result["scales"]
    cal = result["calibration"]
    head = "| IoU % | " + " | ".join(f"{s:.2f}" for s in scales) + " | mean |"
    rule_line = "|---|" + "---|" * (len(scales) + 1)
    what = "leave-one-image-out" if cal["loio"] else "in-sample (every image calibrates)"
    lines = [
        "# Scale fusion, out of sample",
        "",
        f"- {what}, {len(cal['images'])} whole images held out in turn; calibration from the "
        f"{'whole images' if cal['source'] == WHOLE else 'tiles'} of the other images ({cal['items']} {'whole-image' if cal['source'] == WHOLE else 'tile'} "
        f"items in all), profile scales {', '.join(f'{s:.3g}' for s in cal['profile_scales'])}; a full calibration "
        f"predicts {_mpx(cal['pixels'])}, the held-out evaluation {_mpx(result['evaluation_pixels'])}.",
        f"- checkpoint {result['cache']['checkpoint']['path']} (sha256 {result['cache']['checkpoint']['sha256'][:12]}), "
        f"cache {result['cache']['path']}.",
    ]
    for key, value in (provenance or {}).items():
        lines.append(f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}")
    lines += [
        "",
        "Dataset-wide IoU (%) over the held-out images; `oracle` is the best single head at each scale "
        f"(head {', '.join(str(h) for h in result['oracle_head'])}).",
        "",
        head,
        rule_line,
    ]
    for name, values in result["iou"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(v) for v in values) + f" | {_pct(float(np.mean(values)))} |")
    lines += [
        "",
        "Gaps to the oracle (IoU points) and the goal (within 0.5 everywhere, never under PEns):",
        "",
        "| rule | " + " | ".join(f"{s:.2f}" for s in scales) + " | worst gap | mean | mean gap | min vs PEns | "
        "under PEns at | goal |",
        "|---|" + "---|" * (len(scales) + 6),
    ]
    for name, r in result["rules"].items():
        under = ", ".join(f"{s:.2f}" for s in r["under_pens"]) or "never"
        lines.append(
            f"| {name} | " + " | ".join(_signed(g) for g in r["gap"]) + f" | {_signed(r['worst_gap'])} | "
            f"{_pct(r['mean'])} | {_signed(r['mean_gap'])} | {_signed(r['min_vs_pens'])} | {under} | "
            f"{'yes' if r['meets_goal'] else 'no'} |"
        )
    est = result["estimate"]
    lines += [
        "",
        f"Scale estimate (held-out signatures against the fold's profile): mean error "
        f"{est['octave_error']:.3f} octave, Spearman correlation with the true scale {est['spearman']:.3f}; "
        "geometric mean of ŝ per true scale: "
        + ", ".join(f"{s:.2f} -> {g:.2f}" for s, g in zip(scales, est["per_scale_geomean"]))
        + ".",
        "",
    ]
    json_path = atomic_write_json(out / "cv_report.json", report)
    md_path = atomic_write_text(out / "cv_report.md", "\n".join(lines))
    return [json_path, md_path]
