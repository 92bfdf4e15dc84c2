#!/usr/bin/env bash
# The main job: install, train SEUNet briefly on the embedded default dataset (synthetic H&E-like nuclei,
# generated on first use), evaluate it on the test split, then the short speed benchmark.
#
# The training is the bundle's own command, shortened with command-line overrides so that it takes a few
# minutes on 2 CPU cores: a narrower network (channels 20..320 instead of 60..960, still 5 scale groups),
# 30 epochs of batch 4 instead of 70 of batch 20; the evaluation's scale sweep uses 3 scales (0.5, 1, 2)
# instead of the 17 of the paper. Outputs go to runs/main/ (data, logs, models, eval).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python}
OUT=${MAIN_OUT:-runs/main}
SHORT=(--network_def#channels "[20,40,80,160,320]" --epochs "${MAIN_EPOCHS:-30}" --batch_size 4 --val_interval 10)
DIRS=(--dataset_dir "$OUT/data" --output_dir "$OUT/logs" --ckpt_dir "$OUT/models")

# --overwrite true: a rerun trains afresh, replacing the previous run's checkpoints in $OUT/models
"$PY" -m monai.bundle run training --config_file bundle/configs/train.json "${DIRS[@]}" "${SHORT[@]}" --overwrite true
"$PY" -m monai.bundle run evaluating --config_file "['bundle/configs/train.json','bundle/configs/evaluate.json']" \
    "${DIRS[@]}" "${SHORT[@]}" --scales "${MAIN_SCALES:-[0.5,1,2]}"
echo "test-split scores (dataset-wide IoU, scale 1): $OUT/logs/eval/metrics.json"
cat "$OUT/logs/eval/metrics.json"
"$PY" scripts/benchmark.py --quick
