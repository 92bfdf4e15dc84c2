"""Specification of ``seunet_monai.experiments.state``: the experiment's JSON state files and its time format."""

from __future__ import annotations

import pytest

from seunet_monai.experiments.state import STATE_FILE, SWEEP_STATUS, TRAINING_STATUS, fmt_time, read_json, write_json


def test_json_round_trip_is_sorted_and_ends_with_a_newline(tmp_path):
    path = tmp_path / STATE_FILE
    write_json(path, {"b": 1, "a": [1.5, None]})
    assert read_json(path) == {"a": [1.5, None], "b": 1}
    text = path.read_text()
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')


def test_an_unreadable_file_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(tmp_path / "bad.json")


def test_fmt_time_is_hours_minutes_seconds():
    assert fmt_time(0) == "0:00:00" and fmt_time(59.6) == "0:01:00" and fmt_time(3 * 3600 + 62) == "3:01:02"


def test_status_files_are_relative_names():
    assert TRAINING_STATUS == "training_status.json" and SWEEP_STATUS == "eval/sweep_status.json"
