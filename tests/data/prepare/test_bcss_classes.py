"""BCSS codes to the paper's classes (:mod:`seunet_monai.data.prepare.bcss_classes`): the default map, the
ignore value, and class-map files merged onto it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seunet_monai.data.prepare.bcss_classes import (
    DEFAULT_CLASS_MAP,
    IGNORE_VALUE,
    as_class_map,
    load_class_map,
    map_classes,
)
from seunet_monai.errors import PreparationError
from tests.data.bcss_files import code_mask


def test_default_map_and_mapping():
    assert DEFAULT_CLASS_MAP[0] == DEFAULT_CLASS_MAP[7] == DEFAULT_CLASS_MAP[15] == IGNORE_VALUE
    assert DEFAULT_CLASS_MAP[1] == DEFAULT_CLASS_MAP[19] == DEFAULT_CLASS_MAP[20] == 0
    assert [DEFAULT_CLASS_MAP[c] for c in (2, 3, 10, 11, 4)] == [1, 2, 2, 2, 3]
    assert {DEFAULT_CLASS_MAP[c] for c in (5, 6, 8, 9, 12, 13, 14, 16, 17, 18, 21)} == {4}
    assert len(DEFAULT_CLASS_MAP) == 22
    out = map_classes(code_mask(), DEFAULT_CLASS_MAP)
    assert out.dtype == np.uint8
    assert (out[16:32, 0:32] == 0).all() and (out[16:32, 32:64] == 2).all()
    assert out[40, 8] == 1 and out[40, 24] == 3 and out[40, 40] == 4
    assert out[34, 56] == IGNORE_VALUE and out[44, 56] == 4
    assert (out[0:16] == IGNORE_VALUE).all()
    with pytest.raises(PreparationError, match="m.png.*code\\(s\\) \\[30\\]"):
        map_classes(np.array([[1, 30]]), DEFAULT_CLASS_MAP, "m.png")


def test_class_map_files_override(tmp_path):
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"20": "other", "exclude": 4, "undetermined": "ignore"}))
    m = load_class_map(j)
    assert m[20] == 4 and m[7] == 4 and m[15] == IGNORE_VALUE and m[1] == 0
    t = tmp_path / "map.tsv"
    t.write_text("code\tclass\n# comment\n19\tstroma\n0\t255\n")
    m = load_class_map(t)
    assert m[19] == 1 and m[0] == 255 and m[20] == 0
    t.write_text("19\tbanana\n")
    with pytest.raises(PreparationError, match="map.tsv line 1"):
        load_class_map(t)


def test_a_preparation_takes_the_default_a_file_or_a_mapping_of_codes_to_classes(tmp_path):
    assert as_class_map(None) == DEFAULT_CLASS_MAP
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"dcis": "stroma"}))
    assert as_class_map(j)[20] == 1
    assert as_class_map({20: "ignore", 1: 3}) == {20: IGNORE_VALUE, 1: 3}
    with pytest.raises(PreparationError, match="class_map\\[20\\]"):
        as_class_map({20: "banana"})
