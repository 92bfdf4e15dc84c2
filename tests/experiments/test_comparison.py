"""Specification of ``seunet_monai.experiments.comparison``: an experiment folder's finished variants are compared
(Table 2 form, parameters and times, the σ ablation when two of its models finished); none finished is an error."""

from __future__ import annotations

import pytest

from seunet_monai.experiments.comparison import write_comparison
from tests.sweep_outputs import fake_eval


def test_finished_variants_are_compared_with_times_and_the_ablation(tmp_path):
    fake_eval(tmp_path / "seunet", "seunet", {"pens": [0.6, 0.7, 0.5]})
    fake_eval(tmp_path / "seunet_free", "seunet_free", {"pens": [0.5, 0.6, 0.4]})
    states = {
        "seunet": {"parameters": 10, "max_epochs": 2, "training_time_s": 12.34},
        "seunet_free": {"parameters": 11, "max_epochs": 2},
        "cnn": {"parameters": 9},  # not finished: no eval/scale_sweep.csv
    }
    files = write_comparison(tmp_path, states)
    assert {f.split("/")[-1] for f in files} >= {"comparison.csv", "comparison.md", "iou_vs_scale.png"}
    md = (tmp_path / "comparison.md").read_text()
    assert "| seunet | 10 | 2 | 12.3 | – |" in md and "| seunet_free | 11 | 2 | – | – |" in md
    assert "Table 3 form" in md and "| cnn |" not in md


def test_no_finished_variant_is_an_error_naming_the_folder(tmp_path):
    with pytest.raises(ValueError, match="no finished variant evaluation"):
        write_comparison(tmp_path, {"seunet": {}})
