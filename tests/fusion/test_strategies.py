"""Specification of ``seunet_monai.fusion.strategies``: the strategy names, their parsing and :func:`fuse`'s
contract (probabilities over ``C``, checked shapes and head indices)."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.fusion.strategies import FUSION_STRATEGIES, all_strategies, fuse, parse_strategy


def _two_heads() -> torch.Tensor:
    """(B=1, Ω=2, C=3, 1 pixel): head 1 unsure towards class 0, head 2 confident in class 2."""
    p = torch.tensor([[0.40, 0.35, 0.25], [0.10, 0.10, 0.80]])
    return p.reshape(1, 2, 3, 1)


def test_head_k_is_one_based_and_checked() -> None:
    p = _two_heads()
    assert torch.equal(fuse(p, "head:2"), p[:, 1])
    assert torch.equal(fuse(p, "head1"), p[:, 0])
    with pytest.raises(ValueError, match="head 3"):
        fuse(p, "head:3")
    with pytest.raises(ValueError, match="1-based"):
        fuse(p, "head:0")


@pytest.mark.parametrize("bad", ["median", "", "head:x"])
def test_bad_strategy_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        parse_strategy(bad)


def test_bad_shapes_error() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        fuse(torch.rand(1, 2, 1, 4, 4), "pens")
    with pytest.raises(ValueError, match=r"\(B, Ω, C"):
        fuse(torch.rand(2, 4, 4), "pens")


def test_all_strategies_are_the_fusions_then_the_heads() -> None:
    assert all_strategies(2) == ["mean", "pdist", "pens", "scale", "head:1", "head:2"]
    assert all(parse_strategy(s) for s in all_strategies(3))


@pytest.mark.parametrize(
    "name, parsed",
    [("mean", ("mean", None)), (" PEns ", ("pens", None)), ("scale", ("scale", None)), ("head:3", ("head", 2))],
)
def test_parse_strategy_normalises_the_name_and_makes_heads_0_based(name, parsed) -> None:
    assert parse_strategy(name) == parsed


@pytest.mark.parametrize("strategy", ["mean", "pdist", "pens", "head:1", "head:2"])
def test_every_strategy_keeps_the_shape_and_sums_to_one_over_classes(strategy: str) -> None:
    probs = torch.softmax(torch.randn(2, 2, 3, 4, 5, generator=torch.Generator().manual_seed(0)), dim=2)
    out = fuse(probs, strategy)
    assert out.shape == (2, 3, 4, 5)
    assert torch.allclose(out.sum(1), torch.ones(2, 4, 5), atol=1e-5)


def test_the_named_fusions_are_the_papers_and_scale() -> None:
    assert FUSION_STRATEGIES == ("mean", "pdist", "pens", "scale")
