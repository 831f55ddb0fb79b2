#!/usr/bin/env bash
# The whole pipeline on generated data (or, with a second argument, on a real Kaggle download):
# synthetic DICOMs -> YOLO dataset -> check -> train + Kaggle rescoring -> test-set submission -> validation.
# Called by `make demo [DATA=...]`; every step is a plain command you can run yourself.
#
#   bash scripts/demo.sh [OUT] [KAGGLE_DIR]      OUT defaults to demo/
#
# Defaults (override with environment variables):
#   synthetic:  DEMO_MODEL=yolov8n.yaml (from scratch, offline)  DEMO_IMGSZ=192  DEMO_EPOCHS=30
#               DEMO_HYP=yolo_configs/hyp/small_data.yaml (batch 8 = nominal batch, 1-epoch warmup, mosaic)
#   real data:  DEMO_MODEL=yolo11s.pt (COCO-pretrained: needs RSNA_YOLO_ONLINE=1 or a local .pt path)
#               DEMO_IMGSZ=640 (the 1024-px films are converted to 640)  DEMO_EPOCHS=30
#               DEMO_HYP=yolo_configs/hyp/xray.yaml
#   DEMO_ARGS="key=value ..." is appended to the training command (e.g. "device=0 batch=32").
# A GPU, when present, is used by Ultralytics automatically (set device=cpu in DEMO_ARGS to avoid it).
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${1:-demo}
DATA=${2:-}
START=$(date +%s)

if [ -z "$DATA" ]; then
  # The synthetic demo never touches the network: W&B stays offline even where an API key is configured.
  export WANDB_MODE=${WANDB_MODE:-offline}
  MODEL=${DEMO_MODEL:-yolov8n.yaml}
  IMGSZ=${DEMO_IMGSZ:-192}
  EPOCHS=${DEMO_EPOCHS:-30}
  HYP=${DEMO_HYP:-yolo_configs/hyp/small_data.yaml}
  TEST_DIR="$OUT/kaggle/stage_2_test_images"
else
  MODEL=${DEMO_MODEL:-yolo11s.pt}
  IMGSZ=${DEMO_IMGSZ:-640}
  EPOCHS=${DEMO_EPOCHS:-30}
  HYP=${DEMO_HYP:-yolo_configs/hyp/xray.yaml}
  TEST_DIR="$DATA/stage_2_test_images"
  # Fail before converting ~30k films if the pretrained weights cannot be had: the same check and message
  # as python -m train (a local file, Ultralytics' weights folder, or RSNA_YOLO_ONLINE=1 to download).
  $PY -c "import sys, train; from core.cli import call_reporting_errors; from train.args import resolve_model
sys.exit(call_reporting_errors('demo', lambda m: resolve_model(m) and 0, sys.argv[1]))" "$MODEL"
fi
mkdir -p "$OUT"
ABS_OUT=$(cd "$OUT" && pwd)
RUN="$ABS_OUT/runs/train"

if [ -z "$DATA" ]; then
  if [ -f "$OUT/kaggle/stage_2_train_labels.csv" ]; then
    echo "== 1/6 reusing the synthetic Kaggle-layout data in $OUT/kaggle"
  else
    echo "== 1/6 generating synthetic Kaggle-layout data in $OUT/kaggle (300 patients + 40 test)"
    $PY -m convert synth --out "$OUT/kaggle" --patients 300 --test-patients 40 --seed 0
  fi
  DATA="$OUT/kaggle"
else
  echo "== 1/6 using the Kaggle download in $DATA"
fi

echo "== 2/6 converting $DATA to a YOLO dataset in $OUT/dataset (longer side $IMGSZ px)"
$PY -m convert rsna --src "$DATA" --out "$OUT/dataset" --imgsz "$IMGSZ"

echo "== 3/6 checking the dataset"
$PY -m convert check "$OUT/dataset"

echo "== 4/6 training $MODEL ($HYP) for $EPOCHS epochs, then rescoring best.pt on val with the Kaggle metric"
rm -rf "$RUN"  # a rerun of the demo starts its training afresh
# shellcheck disable=SC2086  # DEMO_ARGS is a list of key=value words
$PY -m train data="$OUT/dataset/data.yaml" cfg="$HYP" model="$MODEL" imgsz="$IMGSZ" \
  epochs="$EPOCHS" project="$ABS_OUT/runs" name=train ${DEMO_ARGS:-}
# (python -m train wrote kaggle.json; to redo the rescoring alone: python -m analysis rescore RUN --data ...)

if [ -d "$TEST_DIR" ]; then
  echo "== 5/6 predicting the test set into a submission with the tuned threshold and box scale"
  $PY -m analysis submit --weights "$RUN" --from-run "$RUN" --images "$TEST_DIR" --out "$OUT/submission.csv" \
    --imgsz "$IMGSZ" --quiet
  echo "== 6/6 validating the submission"
  $PY -m analysis validate --images "$TEST_DIR" "$OUT/submission.csv"
  SUBMISSION="$OUT/submission.csv"
else
  echo "== 5/6, 6/6 skipped: no test images in $TEST_DIR"
  SUBMISSION="(none: no $TEST_DIR)"
fi

SCORE=$($PY -c "import json,sys; k=json.load(open(sys.argv[1])); \
print(f\"{k['score']:.4f} (conf {k['conf']:.2f}, box scale {k['scale']:.2f}, {k['n_images']} val images)\")" \
  "$RUN/kaggle.json")
echo
echo "== done in $(($(date +%s) - START)) s"
echo "dataset:          $OUT/dataset/data.yaml   (report: $OUT/dataset/report.json)"
echo "training run:     $RUN   (args.yaml, results.csv, weights/best.pt)"
echo "Kaggle score:     $RUN/kaggle.json   (threshold sweep: $RUN/kaggle_threshold.png)"
echo "submission:       $SUBMISSION"
if [ -f "$RUN/WANDB_SYNC.txt" ]; then
  echo "W&B (offline):    $(tail -n 1 "$RUN/WANDB_SYNC.txt")"
fi
echo "Kaggle mAP on the validation split: $SCORE"
