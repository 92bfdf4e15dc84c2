"""Where the finished rows of a slide go (``accumulator``): raw row-major stores on disk and the running counts.

Inputs are small synthetic arrays; every test runs in well under a second on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from seunet_monai.apps.wsi import RawMask, SlideAccumulator


def test_raw_mask_reads_rows_and_blocks_zero_beyond_its_edges(tmp_path):
    values = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    raw = RawMask(tmp_path / "p.raw", values.shape, np.float32)
    raw.write_rows(5, values[5:12])
    assert not raw.read_rows(0, 5).any() and np.array_equal(raw.read_rows(5, 12), values[5:12])  # sparse
    block = raw.read_block(3, 25, 6, 10)
    expected = np.zeros((6, 10), np.float32)
    expected[2:6, :5] = values[5:9, 25:30]
    assert block.dtype == np.float32 and np.array_equal(block, expected)
    assert not raw.read_block(-10, -10, 5, 5).any() and raw.read_block(40, 0, 3, 3).shape == (3, 3)


def test_the_separation_map_follows_the_classes_and_precedes_the_margins(tmp_path):
    c, a, omega, n, w = 2, 1, 3, 4, 6
    rows = np.random.default_rng(0).random((c + a + omega, n, w)).astype(np.float32)
    valid = np.ones((n, w), bool)
    valid[0, 0] = False
    mask = RawMask(tmp_path / "m.raw", (10, w))
    probability = RawMask(tmp_path / "p.raw", (10, w), np.float32)
    separation = RawMask(tmp_path / "s.raw", (10, w), np.float32)
    acc = SlideAccumulator(mask, c, 2, probability, aux_channels=a, separation=separation)
    acc(3, rows, valid)
    assert np.array_equal(mask.read_rows(3, 7), np.where(valid, rows[:c].argmax(0), 0))
    assert np.array_equal(probability.read_rows(3, 7), np.where(valid, rows[1], 0))
    assert np.array_equal(separation.read_rows(3, 7), np.where(valid, rows[c], 0))
    assert acc.num_heads == omega
    assert acc.winner_pixels.tolist() == np.bincount(rows[c + a :, valid].argmax(0), minlength=omega).tolist()
    with pytest.raises(ValueError, match="aux_channels"):
        SlideAccumulator(mask, c, 2, separation=separation)
