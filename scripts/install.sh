#!/usr/bin/env bash
# Installs seunet-monai and its dependencies on a fresh machine.
# torch is installed first, pinned to 2.13.0: on this project's machines that is a local CPU wheel;
# letting pip resolve an unpinned torch would pull a multi-GB CUDA build. An existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet torch==2.13.0
fi
"$PY" -m pip install --quiet -e ".[test]"
