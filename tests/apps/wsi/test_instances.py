"""Objects of a class mask read band by band, whole and with their holes (``instances``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from tests.apps.wsi.slides import tall_objects


@pytest.mark.parametrize("band,margin", [(32, 8), (50, 0), (1024, 128)])
def test_instances_are_whole_across_bands_and_keep_their_holes(band, margin):
    from skimage.measure import regionprops

    from seunet_monai.apps.wsi import iter_instances

    mask = tall_objects()
    ref = sorted((r.area, r.bbox, round(1 - r.euler_number)) for r in regionprops(label(mask == 1, connectivity=1)))
    insts = list(iter_instances(mask, 2, band=band, margin=margin))
    assert len(insts) == len(ref) == 6
    got = []
    for inst in insts:
        xy = inst.polygon
        assert (xy[0] == xy[-1]).all() and all((h[0] == h[-1]).all() for h in inst.holes)
        bbox = (round(xy[:, 1].min()), round(xy[:, 0].min()), round(xy[:, 1].max()), round(xy[:, 0].max()))
        got.append((inst.area, bbox, len(inst.holes)))
    assert sorted(got) == ref  # same pixels, extents and number of holes as the components of the whole mask
    bar = max(insts, key=lambda i: i.area)
    assert len(bar.holes) == 2 and bar.area == 225 * 10 - 2 * 40

    def signed(ring):
        return 0.5 * float(np.dot(ring[:-1, 0], ring[1:, 1]) - np.dot(ring[1:, 0], ring[:-1, 1]))

    assert signed(bar.polygon) > 0 and all(signed(h) < 0 for h in bar.holes)  # exterior CCW, holes CW
    hole_area = sum(-signed(h) for h in bar.holes)
    assert signed(bar.polygon) - hole_area == pytest.approx(bar.area, rel=0.02)
