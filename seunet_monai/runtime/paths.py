"""Where the bundle lives: the folder holding ``configs/`` of the config being run, and paths relative to it.

Configs call these in ``$`` expressions, e.g. ``"bundle_root": "$seunet_monai.runtime.paths.bundle_root()"``.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seunet_monai.errors import MissingPathError
from seunet_monai.runtime.resources import bundle_path

__all__ = ["BUNDLE_ROOT_ENV", "bundle_root", "command_line_config_file", "resolve_path", "root_of_config_file"]

BUNDLE_ROOT_ENV = "SEUNET_BUNDLE_ROOT"

_CONFIG_FILE_FLAGS = ("--config_file", "--config-file")


def root_of_config_file(config_file: Any) -> Path | None:
    """The bundle root of a ``config_file`` argument of ``monai.bundle`` (a path, a list of paths, or the string
    form of a list, as on the command line): the folder above ``configs/`` of the first file, or the file's folder
    when that is not ``configs/``; ``None`` for no file."""
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


def command_line_config_file(argv: Sequence[str] | None = None) -> str | None:
    """The ``--config_file`` value of a ``python -m monai.bundle ...`` command line (``argv``, default
    ``sys.argv``: also under ``torchrun -m monai.bundle``), ``None`` for any other program or without the flag.

    MONAI's ``run``, ``verify_net_in_out`` and ``ckpt_export`` take the config files from this flag and do not
    pass them on to the expressions they evaluate, so this is where the config being run is named.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py"):
        return None
    for i, arg in enumerate(argv[1:], start=1):
        if arg in _CONFIG_FILE_FLAGS and i + 1 < len(argv):
            return argv[i + 1]
        for flag in _CONFIG_FILE_FLAGS:
            if arg.startswith(flag + "="):
                return arg[len(flag) + 1 :]
    return None


def bundle_root(config_file: Any = None) -> str:
    """The absolute path of the bundle folder (the one holding ``configs/``) of the config being run.

    MONAI's config parser does not tell an expression which file it read (only ``ConfigWorkflow.run`` adds the
    folder to ``sys.path``, and not during ``initialize`` or ``check_properties``). So, in order:

    1. the environment variable ``SEUNET_BUNDLE_ROOT`` when set;
    2. ``config_file`` when given (a path, a list of paths or its string form; programs that build a
       ``ConfigWorkflow`` themselves may pass ``bundle_root`` as an override instead, as MONAI's bundles expect):
       the parent of ``configs/`` (:func:`root_of_config_file`);
    3. the ``--config_file`` of a ``python -m monai.bundle`` command line (:func:`command_line_config_file`:
       ``run``, ``verify_net_in_out``, ``ckpt_export``), likewise;
    4. the bundle shipped with this package (:func:`seunet_monai.runtime.resources.bundle_path`: the installed
       package data, or ``bundle/`` next to the package in a source checkout);
    5. the current working directory (what MONAI's own scripts assume).

    A ``--bundle_root DIR`` on the command line overrides this expression altogether.

    Returns:
        an absolute path (string, as configs concatenate it with ``+``).
    """
    env = os.environ.get(BUNDLE_ROOT_ENV)
    if env:
        return str(Path(env).resolve())
    for given in (config_file, command_line_config_file()):
        root = root_of_config_file(given)
        if root is not None:
            return str(root)
    try:
        return str(bundle_path())
    except MissingPathError:
        return str(Path.cwd())


def resolve_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` if absolute (``~`` expanded), else ``root / path``; returned as an absolute string."""
    p = Path(os.path.expanduser(str(path)))
    return str(p if p.is_absolute() else (Path(root) / p).resolve())
