#!/usr/bin/env bash
# The main job: install, then a short SEUNet demo (the benchmark of the GD layers and the network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python}
"$PY" scripts/benchmark.py --quick
