"""Console progress (seunet_monai.runtime.progress): one log line per epoch, a bar with the loss in its postfix that
never shares a line with log records, nothing drawn into a pipe unless asked."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
import torch
from ignite.engine import Engine, Events

from seunet_monai.runtime.progress import EpochLogger, ProgressBar, format_duration, format_megapixels, progress


def _trainer(losses_per_epoch: int = 3) -> Engine:
    def step(engine, batch):
        return {"loss": torch.tensor(float(batch))}

    return Engine(step)


def test_epoch_logger_logs_one_line_per_epoch_with_the_mean_loss(caplog):
    engine = _trainer()
    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    from monai.handlers import from_engine  # what the bundle uses: a 1-tuple for a dict output

    EpochLogger(output_transform=from_engine(["loss"], first=True), optimizer=opt, name="epochs").attach(engine)
    with caplog.at_level(logging.INFO, logger="epochs"):
        engine.run([1, 2, 6], max_epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "epochs"]
    assert len(lines) == 2
    assert re.fullmatch(r"Epoch 1/2 -- train_loss: 3\.0000, lr: 0\.01, 3 iterations in \d+\.\d s", lines[0]), lines[0]
    assert lines[1].startswith("Epoch 2/2 -- train_loss: 3.0000")


def test_bar_shows_the_loss_and_log_records_get_their_own_lines(capsys):
    """Bar and console log on the same stream (as on a terminal): every record starts a line of its own."""
    handler = logging.StreamHandler(sys.stderr)  # capsys's stream: a console handler as logging.conf makes one
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        engine = _trainer()
        ProgressBar(output_transform=lambda out: out["loss"], enabled=True).attach(engine)

        @engine.on(Events.ITERATION_COMPLETED)
        def _log(e):
            logging.getLogger("chatty").info("LOGRECORD %d", e.state.iteration)

        engine.run([1, 2, 6], max_epochs=2)
        assert handler in root.handlers  # the bar leaves the console handler of the logging setup in place
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    err = capsys.readouterr().err
    assert "loss=" in err and err.count("LOGRECORD") == 6
    assert re.search(r"[^\r\n]LOGRECORD", err) is None, err  # never glued to the bar's text


def test_no_bar_into_a_pipe_unless_enabled():
    out = io.StringIO()  # not a terminal
    engine = _trainer()
    ProgressBar(output_transform=lambda o: o["loss"], file=out).attach(engine)
    engine.run([1, 2], max_epochs=1)
    assert out.getvalue() == ""
    forced = io.StringIO()
    engine = _trainer()
    ProgressBar(desc="validation", file=forced, enabled=True).attach(engine)
    engine.run([1, 2], max_epochs=1)
    assert "validation" in forced.getvalue()


@pytest.mark.parametrize("enabled", [None, True])
def test_progress_yields_every_item(enabled):
    out = io.StringIO()
    assert list(progress(iter(range(5)), total=5, desc="sweep", enabled=enabled, file=out)) == [0, 1, 2, 3, 4]
    assert ("sweep" in out.getvalue()) == bool(enabled)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("word", ["false", "False", "0", "no"])
def test_progress_false_given_as_a_word_turns_bars_off(word):
    """Issue 25, item 12: `--progress false` arrives as the string "false", which is true as a Python bool."""
    out = _Terminal()
    engine = _trainer()
    ProgressBar(desc="training", file=out, enabled=word).attach(engine)
    engine.run([1, 2], max_epochs=1)
    assert list(progress(iter(range(3)), desc="sweep", enabled=word, file=out)) == [0, 1, 2]
    assert out.getvalue() == ""
    ProgressBar(desc="validation", file=out, enabled="true").attach(engine := _trainer())
    engine.run([1, 2], max_epochs=1)
    assert "validation" in out.getvalue()


def test_durations_and_pixel_counts_read_in_log_lines():
    assert [format_duration(t) for t in (0.04, 9.9, 75.4, 119.6, 210.0)] == [
        "0.0 s",
        "9.9 s",
        "75 s",
        "120 s",
        "3.5 min",
    ]
    assert format_megapixels(13_107_200) == "13.1 Mpx" and format_megapixels(20886) == "0.0209 Mpx"
