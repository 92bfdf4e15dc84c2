"""Specification of ``seunet_monai.evaluation.report``: the sweep tables round-trip through CSV, are summarised as
means over scales, and are rendered as Markdown (best value per column in bold)."""

from __future__ import annotations

import math

import pytest

from seunet_monai.evaluation.report import (
    SWEEP_COLUMNS,
    comparison_markdown,
    read_csv_rows,
    strategy_names,
    strategy_sort_key,
    summarise,
    sweep_markdown,
    write_csv_rows,
)


def _rows() -> list[dict]:
    return [
        {"model": "m", "strategy": "pens", "scale": 0.5, "iou": 0.6, "dice": 0.7, "num_images": 2},
        {"model": "m", "strategy": "pens", "scale": 1.0, "iou": 0.8, "dice": float("nan"), "num_images": 2},
        {"model": "m", "strategy": "head1", "scale": 1.0, "iou": 0.4, "dice": 0.5, "num_images": 2},
    ]


def test_csv_round_trip_keeps_numbers_nan_and_missing(tmp_path):
    path = write_csv_rows(tmp_path / "t.csv", _rows(), SWEEP_COLUMNS)
    back = read_csv_rows(path)
    assert path.read_text().splitlines()[0] == ",".join(SWEEP_COLUMNS)
    assert [r["strategy"] for r in back] == ["pens", "pens", "head1"]
    assert back[0]["scale"] == 0.5 and back[0]["iou"] == 0.6 and back[0]["pq"] is None
    assert math.isnan(back[1]["dice"])


def test_columns_default_to_the_keys_of_the_rows(tmp_path):
    path = write_csv_rows(tmp_path / "t.csv", [{"a": 1}, {"b": "x"}])
    assert path.read_text() == "a,b\n1,\n,x\n"


def test_reading_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_csv_rows(tmp_path / "missing.csv")


def test_strategies_sort_heads_first_then_the_fusions():
    names = ["scale", "pens", "other", "head2", "mean", "head10", "pdist", "head1"]
    assert sorted(names, key=strategy_sort_key) == [
        "head1",
        "head2",
        "head10",
        "mean",
        "pdist",
        "pens",
        "scale",
        "other",
    ]
    assert strategy_names(2) == ["head1", "head2", "mean", "pdist", "pens"]


def test_summarise_is_the_mean_over_measured_scales():
    summary = summarise(_rows())
    assert [(r["model"], r["strategy"]) for r in summary] == [("m", "head1"), ("m", "pens")]
    pens = summary[1]
    assert pens["iou_mean"] == pytest.approx(0.7) and pens["dice_mean"] == pytest.approx(0.7)
    assert pens["num_scales"] == 2 and math.isnan(pens["pq_mean"])


def test_markdown_reports_name_the_model_and_bold_the_best():
    text = sweep_markdown(_rows(), {"model": "m"})
    assert "m" in text and "pens" in text and "head1" in text
    table = comparison_markdown(summarise(_rows()), {"m": {"equivariance_error": 0.1, "parameters": 1234}})
    lines = table.splitlines()
    assert lines[0].startswith("| model | strategy | IoU (%)") and lines[0].endswith("| parameters |")
    pens = next(line for line in lines if "| pens |" in line)
    assert "**70.00**" in pens and pens.endswith("| 1234 |")
    assert "**" not in next(line for line in lines if "| head1 |" in line).split("|")[3]
