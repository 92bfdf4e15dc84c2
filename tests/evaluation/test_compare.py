"""Specification of ``seunet_monai.evaluation.compare``: several evaluations merged, a model name given twice
told apart, existing outputs kept."""

from __future__ import annotations

import pytest

from seunet_monai.evaluation.compare import compare_evaluations
from tests.sweep_outputs import fake_eval


def test_same_model_name_twice_is_disambiguated(tmp_path) -> None:
    a = fake_eval(tmp_path / "run1", "seunet", {"pens": [0.6, 0.7, 0.5]})
    b = fake_eval(tmp_path / "run2", "seunet", {"pens": [0.5, 0.6, 0.4]})
    res = compare_evaluations([a, b], tmp_path / "out")
    assert {s["model"] for s in res["summary"]} == {"seunet", "seunet (run2)"}
    with pytest.raises(FileExistsError):
        compare_evaluations([a], tmp_path / "out")
