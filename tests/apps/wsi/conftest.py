"""Fixtures of the slide-inference tests."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tests.apps.wsi.slides import MONUSEG


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    """A 700 x 900 crop of a genuine MoNuSeg H&E image (skips when ../shared is absent)."""
    files = sorted(MONUSEG.glob("*.tif"))
    if not files:
        pytest.skip(f"MoNuSeg images not found under {MONUSEG}")
    return tifffile.imread(files[0])[:700, :900].copy()
