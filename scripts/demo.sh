#!/usr/bin/env bash
# The whole pipeline on generated data (or, with a second argument, on a real Kaggle download).
# Called by `make demo [DATA=...]`; every step is a plain command you can run yourself.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${1:-demo}
DATA=${2:-}

if [ -z "$DATA" ]; then
  echo "== 1/3 generating synthetic Kaggle-layout data in $OUT/kaggle"
  $PY -m convert synth --out "$OUT/kaggle" --patients 300 --test-patients 40 --seed 0
  DATA="$OUT/kaggle"
fi
echo "== 2/3 converting $DATA to a YOLO dataset in $OUT/dataset"
$PY -m convert rsna --src "$DATA" --out "$OUT/dataset" --imgsz 256
echo "== 3/3 checking the dataset"
$PY -m convert check "$OUT/dataset"
echo "dataset: $OUT/dataset/data.yaml"
