"""Specification of ``seunet_monai.transforms.separation``: separation targets from instance labels, appended to
the class label for training, and split from the per-head outputs for evaluation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage.draw import disk

from seunet_monai.errors import ConfigValueError, DataError
from seunet_monai.transforms.separation import SeparationTarget, SeparationTargetd, SplitSeparationd


def two_touching_squares() -> np.ndarray:
    """Two 4x4 nuclei side by side (columns 1-4 and 5-8) in a 6x10 tile, background around."""
    labels = np.zeros((6, 10), dtype=np.int64)
    labels[1:5, 1:5] = 1
    labels[1:5, 5:9] = 2
    return labels


def random_instances(seed: int = 0, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """Overlapping discs drawn in turn (later ones on top), some cut by the tile edge."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(size, dtype=np.int64)
    for i in range(1, 9):
        rr, cc = disk((rng.integers(0, size[0]), rng.integers(0, size[1])), rng.uniform(2, 6), shape=size)
        labels[rr, cc] = i
    return labels


def test_boundary_marks_the_rim_of_each_nucleus_against_the_other_and_the_background():
    target = SeparationTarget("boundary", width=1)(two_touching_squares()[None])
    assert target.shape == (1, 6, 10) and target.dtype == np.float32
    expected = np.zeros((6, 10), dtype=np.float32)
    for c0, c1 in ((1, 5), (5, 9)):  # every pixel of a 4x4 square has a 4-neighbour outside it except its 2x2 core
        expected[1:5, c0:c1] = 1
        expected[2:4, c0 + 1 : c1 - 1] = 0
    np.testing.assert_array_equal(target[0], expected)
    wide = SeparationTarget("boundary", width=2)(two_touching_squares())[0]
    assert wide.sum() == 32 and wide.max() == 1  # a 2-px rim covers the whole of a 4x4 square


def test_centre_is_the_distance_to_the_border_over_its_maximum_per_nucleus():
    labels = np.zeros((21, 40), dtype=np.int64)
    labels[disk((10, 10), 8)] = 1
    labels[disk((10, 28), 4)] = 2  # a small nucleus peaks at 1 as well
    target = SeparationTarget("centre")(labels)[0]
    assert target[labels == 0].max() == 0
    for index, centre in ((1, (10, 10)), (2, (10, 28))):
        values = target[labels == index]
        assert values.max() == pytest.approx(1.0) and target[centre] == pytest.approx(1.0)
        assert values.min() > 0
    assert target[10, 3] < 0.2 and target[10, 6] < target[10, 8] < target[10, 10]  # rises towards the centre


def test_touching_nuclei_dip_where_they_meet():
    target = SeparationTarget("centre")(two_touching_squares())[0]
    assert target[2, 4] == target[2, 5] < target[2, 3]  # the contact columns are on both borders
    assert target[2, 2] == target[2, 3] == 1.0


def test_a_nucleus_cut_by_the_tile_edge_continues_beyond_it():
    labels = np.zeros((8, 8), dtype=np.int64)
    labels[:4, 2:6] = 1  # touches the top edge
    boundary = SeparationTarget("boundary", width=1)(labels)[0]
    assert boundary[0, 3] == 0 and boundary[3, 3] == 1  # no rim along the edge, a rim against the background
    centre = SeparationTarget("centre")(labels)[0]
    assert centre[0, 3] == 1.0 and centre[3, 3] < centre[0, 3]  # the distance grows towards the edge


@pytest.mark.parametrize("mode", ["boundary", "centre"])
@pytest.mark.parametrize("flip", [lambda a: a[:, ::-1], lambda a: a[:, :, ::-1], lambda a: a.transpose(0, 2, 1)])
def test_targets_commute_with_flips_and_are_deterministic(mode, flip):
    labels = random_instances()[None]
    t = SeparationTarget(mode)
    np.testing.assert_array_equal(t(np.ascontiguousarray(flip(labels))), flip(t(labels)))
    np.testing.assert_array_equal(t(labels), t(labels.copy()))
    assert 0 <= t(labels).min() and t(labels).max() <= 1


def test_tensors_and_metatensors_keep_their_type_and_metadata():
    labels = MetaTensor(
        torch.from_numpy(random_instances()[None]).float(), affine=torch.diag(torch.tensor([0.5, 0.5, 1, 1.0]))
    )
    out = SeparationTarget("centre")(labels)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and torch.equal(out.affine, labels.affine)
    np.testing.assert_array_equal(out.numpy(), SeparationTarget("centre")(random_instances()[None]))


def test_dictionary_form_appends_the_target_to_the_label_and_drops_the_instances():
    labels = two_touching_squares()
    item = {
        "image": torch.zeros(3, 6, 10),
        "label": torch.from_numpy(labels[None] > 0).float(),
        "instance": torch.from_numpy(labels[None]).float(),
    }
    out = SeparationTargetd(mode="boundary", width=1)(item)
    assert "instance" not in out and out["label"].shape == (2, 6, 10)
    np.testing.assert_array_equal(out["label"][0].numpy(), labels > 0)
    np.testing.assert_array_equal(out["label"][1].numpy(), SeparationTarget("boundary", width=1)(labels)[0])
    kept = SeparationTargetd(mode="centre", keep_instances=True)(item)
    assert "instance" in kept and kept["label"].dtype == torch.float32


def test_items_without_instances_fall_back_to_components_only_when_asked(caplog):
    labels = two_touching_squares()
    item = {"label": torch.from_numpy(labels[None] > 0).to(torch.uint8)}
    with pytest.raises(DataError, match="'instance'"):
        SeparationTargetd(mode="boundary")(item)
    t = SeparationTargetd(mode="boundary", width=1, fallback_to_components=True)
    with caplog.at_level(logging.WARNING, logger="seunet_monai.transforms.separation"):
        out, _ = t(item), t(item)
    assert sum("connected components" in r.getMessage() for r in caplog.records) == 1  # said once
    one_object = (labels > 0).astype(np.int64)  # the two squares touch: one component
    np.testing.assert_array_equal(out["label"][1].numpy(), SeparationTarget("boundary", width=1)(one_object)[0])
    assert out["label"].dtype == torch.float32


def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(ConfigValueError, match="separation must be one of"):
        SeparationTarget("contour")
    with pytest.raises(ConfigValueError, match="width"):
        SeparationTarget("boundary", width=0)
    with pytest.raises(ValueError, match="instance labels"):
        SeparationTarget("centre")(np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="differ in size"):
        SeparationTargetd(mode="centre")({"label": torch.zeros(1, 4, 4), "instance": torch.zeros(1, 4, 5)})


def test_split_moves_the_extra_channels_of_per_head_outputs():
    pred = torch.rand(3, 2 + 1, 5, 6)  # (Ω, C + A, H, W)
    out = SplitSeparationd(keys="pred", num_classes=2)({"pred": pred})
    assert torch.equal(out["pred"], pred[:, :2]) and torch.equal(out["separation"], pred[:, 2:])
    plain = torch.rand(3, 2, 5, 6)
    out = SplitSeparationd(keys="pred", num_classes=2)({"pred": plain})
    assert out["pred"] is plain and "separation" not in out
