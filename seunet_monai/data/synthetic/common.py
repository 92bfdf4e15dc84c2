"""What the synthetic generators (:mod:`~seunet_monai.data.synthetic.histology`,
:mod:`~seunet_monai.data.synthetic.volumes`) share: per-sample seeds, argument checks, and the atomic,
locked publication of a generated dataset folder.

A generated folder holds :data:`SYNTHETIC_MARKER`; only such a folder is ever replaced (``overwrite``). It is
written into a hidden sibling ``.<name>.partial-XXXX`` (holding :data:`IN_PROGRESS_MARKER` while it is written)
and renamed into place when complete, under :func:`generation_lock`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from seunet_monai.data.datalist import SPLITS
from seunet_monai.runtime.files import atomic_write_json, ordinary_dir_mode, prepare_output_dir

__all__ = [
    "SYNTHETIC_MARKER",
    "IN_PROGRESS_MARKER",
    "sample_seed",
    "check_generator_arguments",
    "generation_lock",
    "publish_generated",
]

SYNTHETIC_MARKER = "synthetic_report.json"
"""The file that marks a folder written by a synthetic generator (only such a folder is replaced)."""
IN_PROGRESS_MARKER = ".synthetic_in_progress"
"""Present in a partial folder while it is written: a partial folder holding it is left by an interrupted run."""


def sample_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed sequence of sample ``index`` of ``split`` (independent of the other splits' sizes)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    return np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)])


def generation_lock(dst: str | os.PathLike) -> Any:
    """The inter-process lock that serialises every generation into ``dst``: a ``filelock.FileLock`` on the
    hidden sibling file ``.<name>.lock`` (``dst`` itself may not exist yet). Re-entrant within a process.

    Use as a context manager: ``with generation_lock(dst): ...``.
    """
    dst = Path(dst).expanduser().absolute()
    dst.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(dst.parent / f".{dst.name}.lock"), is_singleton=True)


def _check_replaceable(dst: Path, overwrite: bool) -> None:
    """Refuse, before any work, a non-empty ``dst`` without ``overwrite`` or one this generator did not write."""
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"output path {dst} exists and is not a folder.")
    cwd = Path.cwd().resolve()
    if dst.resolve() == cwd or dst.resolve() in cwd.parents:
        raise ValueError(f"output folder {dst} is (or contains) the working directory; choose a folder inside it.")
    if dst.is_dir() and any(dst.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {dst} is not empty; choose another folder or pass overwrite=True (--overwrite) "
                "to replace a synthetic dataset written there earlier."
            )
        if not (dst / SYNTHETIC_MARKER).is_file():
            raise ValueError(
                f"refusing to replace {dst}: it has no {SYNTHETIC_MARKER}, so it was not written by the synthetic "
                "generator (raw or prepared data?); choose an empty or new folder."
            )


def _remove_stale_partials(dst: Path) -> None:
    """Remove the partial folders of interrupted generations into ``dst`` (call under :func:`generation_lock`).

    Only hidden siblings named ``.<name>.partial-*`` that hold the in-progress marker are removed.
    """
    for old in dst.parent.glob(f".{dst.name}.partial-*"):
        if old.is_dir() and not old.is_symlink() and (old / IN_PROGRESS_MARKER).is_file():
            shutil.rmtree(old)


def _new_partial_folder(dst: Path) -> Path:
    """A new hidden sibling of ``dst`` to generate into, with the permissions of an ordinary new folder."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    tmp.chmod(ordinary_dir_mode())  # mkdtemp makes 0700; the renamed folder is the dataset
    return tmp


def check_generator_arguments(counts: dict[str, Any], size: Any, scale: Any, seed: Any, unit: str) -> float:
    """Validate the arguments shared by the synthetic generators (2D and 3D); returns ``scale`` as a float.

    Args:
        counts: number of items per split name (integers >= 0).
        size: image side (integer >= 8).
        scale: magnification (positive, finite).
        seed: random seed (integer >= 0).
        unit: what an item is called in messages ("samples", "volumes").

    Raises:
        ValueError: naming the first bad argument.
    """
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"number of {name} {unit} must be an integer >= 0, got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}.")
    value = float(scale)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    return value


def publish_generated(dst: str | os.PathLike, overwrite: bool, write: Callable[[Path], Any]) -> Path:
    """Generate a dataset into ``dst`` atomically (both synthetic generators): under :func:`generation_lock`,
    ``write(tmp)`` fills a new hidden partial folder beside ``dst`` (marked by :data:`IN_PROGRESS_MARKER` while
    it runs), which then replaces ``dst`` (only when it is missing, empty, or a synthetic dataset and
    ``overwrite``); a failure removes the partial folder.

    Args:
        dst: the dataset folder.
        overwrite: replace a synthetic dataset in ``dst``.
        write: fills the (new, empty) folder it is given with the dataset, :data:`SYNTHETIC_MARKER` and
            ``datalist.json``.

    Returns:
        the path of the written ``datalist.json``.

    Raises:
        ValueError: ``dst`` holds files but no :data:`SYNTHETIC_MARKER`, or is (or contains) the working directory.
        FileExistsError: ``dst`` is not empty and ``overwrite`` is false.
    """
    dst = Path(dst).expanduser().absolute()
    _check_replaceable(dst, overwrite)
    with generation_lock(dst):
        _check_replaceable(dst, overwrite)  # again: another process may have written dst while we waited
        _remove_stale_partials(dst)
        tmp = _new_partial_folder(dst)
        try:
            atomic_write_json(tmp / IN_PROGRESS_MARKER, {"dst": str(dst)})
            write(tmp)
            (tmp / IN_PROGRESS_MARKER).unlink()
            prepare_output_dir(dst, overwrite=overwrite, marker=SYNTHETIC_MARKER)
            dst.rmdir()  # empty now; os.replace of a folder needs a missing or empty target
            os.replace(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dst / "datalist.json"
