#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole test suite (CPU-sized, a few minutes).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python}
exec "$PY" -m pytest -q -p no:cacheprovider --timeout=900 "$@"
