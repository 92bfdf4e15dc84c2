"""Checks of the settings of ``run inferring``: values refused in one line, deprecated keys warned once
(``settings``)."""

from __future__ import annotations

import pytest

from seunet_monai.apps.wsi.settings import check_geojson_simplify, class_names_for, warn_deprecated
from seunet_monai.errors import ConfigValueError


def _deprecated(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]


def test_the_watershed_settings_are_deprecated_with_one_warning(caplog):
    warn_deprecated("false", None, None)
    assert not _deprecated(caplog)
    warn_deprecated("true", 3, None)
    lines = _deprecated(caplog)
    assert len(lines) == 1 and "watershed" in lines[0] and "\n" not in lines[0]


def test_scale_reference_is_deprecated_with_one_warning(caplog):
    warn_deprecated(False, None, 0.3)
    lines = _deprecated(caplog)
    assert len(lines) == 1 and "scale_reference" in lines[0] and "\n" not in lines[0]


def test_geojson_simplify_is_a_tolerance_of_at_least_zero():
    assert check_geojson_simplify("0.5") == 0.5 and check_geojson_simplify(0) == 0.0
    for value in (-1, "x", None, float("inf")):
        with pytest.raises(ConfigValueError, match="geojson_simplify must be a tolerance >= 0"):
            check_geojson_simplify(value)


def test_class_names_default_to_nucleus_for_two_classes():
    assert class_names_for(2) == ["background", "Nucleus"]
    assert class_names_for(3) == ["class0", "class1", "class2"]
    assert class_names_for(2, ("bg", "cell")) == ["bg", "cell"]
