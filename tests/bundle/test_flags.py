"""Boolean keys given on the command line (`--amp false`, `--calibrate_fusion false`) arrive as strings; the
configs read them as booleans, not as the always-true non-empty string."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from seunet_monai.errors import ConfigValueError

from .conftest import TRAIN


@pytest.mark.parametrize("given, expected", [("false", False), ("False", False), ("true", True), (False, False)])
def test_string_flags_are_read_as_booleans(given, expected) -> None:
    parser = ConfigParser()
    parser.read_config(str(TRAIN))
    parser["amp"] = given
    parser["calibrate_fusion"] = given
    assert parser.get_parsed_content("use_amp") is expected
    assert parser.get_parsed_content("use_calibration") is expected


def test_a_word_that_is_not_a_flag_is_refused_by_name() -> None:
    parser = ConfigParser()
    parser.read_config(str(TRAIN))
    parser["calibrate_fusion"] = "maybe"
    with pytest.raises(Exception) as info:  # MONAI wraps expression errors in a RuntimeError
        parser.get_parsed_content("use_calibration")
    chain, e = [], info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(x, ConfigValueError) and "calibrate_fusion" in str(x) for x in chain)
