"""Specification of the multi-head contract (``seunet_monai.networks.base``): what every network reports about
its scales, with the base class's defaults and SEUNet's values."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from seunet_monai.networks import CNNUNet, SEUNet
from seunet_monai.networks.base import MultiHeadNetwork, last_layer_log_sigmas


class _Heads(MultiHeadNetwork):
    """Ω pointwise heads; σ per layer given at construction."""

    def __init__(self, sigmas: dict[str, list[float]], num_scales: int = 2) -> None:
        super().__init__()
        self.num_scales, self.out_channels = num_scales, 2
        self.table = OrderedDict((k, torch.tensor(v)) for k, v in sigmas.items())
        self.conv = nn.Conv2d(3, 2 * num_scales, 1)

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).unflatten(1, (self.num_scales, 2))

    def sigmas(self) -> OrderedDict[str, torch.Tensor]:
        return self.table


def test_the_base_class_reports_no_scales() -> None:
    net = _Heads({})
    assert net.sigmas() == {} and net.sigma_bounds() == {}
    assert net.head_sigmas() is None and net.first_layer_filters() is None
    log_sigmas, source = last_layer_log_sigmas(net, 2)
    assert source == "head index" and log_sigmas.tolist() == [0.0, 1.0]


def test_head_sigmas_are_the_last_layers() -> None:
    net = _Heads({"layer1": [0.9, 1.8], "layer2": [1.0, 2.0]})
    name, sigma = net.head_sigmas()
    assert name == "layer2" and sigma.dtype == torch.float64 and sigma.tolist() == [1.0, 2.0]
    log_sigmas, source = last_layer_log_sigmas(net, 2)
    assert source == "layer2" and torch.allclose(log_sigmas.exp(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert _Heads({"layer1": [1.0, 2.0, 4.0]}).head_sigmas() is None  # not one σ per head
    assert _Heads({"layer1": [0.0, 2.0]}).head_sigmas() is None  # not positive


def test_a_plain_network_counts_as_one_head_without_sigma() -> None:
    log_sigmas, source = last_layer_log_sigmas(nn.Conv2d(3, 2, 1), 1)
    assert source == "head index" and log_sigmas.tolist() == [0.0]


def test_seunet_implements_the_contract() -> None:
    net = SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32))
    sigmas, bounds = net.sigmas(), net.sigma_bounds()
    assert list(sigmas)[0] == "enc1.conv1" and set(bounds) == set(sigmas)
    assert net.head_sigmas()[0] == list(sigmas)[-1]
    filters = net.first_layer_filters()
    assert filters.shape[0] == 2 and filters.shape[2] == 3 and filters.ndim == 5  # (Ω, C_out, C_in, K, K)
    cnn = CNNUNet(2, 3, 2, channels=(2, 4, 8, 16, 32))
    assert cnn.sigmas() == {} and cnn.head_sigmas() is None and cnn.first_layer_filters().shape[0] == 1
