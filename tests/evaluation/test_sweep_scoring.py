"""Specification of :mod:`seunet_monai.evaluation.sweep_scoring`: an item's instance labels, and one image at one
scale added to a sweep's running state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seunet_monai.evaluation.instance_scoring import InstanceScoring
from seunet_monai.evaluation.sweep import ScaleSweep
from seunet_monai.evaluation.sweep_results import SweepState
from seunet_monai.evaluation.sweep_scoring import instance_labels, score_image


def _state(network: torch.nn.Module) -> SweepState:
    state = SweepState.start(network, [1.0], partner_tolerance=0.1, instance_scales=[1.0])
    state.spatial_dims = 2
    return state


def test_instance_labels_are_int64_with_a_channel_and_start_the_instance_scoring(toy_heads) -> None:
    state = _state(toy_heads)
    item = {"instance": torch.tensor([[0.0, 1.0], [2.0, 2.0]])}
    inst = instance_labels(ScaleSweep([1.0], pixel_size_um=0.25), state, item, 0, (2, 2))
    assert inst.dtype == torch.int64 and tuple(inst.shape) == (1, 2, 2)
    assert isinstance(state.instances, InstanceScoring) and state.instance_images == 1


def test_items_without_instance_labels_are_counted_as_skipped(toy_heads) -> None:
    state = _state(toy_heads)
    sweep = ScaleSweep([1.0], pixel_size_um=0.25)
    assert instance_labels(sweep, state, {}, 0, (2, 2)) is None
    assert instance_labels(sweep, state, {}, 1, (2, 2)) is None
    assert state.instance_skipped == 2 and state.instances is None


def test_instance_labels_need_the_pixel_size_and_the_item_shape(toy_heads) -> None:
    item = {"instance": torch.zeros(1, 2, 2)}
    with pytest.raises(ValueError, match="pixel_size_um"):
        instance_labels(ScaleSweep([1.0]), _state(toy_heads), item, 0, (2, 2))
    with pytest.raises(ValueError, match="must be"):
        instance_labels(ScaleSweep([1.0], pixel_size_um=0.25), _state(toy_heads), item, 0, (3, 2))


def test_score_image_adds_every_strategy_at_the_scale(toy_heads) -> None:
    state = _state(toy_heads)
    state.names.append("a")
    probs = torch.softmax(torch.randn(1, state.omega, 2, 4, 4, generator=torch.Generator().manual_seed(0)), dim=2)
    label = torch.randint(0, 2, (1, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    per_image = {"estimate": np.full(1, np.nan)}
    score_image(ScaleSweep([1.0], num_examples=0), state, 0, 0, torch.rand(3, 4, 4), label, probs, per_image)
    assert state.num_classes == 2 and set(state.scores) == {(1.0, st) for st in state.strategies}
    assert not state.examples
