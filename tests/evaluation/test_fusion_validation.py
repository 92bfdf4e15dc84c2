"""Specification of ``seunet_monai.evaluation.fusion_validation``: leave-one-image-out scores from a fusion cache
that never calibrate on the held-out image, with the calibration's own aggregation, and their report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seunet_monai.errors import DataError
from seunet_monai.evaluation.fusion_cache_build import build_cache
from seunet_monai.evaluation.fusion_validation import ItemStats, fold_profile, score_cache, write_report
from seunet_monai.fusion.scale_rules import CANDIDATE_RULES
from tests.fusion_cache_items import ChannelHeads, opposed_item, save_checkpoint, tiled_split, tiny_seunet

SCALES = [0.5, 1.0, 2.0]


def test_an_empty_cache_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="is empty"):
        score_cache(tmp_path)


def test_the_held_out_image_never_calibrates_its_own_fusion(tmp_path) -> None:
    # on the large image "a" head 1 is right, on the small "b" head 2: pooled, head 1 looks best everywhere
    data = [opposed_item("a", 64, 3, head=0), opposed_item("b", 16, 4, head=1)]
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    build_cache(ChannelHeads(), data, tmp_path / "cache", ckpt, [1.0, 2.0])
    rules = {"scale": CANDIDATE_RULES["scale"]}
    loio = score_cache(tmp_path / "cache", rules=rules, profile_scales=[1.0, 2.0])
    inside = score_cache(tmp_path / "cache", rules=rules, profile_scales=[1.0, 2.0], loio=False)
    assert loio["calibration"]["folds"] == {"a": ["b"], "b": ["a"]}
    assert inside["calibration"]["folds"] == {"a": ["a", "b"], "b": ["a", "b"]}
    # each held-out image is fused with the head the other image favours: the wrong one
    assert max(loio["iou"]["scale"]) < 0.1
    assert min(inside["iou"]["scale"]) > 0.8
    assert inside["iou"]["scale"] == pytest.approx(inside["iou"]["head1"], abs=1e-9)


def test_scores_report_every_row_and_the_oracle_is_the_best_head(tmp_path) -> None:
    net = tiny_seunet()
    out = tmp_path / "cache"
    build_cache(net, tiled_split(), out, save_checkpoint(tmp_path / "model.pt", net), SCALES, tile_scales=SCALES)
    result = score_cache(out, profile_scales=SCALES)
    assert result["scales"] == SCALES
    assert list(result["iou"])[:5] == ["oracle", "pens", "mean", "head1", "head2"]
    assert set(CANDIDATE_RULES) <= set(result["iou"])
    for j in range(len(SCALES)):
        assert result["iou"]["oracle"][j] >= max(result["iou"]["head1"][j], result["iou"]["head2"][j])
        assert result["iou"]["oracle"][j] == result["iou"][f"head{result['oracle_head'][j]}"][j]
    scale = result["rules"]["scale"]
    assert scale["worst_gap"] == min(scale["gap"]) and len(scale["gap"]) == 3
    assert scale["under_pens"] == [s for s, d in zip(SCALES, scale["vs_pens"]) if d < 0]
    assert len(result["estimate"]["items"]) == 6 and result["estimate"]["octave_error"] >= 0
    assert result["calibration"]["pixels"] == (32**2 + 24**2) * 5.25

    tiles = score_cache(out, calibration="tiles", profile_scales=SCALES, rules={"scale": CANDIDATE_RULES["scale"]})
    assert tiles["calibration"]["items"] == 13 and tiles["calibration"]["folds"] == {"a": ["b"], "b": ["a"]}
    assert tiles["calibration"]["pixels"] == (9 + 4) * 16**2 * 5.25
    with pytest.raises(DataError, match="lacks .* at the profile scales"):
        score_cache(out, profile_scales="17")

    paths = write_report(result, tmp_path / "report", {"command": "scale_fusion_cv score ...", "code": {"git": 1}})
    assert [p.name for p in paths] == ["cv_report.json", "cv_report.md"]
    report = json.loads(paths[0].read_text())
    assert report["provenance"]["command"] == "scale_fusion_cv score ..." and report["iou"] == result["iou"]
    text = paths[1].read_text()
    assert "| oracle |" in text and "| scale |" in text and "under PEns at" in text and "Spearman" in text


def _stats(image: str, tp: float, fn: float) -> ItemStats:
    """One item at two scales, two heads: head 1 finds ``tp`` of ``tp + fn`` nucleus pixels, head 2 all of them."""
    confusion = torch.tensor([[[0.0, 0, 0, 0], [tp, 0, 0, fn]], [[0.0, 0, 0, 0], [tp + fn, 0, 0, 0]]])  # (Ω, C, 4)
    signature = torch.tensor([0.5, 0.6, float("nan"), 1.0, 0.9, 0.8], dtype=torch.float64)
    return ItemStats(image, image, torch.stack([signature, 2 * signature]), torch.stack([confusion, confusion]))


def test_a_fold_is_the_calibration_of_its_images_with_the_spread_of_their_head_iou() -> None:
    fold = fold_profile([_stats("a", 3, 1), _stats("b", 1, 3)], [1.0, 2.0], num_classes=2)
    assert fold.images == ("a", "b") and fold.num_images == 2
    assert fold.profile.iou[:, 0].tolist() == [0.5, 0.5] and fold.profile.iou[:, 1].tolist() == [1.0, 1.0]  # 4 / 8
    assert math.isnan(fold.profile.signature[0, 2]) and fold.profile.signature[1, 0] == 1.0
    assert fold.iou_se[:, 0].tolist() == pytest.approx([0.25, 0.25]) and fold.iou_se[:, 1].tolist() == [0.0, 0.0]
    with pytest.raises(DataError, match="no calibration item"):
        fold_profile([], [1.0, 2.0], 2)
