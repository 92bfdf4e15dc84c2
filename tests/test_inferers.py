"""Specification of ``seunet_monai.inferers``: the one path to per-head probabilities, whole image or windows."""

from __future__ import annotations

import torch
from monai.inferers import SlidingWindowInferer

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
        windows = HeadsInferer(SlidingWindowInferer(roi_size=(8, 8), overlap=0.25))(x, net)
    assert windows.shape == whole.shape == (1, 2, 2, 20, 28)
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)  # pointwise net: windows change nothing
    # an image smaller than the window is not padded up to it: the network sees it whole
    seen = []
    net.conv.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    with torch.no_grad():
        HeadsInferer(SlidingWindowInferer(roi_size=(32, 32)))(x, net)
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
        torch.testing.assert_close(HeadsInferer(windows, aux=True)(x, net), both)
        torch.testing.assert_close(infer_heads(net, x, windows), classes)
