#!/usr/bin/env bash
# Installs seunet-monai and its dependencies into the Python environment of `python` (or $PYTHON), saying what
# it installs and where, and ends with the command to try next.
# torch is installed first, pinned to 2.13.0: on this project's machines that is a local CPU wheel;
# letting pip resolve an unpinned torch would pull a multi-GB CUDA build. An existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PREFIX=$("$PY" -c "import sys; print(sys.prefix)")
echo "install.sh: installing into $PREFIX ($("$PY" --version 2>&1), $(command -v "$PY" || echo "$PY"))"
if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install.sh: [1/2] torch $("$PY" -c "import torch; print(torch.__version__)") is already installed, kept"
else
    echo "install.sh: [1/2] torch==2.13.0 (CPU build; about a minute) ..."
    "$PY" -m pip install --quiet torch==2.13.0
fi
echo "install.sh: [2/2] seunet-monai, editable from $PWD, with MONAI and its other dependencies" \
     "(pyproject.toml) and the test tools (pytest, setuptools, wheel) ..."
"$PY" -m pip install --quiet -e ".[test]"
VERSION=$("$PY" -c "from importlib.metadata import version; print(version('seunet-monai'))")
echo "install.sh: done: seunet-monai $VERSION and its command-line tools (seunet-*) in $PREFIX"
echo "Next, segment your own H&E images (a folder DIR of PNG, JPEG, TIFF or SVS files) with the shipped model:"
echo "  python -m monai.bundle run inferring --config_file bundle/configs/inference.json --input_dir DIR --output_dir OUT"
