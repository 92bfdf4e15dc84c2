"""Stain normalisation transforms (:mod:`seunet_monai.data.stain.normalizers`): Vahadane (scikit-learn dictionary
learning) and Macenko (MONAI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seunet_monai.data.stain.estimation import optical_density
from seunet_monai.data.stain.normalizers import (
    LowTissueWarning,
    NormalizeStainsMacenko,
    NormalizeStainsMacenkod,
    NormalizeStainsVahadane,
    NormalizeStainsVahadaned,
    get_stain_normalizer,
)

from .conftest import SHIFTED, STAINS, concentrations, render


@pytest.mark.parametrize("cls", [NormalizeStainsVahadane, NormalizeStainsMacenko])
def test_shifted_copy_moves_closer_to_reference(cls):
    conc = concentrations()
    reference = render(conc, STAINS)
    shifted = render(conc * 0.8, SHIFTED)
    norm = cls(reference=reference)
    out = norm(shifted)
    assert out.shape == shifted.shape and out.dtype == np.uint8
    before = np.abs(shifted.astype(float) - reference).mean()
    after = np.abs(out.astype(float) - reference).mean()
    assert after < (0.2 if cls is NormalizeStainsVahadane else 0.5) * before, (before, after)
    # also closer in optical density (the stain space)
    d_before = np.abs(optical_density(shifted) - optical_density(reference)).mean()
    d_after = np.abs(optical_density(out) - optical_density(reference)).mean()
    assert d_after < 0.6 * d_before
    desc = norm.describe()
    assert desc["method"] in ("vahadane", "macenko") and desc["reference"] == "array"


@pytest.mark.parametrize("cls", [NormalizeStainsVahadane, NormalizeStainsMacenko])
def test_deterministic_and_layouts(cls):
    conc = concentrations(seed=2)
    reference, shifted = render(conc, STAINS), render(conc, SHIFTED)
    a = cls(reference=reference)(shifted)
    b = cls(reference=reference)(shifted)
    np.testing.assert_array_equal(a, b)
    chw = torch.as_tensor(np.moveaxis(shifted, -1, 0).copy())
    c = cls(reference=reference, channel_dim=0)(chw)
    assert isinstance(c, torch.Tensor) and c.shape == chw.shape
    np.testing.assert_array_equal(np.moveaxis(c.numpy(), 0, -1), a)


def test_low_tissue_returns_unchanged_with_warning():
    blank = np.full((32, 32, 3), 245, np.uint8)
    blank[0, :5] = (120, 60, 150)  # five tissue pixels only
    for norm in (NormalizeStainsVahadane(), NormalizeStainsMacenko()):
        with pytest.warns(LowTissueWarning):
            out = norm(blank)
        np.testing.assert_array_equal(out, blank)
        assert norm.fallback_count == 1
    with pytest.raises(ValueError, match="reference .* tissue"):
        NormalizeStainsVahadane(reference=blank)


def test_default_reference_dict_forms_and_factory(tmp_path):
    from PIL import Image

    conc = concentrations(seed=3)
    ref_path = tmp_path / "ref.png"
    Image.fromarray(render(conc, STAINS)).save(ref_path)
    shifted = render(conc, SHIFTED)
    d = NormalizeStainsVahadaned(keys="image", reference=str(ref_path))({"image": shifted, "label": 1})
    assert d["label"] == 1 and d["image"].shape == shifted.shape
    assert NormalizeStainsVahadaned(keys="image").normalizer.reference_name == "built-in"
    m = NormalizeStainsMacenkod(keys=["image"])({"image": shifted})["image"]
    assert m.dtype == np.uint8 and not np.array_equal(m, shifted)
    assert get_stain_normalizer("none") is None
    assert isinstance(get_stain_normalizer("macenko", reference=str(ref_path)), NormalizeStainsMacenko)
    assert str(ref_path) in get_stain_normalizer("vahadane", reference=ref_path).describe()["reference"]
    with pytest.raises(ValueError, match="unknown stain normalisation"):
        get_stain_normalizer("reinhard")


@pytest.mark.parametrize("cls", [NormalizeStainsVahadane, NormalizeStainsMacenko])
def test_builtin_reference_keeps_haematoxylin_blue(cls):
    # guards against swapping H and E (MONAI's extractor returns eosin first, its default target H first)
    conc = concentrations(seed=4)
    out = cls()(render(conc, SHIFTED)).astype(float)
    nuclei, stroma = conc[..., 0] > 1.5, (conc[..., 0] < 0.5) & (conc[..., 1] > 1.0)
    assert (out[nuclei, 2] > out[nuclei, 0]).mean() > 0.9  # nuclei blue-purple
    assert (out[stroma, 0] > out[stroma, 1]).mean() > 0.9  # eosin pink: red above green


def test_in_monai_pipeline_channel_first(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from PIL import Image

    conc = concentrations(seed=5)
    Image.fromarray(render(conc, STAINS)).save(tmp_path / "ref.png")
    shifted = render(conc, SHIFTED)
    Image.fromarray(shifted).save(tmp_path / "img.png")
    pipeline = Compose(
        [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            NormalizeStainsMacenkod(keys="image", channel_dim=0, reference=str(tmp_path / "ref.png")),
        ]
    )
    out = pipeline({"image": str(tmp_path / "img.png")})["image"]
    assert out.shape == (3, 64, 64) and str(tmp_path / "img.png") in str(out.meta["filename_or_obj"])
    expected = NormalizeStainsMacenko(reference=str(tmp_path / "ref.png"))(shifted)
    # PIL reader: (C, W, H), i.e. the spatial axes of the HWC array reversed
    np.testing.assert_array_equal(out.numpy().transpose(2, 1, 0), expected)


def test_fit_source_normalises_windows_like_the_whole_image():
    """With the source stains fitted once on the whole image, every window (even a glass-only one) is
    normalised exactly as its crop of the whole-image normalisation; without, a window is refitted on its own."""
    img = render(concentrations(96, seed=3), SHIFTED)
    norm = NormalizeStainsVahadane()
    whole = norm(img)
    assert norm.fit_source(img) and norm.source is not None
    for box in ((slice(0, 48), slice(0, 48)), (slice(40, 96), slice(30, 90)), (slice(0, 96), slice(0, 10))):
        np.testing.assert_array_equal(norm(np.ascontiguousarray(img[box])), whole[box])
    norm.clear_source()
    glass = np.ascontiguousarray(img[:, :10])
    with pytest.warns(LowTissueWarning):
        np.testing.assert_array_equal(norm(glass), glass)  # per-window fitting: too little tissue, unchanged
    assert not NormalizeStainsVahadane().fit_source(np.full((32, 32, 3), 250, np.uint8))  # no tissue to fit
