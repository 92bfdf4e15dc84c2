from __future__ import annotations

import pytest

from seunet_monai.runtime.status import read_status, write_status


def test_write_status_is_atomic_json_and_checks_the_state(tmp_path):
    write_status(tmp_path / "x" / "s.json", "running", images_done=1)
    assert read_status(tmp_path / "x" / "s.json")["images_done"] == 1
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["s.json"]  # no temporary file left
    assert read_status(tmp_path / "missing.json") is None
    with pytest.raises(ValueError, match="state"):
        write_status(tmp_path / "s.json", "done")
