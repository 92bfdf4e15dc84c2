"""Where the MONAI bundle shipped with this package lives.

The bundle folder (``configs/``, ``models/``, ``docs/``, ``LICENSE``) is the top-level ``bundle/`` of the source
repository. A wheel (``pip install .``) ships the same folder as package data, ``seunet_monai/bundle``
(``pyproject.toml`` maps one onto the other), read here through :mod:`importlib.resources`. A source checkout or
an editable install has no ``seunet_monai/bundle`` and uses ``bundle/`` next to the package.

``python -m seunet_monai bundle-path`` prints :func:`bundle_path`, so that from any directory::

    python -m monai.bundle run --config_file "$(python -m seunet_monai bundle-path)/configs/train.json"
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from seunet_monai.errors import MissingPathError

__all__ = ["bundle_path", "config_path"]


def _installed_bundle() -> Path | None:
    """``seunet_monai/bundle`` as a folder on disk when the package was installed from a wheel, else None."""
    folder = resources.files("seunet_monai") / "bundle"
    # MONAI reads configs by file path, so only a real folder (not a zip member) will do.
    if isinstance(folder, Path) and (folder / "configs").is_dir():
        return folder.resolve()
    return None


def bundle_path() -> Path:
    """The bundle folder, the one holding ``configs/`` (the contract of ``python -m seunet_monai bundle-path``).

    Returns:
        the installed package data ``seunet_monai/bundle`` when present, else the ``bundle/`` folder of the
        source checkout this package was imported from (absolute paths).

    Raises:
        seunet_monai.errors.MissingPathError: when neither exists (a package installed without its data).
    """
    installed = _installed_bundle()
    if installed is not None:
        return installed
    checkout = Path(__file__).resolve().parents[2] / "bundle"
    if (checkout / "configs").is_dir():
        return checkout
    raise MissingPathError(
        f"no bundle folder found: neither the package data {resources.files('seunet_monai') / 'bundle'} nor "
        f"{checkout} holds configs/; reinstall the package from a wheel (pip install .) or use a source checkout."
    )


def config_path(name: str) -> Path:
    """The path of ``configs/<name>`` in :func:`bundle_path` (e.g. ``"train.json"``, ``"variants/unet.json"``).

    Raises:
        seunet_monai.errors.MissingPathError: naming the file, when the bundle has no such config.
    """
    path = bundle_path() / "configs" / name
    if not path.is_file():
        raise MissingPathError(f"the bundle has no config {name!r} (looked for {path}).")
    return path
