"""Specification of ``seunet_monai.transforms.post``: the heads' fusion as MONAI transforms."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from seunet_monai.fusion.strategies import FUSION_STRATEGIES, fuse
from seunet_monai.transforms.post import Fuse, Fused


@pytest.mark.parametrize("strategy", [*FUSION_STRATEGIES, "head:2"])
def test_transform_item_and_batched_agree(strategy: str) -> None:
    probs = torch.softmax(torch.randn(2, 3, 4, 5, 6), dim=2)  # (B, Ω, C, H, W)
    batched = Fuse(strategy, batched=True)(probs)
    assert batched.shape == (2, 4, 5, 6)
    item = Fuse(strategy)(probs[1])  # decollated item (Ω, C, H, W)
    assert item.shape == (4, 5, 6)
    assert torch.allclose(item, batched[1])
    assert torch.allclose(item, fuse(probs, strategy)[1])


def test_transform_3d_item_is_not_mistaken_for_a_batch() -> None:
    probs = torch.softmax(torch.randn(3, 2, 4, 5, 6), dim=1)  # 3D item (Ω, C, D, H, W)
    out = Fuse("mean")(probs)
    assert out.shape == (2, 4, 5, 6)


def test_transform_softmax_and_meta() -> None:
    logits = MetaTensor(torch.randn(3, 2, 4, 4), meta={"filename_or_obj": "x.png"})
    out = Fuse("pens", softmax=True)(logits)
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "x.png"
    expected = fuse(torch.softmax(logits.as_tensor(), 1).unsqueeze(0), "pens")[0]
    assert torch.allclose(out.as_tensor(), expected)


def test_dict_transform() -> None:
    probs = torch.softmax(torch.randn(2, 2, 4, 4), dim=1)
    d = Fused(keys="pred", strategy="pdist")({"pred": probs, "label": torch.zeros(1, 4, 4)})
    assert d["pred"].shape == (2, 4, 4)
    assert torch.allclose(d["pred"], fuse(probs.unsqueeze(0), "pdist")[0])
    with pytest.raises(ValueError, match="Fuse: expected"):
        Fused(keys="pred")({"pred": torch.rand(2, 4)})


@pytest.mark.parametrize("bad", ["median", "", "head:x"])
def test_transform_refuses_a_bad_strategy(bad: str) -> None:
    with pytest.raises(ValueError):
        Fuse(bad)
