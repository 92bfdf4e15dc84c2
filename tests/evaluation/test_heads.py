"""Per-head probabilities and features of multi-head and plain networks."""

from __future__ import annotations

import torch

from seunet_monai.evaluation.heads import network_features, num_heads, output_heads_mode
from seunet_monai.inferers import head_probabilities


def test_multihead_probabilities_in_output_heads_mode(toy_heads) -> None:
    x = torch.rand(2, 3, 8, 8)
    assert toy_heads.training and not toy_heads.output_heads
    with output_heads_mode(toy_heads):
        assert not toy_heads.training and toy_heads.output_heads
        heads = head_probabilities(toy_heads, x)
        assert torch.allclose(toy_heads(x), heads)  # the network's own eval output with output_heads
    assert heads.shape == (2, 2, 2, 8, 8)  # (B, Ω, C, H, W)
    assert torch.allclose(heads, torch.softmax(toy_heads.forward_heads(x), 2))
    assert toy_heads.training and not toy_heads.output_heads  # restored


def test_plain_network_is_one_head(plain_pointwise) -> None:
    x = torch.rand(1, 3, 8, 8)
    assert num_heads(plain_pointwise) == 1
    with output_heads_mode(plain_pointwise):
        heads = head_probabilities(plain_pointwise, x)
    assert heads.shape == (1, 1, 2, 8, 8)
    assert torch.allclose(heads[:, 0], torch.softmax(plain_pointwise(x), 1))


def test_features_of_plain_network_are_the_last_conv_input(plain_pointwise) -> None:
    x = torch.rand(1, 3, 8, 8)
    f = network_features(plain_pointwise, x)
    assert f.shape == (1, 1, 3, 8, 8)
    assert torch.allclose(f[:, 0], plain_pointwise.a(x))


def test_a_multihead_network_gives_its_heads_whatever_its_output_heads(toy_heads) -> None:
    toy_heads.eval()
    toy_heads.output_heads = False
    assert head_probabilities(toy_heads, torch.rand(1, 3, 4, 4)).shape == (1, 2, 2, 4, 4)  # not the fused (1, 2, ...)
    assert toy_heads.output_heads is False


def test_monai_basicunet_features_come_from_its_final_conv_input() -> None:
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=2, features=(4, 4, 4, 4, 4, 6)).eval()
    x = torch.rand(1, 3, 32, 32)
    captured = {}
    h = net.final_conv.register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0]))
    f = network_features(net, x)
    h.remove()
    assert f.shape == (1, 1, 6, 32, 32)
    assert torch.allclose(f[:, 0], captured["x"])
