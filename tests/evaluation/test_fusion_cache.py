"""Specification of ``seunet_monai.evaluation.fusion_cache``: one file per (item, scale) read back as written, a
manifest that grows with each run and refuses another checkpoint, other settings or another format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seunet_monai.errors import CheckpointError, ConfigValueError, DataError
from seunet_monai.evaluation.fusion_cache import (
    CACHE_FORMAT,
    FusionCache,
    cache_code_version,
    in_eval_range,
    scale_key,
)

IDENTITY = {"checkpoint": {"path": "/m/model.pt", "sha256": "ab" * 32}, "settings": {"num_classes": 3, "overlap": 0.25}}


def test_a_record_reads_back_its_statistics_and_the_heads_with_their_background(tmp_path) -> None:
    cache = FusionCache(tmp_path)
    probs = torch.softmax(torch.randn(2, 3, 4, 4), dim=1)  # (Ω, C, H, W)
    label = torch.randint(0, 3, (4, 4))
    arrays = {
        "signature": np.arange(6.0),
        "confusion": np.ones((2, 3, 4)),
        "probs": probs[:, 1:].numpy().astype(np.float16),
        "label": label.numpy().astype(np.uint8),
    }
    path = cache.write("whole", "img a/1", 2 ** (1 / 4), arrays)
    assert path == tmp_path / "whole" / "img_a_1" / "s1.189207.npz" and cache.has("whole", "img a/1", 2 ** (1 / 4))
    signature, confusion = cache.stats("whole", "img a/1", 2 ** (1 / 4))
    assert signature.dtype == torch.float64 and signature.tolist() == list(range(6)) and confusion.shape == (2, 3, 4)
    heads, lab = cache.heads("img a/1", 2 ** (1 / 4))
    assert heads.shape == (1, 2, 3, 4, 4) and torch.allclose(heads[0], probs, atol=2e-3)
    assert torch.equal(lab, label[None, None])
    cache.write("whole", "b", 4.0, {"signature": np.zeros(6), "confusion": np.zeros((2, 3, 4))})
    with pytest.raises(DataError, match="holds no probabilities"):
        cache.heads("b", 4.0)


def test_scales_computed_either_way_share_a_file_and_the_evaluation_range_is_inclusive() -> None:
    assert scale_key(2 ** (-1 / 4)) == scale_key(0.5 * 2 ** (3 / 4))
    assert in_eval_range(0.5) and in_eval_range(2.0) and not in_eval_range(2 ** (5 / 4))
    assert cache_code_version()["cache_format"] == CACHE_FORMAT and "git_rev" in cache_code_version()


def test_a_run_adds_its_items_and_scales_to_the_manifest(tmp_path) -> None:
    cache = FusionCache(tmp_path)
    cache.write_manifest(
        {"format": CACHE_FORMAT, **IDENTITY, "items": [{"kind": "whole", "name": "a", "scales": [1.0]}]}
    )
    again = FusionCache(tmp_path)
    merged = again.merged_items(
        [
            {"kind": "whole", "name": "a", "scales": [0.5, 1.0 + 1e-9]},
            {"kind": "tile", "name": "a_r0_c0", "scales": [1.0]},
        ]
    )
    assert [(it["kind"], it["name"], it["scales"]) for it in merged] == [
        ("whole", "a", [0.5, 1.0 + 1e-9]),
        ("tile", "a_r0_c0", [1.0]),
    ]
    assert [it["name"] for it in again.items("tile")] == [] and len(again.items()) == 1


def test_another_checkpoint_other_settings_or_another_format_are_refused_in_one_line(tmp_path) -> None:
    cache = FusionCache(tmp_path)
    cache.check_identity(IDENTITY)  # an empty folder takes any
    cache.write_manifest({"format": CACHE_FORMAT, **IDENTITY, "items": []})
    cache.check_identity(IDENTITY)
    other = {"checkpoint": {"path": "/m/other.pt", "sha256": "cd" * 32}, "settings": IDENTITY["settings"]}
    with pytest.raises(CheckpointError, match="holds the outputs of checkpoint '/m/model.pt'"):
        cache.check_identity(other)
    with pytest.raises(ConfigValueError, match="was made with overlap = 0.25, not 0.5") as err:
        cache.check_identity({**IDENTITY, "settings": {"num_classes": 3, "overlap": 0.5}})
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="is empty"):
        FusionCache.open(tmp_path)  # a manifest but no cached whole image
    cache.write("whole", "a", 1.0, {"signature": np.zeros(6), "confusion": np.zeros((2, 3, 4))})
    cache.write_manifest({"format": 0, **IDENTITY, "items": [{"kind": "whole", "name": "a", "scales": [1.0]}]})
    with pytest.raises(DataError, match="has format 0"):
        FusionCache.open(tmp_path)
    with pytest.raises(DataError, match="has format 0"):
        cache.check_identity(IDENTITY)
