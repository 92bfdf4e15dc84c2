"""Where the bundle lives (seunet_monai.runtime.resources, ``python -m seunet_monai bundle-path``), in a source checkout
and in a wheel installed into a fresh virtual environment (``pip install .``, not editable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from seunet_monai.errors import MissingPathError
from seunet_monai.runtime import resources

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPTS = [
    "seunet-prepare-monuseg",
    "seunet-prepare-bcss",
    "seunet-make-synthetic",
    "seunet-make-synthetic-volumes",
    "seunet-experiment",
    "seunet-compare",
    "seunet-scale-shift",
]


def _env() -> dict[str, str]:
    """This environment without PYTHONPATH or a bundle-root override: what a user's shell would have."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEUNET_BUNDLE_ROOT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_bundle_path_in_a_source_checkout_is_the_top_level_bundle_folder():
    assert resources.bundle_path() == REPO / "bundle"
    assert resources.config_path("train.json") == REPO / "bundle" / "configs" / "train.json"
    assert resources.config_path("variants/unet.json").is_file()
    with pytest.raises(MissingPathError, match="no config 'nope.json'"):
        resources.config_path("nope.json")


def test_bundle_path_command_prints_the_folder_holding_configs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "seunet_monai", "bundle-path"],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        env={**_env(), "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert proc.stdout == f"{REPO / 'bundle'}\n" and proc.stderr == ""


def _sources(dst: Path) -> Path:
    """The files git would commit (tracked, and untracked but not ignored) copied to ``dst``: no build folders,
    generated data or checkpoints of this checkout end up in the wheel."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=REPO,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to list the source files")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """``pip install --no-deps --no-build-isolation .`` into a fresh venv that sees this environment's packages
    (torch, MONAI, pip, setuptools, wheel, ...) but not this checkout (about 15 s on a 2-core CPU)."""
    root = tmp_path_factory.mktemp("wheel")
    src = _sources(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # `venv --system-site-packages` would see the base interpreter's packages, not those of the virtual environment
    # running the tests: list this environment's site-packages folders in a .pth file instead (plain paths: the
    # .pth files there, among them this checkout's editable install, are not run, so the checkout stays unseen)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "parent_environment.pth").write_text("".join(f"{p}\n" for p in parents))
    # the pip of this environment, run by the venv's interpreter, installs into the venv
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return {"python": python, "bin": venv / "bin", "cwd": elsewhere, "root": root}


def _run(installed: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=installed["cwd"], env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow  # about 30 s on a busy 2-core CPU: a pip install and a few interpreters importing torch and MONAI
def test_installed_wheel_ships_the_bundle(installed):
    out = _run(installed, installed["python"], "-m", "seunet_monai", "bundle-path").stdout
    bundle = Path(out.strip())
    assert bundle.name == "bundle" and bundle.parent.name == "seunet_monai"
    assert bundle.is_relative_to(installed["root"] / "venv")  # the installed package data, not this checkout
    for name in (
        "configs/train.json",
        "configs/evaluate.json",
        "configs/calibrate.json",
        "configs/inference.json",
        "configs/metadata.json",
        "configs/logging.conf",
        "configs/variants/unet.json",
        "configs/variants/3d/evaluate.json",
        "models/model.pt",
        "docs/README.md",
        "LICENSE",
    ):
        assert (bundle / name).is_file(), name
    assert not (bundle / "data").exists() and not (bundle / "models" / "last.pt").exists()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    version = _run(installed, installed["python"], "-m", "seunet_monai", "version").stdout.strip()
    assert meta["version"] == version == meta["required_packages_version"]["seunet-monai"]
    # every console script is installed and loads its main (one process); one of them runs for real
    code = (
        "from importlib.metadata import entry_points\n"
        "eps = {e.name: e for e in entry_points(group='console_scripts') if e.name.startswith('seunet-')}\n"
        "print(sorted(n for n, e in eps.items() if callable(e.load())))"
    )
    assert _run(installed, installed["python"], "-c", code).stdout.strip() == str(sorted(CONSOLE_SCRIPTS))
    assert all((installed["bin"] / script).is_file() for script in CONSOLE_SCRIPTS)
    usage = _run(installed, installed["bin"] / "seunet-make-synthetic", "--help").stdout
    assert "usage: seunet-make-synthetic" in usage


@pytest.mark.slow
def test_installed_bundle_resolves_its_root_and_variants(installed):
    """The installed train.json, parsed by MONAI from another directory: bundle_root is the installed folder
    (never the working directory), and the experiment runner reads its variant files there."""
    code = (
        "import json, sys\n"
        "from monai.bundle import ConfigWorkflow\n"
        "from seunet_monai.experiments import variants\n"
        "from seunet_monai.runtime import resources\n"
        "cfg = str(resources.config_path('train.json'))\n"
        "wf = ConfigWorkflow(config_file=cfg, workflow_type='train', logging_file=False)\n"
        "wf.initialize()\n"
        "print(json.dumps({'root': wf.bundle_root, 'dataset_dir': wf.dataset_dir,"
        " 'bundle': str(resources.bundle_path()), 'configs': str(variants.CONFIG_DIR)}))\n"
    )
    got = json.loads(_run(installed, installed["python"], "-c", code).stdout.strip().splitlines()[-1])
    assert got["root"] == got["bundle"] and got["configs"] == got["bundle"] + "/configs"
    assert got["dataset_dir"] == got["bundle"] + "/data/synthetic_nuclei"
    assert not got["root"].startswith(str(installed["cwd"]))
    assert (Path(got["configs"]) / "variants" / "sesn.json").is_file()


@pytest.mark.slow  # a 1-epoch training of a tiny network on 2 tiny images: about 30 s on a busy 2-core CPU
def test_installed_bundle_trains_from_another_directory(installed):
    """The documented command, from an unrelated working directory, with no folder overrides: the embedded default
    data, the logs and the checkpoints go into the installed bundle folder, nothing into the working directory."""
    bundle = Path(_run(installed, installed["python"], "-m", "seunet_monai", "bundle-path").stdout.strip())
    proc = _run(
        installed,
        installed["python"],
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        bundle / "configs" / "train.json",
        "--network_def#num_scales",
        "2",
        "--network_def#channels",
        "[4,8,16,32,64]",
        "--synthetic#n_train",
        "2",
        "--synthetic#n_val",
        "1",
        "--synthetic#n_test",
        "1",
        "--synthetic#size",
        "64",
        "--patch_size",
        "[64,64]",
        "--shift",
        "8",
        "--epochs",
        "1",
        "--batch_size",
        "2",
        "--calibrate_fusion",
        "False",
    )
    assert "Epoch 1/1 -- train_loss:" in proc.stdout + proc.stderr
    assert (bundle / "data" / "synthetic_nuclei" / "datalist.json").is_file()
    assert (bundle / "logs" / "models" / "last.pt").is_file() and not (bundle / "models" / "last.pt").exists()
    assert list(installed["cwd"].iterdir()) == []
