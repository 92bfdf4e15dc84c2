"""Specification of ``seunet_monai.experiments.presets``: every preset is a consistent protocol: named by its key,
unique job folders of known variants, an estimate for each, positive ascending scales, and the shared recipe."""

from __future__ import annotations

import pytest

from seunet_monai.experiments.presets import (
    MONUSEG_VALIDATION_IMAGES,
    PAPER_EQUIVARIANCE,
    PAPER_TABLE2,
    PRESETS,
    Job,
)
from seunet_monai.experiments.variants import VARIANTS


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_every_preset_is_consistent(key):
    preset = PRESETS[key]
    assert preset.name == key and preset.description
    names = [j.name for j in preset.jobs]
    assert len(names) == len(set(names)) and all(isinstance(j, Job) for j in preset.jobs)
    for job in preset.jobs:
        assert job.variant in VARIANTS and job.seed >= 0
        assert job.variant in preset.epoch_s and job.variant in preset.sweep_s
    assert preset.epochs >= 1 and len(preset.widths) == 5 and all(w > 0 for w in preset.widths)
    assert list(preset.scales) == sorted(preset.scales) and all(s > 0 for s in preset.scales) and 1.0 in preset.scales
    assert preset.report in ("table2", "instances")


def test_table2_runs_every_paper_model_with_seed_0():
    jobs = PRESETS["monuseg-cpu"].jobs
    assert {j.variant for j in jobs if j.seed == 0} >= set(PAPER_TABLE2)
    assert jobs[0] == Job("seunet", "seunet", 0) and Job("cnn-seed1", "cnn", 1) in jobs
    assert set(PAPER_EQUIVARIANCE) <= set(PAPER_TABLE2)
    assert len(MONUSEG_VALIDATION_IMAGES) == len(set(MONUSEG_VALIDATION_IMAGES)) == 5
