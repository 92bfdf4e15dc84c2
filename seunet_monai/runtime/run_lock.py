"""Exclusive use of a run's output folders: two trainings into one ``ckpt_dir`` would overwrite each other's
checkpoints and mix their TensorBoard event files without a word.

:func:`lock_run_folders` takes an operating-system lock (``filelock.FileLock``, ``flock`` on POSIX; released by
the kernel when the process ends, even when killed) on a hidden file ``.seunet_run.lock`` in each folder and
writes the holder's pid into it. A second run fails at once with a
:class:`~seunet_monai.errors.RunLockedError` naming the folder and that pid.

:func:`claim_ckpt_dir` keeps a new training from replacing model files it did not write: the shipped pretrained
``model.pt`` or the files of an earlier run in the same folder (only ``--resume true`` continues that run there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from seunet_monai.errors import ExistingPathError, RunLockedError
from seunet_monai.runtime.checks import as_flag

__all__ = ["LOCK_NAME", "RUN_FILES", "RunLock", "claim_ckpt_dir", "lock_run_folders"]

LOCK_NAME = ".seunet_run.lock"
#: the files a training run writes into its ``ckpt_dir`` (the resumable checkpoint first)
RUN_FILES = ("last.pt", "model.pt", "model_uncalibrated.pt")

logger = logging.getLogger(__name__)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


class RunLock:
    """The locks of one run's folders (see :func:`lock_run_folders`); :meth:`release` gives them back."""

    def __init__(self, folders: Sequence[Path], locks: Sequence) -> None:
        self.folders = list(folders)
        self._locks = list(locks)

    def release(self) -> None:
        """Release every lock (also done by the operating system when the process ends)."""
        while self._locks:
            self._locks.pop().release()


def lock_run_folders(
    folders: Sequence[str | os.PathLike],
    enabled: bool = True,
    clash: str = "overwrite each other's checkpoints and mix their TensorBoard files",
    keys: str = "--ckpt_dir / --output_dir",
) -> RunLock:
    """Lock ``folders`` (created when missing) for this process, or fail at once when another run holds one.

    Re-entrant within a process (the same folder locked twice by one process is fine). The same folder
    given twice (e.g. ``ckpt_dir == output_dir``) is locked once.

    Args:
        folders: the run's output folders (e.g. ``ckpt_dir`` and ``output_dir``).
        enabled: ``False`` returns an empty lock (e.g. on the non-zero ranks of a distributed run, which write
            nothing).
        clash: what two runs writing into one folder would do (in the error message).
        keys: the arguments that choose the folders (in the error message).

    Returns:
        a :class:`RunLock`; keep a reference for the whole run (the bundle keeps it under the key ``run_lock``).

    Raises:
        seunet_monai.errors.RunLockedError: naming the folder and the pid of the run that holds it.
        seunet_monai.errors.ExistingPathError: when a folder, or one above it, is a file.
    """
    unique: list[Path] = []
    for folder in folders:
        real = Path(folder).expanduser().resolve()
        if real not in unique:
            unique.append(real)
    held = RunLock(unique, [])
    if not enabled:
        return held
    for folder in unique:
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            held.release()
            raise ExistingPathError(
                f"{folder} cannot be a run folder: {blocking} is a file, not a folder; choose another --output_dir "
                "(or --ckpt_dir)."
            )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        lock = FileLock(str(path), timeout=0, is_singleton=True, on_acquired=_write_pid)
        try:
            lock.acquire()
        except Timeout:
            held.release()
            raise RunLockedError(
                f"{folder} is in use by another run (pid {_holder(path)}; lock file {path}): two runs writing there "
                f"would {clash}. Wait for that run to end or stop it, or choose another {keys}."
            ) from None
        held._locks.append(lock)
    return held


def claim_ckpt_dir(
    ckpt_dir: str | os.PathLike, resume: bool | str = False, overwrite: bool | str = False, enabled: bool = True
) -> Path:
    """Make sure a training writes over no model file that it did not write itself.

    A ``ckpt_dir`` holding none of :data:`RUN_FILES` is fine. With ``resume`` and a ``last.pt`` there, the run that
    wrote these files continues (its ``model.pt`` is replaced only by a better epoch). Otherwise the files belong to
    something else (an earlier run, or a model copied there such as the shipped pretrained one): refused, unless
    ``overwrite``, which removes them first so that no file of the earlier run (``model_uncalibrated.pt``) is
    taken for one of the new run.

    Args:
        ckpt_dir: the training's checkpoint folder.
        resume: the ``resume`` key (a flag; strings such as ``"false"`` are read as such).
        overwrite: the ``overwrite`` key.
        enabled: ``False`` does nothing (the non-zero ranks of a distributed run).

    Returns:
        ``ckpt_dir`` as a :class:`pathlib.Path`.

    Raises:
        seunet_monai.errors.ExistingPathError: naming the folder, its files, and the ways on.
    """
    folder = Path(ckpt_dir)
    resume, overwrite = as_flag(resume, "resume"), as_flag(overwrite, "overwrite")
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if not enabled or not found or (resume and "last.pt" in found):
        return folder
    if not overwrite:
        if "last.pt" in found:
            raise ExistingPathError(
                f"{folder} holds the files of an earlier training run ({', '.join(found)}), which a new run would "
                "replace: continue that run with --resume true, train into another --output_dir (or --ckpt_dir), "
                "or pass --overwrite true to replace them."
            )
        raise ExistingPathError(
            f"{folder} holds {', '.join(found)} that no training run in this folder wrote (e.g. the shipped "
            f"pretrained model){' and no last.pt to resume from' if resume else ''}: train into another "
            "--output_dir (or --ckpt_dir), or pass --overwrite true to replace them."
        )
    for name in found:
        (folder / name).unlink()
    logger.warning("--overwrite true: removed %s from %s before training.", ", ".join(found), folder)
    return folder
