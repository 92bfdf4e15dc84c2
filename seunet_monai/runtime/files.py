"""Files and folders written safely: atomic writes and output folders; a file's SHA-256.

Every writer goes through a temporary file in the destination folder followed by :func:`os.replace`, so an
interrupted run never leaves a partially written file under the final name (``os.replace`` is atomic on one
file system, which a temporary file in the same folder guarantees). ``tempfile.mkstemp`` creates its file with
mode 0600; the writers give it the mode of an ordinary new file (``0666`` less the umask, see
:func:`ordinary_file_mode`) before the rename, so shared datasets stay readable by the group and others.

An output folder is made ready (:func:`prepare_output_dir`) or swapped in whole (:func:`publish_folder`) without
ever removing what this project did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_not_overlapping",
    "check_output_dir",
    "file_sha256",
    "ordinary_dir_mode",
    "ordinary_file_mode",
    "prepare_output_dir",
    "publish_folder",
]

PathLike = str | os.PathLike
T = TypeVar("T")


def _umask() -> int:
    # the umask can only be read by setting it; it is restored at once (os.umask returns the old value)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_file_mode() -> int:
    """The permission bits ``open()`` gives a new file: ``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def ordinary_dir_mode() -> int:
    """The permission bits ``os.mkdir`` gives a new folder: ``0o777`` less the process umask."""
    return 0o777 & ~_umask()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then :func:`os.replace`).

    The parent folder is created if needed. On any error the temporary file is removed and the previous
    content of ``path`` (if any) is left untouched.

    Args:
        path: destination file.
        data: the bytes to write.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, ordinary_file_mode())  # mkstemp's 0600 would hide the file from the group and others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    Args:
        path: destination file.
        text: the text to write.
        encoding: text encoding.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (with a trailing newline) and write it atomically.

    Args:
        path: destination file.
        obj: a JSON-serialisable object (numpy scalars and arrays are converted).
        indent: JSON indentation.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def file_sha256(path: PathLike) -> str:
    """The SHA-256 hex digest of the file at ``path`` (read in 1 MiB blocks), e.g. to record which checkpoint made
    an output."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"object of type {type(o).__name__} is not JSON serialisable")


def check_not_overlapping(dst: PathLike, inputs: Any, what: str = "output folder") -> None:
    """Refuse an output folder that is, contains or lies inside one of the ``inputs`` (files or folders).

    Raises:
        ValueError: naming both paths.
    """
    real = Path(dst).expanduser().resolve()
    for src in inputs or ():
        s = Path(src).expanduser().resolve()
        if real == s or s in real.parents or real in s.parents:
            raise ValueError(
                f"{what} {real} overlaps the input {s} (same folder, inside it or containing it); "
                "choose an output folder outside the inputs."
            )


def check_output_dir(
    dst: PathLike, overwrite: bool = False, inputs: Any = None, marker: str | Sequence[str] | None = None
) -> Path:
    """Check, without changing anything, that ``dst`` may receive a new dataset (the rules of
    :func:`prepare_output_dir`).

    Returns:
        ``dst`` as a resolved :class:`pathlib.Path`.

    Raises:
        FileExistsError: when ``dst`` is non-empty and ``overwrite`` is false, or ``dst`` is a file.
        ValueError: when ``dst`` overlaps an input, lacks the marker, or must never be cleaned.
    """
    dst = Path(dst).expanduser()
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"output path {dst} exists and is not a folder.")
    if dst.is_symlink():
        raise ValueError(f"output folder {dst} is a symbolic link; give the real folder instead.")
    check_not_overlapping(dst, inputs)
    if dst.is_dir() and any(dst.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {dst} is not empty; choose another folder or pass overwrite=True (--overwrite) "
                "to replace its content."
            )
        real = dst.resolve()
        protected = {Path(real.anchor), Path.home().resolve()}
        cwd = Path.cwd().resolve()
        if real in protected or real == cwd or real in cwd.parents:
            raise ValueError(
                f"refusing to clean {real}: it is the root, the home folder or contains the working directory."
            )
        markers = [marker] if isinstance(marker, str) else list(marker or ())
        if marker is not None and not any((real / m).is_file() for m in markers):
            raise ValueError(
                f"refusing to clean {real}: it has no {' or '.join(markers)}, so this project did not write it; "
                "choose an empty or new output folder."
            )
    return dst.resolve()


def prepare_output_dir(
    dst: PathLike, overwrite: bool = False, inputs: Any = None, marker: str | Sequence[str] | None = None
) -> Path:
    """Make ``dst`` ready to receive a new dataset, never removing what this project did not write.

    A missing or empty folder is created/accepted. A non-empty folder is refused unless ``overwrite``; with
    ``overwrite`` its content is removed (symbolic links are unlinked, never followed) only when it holds
    ``marker`` (a file that the project writes last into every folder it produces, e.g.
    ``prepare_report.json``): a folder without it was not written by us and is never cleaned. A ``dst`` that
    is, contains or lies inside one of ``inputs`` is refused whatever ``overwrite`` says. Also refuses to clean
    the file-system root, the home folder or the current working directory (or one of its parents).

    Args:
        dst: the output folder.
        overwrite: allow emptying a non-empty ``dst`` that this project wrote.
        inputs: input files/folders of the run (never inside or around ``dst``).
        marker: name of the file that marks a folder written by this project (or several names, any one of
            which marks it); ``None`` accepts any folder (for callers that only write into folders they
            created).

    Returns:
        ``dst`` as a resolved :class:`pathlib.Path`.

    Raises:
        FileExistsError: when ``dst`` is non-empty and ``overwrite`` is false, or ``dst`` is a file.
        ValueError: when ``dst`` overlaps an input, lacks the marker, or must never be cleaned.
    """
    real = check_output_dir(dst, overwrite, inputs, marker)
    if real.is_dir():
        for child in real.iterdir():
            if child.is_symlink() or not child.is_dir():
                child.unlink()
            else:
                shutil.rmtree(child)
    real.mkdir(parents=True, exist_ok=True)
    return real


def publish_folder(
    dst: PathLike,
    write: Callable[[Path], T],
    overwrite: bool = False,
    inputs: Any = None,
    marker: str | Sequence[str] | None = None,
) -> T:
    """Write a new dataset beside ``dst`` and swap it in only when it is complete.

    ``dst`` is checked as :func:`check_output_dir` does (before any work); ``write(tmp)`` then fills a new hidden
    sibling folder ``.<name>.partial-*``. On success the old ``dst`` (if any) is renamed aside, the new folder
    renamed to ``dst`` and the old one removed; on any failure (a full disk, Ctrl-C) the partial folder is removed
    and the old ``dst`` is left as it was, so a complete dataset is never lost to an incomplete one.

    Args:
        dst: the output folder.
        write: fills the folder it is given; its result is returned.
        overwrite, inputs, marker: as :func:`prepare_output_dir`.

    Raises:
        FileExistsError / ValueError: as :func:`check_output_dir`; and whatever ``write`` raises.
    """
    real = check_output_dir(dst, overwrite, inputs, marker)
    real.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.partial-", dir=real.parent))
    old = None
    try:
        tmp.chmod(ordinary_dir_mode())  # mkdtemp makes 0700; the renamed folder is the dataset
        result = write(tmp)
        if real.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{real.name}.old-", dir=real.parent))
            os.replace(real, old)  # renaming a folder onto an empty one; the old dataset is now aside
        os.replace(tmp, real)
    except BaseException:
        if old is not None and not real.exists():
            os.replace(old, real)  # the swap failed half-way: the old dataset goes back
        for folder in (tmp, old):
            if folder is not None and folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return result
