"""Specification of the multi-head contract (``seunet_monai.networks.base``): what every network reports about
its scales, with the base class's defaults and SEUNet's values; and the extra maps (``aux_channels``): every model
family predicts them per head after its classes, in the same group structure, fused with the class fusion's head
weights; without them nothing changes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import head_probabilities
from seunet_monai.networks import CNNUNet, DISCOUNet, SESNUNet, SEUNet
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


FAMILIES = [
    (SEUNet, {"num_scales": 2, "channels": (4, 8, 8, 8, 8)}),
    (SEUNet, {"num_scales": 2, "channels": (4, 8, 8, 8, 8), "share_heads": False}),
    (CNNUNet, {"channels": (4, 8, 8, 8, 8)}),
    (SESNUNet, {"num_scales": 2, "channels": (4, 8, 8, 8, 8)}),
    (DISCOUNet, {"num_scales": 2, "channels": (4, 8, 8, 8, 8)}),
]


@pytest.mark.parametrize("cls, kwargs", FAMILIES)
def test_every_family_predicts_the_extra_maps_per_head(cls, kwargs):
    torch.manual_seed(0)
    net = cls(aux_channels=1, **kwargs)
    omega = net.num_scales
    x = torch.rand(2, 3, 20, 24)
    logits = net.train()(x)
    assert logits.shape == (2, omega, 3, 20, 24)  # (B, Ω, C + A, H, W)
    net.eval()
    with torch.no_grad():
        heads = head_probabilities(net, x, aux=True)
        assert heads.shape == (2, omega, 3, 20, 24)
        assert torch.allclose(heads[:, :, :2].sum(2), torch.ones(2, omega, 20, 24))  # softmax over the classes
        assert torch.equal(heads[:, :, 2:], torch.sigmoid(net.forward_heads(x)[:, :, 2:]))
        assert torch.equal(head_probabilities(net, x), heads[:, :, :2])  # the class path alone by default
        fused = net(x)
        assert fused.shape == (2, 3, 20, 24)
        assert torch.allclose(fused[:, :2], fuse(heads[:, :, :2], net.fusion))
        assert torch.allclose(fused[:, 2:], fuse_auxiliary(heads[:, :, :2], heads[:, :, 2:], net.fusion))
        assert torch.equal(net.fuse_heads(heads[:, :, :2]), fused[:, :2])  # class probabilities alone: classes out
        with pytest.raises(ValueError, match="extra maps"):
            net.fuse_heads(heads[:, :, :1])
        net.output_heads = True
        assert torch.equal(net(x), heads)
    assert "aux_channels=1" in repr(net)


def test_without_extra_maps_the_network_and_its_outputs_are_unchanged():
    torch.manual_seed(0)
    plain = SEUNet(num_scales=2, channels=(4, 8, 8, 8, 8))
    torch.manual_seed(0)
    with_aux = SEUNet(num_scales=2, channels=(4, 8, 8, 8, 8), aux_channels=1)
    assert plain.aux_head is None and "aux_head" not in "".join(plain.state_dict())
    extra = {k for k in with_aux.state_dict() if k not in plain.state_dict()}
    assert extra == {"aux_head.weight", "aux_head.bias"}  # the class head and the body are the same modules
    for k, v in plain.state_dict().items():
        assert torch.allclose(v, with_aux.state_dict()[k], rtol=0, atol=0, equal_nan=True), k  # the same weights
    x = torch.rand(1, 3, 16, 16)
    plain.eval(), with_aux.eval()
    with torch.no_grad():
        assert torch.equal(with_aux(x)[:, :2], plain(x))  # the class prediction does not see the extra head


def test_the_extra_maps_follow_the_scale_groups():
    """A shared extra head applied to each group's features: group k's map is head(features_k)."""
    torch.manual_seed(0)
    net = SEUNet(num_scales=2, channels=(4, 8, 8, 8, 8), aux_channels=1).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        feats = net.features(x)  # (B, Ω, F, H, W)
        maps = net.forward_heads(x)[:, :, 2:]
        for k in range(2):
            assert torch.allclose(maps[:, k], net.aux_head(feats[:, k]), atol=1e-5)


def test_bad_aux_channels_are_refused():
    with pytest.raises(ValueError, match="aux_channels"):
        SEUNet(num_scales=2, channels=(4, 8, 8, 8, 8), aux_channels=-1)
