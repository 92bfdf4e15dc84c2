"""Where the bundle lives: the folder holding ``configs/`` of the config being parsed, and paths relative to it.

Configs call these in ``$`` expressions, e.g. ``"bundle_root": "$seunet_monai.runtime.paths.bundle_root()"``.
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

from seunet_monai.errors import MissingPathError
from seunet_monai.runtime.resources import bundle_path

__all__ = ["BUNDLE_ROOT_ENV", "bundle_root", "resolve_path"]

BUNDLE_ROOT_ENV = "SEUNET_BUNDLE_ROOT"


def _root_from_config_file(config_file: Any) -> Path | None:
    """The bundle root of a ``config_file`` argument (a path, a list of paths, or its string form)."""
    if config_file is None:
        return None
    if isinstance(config_file, str) and config_file.strip().startswith("["):
        try:
            config_file = ast.literal_eval(config_file.strip())
        except (ValueError, SyntaxError):
            return None
    first = config_file if isinstance(config_file, (str, os.PathLike)) else next(iter(config_file), None)
    if first is None:
        return None
    parent = Path(first).resolve().parent
    return parent.parent if parent.name == "configs" else parent


def bundle_root() -> str:
    """The absolute path of the bundle folder (the one holding ``configs/``) of the config being parsed.

    MONAI's config parser does not know which file it read and sets no ``bundle_root`` itself (only
    ``ConfigWorkflow.run`` adds the folder to ``sys.path``, and not during ``initialize`` or
    ``check_properties``). So, in order:

    1. the environment variable ``SEUNET_BUNDLE_ROOT`` when set;
    2. the ``config_root_path`` of the ``monai.bundle`` workflow (``ConfigWorkflow``) that is evaluating this
       expression, found on the call stack (``python -m monai.bundle run ...``, ``check_properties``), or a
       ``config_file`` argument of a ``monai.bundle.scripts`` function (``verify_net_in_out``,
       ``ckpt_export``): the parent of ``configs/``;
    3. the bundle shipped with this package (:func:`seunet_monai.runtime.resources.bundle_path`: the installed package
       data, or ``bundle/`` next to the package in a source checkout);
    4. the current working directory (what MONAI's own scripts assume).

    A ``--bundle_root DIR`` on the command line overrides this expression altogether.

    Returns:
        an absolute path (string, as configs concatenate it with ``+``).
    """
    env = os.environ.get(BUNDLE_ROOT_ENV)
    if env:
        return str(Path(env).resolve())
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None
        while f is not None:
            owner = f.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow):
                root = Path(owner.config_root_path).resolve()
                return str(root.parent if root.name == "configs" else root)
            if f.f_globals.get("__name__") == "monai.bundle.scripts" and "config_file" in f.f_locals:
                root = _root_from_config_file(f.f_locals["config_file"])
                if root is not None:
                    return str(root)
            f = f.f_back
    finally:
        del frame

    try:
        return str(bundle_path())
    except MissingPathError:
        return str(Path.cwd())

def resolve_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` if absolute (``~`` expanded), else ``root / path``; returned as an absolute string."""
    p = Path(os.path.expanduser(str(path)))
    return str(p if p.is_absolute() else (Path(root) / p).resolve())
