"""The README's commands as a newcomer runs them: ``scripts/install.sh`` says what it installs, where, and what to
try next; ``.ci/run`` runs the README's test command in a fresh virtual environment and fails when it fails; the
``test`` extra brings the tools that building a wheel needs (``tests/runtime/test_resources.py``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_test_extra_installs_the_tools_that_build_a_wheel():
    """A fresh virtual environment has no ``wheel``: ``pip install --no-build-isolation`` then ends in
    ``invalid command 'bdist_wheel'`` unless the project's own files install it."""
    text = (REPO / "pyproject.toml").read_text()
    extra = re.search(r"^test = \[(.*)\]$", text, re.MULTILINE)
    assert extra is not None
    names = {re.split(r"[<>=!~ ]", n.strip().strip('"'))[0] for n in extra.group(1).split(",")}
    assert {"pytest", "pytest-timeout", "setuptools", "wheel"} <= names


def _stub_python(tmp_path: Path) -> Path:
    """A ``python`` that logs ``-m pip`` calls instead of installing and runs everything else for real."""
    stub = tmp_path / "python"
    stub.write_text(
        f'#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "{tmp_path}/pip.log"; '
        f'exit 0; fi\nexec "{sys.executable}" "$@"\n'
    )
    stub.chmod(0o755)
    return stub


def test_install_script_says_what_it_installs_where_and_what_to_try_next(tmp_path):
    env = {**os.environ, "PYTHON": str(_stub_python(tmp_path))}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert f"installing into {sys.prefix}" in lines[0]
    assert "torch" in lines[1] and "already installed, kept" in lines[1]  # this environment has torch
    assert "seunet-monai, editable from" in proc.stdout and "wheel" in proc.stdout
    assert (tmp_path / "pip.log").read_text().split() == ["-m", "pip", "install", "--quiet", "-e", ".[test]"]
    assert lines[-1].split() == [
        "python",
        "-m",
        "monai.bundle",
        "run",
        "inferring",
        "--config_file",
        "bundle/configs/inference.json",
        "--input_dir",
        "DIR",
        "--output_dir",
        "OUT",
    ]


def _ci_copy(tmp_path: Path, rc: int) -> Path:
    """``.ci/run`` in a copy of the repository layout whose ``scripts/test.sh`` reports the interpreter it runs
    and exits with ``rc``."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy2(REPO / ".ci" / "run", root / ".ci" / "run")
    # the real test.sh installs ruff with the `test` extra; this one leaves a stub that records how it is called
    stub = (
        "python - <<'PY'\n"
        "import pathlib, site\n"
        "d = pathlib.Path(site.getsitepackages()[0]) / 'ruff'\n"
        "d.mkdir()\n"
        "(d / '__init__.py').write_text('')\n"
        "(d / '__main__.py').write_text(\"import sys; open('ruff.txt', 'a').write(' '.join(sys.argv[1:]) + '\\\\n')\")\n"
        "PY\n"
    )
    (root / "scripts" / "test.sh").write_text(
        'python -c "import sys; print(sys.prefix, sys.base_prefix != sys.prefix)" > used.txt\n'
        f'echo "PYTHON=${{PYTHON:-}}" >> used.txt\n{stub}exit {rc}\n'
    )
    return root


@pytest.mark.slow  # two `python -m venv` (with pip): a few seconds each
@pytest.mark.parametrize("rc", [0, 3])
def test_ci_runs_the_test_command_in_a_fresh_virtual_environment(tmp_path, rc):
    root = _ci_copy(tmp_path, rc)
    venv = root / ".ci-venv"
    venv.mkdir()
    (venv / "left-over").write_text("from an earlier run")
    env = {**os.environ, "PYTHON": "/not/this/python", "CI_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(root / ".ci" / "run")], env=env, capture_output=True, text=True)
    assert proc.returncode == rc, proc.stdout + proc.stderr  # a failing test command fails CI
    prefix, in_venv = (root / "used.txt").read_text().splitlines()[0].split()
    assert Path(prefix) == venv and in_venv == "True"
    assert (root / "used.txt").read_text().splitlines()[1] == "PYTHON="
    assert not (venv / "left-over").exists()  # recreated on every run
    assert (venv / "bin" / "pip").exists()  # with pip, so scripts/install.sh can install torch and the package
    # then the lint and the format check, only when the tests passed
    assert (
        (root / "ruff.txt").read_text().splitlines()
        == ["check seunet_monai tests scripts", "format --check seunet_monai tests scripts"]
        if rc == 0
        else not (root / "ruff.txt").exists()
    )
