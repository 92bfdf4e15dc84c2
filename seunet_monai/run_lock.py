"""Exclusive use of a run's output folders: two trainings into one ``ckpt_dir`` would overwrite each other's
checkpoints and mix their TensorBoard event files without a word.

:func:`lock_run_folders` takes an operating-system lock (``filelock.FileLock``, ``flock`` on POSIX; released by
the kernel when the process ends, even when killed) on a hidden file ``.seunet_run.lock`` in each folder and
writes the holder's pid into it. A second run fails at once with a
:class:`~seunet_monai.errors.RunLockedError` naming the folder and that pid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from seunet_monai.errors import RunLockedError

__all__ = ["LOCK_NAME", "RunLock", "lock_run_folders"]

LOCK_NAME = ".seunet_run.lock"


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
    """
    from filelock import FileLock, Timeout

    unique: list[Path] = []
    for folder in folders:
        real = Path(folder).expanduser().resolve()
        if real not in unique:
            unique.append(real)
    held = RunLock(unique, [])
    if not enabled:
        return held
    for folder in unique:
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
