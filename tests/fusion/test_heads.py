"""Specification of the head fusion (sec. 3.4, Algorithm 1)."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.fusion.heads import argmax, head_confidence, head_margins, head_votes, winning_head
from seunet_monai.fusion.strategies import fuse


def _two_heads() -> torch.Tensor:
    """(B=1, Ω=2, C=3, 1 pixel): head 1 unsure towards class 0, head 2 confident in class 2."""
    p = torch.tensor([[0.40, 0.35, 0.25], [0.10, 0.10, 0.80]])
    return p.reshape(1, 2, 3, 1)


def test_margins_from_top_two() -> None:
    m = head_margins(_two_heads())
    assert torch.allclose(m.flatten(), torch.tensor([0.05, 0.70]))


def test_margin_zero_for_tied_maxima() -> None:
    p = torch.tensor([[0.45, 0.45, 0.10]]).reshape(1, 1, 3, 1)
    assert head_margins(p).item() == pytest.approx(0.0)


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_margins_equal_the_top_two_of_topk(classes: int) -> None:
    p = torch.softmax(torch.randn(2, 4, classes, 9, 7, generator=torch.Generator().manual_seed(classes)), dim=2)
    top2 = p.topk(2, dim=2).values
    assert torch.allclose(head_margins(p), top2[:, :, 0] - top2[:, :, 1], atol=1e-7)


@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_equals_torch_argmax_on_every_axis(keepdim: bool) -> None:
    x = torch.randint(0, 3, (2, 3, 4, 5)).float()  # many ties: the first maximum wins, as in torch.argmax
    for dim in range(-x.ndim, x.ndim):
        assert torch.equal(argmax(x, dim, keepdim), torch.argmax(x, dim=dim, keepdim=keepdim))


def test_pdist_picks_confident_head() -> None:
    out = fuse(_two_heads(), "pdist")
    assert out.shape == (1, 3, 1)
    assert torch.allclose(out[0, :, 0], torch.tensor([0.10, 0.10, 0.80]))
    assert winning_head(_two_heads()).flatten().tolist() == [1]


def test_mean_and_pdist_can_disagree() -> None:
    # head 1 fairly sure of class 0 (two heads), head 3 very sure of class 1
    p = torch.tensor([[0.8, 0.2], [0.8, 0.2], [0.05, 0.95]]).reshape(1, 3, 2, 1)
    assert torch.allclose(fuse(p, "mean")[0, :, 0], torch.tensor([0.55, 0.45]))
    assert fuse(p, "mean").argmax(1).item() == 0
    assert fuse(p, "pdist").argmax(1).item() == 1


def test_pens_weights_are_softmax_of_margins() -> None:
    p = _two_heads()
    w = torch.softmax(torch.tensor([0.05, 0.70]), 0)
    expected = w[0] * p[0, 0, :, 0] + w[1] * p[0, 1, :, 0]
    out = fuse(p, "pens")
    assert torch.allclose(out[0, :, 0], expected)
    assert torch.allclose(out.sum(1), torch.ones(1, 1))


def test_pdist_tie_goes_to_lowest_head() -> None:
    p = torch.tensor([[0.8, 0.2], [0.2, 0.8]]).reshape(1, 2, 2, 1)  # equal margins 0.6
    assert winning_head(p).item() == 0
    assert fuse(p, "pdist").argmax(1).item() == 0


def test_head_votes_count_winners_and_margins() -> None:
    # 3 pixels: head 1 wins pixel 0 (margin 0.8), head 2 wins pixels 1, 2 (margins 0.6, 0.2)
    h1 = torch.tensor([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]])
    h2 = torch.tensor([[0.5, 0.8, 0.6], [0.5, 0.2, 0.4]])
    probs = torch.stack([h1, h2]).unsqueeze(0)  # (1, 2, 2, 3)
    counts, weights = head_votes(probs)
    assert counts.tolist() == [1, 2]
    assert weights.tolist() == pytest.approx([0.8, 0.8])
    counts, _ = head_votes(probs, mask=torch.tensor([[True, False, False]]))
    assert counts.tolist() == [1, 0]


def test_head_confidence_is_the_mean_margin() -> None:
    h1 = torch.tensor([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]])  # margins 0.8, 0, 0
    h2 = torch.tensor([[0.5, 0.8, 0.6], [0.5, 0.2, 0.4]])  # margins 0, 0.6, 0.2
    probs = torch.stack([h1, h2]).unsqueeze(0)
    assert head_confidence(probs).tolist() == pytest.approx([0.8 / 3, 0.8 / 3])
    assert head_confidence(probs, mask=torch.tensor([[False, True, True]])).tolist() == pytest.approx([0.0, 0.4])
