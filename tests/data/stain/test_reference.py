"""The fitted stain reference of a model (:mod:`seunet_monai.data.stain.reference`): ``stain_reference.json``
written, read back, and refused in one line when it cannot be used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seunet_monai.data.stain.normalizers import NormalizeStainsMacenko, NormalizeStainsVahadane
from seunet_monai.data.stain.reference import STAIN_REFERENCE_FILE, StainNormalizeFromReferenced, stain_transform

from .conftest import SHIFTED, STAINS, concentrations, render


@pytest.mark.parametrize("cls", [NormalizeStainsVahadane, NormalizeStainsMacenko])
def test_a_written_reference_normalises_as_the_normaliser_fitted_on_the_reference_image(tmp_path, cls):
    fitted = cls(reference=render(concentrations(seed=1), STAINS))
    path = tmp_path / STAIN_REFERENCE_FILE
    path.write_text(json.dumps(fitted.reference_record()))
    shifted = render(concentrations(seed=2), SHIFTED)
    loaded = stain_transform("auto", path, channel_dim=-1)
    assert isinstance(loaded, cls) and loaded.reference_name == str(path)
    np.testing.assert_array_equal(loaded(shifted), fitted(shifted))
    # the dictionary transform of the bundle's configs: channel first, type and values kept
    chw = torch.as_tensor(shifted).permute(2, 0, 1).contiguous()
    out = StainNormalizeFromReferenced("image", stain_reference=path)({"image": chw, "label": 1})
    assert out["label"] == 1 and isinstance(out["image"], torch.Tensor)
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), fitted(shifted))


def test_off_or_without_a_reference_file_the_transform_passes_images_through(tmp_path, caplog):
    image = render(concentrations(seed=2), SHIFTED)
    assert stain_transform("none", tmp_path / "missing.json") is None
    assert stain_transform("auto", tmp_path / "missing.json") is None
    assert "stain normalisation skipped" in caplog.text
    d = StainNormalizeFromReferenced("image", stain_reference=tmp_path / "missing.json")({"image": image})
    assert d["image"] is image


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"method": "vahadane", "target_stain', "not a readable stain reference record"),  # truncated
        ("{}", "missing key 'method'"),
        (
            '{"method": "reinhard", "target_stain_matrix": [], "target_max_concentrations": []}',
            r"unknown stain normalisation 'reinhard' \(key 'method'\)",
        ),
        (
            '{"method": "vahadane", "target_stain_matrix": [[NaN, 0.7, 0.4], [0.2, 0.8, 0.5]], "target_max_concentrations": [1.9, 1.0]}',
            "finite",
        ),
        (
            '{"method": "vahadane", "target_stain_matrix": [[0.56, 0.72, 0.41], [0.22, 0.8, 0.56]], "target_max_concentrations": [0, 0]}',
            "two positive values",
        ),
        (
            '{"method": "macenko", "target_stain_matrix": [[0.56, 0.72, 0.41], [0.56, 0.72, 0.41]], "target_max_concentrations": [1.9, 1.0]}',
            "two independent",
        ),
    ],
    ids=["truncated", "empty", "unknown_method", "nan_matrix", "zero_concentrations", "one_stain_twice"],
)
def test_bad_stain_reference_records_are_one_line_errors_naming_the_file(tmp_path, content, expected):
    """Issue 25, item 10 and the corrupt-reference errors: a reference with zero concentrations gave 0 objects
    with rc 0; a truncated, empty, unknown-method or NaN record ended in a 60-line traceback."""
    from seunet_monai.errors import DataError

    path = tmp_path / "stain_reference.json"
    path.write_text(content)
    with pytest.raises(DataError, match=expected) as info:
        stain_transform("auto", path)
    assert str(path) in str(info.value) and "\n" not in str(info.value) and "--stain_norm none" in str(info.value)
