"""Console progress of the bundle's engines and loops: progress bars that never share a line with log records,
and one log line per training epoch.

Left to themselves, a ``tqdm`` bar (stderr, redrawn in place with ``\\r``) and per-iteration log lines (stdout)
end up on one line of the terminal. Here:

- :class:`ProgressBar` attaches ignite's :class:`ignite.handlers.ProgressBar` (the loss goes in the bar's postfix)
  and, while the engine runs, sends the console log records through ``tqdm.write``
  (:func:`tqdm.contrib.logging.logging_redirect_tqdm`), which prints them above the bar;
- :class:`EpochLogger` logs one line per epoch (mean loss of the epoch, learning rate, time) in place of
  MONAI's per-iteration ``StatsHandler`` line;
- :func:`progress` does the same for a plain loop (the scale sweep);
- :func:`format_duration` and :func:`format_megapixels` write the times and amounts of work of a long job's
  plan and progress lines (the calibration, the fusion cache).

Bars are drawn on a terminal only (``enabled=None``): a log file captured from a pipe gets the log lines, not
hundreds of bar redraws. ``enabled=True`` forces them.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar as IgniteBar
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seunet_monai.runtime.checks import as_flag

__all__ = ["EpochLogger", "ProgressBar", "format_duration", "format_megapixels", "progress"]

logger = logging.getLogger(__name__)

_redirect: AbstractContextManager | None = None
_redirect_depth = 0


def _redirect_logging(on: bool) -> None:
    """Route the root logger's console handlers through ``tqdm.write`` while any bar is open (nesting counted:
    a validation bar opens inside a training run)."""
    global _redirect, _redirect_depth
    if on:
        _redirect_depth += 1
        if _redirect_depth == 1:
            _redirect = logging_redirect_tqdm()
            _redirect.__enter__()
    elif _redirect_depth > 0:
        _redirect_depth -= 1
        if _redirect_depth == 0 and _redirect is not None:
            _redirect.__exit__(None, None, None)
            _redirect = None


def _show(enabled: bool | str | None, file: IO[str]) -> bool:
    """Whether to draw: ``enabled`` read as a flag (``--progress false`` arrives as the string ``"false"``), or on a
    terminal only when it is ``None``."""
    if enabled is None:
        isatty = getattr(file, "isatty", None)
        return bool(isatty and isatty())
    return as_flag(enabled, "progress")


def format_duration(seconds: float) -> str:
    """A duration for a log line: ``"4.2 s"`` under 10 s, ``"75 s"`` under 2 min, else ``"3.5 min"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_megapixels(pixels: float) -> str:
    """An amount of pixels for a log line or a report, in megapixels to 3 significant digits: ``"13.1 Mpx"``."""
    return f"{pixels / 1e6:.3g} Mpx"


def _number(value: Any) -> float:
    """A loss as a float: a number, a tensor (mean), or a 1-tuple of either (``from_engine(["loss"])`` of a dict)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean().item())
    return float(value)


class ProgressBar:
    """A progress bar for an ignite / MONAI engine (``attach(engine)``, as MONAI handlers do in bundle configs).

    Args:
        desc: text before the bar (e.g. ``"validation"``).
        output_transform: maps ``engine.state.output`` to the number shown in the postfix as ``loss`` (e.g.
            ``monai.handlers.from_engine(["loss"], first=True)``); ``None`` shows no postfix.
        persist: keep the finished bar on screen (default: it is removed at the end of each epoch).
        enabled: draw the bar (a boolean or a flag word such as ``"false"``); ``None`` (default) on a terminal only.
        file: stream of the bar (default ``sys.stderr``).
    """

    def __init__(
        self,
        desc: str | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        persist: bool = False,
        enabled: bool | str | None = None,
        file: IO[str] | None = None,
    ) -> None:
        self.desc = desc
        self.output_transform = output_transform
        self.persist = persist
        self.enabled = enabled
        self.file = file

    def _postfix(self, output: Any) -> dict[str, float]:
        assert self.output_transform is not None
        return {"loss": _number(self.output_transform(output))}

    def attach(self, engine: Engine) -> None:
        file = sys.stderr if self.file is None else self.file
        if not _show(self.enabled, file):
            return

        kwargs: dict[str, Any] = {"persist": self.persist, "file": file}
        if self.desc is not None:
            kwargs["desc"] = self.desc
        bar = IgniteBar(**kwargs)
        bar.attach(engine, output_transform=None if self.output_transform is None else self._postfix)
        engine.add_event_handler(Events.STARTED, _redirect_logging, True)
        # not EXCEPTION_RAISED: a handler of that event makes ignite swallow the exception
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, _redirect_logging, False)


class EpochLogger:
    """Log one line at the end of every epoch of a trainer, e.g.
    ``Epoch 3/70 -- train_loss: 0.4123, lr: 1.2e-03, 12 iterations in 4.1 s``.

    Args:
        output_transform: maps ``engine.state.output`` to the loss (a number or tensor); the line shows the mean
            over the epoch's iterations.
        optimizer: when given, the learning rate of its first parameter group at the end of the epoch.
        tag_name: name of the loss in the line.
        name: logger name (default: this module's).
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any],
        optimizer: torch.optim.Optimizer | None = None,
        tag_name: str = "train_loss",
        name: str | None = None,
    ) -> None:
        self.output_transform = output_transform
        self.optimizer = optimizer
        self.tag_name = tag_name
        self.logger = logger if name is None else logging.getLogger(name)
        self._sum = 0.0
        self._count = 0
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._log)

    def _reset(self, engine: Engine) -> None:
        self._sum, self._count, self._start = 0.0, 0, time.perf_counter()

    def _accumulate(self, engine: Engine) -> None:
        self._sum += _number(self.output_transform(engine.state.output))
        self._count += 1

    def line(self, engine: Engine) -> str:
        """The epoch's line (what :meth:`attach` logs at ``EPOCH_COMPLETED``)."""
        mean = self._sum / self._count if self._count else math.nan
        parts = [f"{self.tag_name}: {mean:.4f}"]
        if self.optimizer is not None and self.optimizer.param_groups:
            parts.append(f"lr: {self.optimizer.param_groups[0]['lr']:.3g}")
        took = time.perf_counter() - self._start
        parts.append(f"{self._count} iterations in {took:.1f} s")
        return f"Epoch {engine.state.epoch}/{engine.state.max_epochs} -- " + ", ".join(parts)

    def _log(self, engine: Engine) -> None:
        self.logger.info(self.line(engine))


def progress(
    iterable: Iterable,
    total: int | None = None,
    desc: str | None = None,
    enabled: bool | None = None,
    file: IO[str] | None = None,
) -> Iterator:
    """Iterate ``iterable`` with a progress bar (on a terminal only, unless ``enabled``), log records printed
    above it. A generator: the bar closes and logging is restored when the loop ends or is left."""
    file = sys.stderr if file is None else file
    if not _show(enabled, file):
        yield from iterable
        return

    _redirect_logging(True)
    try:
        with tqdm(iterable, total=total, desc=desc, file=file, leave=False, dynamic_ncols=True) as bar:
            yield from bar
    finally:
        _redirect_logging(False)
