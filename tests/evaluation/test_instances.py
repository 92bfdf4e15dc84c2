"""Specification of ``seunet_monai.evaluation.instances``: PQ (SQ, RQ), AJI, detection F1, object Dice and the
count ratio of instance label maps, per image and over a set of images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_panoptic_quality
from scipy import ndimage as ndi
from skimage.draw import disk

from seunet_monai.evaluation.instances import (
    INSTANCE_METRIC_KEYS,
    InstanceCounts,
    InstanceMetrics,
    instance_counts,
    instance_metrics,
)
from seunet_monai.transforms.instances import NucleusInstances


def merged_pair() -> tuple[np.ndarray, np.ndarray]:
    """Annotation: A (10 x 12 = 120 px) and B (10 x 6 = 60 px) side by side; prediction: one object A ∪ B."""
    true = np.zeros((32, 32), np.int64)
    true[5:15, 5:17] = 1
    true[5:15, 17:23] = 2
    pred = np.zeros((32, 32), np.int64)
    pred[5:15, 5:23] = 7
    return pred, true


def one_match_one_false_positive() -> tuple[np.ndarray, np.ndarray]:
    """Annotation: one 5 x 10 object; prediction: the same object and a 4 x 5 object elsewhere."""
    true = np.zeros((24, 24), np.int64)
    true[2:7, 2:12] = 3
    pred = np.zeros((24, 24), np.int64)
    pred[2:7, 2:12] = 1
    pred[15:19, 15:20] = 2
    return pred, true


def random_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping discs drawn over each other, the prediction shifted and resized, one id in two parts."""
    rng = np.random.default_rng(seed)
    true = np.zeros((96, 96), np.int64)
    pred = np.zeros((96, 96), np.int64)
    for k in range(1, 16):
        c = rng.integers(5, 90, 2)
        r = int(rng.integers(3, 9))
        true[disk(tuple(c), r, shape=true.shape)] = k
        shifted = c + rng.integers(-3, 4, 2)
        pred[disk(tuple(shifted), r + int(rng.integers(-2, 3)), shape=pred.shape)] = 3 * k
    pred[pred == 9] = 0
    pred[80:84, 0:4] = 9
    pred[0:3, 60:63] = 9
    return pred, true


def aji_by_the_definition(pred: np.ndarray, true: np.ndarray) -> float:
    """Kumar et al. 2017, written as its loop over annotated objects (reference for the vectorised version)."""
    c = u = 0
    used: set[int] = set()
    pred_ids = [j for j in np.unique(pred) if j]
    for i in [i for i in np.unique(true) if i]:
        g = true == i
        best, best_iou = None, 0.0
        for j in pred_ids:  # ascending ids: ties go to the lowest
            s = pred == j
            iou = (g & s).sum() / (g | s).sum()
            if iou > best_iou:
                best, best_iou = j, iou
        if best is None:
            u += g.sum()
        else:
            s = pred == best
            c += (g & s).sum()
            u += (g | s).sum()
            used.add(best)
    u += sum((pred == j).sum() for j in pred_ids if j not in used)
    return c / u


def test_a_perfect_prediction_scores_one_whatever_its_ids():
    _, true = random_scene(0)
    perm = np.random.default_rng(1).permutation(true.max() + 1)[:] + 100
    perm[0] = 0
    pred = perm[true]  # same objects, other (non-contiguous) ids
    m = instance_metrics(pred, true)
    for key in INSTANCE_METRIC_KEYS:
        assert m[key] == pytest.approx(1.0), key
    assert m["n_pred"] == m["n_true"] == len(np.unique(true)) - 1


def test_a_merged_pair_drops_by_the_hand_computed_amounts():
    pred, true = merged_pair()
    m = instance_metrics(pred, true)
    # IoU(A, A∪B) = 120/180 = 2/3 > 0.5: one match; B is missed: TP 1, FP 0, FN 1
    assert m["sq"] == pytest.approx(2 / 3, rel=1e-6)
    assert m["rq"] == pytest.approx(1 / 1.5)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["pq"] == pytest.approx((2 / 3) / 1.5, rel=1e-6)
    # AJI: A and B both take A∪B: C = 120 + 60, U = 180 + 180
    assert m["aji"] == pytest.approx(0.5)
    # object Dice: annotated side (120 * 0.8 + 60 * 0.5) / 180 = 0.7; predicted side 0.8 (partner A)
    assert m["dice"] == pytest.approx(0.5 * (0.7 + 0.8))
    assert m["count_ratio"] == pytest.approx(0.5)


def test_aji_takes_the_prediction_of_highest_iou_not_of_largest_overlap():
    true = np.zeros((20, 40), np.int64)
    true[0:10, 0:10] = 1  # G: 100 px
    pred = np.zeros((20, 40), np.int64)
    pred[0:10, 4:10] = 1  # S1: 60 px inside G, 200 px outside: IoU 60 / 300 = 0.2
    pred[0:10, 10:30] = 1
    pred[0:10, 0:4] = 2  # S2: 40 px inside G: IoU 0.4
    # G takes S2: C = 40, U = 100; S1 is taken by nobody: U += 260
    assert instance_metrics(pred, true)["aji"] == pytest.approx(40 / 360)


def test_an_equal_merged_pair_has_no_match_at_iou_one_half():
    true = np.zeros((16, 16), np.int64)
    true[2:6, 2:6], true[2:6, 6:10] = 1, 2
    pred = (true > 0).astype(np.int64)  # IoU 0.5 with each: not above 0.5
    m = instance_metrics(pred, true)
    assert (m["pq"], m["sq"], m["rq"], m["f1"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["aji"] == pytest.approx(32 / 64)


def nested_clusters() -> tuple[np.ndarray, np.ndarray]:
    """An L-shaped pair of objects whose bounding box holds another, separate pair."""
    true = np.zeros((40, 40), np.int64)
    true[2:38, 2:8] = 1
    true[32:38, 2:38] = 1
    true[10:16, 20:26] = 2
    pred = np.zeros((40, 40), np.int64)
    pred[3:38, 2:8] = 5
    pred[32:38, 2:37] = 5
    pred[10:16, 21:26] = 6
    return pred, true


def test_panoptic_counts_are_monais_on_the_whole_image():
    for pred, true in [random_scene(seed) for seed in range(4)] + [nested_clusters()]:
        ref = compute_panoptic_quality(torch.from_numpy(pred), torch.from_numpy(true), output_confusion_matrix=True)
        c = instance_counts(pred, true)
        assert (c.tp, c.fp, c.fn) == tuple(int(v) for v in ref[:3])
        assert c.iou_sum == pytest.approx(float(ref[3]), rel=1e-6)
        assert instance_metrics(pred, true)["pq"] == pytest.approx(
            float(compute_panoptic_quality(torch.from_numpy(pred), torch.from_numpy(true))), abs=1e-5
        )


def test_aji_is_kumars_definition():
    for seed in range(4):
        pred, true = random_scene(seed)
        assert instance_metrics(pred, true)["aji"] == pytest.approx(aji_by_the_definition(pred, true))


def test_empty_images_do_not_crash_and_give_values_where_defined():
    empty = np.zeros((8, 8), np.int64)
    one = empty.copy()
    one[2:5, 2:5] = 1
    both = instance_metrics(empty, empty)
    assert all(math.isnan(both[k]) for k in INSTANCE_METRIC_KEYS)  # 0/0 everywhere
    assert both["n_pred"] == both["n_true"] == 0
    missed = instance_metrics(empty, one)
    assert {k: missed[k] for k in INSTANCE_METRIC_KEYS} == {
        "pq": 0.0,
        "sq": 0.0,
        "rq": 0.0,
        "f1": 0.0,
        "aji": 0.0,
        "dice": 0.0,
        "count_ratio": 0.0,
    }
    spurious = instance_metrics(one, empty)
    assert {k: spurious[k] for k in INSTANCE_METRIC_KEYS if k != "count_ratio"} == {
        "pq": 0.0,
        "sq": 0.0,
        "rq": 0.0,
        "f1": 0.0,
        "aji": 0.0,
        "dice": 0.0,
    }
    assert math.isnan(spurious["count_ratio"])  # no annotated object: no ratio


def test_the_accumulator_equals_a_hand_computation_on_two_images():
    acc = InstanceMetrics()
    first = acc.update(*merged_pair())
    second = acc.update(*one_match_one_false_positive())
    assert first["aji"] == pytest.approx(0.5) and second["aji"] == pytest.approx(50 / 70)
    m = acc.aggregate()
    # summed: TP 2, FP 1, FN 1, IoU sum 2/3 + 1
    assert m["pq"] == pytest.approx((5 / 3) / 3, rel=1e-6)
    assert m["sq"] == pytest.approx((5 / 3) / 2, rel=1e-6)
    assert m["rq"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # AJI from summed C and U (not the mean of 0.5 and 0.714)
    assert m["aji"] == pytest.approx((180 + 50) / (360 + 70))
    assert m["aji"] != pytest.approx((first["aji"] + second["aji"]) / 2)
    # object Dice over all objects of the set
    assert m["dice"] == pytest.approx(0.5 * ((96 + 30 + 50) / 230 + (180 * 0.8 + 50 + 0) / 250))
    assert m["count_ratio"] == pytest.approx(3 / 3)
    assert (m["n_pred"], m["n_true"], m["images"]) == (3, 3, 2)
    assert acc.counts == instance_counts(*merged_pair()) + instance_counts(*one_match_one_false_positive())
    assert acc.state()["aji_union"] == 430


def test_empty_images_add_nothing_to_the_accumulator_and_reset_forgets():
    acc = InstanceMetrics()
    empty = np.zeros((8, 8), np.int64)
    acc.update(empty, empty)
    assert math.isnan(acc.aggregate()["pq"])
    pred, true = one_match_one_false_positive()
    acc.update(true, true)
    assert acc.aggregate()["pq"] == pytest.approx(1.0) and acc.aggregate()["images"] == 2
    acc.reset()
    assert acc.counts == InstanceCounts() and acc.per_image == [] and math.isnan(acc.aggregate()["aji"])


def test_labels_may_come_as_channel_first_tensors_or_integral_floats():
    pred, true = merged_pair()
    expected = instance_metrics(pred, true)
    as_tensor = torch.from_numpy(pred.astype(np.uint32))[None]  # (1, H, W) uint32, as NucleusInstances gives
    assert instance_metrics(as_tensor, true[None].astype(np.float32)) == expected


def test_bad_arguments_are_one_line_errors_naming_them():
    pred, true = merged_pair()
    cases = [
        (lambda: instance_metrics(pred[:16], true), "pred_instances and true_instances"),
        (lambda: instance_metrics(-pred, true), "pred_instances"),
        (lambda: instance_metrics(pred, true + 0.5), "true_instances"),
        (lambda: instance_metrics(pred, np.zeros((0,))), "true_instances"),
        (lambda: instance_metrics(pred, true, match_iou=0.3), "match_iou"),
        (lambda: InstanceMetrics(match_iou=1.0), "match_iou"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name) as e:
            call()
        assert "\n" not in str(e.value)


def test_separated_instances_score_where_connected_components_fail():
    """Two touching nuclei annotated apart: the class mask's connected component merges them (at most one match,
    with IoU about 1/2: PQ <= 0.5 / 1.5), the watershed instances of the same mask recover both."""
    yy, xx = np.mgrid[:64, :96]
    in_left = (yy - 32) ** 2 + (xx - 30) ** 2 < 12**2
    in_right = (yy - 32) ** 2 + (xx - 50) ** 2 < 12**2
    true = np.where(in_left & (xx < 40), 1, 0) + np.where(in_right & (xx >= 40), 2, 0)
    mask = true > 0
    p1 = np.where(mask, 0.9, 0.1).astype(np.float32)
    instances = NucleusInstances(pixel_size_um=0.5)(np.stack([1 - p1, p1]))
    components = ndi.label(mask)[0]
    merged = instance_metrics(components, true)
    assert merged["pq"] < 0.35 and merged["count_ratio"] == 0.5
    separated = instance_metrics(instances, true)
    assert separated["pq"] > 0.9 and separated["aji"] > 0.9 and separated["count_ratio"] == 1.0
