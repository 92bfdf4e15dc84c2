"""Specification of ``seunet_monai.evaluation.fusion_cache_build``: the items of a split (whole images and,
optionally, tiles), a resumable cache of each item's measurement tied to one checkpoint."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from seunet_monai.errors import CheckpointError
from seunet_monai.evaluation.fusion_cache import FusionCache
from seunet_monai.evaluation.fusion_cache_build import build_cache, cache_items
from tests.fusion_cache_items import counting, save_checkpoint, tiled_split, tiny_seunet

SCALES = [0.5, 1.0, 2.0]


def test_items_are_the_whole_images_and_optionally_the_tiles_of_each() -> None:
    items = cache_items(tiled_split(), with_tiles=True)
    wholes = [(it.name, it.tiles, tuple(it.image.shape)) for it in items if it.kind == "whole"]
    assert wholes == [("a", 9, (3, 32, 32)), ("b", 4, (3, 24, 24))]
    tiles = [it for it in items if it.kind == "tile"]
    assert len(tiles) == 13 and {it.image_name for it in tiles[:9]} == {"a"} and tiles[-1].name == "b_r8_c8"
    assert items[0].record([1.0]) == {
        "name": "a",
        "kind": "whole",
        "image": "a",
        "shape": [32, 32],
        "tiles": 9,
        "scales": [1.0],
    }


def test_a_second_run_does_no_work_and_an_interrupted_cache_resumes(tmp_path, caplog) -> None:
    net = tiny_seunet()
    ckpt = save_checkpoint(tmp_path / "model.pt", net)
    out = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.fusion_cache_build"):
        first = build_cache(net, tiled_split(), out, ckpt, SCALES)
    assert first["files_written"] == 6 and first["pixels_total"] == (32**2 + 24**2) * (0.25 + 1 + 4)
    lines = [r.getMessage() for r in caplog.records]
    assert "2 whole image(s) x 3 scales" in lines[0] and "to predict in 6 file(s), 0 file(s) cached" in lines[0]
    per_item = [line for line in lines if "] whole" in line]  # one line per item, with the time left
    assert [line.split(",")[0] for line in per_item] == ["fusion cache: [1/2] whole a", "fusion cache: [2/2] whole b"]
    assert all(line.endswith(" s left") for line in per_item)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] and manifest["code"]["cache_format"] == 1
    assert [(it["name"], it["scales"]) for it in manifest["items"]] == [("a", SCALES), ("b", SCALES)]
    with FusionCache(out).path("whole", "a", 1.0).open("rb") as f:
        record = dict(np.load(f))
    assert record["probs"].dtype.name == "float16" and record["probs"].shape == (2, 1, 32, 32)
    assert record["signature"].shape == (6,) and record["confusion"].shape == (2, 2, 4)

    seen = counting(net)
    again = build_cache(net, tiled_split(), out, ckpt, SCALES)
    assert len(json.loads((out / "manifest.json").read_text())["runs"]) == 2
    assert again["files_written"] == 0 and again["pixels_todo"] == 0 and seen == []  # no network call
    FusionCache(out).path("whole", "b", 2.0).unlink()  # as if interrupted before the last file
    resumed = build_cache(net, tiled_split(), out, ckpt, SCALES)
    assert resumed["files_written"] == 1 and seen == [(48, 48)]


def test_a_cache_of_another_checkpoint_is_refused_in_one_line(tmp_path) -> None:
    out = tmp_path / "cache"
    build_cache(tiny_seunet(0), tiled_split()[:9], out, save_checkpoint(tmp_path / "a.pt", tiny_seunet(0)), [1.0])
    with pytest.raises(CheckpointError, match="holds the outputs of checkpoint") as err:
        build_cache(tiny_seunet(1), tiled_split()[:9], out, save_checkpoint(tmp_path / "b.pt", tiny_seunet(1)), [1.0])
    assert "\n" not in str(err.value) and "another --out" in str(err.value)


def test_a_dry_run_states_the_plan_and_writes_nothing(tmp_path) -> None:
    net = tiny_seunet()
    ckpt = save_checkpoint(tmp_path / "model.pt", net)
    plan = build_cache(net, tiled_split(), tmp_path / "cache", ckpt, [1.0], tile_scales=[1.0], dry_run=True)
    assert (plan["whole"], plan["tiles"], plan["pixels_todo"]) == (2, 13, 32**2 + 24**2 + 13 * 16**2)
    assert not (tmp_path / "cache").exists()
