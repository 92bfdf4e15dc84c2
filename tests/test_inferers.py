"""Specification of ``seunet_monai.inferers``: the one path to per-head probabilities, whole image or windows."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer

from seunet_monai.errors import DataError
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import HeadsInferer, fit_window, head_probabilities, infer_heads
from seunet_monai.networks.base import MultiHeadNetwork


class _Heads(MultiHeadNetwork):
    """Pointwise 2-head network: ``forward_heads`` gives (B, 2, 2, H, W) logits."""

    num_scales, out_channels = 2, 2

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward_heads(self, x):
        return self.conv(x).reshape(x.shape[0], 2, 2, *x.shape[2:])


class _Heads3d(MultiHeadNetwork):
    """2-head network on volumes with a 3x3x3 receptive field (windows change its output near their borders)."""

    num_scales, out_channels = 2, 2

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)

    def forward_heads(self, x):
        return self.conv(x).reshape(x.shape[0], 2, 2, *x.shape[2:])


def test_head_probabilities_for_multi_head_and_plain_networks():
    x = torch.rand(2, 3, 8, 8)
    net = _Heads()
    p = head_probabilities(net, x)
    assert p.shape == (2, 2, 2, 8, 8)
    torch.testing.assert_close(p.sum(2), torch.ones(2, 2, 8, 8))
    plain = torch.nn.Conv2d(3, 3, 1)
    q = head_probabilities(plain, x)
    assert q.shape == (2, 1, 3, 8, 8)


def test_heads_inferer_with_sliding_window_matches_whole_image():
    torch.manual_seed(0)
    net = _Heads().eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        whole = HeadsInferer()(x, net)
        windows = HeadsInferer(inferer=SlidingWindowInferer(roi_size=(8, 8), overlap=0.25))(x, net)
    assert windows.shape == whole.shape == (1, 2, 2, 20, 28)
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)  # pointwise net: windows change nothing
    # an image smaller than the window is not padded up to it: the network sees it whole
    seen = []
    net.conv.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    with torch.no_grad():
        HeadsInferer(2, SlidingWindowInferer(roi_size=(32, 32)))(x, net)
    assert seen == [(1, 3, 20, 28)]


def test_a_window_larger_than_the_image_along_one_axis_is_cut_to_it_there():
    torch.manual_seed(0)
    net = _Heads().eval()
    x = torch.rand(1, 3, 20, 28)
    inferer = SlidingWindowInferer(roi_size=(8, 32), overlap=0.25, mode="gaussian")
    assert fit_window(inferer, (20, 28)).roi_size == (8, 28) and inferer.roi_size == (8, 32)
    assert fit_window(inferer, (40, 40)) is inferer
    seen = []
    net.conv.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[2:])))
    with torch.no_grad():
        cut = infer_heads(net, x, inferer)
        explicit = infer_heads(net, x, SlidingWindowInferer(roi_size=(8, 28), overlap=0.25, mode="gaussian"))
    assert set(seen) == {(8, 28)}  # no zero padding up to 32 columns
    assert torch.equal(cut, explicit)
    torch.testing.assert_close(cut, infer_heads(net, x), atol=1e-5, rtol=1e-5)


def test_volumes_go_through_the_same_per_head_path_with_3d_windows():
    torch.manual_seed(0)
    net = _Heads3d().eval()
    affine = torch.diag(torch.tensor([0.5, 0.75, 2.0, 1.0], dtype=torch.float64))
    x = MetaTensor(torch.rand(1, 1, 12, 10, 9), affine=affine, meta={"filename_or_obj": "v.nii.gz"})
    windows = SlidingWindowInferer(roi_size=(8, 8, 16), overlap=0.5, mode="gaussian")
    inferer = HeadsInferer(3, windows)
    with torch.no_grad():
        probs = inferer(x, net)
        reference = infer_heads(net, x.as_tensor(), windows)
    assert probs.shape == (1, 2, 2, 12, 10, 9)
    torch.testing.assert_close(probs.as_tensor(), reference)  # per-head probabilities blended across windows
    torch.testing.assert_close(probs.sum(2).as_tensor(), torch.ones(1, 2, 12, 10, 9))
    assert isinstance(probs, MetaTensor) and probs.meta["filename_or_obj"] == "v.nii.gz"  # for SaveImaged
    torch.testing.assert_close(probs.affine, affine)
    fused = net.fuse_heads(probs.as_tensor())  # the prediction: the heads fused after blending
    assert fused.shape == (1, 2, 12, 10, 9)
    torch.testing.assert_close(fused, fuse(reference, net.fusion))
    with pytest.raises(DataError, match=r"^img.png has 2 spatial dimensions .* expects 3\.$"):
        inferer(MetaTensor(torch.rand(1, 1, 8, 8), meta={"filename_or_obj": "img.png"}), net)
    with pytest.raises(ValueError, match="spatial_dims"):
        HeadsInferer(0)


class _HeadsWithMap(_Heads):
    """:class:`_Heads` plus one extra map per head: logits (B, 2, 2 + 1, H, W)."""

    aux_channels = 1

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 1)

    def forward_heads(self, x):
        return self.conv(x).reshape(x.shape[0], 2, 3, *x.shape[2:])


def test_the_extra_maps_come_only_when_asked_and_are_stitched_like_the_classes():
    torch.manual_seed(0)
    net = _HeadsWithMap().eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        logits = net.forward_heads(x)
        classes = head_probabilities(net, x)
        both = head_probabilities(net, x, aux=True)
        torch.testing.assert_close(classes, torch.softmax(logits[:, :, :2], 2))
        torch.testing.assert_close(both, torch.cat([classes, torch.sigmoid(logits[:, :, 2:])], 2))
        windows = SlidingWindowInferer(roi_size=(8, 8), sw_batch_size=3, overlap=0.5)
        torch.testing.assert_close(HeadsInferer(2, windows, aux=True)(x, net), both)
        torch.testing.assert_close(infer_heads(net, x, windows), classes)
