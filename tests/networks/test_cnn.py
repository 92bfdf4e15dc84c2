"""The paper's conventional CNN: the SEUNet architecture with learned 3x3 convolutions, one group, one head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seunet_monai.networks import CNNUNet, PlainConv, SEUNet

TINY = (5, 10, 20, 40, 80)


def _layout(net: nn.Module) -> list[tuple[str, str]]:
    """Every module but the filters themselves, by name and type."""
    skip = ("GDConv", "PlainConv", "Conv2d", "ScaleParameter")
    return [
        (n, type(m).__name__)
        for n, m in net.named_modules()
        if n and type(m).__name__ not in skip and ".conv" not in n.split(".")[-1]
    ]


def test_same_architecture_as_seunet_except_the_filters():
    cnn, seunet = CNNUNet(channels=TINY), SEUNet(channels=TINY, num_scales=1)
    assert _layout(cnn) == _layout(seunet)  # blocks, batch norm, ReLU, pooling, bilinear + 1x1 up-sampling, head
    assert isinstance(cnn.enc1.norm1, nn.BatchNorm2d) and isinstance(cnn.enc1.act1, nn.ReLU)
    convs = [m for m in cnn.gd_layers().values()]
    assert len(convs) == 18 and all(isinstance(m, PlainConv) for m in convs)
    assert all(m.conv.kernel_size == (3, 3) and m.conv.bias is None for m in convs)
    assert cnn.enc1.conv1.conv.in_channels == 3 and cnn.bottleneck.conv2.conv.out_channels == 80
    assert cnn.num_scales == 1 and cnn.head.out_channels == 2


def test_paper_widths_by_default_and_one_group_only():
    net = CNNUNet()
    assert net.channels == (60, 120, 240, 480, 960)
    assert net.enc1.conv1.conv.out_channels == 60  # the whole width in one group
    with pytest.raises(ValueError, match="num_scales must be 1"):
        CNNUNet(num_scales=5, channels=TINY)


def test_modes_and_reporting():
    net = CNNUNet(channels=TINY)
    x = torch.randn(2, 3, 40, 36)
    logits = net.train()(x)
    assert logits.shape == (2, 1, 2, 40, 36)  # one head, the training path of the SEUNet
    logits.mean().backward()
    assert net.enc1.conv1.conv.weight.grad is not None
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 2, 40, 36)
        net.output_heads = True
        assert net(x).shape == (2, 1, 2, 40, 36)
        assert net.features(x).shape == (2, 1, 5, 40, 36)
    assert net.first_layer_filters().shape == (1, 5, 3, 3, 3)
    assert len(net.sigmas()) == 0 and len(net.sigma_bounds()) == 0
