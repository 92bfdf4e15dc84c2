"""Specification of ``seunet_monai.cli.scale_shift`` (``seunet-scale-shift``): arguments are checked in one line."""

from __future__ import annotations

import pytest

from seunet_monai.cli.scale_shift import main


def test_bad_scales_are_one_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "b"), "--test-scales", "0.5,big"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--test-scales must be numbers" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
