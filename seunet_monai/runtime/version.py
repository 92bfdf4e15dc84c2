"""Which code made an output: the package's version and, when it is imported from a git checkout, the revision."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from seunet_monai import __version__

__all__ = ["code_version"]


def code_version() -> dict[str, Any]:
    """``{"seunet_monai": version, "git_rev": HEAD or None, "git_dirty": bool or None}`` of the imported package.

    The git fields are set when the package is imported from a git checkout (``git_dirty``: its ``seunet_monai``
    folder differs from ``HEAD``); ``None`` otherwise, or without ``git``.
    """
    root = Path(__file__).resolve().parents[2]
    rev, dirty = None, None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            rev = out.stdout.strip()
            diff = subprocess.run(
                ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "seunet_monai"],
                capture_output=True,
                timeout=30,
            )
            dirty = diff.returncode != 0
    except (OSError, subprocess.SubprocessError):
        pass
    return {"seunet_monai": __version__, "git_rev": rev, "git_dirty": dirty}
