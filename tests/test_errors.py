"""Specification of ``seunet_monai.errors``: the project's errors are also the built-in type they stand for, are
found through MONAI's wrapping, and the installed hook reports them as one line with a fixed exit status."""

from __future__ import annotations

import logging
import sys

import pytest

from seunet_monai import errors
from seunet_monai.errors import (
    EXIT_STATUS,
    INTERRUPT_STATUS,
    CheckpointError,
    ConfigValueError,
    DataError,
    DatalistError,
    MissingPathError,
    SeunetError,
    config_error_line,
    find_seunet_error,
    interrupt_note,
    set_interrupt_note,
)


def test_seunet_errors_are_found_through_monai_wrapping():
    try:
        try:
            raise DataError("dataset_dir '/x' holds no datalist.json")
        except DataError as e:
            raise RuntimeError("Failed to evaluate ConfigExpression") from e
    except RuntimeError as wrapped:
        found = find_seunet_error(wrapped)
    assert isinstance(found, SeunetError) and isinstance(found, ValueError) and "/x" in str(found)
    assert find_seunet_error(RuntimeError("other")) is None
    assert find_seunet_error(None) is None


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (ConfigValueError, ValueError),
        (DatalistError, ValueError),
        (MissingPathError, FileNotFoundError),
        (CheckpointError, ValueError),
    ],
)
def test_every_error_is_also_its_builtin_type(cls, builtin):
    assert issubclass(cls, SeunetError) and issubclass(cls, builtin)


def test_every_public_error_class_is_a_seunet_error():
    classes = [getattr(errors, name) for name in errors.__all__ if name.endswith("Error")]
    assert classes and all(issubclass(c, SeunetError) for c in classes)


def test_a_seunet_error_prints_one_line_and_exits_with_status_2(monkeypatch, capsys):
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    exc = DataError("no datalist.json in '/data'")
    with pytest.raises(SystemExit) as stop:
        errors._excepthook(DataError, exc, None)
    assert stop.value.code == EXIT_STATUS == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines[0] == "error: no datalist.json in '/data'" and errors.DEBUG_ENV in lines[1] and len(lines) == 2


def test_ctrl_c_prints_the_interrupt_note_and_exits_with_status_130(monkeypatch, capsys):
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    set_interrupt_note("the last checkpoint is kept; rerun with --resume true.")
    try:
        assert interrupt_note() == "the last checkpoint is kept; rerun with --resume true."
        with pytest.raises(SystemExit) as stop:
            errors._excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    finally:
        set_interrupt_note(None)
    assert stop.value.code == INTERRUPT_STATUS == 130
    assert capsys.readouterr().err.strip() == "interrupted: the last checkpoint is kept; rerun with --resume true."
    assert interrupt_note().startswith("stopped by Ctrl-C")


def test_other_errors_keep_the_usual_traceback(monkeypatch, capsys):
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    calls = []
    monkeypatch.setattr(sys, "__excepthook__", lambda *args: calls.append(args))
    exc = KeyError("x")
    errors._excepthook(KeyError, exc, None)  # returns: Python's own status 1
    assert calls == [(KeyError, exc, None)] and "error:" not in capsys.readouterr().err


def test_config_error_line_is_none_outside_a_config_item():
    assert config_error_line(ValueError("bad")) is None
    assert config_error_line(None) is None


def test_install_excepthook_is_idempotent(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    factory = logging.getLogRecordFactory()
    try:
        assert errors.install_excepthook() is True and errors.install_excepthook() is True
        assert sys.excepthook is errors._excepthook
        installed = logging.getLogRecordFactory()
        assert getattr(installed, "_seunet", False)
        errors.install_excepthook()
        assert logging.getLogRecordFactory() is installed
    finally:
        logging.setLogRecordFactory(factory)
