"""Tissue detection on the thumbnail (``tissue``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np

from seunet_monai.apps.wsi import (
    detect_tissue,
    is_colourless,
)
from tests.apps.wsi.slides import (
    embed,
    make_workflow,
    png,
)


def test_grey_images_are_segmented_with_a_brightness_tissue_detector(tmp_path, tissue, caplog):
    """Item 9: a grey image had no saturation, hence "tissue 0.0%" and 0 objects without a word."""
    (tmp_path / "in").mkdir()
    grey = tissue[:200, :200].mean(axis=-1).astype(np.uint8)
    png(tmp_path / "in" / "g.png", embed(np.dstack([grey] * 3), (300, 300), (50, 50))[..., 0])
    make_workflow(tmp_path / "in", tmp_path / "out").run()
    summary = json.loads((tmp_path / "out" / "g_summary.json").read_text())
    assert 0.3 < summary["tissue"]["fraction"] < 0.7 and summary["nuclei"]["count"] > 5
    assert summary["tissue"]["detector"].startswith("otsu on brightness")
    assert "g.png: no colour" in caplog.text
    blank = np.full((64, 64, 3), 238, np.uint8)
    assert not detect_tissue(blank).any() and is_colourless(blank) and not is_colourless(tissue)
