"""Errors the project detects itself, and a one-line report of them at the command line.

MONAI's bundle runner wraps an exception raised inside a config expression in a ``RuntimeError("Failed to
evaluate ...")`` (the original is its ``__cause__``), so a bad path or a bad key ends in a 60-400 line
traceback with the useful message somewhere in the middle. Errors this project detects derive from
:class:`SeunetError` (with the built-in type they stand for, e.g. :class:`ConfigValueError` is also a
``ValueError``). :func:`install_excepthook` (called first in the bundle's ``initialize``) replaces
``sys.excepthook`` so that an uncaught exception whose chain holds a :class:`SeunetError` prints only

    error: <message>
    (set SEUNET_DEBUG=1 for the full traceback)

on stderr and exits with status 2 (the command-line convention for bad usage, as ``argparse`` does). Set
``SEUNET_DEBUG=1`` for the full traceback. Another exception raised while MONAI evaluates a config item (a ``$``
expression or a ``_target_`` component) prints one line naming the config key and the original error
(:func:`config_error_line`: ``error: config key 'network_def': ValueError: ...``) and exits with status 1. Other
exceptions keep Python's usual traceback and status 1.

Ctrl-C (``KeyboardInterrupt``) prints one line, ``interrupted: <note>``, and exits with status 130: the note says
what the run keeps and how to go on (e.g. ``--resume true``); the run's handlers keep it up to date with
:func:`set_interrupt_note` as they write their files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = [
    "ExportError",
    "DEBUG_ENV",
    "EXIT_STATUS",
    "CheckpointError",
    "ConfigValueError",
    "DataError",
    "DatalistError",
    "ExistingPathError",
    "ImageReadError",
    "ImageTooLargeError",
    "InferenceError",
    "MissingPathError",
    "PreparationError",
    "RunLockedError",
    "SeunetError",
    "TrainingDivergedError",
    "INTERRUPT_STATUS",
    "config_error_line",
    "find_seunet_error",
    "install_excepthook",
    "interrupt_note",
    "set_interrupt_note",
]

DEBUG_ENV = "SEUNET_DEBUG"
"""Environment variable: when set to a non-empty value other than ``0``, tracebacks are printed in full."""

EXIT_STATUS = 2
"""Exit status of a run stopped by a :class:`SeunetError`."""

INTERRUPT_STATUS = 130
"""Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it)."""

_DEFAULT_NOTE = "stopped by Ctrl-C before anything was written."
_interrupt_note = _DEFAULT_NOTE


class SeunetError(Exception):
    """An error this project detected, with a message that says what, where (file or key) and how to fix it."""


class ConfigValueError(SeunetError, ValueError):
    """A bad value of a config key or command-line argument (the message names the key)."""


class DataError(SeunetError, ValueError):
    """Bad or missing data: a dataset folder, a datalist, a label file (the message names the path)."""


class DatalistError(DataError):
    """A ``datalist.json`` is missing, malformed, or refers to missing or inconsistent files."""


class ImageReadError(DataError):
    """An image or label file could not be read or has an unsupported layout (the message names the file)."""


class PreparationError(DataError):
    """An input file of a preparation script is missing, malformed or inconsistent (the message names it)."""


class ImageTooLargeError(SeunetError, ValueError):
    """A PNG/JPEG larger than the bound within which it is decoded whole."""


class InferenceError(SeunetError, RuntimeError):
    """Some inputs could not be segmented (the others were); the message names them."""


class MissingPathError(SeunetError, FileNotFoundError):
    """A file or folder the run needs does not exist (the message names it and the key that sets it)."""


class ExistingPathError(SeunetError, FileExistsError):
    """An output exists and may not be replaced (the message names it and how to allow or avoid it)."""


class CheckpointError(SeunetError, ValueError):
    """A checkpoint cannot be read, is of the other kind, or does not fit the configured network."""


class RunLockedError(SeunetError, RuntimeError):
    """A folder is in use by another run (the message names the folder and the holder's pid)."""


class ExportError(SeunetError, RuntimeError):
    """The network cannot be exported that way (the message says which way works)."""


class TrainingDivergedError(SeunetError, FloatingPointError):
    """The training loss or the weights became NaN or infinite (the message names the epoch and iteration)."""


def find_seunet_error(exc: BaseException | None) -> SeunetError | None:
    """The first :class:`SeunetError` in ``exc`` and its chain of causes and contexts, else ``None``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SeunetError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def set_interrupt_note(note: str | None) -> None:
    """Say what a Ctrl-C at this point of the run leaves behind and how to go on (one line, printed by the hook
    installed by :func:`install_excepthook` and written to the run's status file); ``None`` restores the default."""
    global _interrupt_note
    _interrupt_note = _DEFAULT_NOTE if note is None else str(note)


def interrupt_note() -> str:
    """The note of :func:`set_interrupt_note`."""
    return _interrupt_note


def _chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its causes and contexts, outermost first."""
    out: list[BaseException] = []
    while exc is not None and all(exc is not e for e in out):
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def config_error_line(exc: BaseException | None) -> str | None:
    """``config key 'KEY': Type: message`` for an exception raised while MONAI's config parser evaluated the
    config item ``KEY`` (the innermost :class:`monai.bundle.ConfigExpression` or ``ConfigComponent`` in the
    tracebacks, found by its class name), with the original error at the end of the chain; ``None`` when the
    exception did not come from a config item."""
    key = None
    for e in _chain(exc):
        tb = e.__traceback__
        while tb is not None:
            item = tb.tb_frame.f_locals.get("self")
            if type(item).__name__ in ("ConfigExpression", "ConfigComponent") and hasattr(item, "get_id"):
                key = item.get_id()
            tb = tb.tb_next
    if key is None:
        return None
    root = _chain(exc)[-1]
    message = " ".join(str(root).split())
    return f"config key {key!r}: {type(root).__name__}: {message}"


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if isinstance(exc, KeyboardInterrupt) and not _debug():
        sys.stderr.write(f"\ninterrupted: {_interrupt_note}\n")
        sys.stderr.flush()
        raise SystemExit(INTERRUPT_STATUS)
    ours = find_seunet_error(exc)
    config = None if ours is not None or _debug() else config_error_line(exc)
    if config is not None:
        sys.stderr.write(f"\nerror: {config}\n(set {DEBUG_ENV}=1 for the full traceback)\n")
        sys.stderr.flush()
        raise SystemExit(1)
    if ours is None or _debug():
        sys.__excepthook__(exc_type, exc, tb)
        if ours is None:
            return
    else:
        # a leading newline: a progress bar may have left the cursor mid-line
        sys.stderr.write(f"\nerror: {ours}\n(set {DEBUG_ENV}=1 for the full traceback)\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_STATUS)


def _record_factory(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Wrap a log-record factory so that a record logging a :class:`SeunetError` (or Ctrl-C) keeps its message line
    but not its traceback (Ignite and MONAI's ``StatsHandler`` log every engine exception with ``logger.exception``,
    through handlers created after the hook is installed; a factory covers them all)."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        quiet = isinstance(exc, KeyboardInterrupt) or find_seunet_error(exc) is not None
        if exc is not None and quiet and not _debug():
            record.exc_info, record.exc_text = None, None
        return record

    make._seunet = True  # type: ignore[attr-defined]
    return make


def install_excepthook() -> bool:
    """Print a :class:`SeunetError` as one line and exit with status 2, Ctrl-C as one line (:func:`interrupt_note`)
    and exit with status 130 (see the module docstring).

    Also makes log records of such an exception drop their traceback (see :func:`_record_factory`), unless
    ``SEUNET_DEBUG`` is set. Idempotent.

    Returns:
        ``True`` (so that a config expression can call it).
    """
    sys.excepthook = _excepthook
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_seunet", False):
        logging.setLogRecordFactory(_record_factory(factory))
    return True
