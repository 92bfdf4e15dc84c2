"""Equivariance of the whole SEUNet (eq. 12 between groups), not only of single layers.

A smooth continuous image is sampled exactly at scale 1 (pixel pitch 1) and at scale 2 (pitch 0.5), so no
interpolation enters the comparison: pixel ``2i`` of the enlarged image is pixel ``i`` of the original. The
network (float64, batch norm with running statistics calibrated on a few such images, eval mode) should see
the enlarged image with group ``k'`` as it saw the original with group ``k`` when ``σ_k' = 2 σ_k`` in every
layer. With the default (centred) σ layout, group 2 (σ = 1 in the first layer) and group 4 (σ = 2) are such
a pair in all 18 layers; the test compares their error with that of group 2 at both scales. The pair of
groups 1 and 2 (first-layer σ = 0.5 and 1) is not used: σ = 0.5 is below the sampling limit of the pixel grid,
and max pooling (per pixel, not per σ) adds errors of its own, so that pair is noisy across random weights.

The errors come from :meth:`~seunet_monai.networks.base.MultiHeadNetwork.check_equivariance`, the network's own
check (the scale sweep's measurement): the original's features are resampled to the size of the enlarged image's
(bilinear), whole images. Measured with this file's settings (weights seed 0, images seeds 0 and 7 averaged,
widths 20..320): matched 0.052, same head 0.494 (ratio 9.6); with the deep-layer σ ratios broken
(1 : 1.1 : ... : 1.4 after the first layer): 0.410 against 0.704 (ratio 1.7). (Comparing the enlarged image's
features subsampled at every second pixel instead, in the interior: 0.044 against 0.472, ratio 10.8, and 0.334
against 0.569.)
"""

from __future__ import annotations

import torch

from seunet_monai.layers.scales import default_sigma_ranges
from seunet_monai.networks import SEUNet
from seunet_monai.networks.equivariance import matched_groups

WIDTHS = (20, 40, 80, 160, 320)  # 4 channels per group in the first level
N = 64


def _blobs(n: int, pitch: float, seed: int) -> torch.Tensor:
    """Gaussian blobs (σ 4-8 px at scale 1) of a continuous image inside [16, 48]², sampled at ``i · pitch``."""
    c = torch.arange(n, dtype=torch.float64) * pitch
    y, x = torch.meshgrid(c, c, indexing="ij")
    g = torch.Generator().manual_seed(seed)
    f = torch.zeros(3, n, n, dtype=torch.float64)
    for ch in range(3):
        for _ in range(8):
            cx, cy = 16 + torch.rand(2, generator=g, dtype=torch.float64) * (N - 32)
            s = 4 + 4 * torch.rand(1, generator=g, dtype=torch.float64)
            a = 2 * torch.rand(1, generator=g, dtype=torch.float64) - 1
            f[ch] += a * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s**2))
    return f.unsqueeze(0)


def _calibrated(sigma_ranges) -> SEUNet:
    torch.manual_seed(0)
    net = SEUNet(channels=WIDTHS, sigma_ranges=sigma_ranges, sigma_mode="fixed").double()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: running statistics of exactly the calibration inputs
    net.train()
    with torch.no_grad():
        for seed in (100, 101, 102):
            net(_blobs(N, 1.0, seed))
            net(_blobs(2 * N, 0.5, seed))
    return net.eval()


def _pair_errors(net: SEUNet, k: int, k_matched: int) -> tuple[float, float]:
    """Relative errors (eq. 12) of group ``k`` on the original against groups ``k_matched`` and ``k`` on the
    image enlarged 2x, sampled exactly (:meth:`check_equivariance`, averaged over two images)."""
    x = torch.cat([_blobs(N, 1.0, seed) for seed in (0, 7)])
    x_scaled = torch.cat([_blobs(2 * N, 0.5, seed) for seed in (0, 7)])
    errors = net.check_equivariance(2.0, x, x_scaled).mean(0)  # (Ω, Ω)
    return float(errors[k, k_matched]), float(errors[k, k])


def _broken_deep_ratios() -> list:
    """The default ranges with every layer after the first rebuilt at σ ratios 1 : 1.1 : 1.2 : 1.3 : 1.4."""
    ranges = default_sigma_ranges(5)
    out = [ranges[0]]
    for layer in ranges[1:]:
        mid = sum(layer[0]) / 2
        out.append([(mid * (1 + 0.1 * k) * 0.98, mid * (1 + 0.1 * k) * 1.02) for k in range(5)])
    return out


def test_whole_seunet_matched_groups_are_equivariant_at_scale_2():
    net = _calibrated(None)
    first, last = net.sigmas()["enc1.conv1"], net.sigmas()["dec1.conv2"]
    assert float(first[3] / first[1]) == float(last[3] / last[1]) == 2.0
    assert int(matched_groups(last, 2.0)[1]) == 3
    matched, same_head = _pair_errors(net, 1, 3)
    assert matched * 5 <= same_head, (matched, same_head)


def test_broken_deep_layer_sigma_ratios_fail_the_same_check():
    net = _calibrated(_broken_deep_ratios())
    assert float(net.sigmas()["dec1.conv2"][3] / net.sigmas()["dec1.conv2"][1]) < 1.2
    matched, same_head = _pair_errors(net, 1, 3)
    assert matched * 5 > same_head, (matched, same_head)
