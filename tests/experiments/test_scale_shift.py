"""Specification of ``seunet_monai.experiments.scale_shift``: the size of a generated test set and the refusal to
reuse a set made with other parameters (the benchmark itself runs in tests/experiments/test_runner.py, on the
runner's trained variants)."""

from __future__ import annotations

import pytest

from seunet_monai.data.synthetic.histology import make_synthetic_dataset
from seunet_monai.experiments import scale_shift


def test_generated_size_keeps_the_field_of_view_or_the_size():
    assert scale_shift.generated_size(64, 0.5) == 32 and scale_shift.generated_size(64, 2.0) == 128
    assert scale_shift.generated_size(10, 0.1) == 8  # at least 8 pixels
    assert scale_shift.generated_size(64, 2.0, "fixed") == 64


def test_generated_set_with_other_parameters_is_refused_not_reused(tmp_path):
    """A scale-K folder made with another field of view (e.g. the fixed layout of 0.3.0) is not silently reused."""
    d = tmp_path / "data" / "scale_2"
    make_synthetic_dataset(
        d,
        task="nuclei",
        n_train=0,
        n_val=0,
        n_test=1,
        size=scale_shift.generated_size(32, 2.0, "fixed"),
        scale=2.0,
        seed=0,
    )
    scale_shift.check_generated_set(d, {"size": 32, "scale": 2.0, "seed": 0, "n_test": 1})  # what made it: accepted
    with pytest.raises(ValueError, match=r"scale_2 was generated with other parameters: size 32 \(this run needs 64\)"):
        scale_shift.check_generated_set(
            d, {"size": scale_shift.generated_size(32, 2.0), "scale": 2.0, "seed": 0, "n_test": 1}
        )
    with pytest.raises(ValueError, match="field_of_view"):
        scale_shift.run_scale_shift_benchmark(tmp_path / "b", ["unet"], field_of_view="wide")
