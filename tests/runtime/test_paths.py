"""Specification of ``seunet_monai.runtime.paths``: where the bundle is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import monai.bundle
from monai.bundle import ConfigWorkflow

from seunet_monai.runtime.paths import bundle_root, command_line_config_file, resolve_path, root_of_config_file

REPO = Path(__file__).resolve().parents[2]
MONAI_MAIN = str(Path(monai.bundle.__file__).with_name("__main__.py"))  # sys.argv[0] of python -m monai.bundle


def _bundle(tmp_path: Path) -> Path:
    """A bundle folder ``b`` whose ``configs/x.json`` runs ``bundle_root()``."""
    (tmp_path / "b" / "configs").mkdir(parents=True)
    cfg = tmp_path / "b" / "configs" / "x.json"
    cfg.write_text(
        json.dumps(
            {
                "imports": ["$import seunet_monai", "$import seunet_monai.runtime.paths"],
                "bundle_root": "$seunet_monai.runtime.paths.bundle_root()",
                "run": ["$@bundle_root"],
                "show": ["$print('ROOT', @bundle_root)"],
            }
        )
    )
    return cfg


def test_bundle_root_from_environment_argument_and_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("SEUNET_BUNDLE_ROOT", str(tmp_path))
    assert bundle_root() == str(tmp_path.resolve())
    assert bundle_root(tmp_path / "elsewhere" / "configs" / "x.json") == str(tmp_path.resolve())  # the variable wins
    monkeypatch.delenv("SEUNET_BUNDLE_ROOT")
    # outside a monai.bundle command and without an argument: the bundle folder of the source checkout
    assert bundle_root() == str(REPO / "bundle")
    # an explicit config file: the folder above its configs/ folder (or its own folder)
    assert bundle_root(tmp_path / "b" / "configs" / "x.json") == str((tmp_path / "b").resolve())
    assert bundle_root([str(tmp_path / "c" / "x.json")]) == str((tmp_path / "c").resolve())


def test_root_of_config_file_reads_every_form_of_the_argument(tmp_path):
    cfg = tmp_path / "b" / "configs" / "x.json"
    root = (tmp_path / "b").resolve()
    assert root_of_config_file(str(cfg)) == root_of_config_file(cfg) == root
    assert root_of_config_file(f"['{cfg}', '{tmp_path / 'other.json'}']") == root  # the first file counts
    assert root_of_config_file(json.dumps([str(cfg)])) == root
    assert root_of_config_file(None) is None and root_of_config_file([]) is None
    assert root_of_config_file("[not a list") is None


def test_command_line_config_file_of_monai_bundle_only():
    assert command_line_config_file([MONAI_MAIN, "run", "training", "--config_file", "a/configs/t.json"]) == (
        "a/configs/t.json"
    )
    assert command_line_config_file([MONAI_MAIN, "run", "--config_file=x.json", "--epochs", "1"]) == "x.json"
    assert command_line_config_file([MONAI_MAIN, "run", "--epochs", "1"]) is None
    assert command_line_config_file(["/usr/bin/pytest", "--config_file", "x.json"]) is None  # another program
    assert command_line_config_file([]) is None


def test_a_workflow_run_from_the_command_line_finds_its_bundle_from_any_directory(tmp_path, monkeypatch):
    """``python -m monai.bundle run --config_file B/configs/x.json``: B, whatever the working directory, in
    ``initialize``/``check_properties`` (in-process, the command line as MONAI sees it) and in a real run."""
    cfg = _bundle(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [MONAI_MAIN, "run", "--config_file", str(cfg)])
    wf = ConfigWorkflow(config_file=str(cfg), workflow_type=None, logging_file=False)
    wf.initialize()
    assert wf.run() == [str((tmp_path / "b").resolve())]
    # a program building the workflow itself names the root as MONAI's bundles expect
    monkeypatch.setattr(sys, "argv", ["program"])
    wf = ConfigWorkflow(config_file=str(cfg), workflow_type=None, logging_file=False, bundle_root=str(tmp_path))
    wf.initialize()
    assert wf.run() == [str(tmp_path)]
    out = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "show", "--config_file", str(cfg)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"ROOT {(tmp_path / 'b').resolve()}" in out.stdout


def test_resolve_path(tmp_path):
    assert resolve_path("x/y", tmp_path) == str((tmp_path / "x" / "y").resolve())
    assert resolve_path(str(tmp_path), "/elsewhere") == str(tmp_path)
