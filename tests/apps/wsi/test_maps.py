"""Maps over the tissue: per-window values spread over the thumbnail (``maps``)."""

from __future__ import annotations

import numpy as np

from seunet_monai.apps.wsi.maps import window_map


def test_window_map_averages_the_windows_covering_each_cell():
    m = window_map([(0, 0), (0, 4)], [1.0, 2.0], (4, 8), 2, (3, 6))
    assert m[0].tolist() == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0] and np.isnan(m[2]).all()
