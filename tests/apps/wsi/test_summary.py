"""The summary of an input (``summary``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

from tests.apps.wsi.slides import (
    CalibratedDarkBlobs,
    embed,
    make_workflow,
    write_pyramid,
)


def test_summary_reports_the_estimated_scale_per_region_when_calibrated(tmp_path, tissue):
    """Issue 15: the slide summary gives the calibrated scale estimate of every window run (a region)."""
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", embed(tissue, (1200, 1300)), mpp=0.5, levels=1)
    make_workflow(tmp_path / "in", tmp_path / "out", network=CalibratedDarkBlobs(), target_mpp=0.5).run()
    summary = json.loads((tmp_path / "out" / "slide_summary.json").read_text())
    regions = summary["scale"]["per_region"]
    assert regions["windows"] == summary["patches"]["run"] > 0
    assert sum(regions["histogram"].values()) == regions["windows"]
    p = regions["percentiles"]
    assert 0.5 <= p["p10"] <= p["median"] <= p["p90"] <= 2.0  # within the calibrated range
    assert summary["scale"]["estimated_scale_relative_to_training"] == p["median"]
    assert "estimated_log_sigma" not in summary["scale"] and "head_confidence" not in summary["scale"]
    make_workflow(tmp_path / "in", tmp_path / "out2", target_mpp=0.5).run()  # uncalibrated: no estimate, a note
    scale = json.loads((tmp_path / "out2" / "slide_summary.json").read_text())["scale"]
    assert "per_region" not in scale and scale["estimated_scale_relative_to_training"] is None
    assert "run calibrating" in scale["note"]
