"""Specification of ``seunet_monai.runtime.excepthook``: importing it installs the one-line error hook."""

from __future__ import annotations

import importlib
import logging
import sys

from seunet_monai import errors


def test_importing_installs_the_hook(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    factory = logging.getLogRecordFactory()
    try:
        module = importlib.import_module("seunet_monai.runtime.excepthook")
        importlib.reload(module)
        assert sys.excepthook is errors._excepthook
    finally:
        logging.setLogRecordFactory(factory)
