"""Specification of ``seunet_monai.runtime.paths``: where the bundle is."""

from __future__ import annotations

import json
from pathlib import Path

from seunet_monai.runtime import paths
from seunet_monai.runtime.paths import bundle_root, resolve_path

REPO = Path(__file__).resolve().parents[2]


def test_bundle_root_from_environment_workflow_and_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("SEUNET_BUNDLE_ROOT", str(tmp_path))
    assert bundle_root() == str(tmp_path.resolve())
    monkeypatch.delenv("SEUNET_BUNDLE_ROOT")
    # outside any monai.bundle call: the bundle folder of the source checkout
    assert bundle_root() == str(REPO / "bundle")
    # inside a ConfigWorkflow: the folder above the configs' folder, whatever the working directory
    from monai.bundle import ConfigWorkflow

    (tmp_path / "b" / "configs").mkdir(parents=True)
    cfg = tmp_path / "b" / "configs" / "x.json"
    cfg.write_text(json.dumps({"imports": ["$import seunet_monai", "$import seunet_monai.runtime.paths"],
                               "root": "$seunet_monai.runtime.paths.bundle_root()", "run": ["$@root"]}))
    monkeypatch.chdir(tmp_path)
    wf = ConfigWorkflow(config_file=str(cfg), workflow_type=None, logging_file=False)
    wf.initialize()
    assert wf.run() == [str((tmp_path / "b").resolve())]
    assert paths._root_from_config_file(f"['{cfg}']") == (tmp_path / "b").resolve()

def test_resolve_path(tmp_path):
    assert resolve_path("x/y", tmp_path) == str((tmp_path / "x" / "y").resolve())
    assert resolve_path(str(tmp_path), "/elsewhere") == str(tmp_path)
