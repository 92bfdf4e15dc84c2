"""The named protocols of ``seunet-experiment --preset NAME``, and the paper's numbers they are held against.

A preset fixes everything a comparison depends on: the data preparation, the models, the widths, the recipe, the
epochs, the seeds and the test scales (:class:`Preset`); :mod:`seunet_monai.experiments.reproduction` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seunet_monai.layers.rescale import default_scales

__all__ = [
    "MONUSEG_VALIDATION_IMAGES",
    "PAPER_EQUIVARIANCE",
    "PAPER_TABLE2",
    "PRESETS",
    "Job",
    "Preset",
]

#: the 5 validation images of the shipped model (5 organs, as listed by Kumar et al.)
MONUSEG_VALIDATION_IMAGES = (
    "TCGA-A7-A13F-01Z-00-DX1",
    "TCGA-21-5786-01Z-00-DX1",
    "TCGA-HE-7129-01Z-00-DX1",
    "TCGA-G9-6356-01Z-00-DX1",
    "TCGA-RD-A8N9-01A-01-TS1",
)

#: the paper's Table 2, MoNuSeg, mean IoU (%) over its 17 scales (per model; SEUNet per fusion) and Table 3 (PEns)
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "cnn": {"head1": 54.94},
    "sesn": {"pens": 57.29},
    "disco": {"pens": 59.77},
    "seunet": {"mean": 59.96, "pdist": 59.93, "pens": 59.98},
    "seunet_fixed": {"pens": 58.36},
    "seunet_free": {"pens": 57.40},
}

#: the paper's equivariance error (eq. 10) on MoNuSeg
PAPER_EQUIVARIANCE: dict[str, float] = {"cnn": 0.64, "sesn": 0.57, "disco": 0.39, "seunet": 0.26}


@dataclass(frozen=True)
class Job:
    """One training + scale sweep: ``name`` is its folder under ``out``."""

    name: str
    variant: str
    seed: int


@dataclass(frozen=True)
class Preset:
    """A fixed protocol.

    Args:
        name: the ``--preset`` value.
        description: one line.
        jobs: in run order.
        epochs: training epochs of every job.
        widths: the five level widths of every model.
        scales: the sweep's test scales.
        train_overrides: bundle overrides of every training and evaluation (the shared recipe).
        eval_overrides: bundle overrides of every evaluation (sweep settings).
        epoch_s: measured seconds per epoch per variant (for estimates before a job has run).
        sweep_s: measured seconds of one scale sweep per variant.
        prepare_s: measured seconds of the two preparations.
        report: ``"table2"`` (``reproduction.md``: IoU over the scales, the paper's Table 2) or ``"instances"``
            (``instances.md``: PQ, AJI, F1, count ratio; :mod:`seunet_monai.experiments.instance_comparison`).
    """

    name: str
    description: str
    jobs: tuple[Job, ...]
    epochs: int
    widths: tuple[int, ...]
    scales: tuple[float, ...]
    train_overrides: Mapping[str, Any]
    eval_overrides: Mapping[str, Any]
    epoch_s: Mapping[str, float] = field(default_factory=dict)
    sweep_s: Mapping[str, float] = field(default_factory=dict)
    prepare_s: float = 120.0
    report: str = "table2"


def _monuseg_cpu_jobs() -> tuple[Job, ...]:
    """The open question first (SEUNet against the CNN, with a second seed each), then the other baselines, the σ
    ablation and the third seeds: an interrupted protocol has answered the most it could."""

    def job(v: str, s: int) -> Job:
        return Job(v if s == 0 else f"{v}-seed{s}", v, s)

    order = [
        ("seunet", 0),
        ("cnn", 0),
        ("seunet", 1),
        ("cnn", 1),
        ("sesn", 0),
        ("disco", 0),
        ("unet", 0),
        ("seunet_fixed", 0),
        ("seunet_free", 0),
        ("seunet", 2),
        ("cnn", 2),
    ]
    return tuple(job(v, s) for v, s in order)


#: the recipe of the MoNuSeg presets: the paper's (Adam, lr 0.015 one-cycle, weight decay 1e-4, batch 20: the
#: bundle's defaults), flips only (no shift padding, no scale augmentation); the scale fusion is not calibrated
_MONUSEG_CPU_TRAIN = {"shift": 0, "scale_augmentation": False, "calibrate_fusion": False, "progress": False}
#: whole images up to 2048² (scales <= 2); larger ones in 1024² windows overlapping by 1/4
_MONUSEG_CPU_EVAL = {"sweep#min_window": 1024, "sweep#overlap": 0.25, "sweep#num_examples": 1, "progress": False}

PRESETS: dict[str, Preset] = {
    "monuseg-cpu": Preset(
        name="monuseg-cpu",
        description="Table 2 on real MoNuSeg sized for 2 CPU cores: 7 models at widths 20..320, 6 epochs, "
        "seeds 0 (all), 1 and 2 (seunet, cnn), 17 scales on the 5 whole validation images",
        jobs=_monuseg_cpu_jobs(),
        epochs=6,
        widths=(20, 40, 80, 160, 320),
        scales=tuple(default_scales()),
        train_overrides=dict(_MONUSEG_CPU_TRAIN),
        eval_overrides=dict(_MONUSEG_CPU_EVAL),
        # measured on the 2-core CPU (2026-12-07, load ~2 from the job alone): seunet 941 s for 6 epochs (the first 3
        # slowed by other jobs; ~75 s idle) and a 1717 s sweep; cnn 320 s and 937 s; unet ~80 s per epoch;
        # sesn, disco: not yet measured (guesses)
        epoch_s={
            "seunet": 75.0,
            "cnn": 55.0,
            "unet": 80.0,
            "sesn": 110.0,
            "disco": 110.0,
            "seunet_fixed": 75.0,
            "seunet_free": 75.0,
        },
        sweep_s={
            "seunet": 1720.0,
            "cnn": 940.0,
            "unet": 950.0,
            "sesn": 2000.0,
            "disco": 2000.0,
            "seunet_fixed": 1720.0,
            "seunet_free": 1720.0,
        },
    ),
    "instances-cpu": Preset(
        name="instances-cpu",
        description="nucleus separation at equal budget on real MoNuSeg, 2 CPU cores: the SEUNet at widths 20..320 "
        "with the monuseg-cpu recipe, 6 epochs, seed 0, without a separation output (plain: watershed of the class "
        "mask's distance), with a boundary map and with a centre map; PQ, AJI, F1 and count ratio at the 9 scales "
        "0.5..2 on the 5 whole validation images",
        jobs=(
            Job("plain", "seunet", 0),
            Job("boundary", "separation_boundary", 0),
            Job("centre", "separation_centre", 0),
        ),
        epochs=6,
        widths=(20, 40, 80, 160, 320),
        scales=tuple(s for s in default_scales() if 0.5 <= s <= 2.0),
        train_overrides=dict(_MONUSEG_CPU_TRAIN),
        eval_overrides=dict(_MONUSEG_CPU_EVAL),
        # estimates from monuseg-cpu's seunet (75 s per epoch; a 17-scale sweep of 1717 s): the 9 scales hold a
        # quarter of its pixels (~410 s), plus the instance post-processing (~1 s per megapixel and fusion: 3 fusions
        # at 9 scales, ~200 s) and the evaluator's pass at scale 1 (~80 s); not yet measured
        epoch_s={"seunet": 75.0, "separation_boundary": 75.0, "separation_centre": 75.0},
        sweep_s={"seunet": 700.0, "separation_boundary": 700.0, "separation_centre": 700.0},
        report="instances",
    ),
}
