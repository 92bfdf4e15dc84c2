"""``seunet-experiment`` (and its wrapper ``scripts/run_experiment.py``): the command line reaches
``run_experiment`` with the parsed options; ``--override KEY=VALUE`` values are JSON where they parse as JSON."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seunet_monai.cli import experiment as cli

REPO = Path(__file__).resolve().parents[2]


def _script_main():
    spec = importlib.util.spec_from_file_location("run_experiment_script", REPO / "scripts" / "run_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fake(dataset_dir, out, variants, **kwargs):
        seen.append({"dataset_dir": dataset_dir, "out": out, "variants": variants, **kwargs})
        return {"failed": [] if len(seen) == 1 else ["unet"]}

    monkeypatch.setattr(cli, "run_experiment", fake)
    return seen


def test_script_and_console_script_are_the_same_main(calls):
    assert _script_main() is cli.main


def test_overrides_and_options_reach_the_runner(calls):
    rc = _script_main()(
        [
            "--dataset-dir",
            "D",
            "--out",
            "O",
            "--variants",
            "seunet,unet",
            "--epochs",
            "3",
            "--scales",
            "0.5,1",
            "--widths",
            "4,8,16,32,64",
            "--override",
            "scale_augmentation=true",
            "--override",
            "patch_size=[64, 64]",
            "--override",
            "fusion=pens",
            "--override",
            "batch_size = 4",
        ]
    )
    assert rc == 0
    (call,) = calls
    assert call["variants"] == ["seunet", "unet"] and call["epochs"] == 3 and call["scales"] == [0.5, 1.0]
    assert call["widths"] == [4, 8, 16, 32, 64]
    assert call["overrides"] == {"scale_augmentation": True, "patch_size": [64, 64], "fusion": "pens", "batch_size": 4}
    # exit status 1 when a variant failed
    assert cli.main(["--dataset-dir", "D", "--out", "O"]) == 1
    assert calls[1]["overrides"] is None


@pytest.mark.parametrize("bad", ["novalue", "=3", "--scales=0,1"])
def test_bad_arguments_exit_2_naming_the_option(calls, capsys, bad):
    args = ["--dataset-dir", "D", "--out", "O"] + (["--override", bad] if not bad.startswith("--") else [bad])
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2 and not calls
    err = capsys.readouterr().err
    assert ("--override must be KEY=VALUE" if "scales" not in bad else "--scales must be positive") in err


def test_sigterm_stops_the_running_job_with_its_process(tmp_path) -> None:
    """kill PID on a background run stops it like Ctrl-C: the job's training or sweep process dies with it (no
    orphan writing into the folder) and the command says how to resume."""
    pidfile = tmp_path / "child.pid"
    program = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from seunet_monai.cli import experiment\n"
        "from seunet_monai.experiments import runner\n"
        "experiment.run_experiment = lambda *a, **k: runner.run_logged([sys.executable, '-c', "
        "'import os, sys, time; open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(120)', "
        f"{str(pidfile)!r}], Path({str(tmp_path / 'job.log')!r}), os.environ)\n"
        f"sys.exit(experiment.main(['--dataset-dir', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", program], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "run the same command again" in err
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
