"""Specification of image / label rescaling for the scale sweep."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.layers.rescale import default_scales, rescale_image, rescale_label, resize_features, scaled_size


def test_default_scales_are_the_papers() -> None:
    s = default_scales()
    assert len(s) == 17
    assert s[0] == pytest.approx(0.25) and s[8] == pytest.approx(1.0) and s[16] == pytest.approx(4.0)
    assert [round(v, 2) for v in s[:5]] == [0.25, 0.30, 0.35, 0.42, 0.5]


@pytest.mark.parametrize("scale,expected", [(0.25, (8, 5)), (1.0, (32, 20)), (1.19, (38, 24)), (4.0, (128, 80))])
def test_shapes(scale: float, expected: tuple[int, int]) -> None:
    img = torch.rand(3, 32, 20)
    lab = torch.randint(0, 3, (1, 32, 20))
    assert scaled_size((32, 20), scale) == expected
    assert rescale_image(img, scale).shape == (3, *expected)
    assert rescale_label(lab, scale).shape == (1, *expected)


def test_bad_scale_errors() -> None:
    with pytest.raises(ValueError, match="positive finite"):
        rescale_image(torch.rand(1, 4, 4), 0.0)


def test_label_values_preserved_and_aligned() -> None:
    lab = torch.zeros(1, 16, 16, dtype=torch.int64)
    lab[0, 4:12, 4:12] = 2
    lab[0, 0:2, 0:2] = 7
    for s in (0.5, 2.0, 1.41):
        out = rescale_label(lab, s)
        assert out.dtype == torch.int64
        assert set(out.unique().tolist()) <= {0, 2, 7}
    up = rescale_label(lab, 2.0)
    assert torch.equal(up[0, 8:24, 8:24], torch.full((16, 16), 2))  # block moves to 2x its place, not shifted
    assert torch.equal(rescale_label(up, 0.5), lab)


def test_antialiasing_when_shrinking() -> None:
    # a 1-pixel checkerboard shrunk by 4: anti-aliased -> flat grey; plain bilinear sampling would alias
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((yy + xx) % 2).float().view(1, 64, 64)
    small = rescale_image(board, 0.25)
    assert small.shape == (1, 16, 16)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.02)
    naive = torch.nn.functional.interpolate(board[None], size=(16, 16), mode="nearest")[0]
    assert (naive - 0.5).abs().max() > 0.4  # the check above would catch aliasing


def test_enlarging_is_bilinear_and_preserves_constants() -> None:
    img = torch.full((2, 5, 7), 0.3)
    assert torch.allclose(rescale_image(img, 3.0), torch.full((2, 15, 21), 0.3))
    ramp = torch.arange(8.0).view(1, 1, 8).expand(1, 8, 8)
    up = rescale_image(ramp, 2.0)
    assert up.min() >= 0 and up.max() <= 7  # interpolation, no overshoot


def test_3d_and_uint8() -> None:
    vol = torch.rand(1, 8, 8, 8)
    assert rescale_image(vol, 0.5).shape == (1, 4, 4, 4)
    assert rescale_label(torch.ones(1, 8, 8, 8, dtype=torch.uint8), 2.0).shape == (1, 16, 16, 16)
    assert rescale_image(torch.zeros(3, 4, 4, dtype=torch.uint8), 2.0).dtype == torch.float32


def test_resize_features() -> None:
    f = torch.rand(2, 3, 4, 10, 12)
    assert resize_features(f, (5, 6)).shape == (2, 3, 4, 5, 6)
    assert torch.equal(resize_features(f, (10, 12)), f)


def test_axial_only_rescaling_changes_only_the_chosen_axis() -> None:
    """``axes=(2,)``: the axial axis Z of a volume (X, Y, Z) only, as anisotropic sampling changes it."""
    assert scaled_size((32, 24, 16), 0.5, axes=(2,)) == (32, 24, 8)
    assert scaled_size((32, 24, 16), 0.5, axes=(-1,)) == (32, 24, 8)
    assert scaled_size((32, 24, 16), 0.5) == (16, 12, 8)
    with pytest.raises(ValueError, match="axes"):
        scaled_size((32, 24), 2.0, axes=(2,))
    image = torch.rand(1, 16, 12, 8)
    out = rescale_image(image, 2.0, axes=(2,))
    assert out.shape == (1, 16, 12, 16)
    assert torch.allclose(out.mean(dim=3), image.mean(dim=3), atol=0.05)  # each (x, y) column stretched along z
    label = (torch.rand(1, 16, 12, 8) > 0.5).long()
    lab = rescale_label(label, 2.0, axes=(2,))
    assert lab.shape == (1, 16, 12, 16) and torch.equal(lab[..., ::2], label)
