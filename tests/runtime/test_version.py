"""``seunet_monai.runtime.version``: the version and, from a git checkout, the revision of the code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import seunet_monai
from seunet_monai.runtime.version import code_version


def test_the_version_and_the_checkouts_revision() -> None:
    code = code_version()
    assert set(code) == {"seunet_monai", "git_rev", "git_dirty"} and code["seunet_monai"] == seunet_monai.__version__
    root = Path(seunet_monai.__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert code["git_rev"] == head.stdout.strip() and isinstance(code["git_dirty"], bool)
    else:  # an installed copy: no revision
        assert code["git_rev"] is None and code["git_dirty"] is None
