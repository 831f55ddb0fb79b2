#!/usr/bin/env bash
# The whole pipeline on generated data (or, with a second argument, on a real Kaggle download):
# synthetic DICOMs -> YOLO dataset -> check -> train + Kaggle rescoring -> a classifier gating the boxes ->
# test-set submission -> validation.
# Called by `make demo [DATA=...]`; every step is a plain command you can run yourself.
#
#   bash scripts/demo.sh [OUT] [KAGGLE_DIR]      OUT defaults to demo/
#
# Defaults (override with environment variables):
#   synthetic:  DEMO_MODEL=yolov8n.yaml (from scratch, offline)  DEMO_IMGSZ=192  DEMO_EPOCHS=30
#               DEMO_HYP=yolo_configs/hyp/small_data.yaml (batch 8 = nominal batch, 1-epoch warmup, mosaic)
#               DEMO_CLS_MODEL=yolo_configs/models/basic_cnn_cls.yaml  DEMO_CLS_IMGSZ=128  DEMO_CLS_EPOCHS=15
#   real data:  DEMO_MODEL=yolo11s.pt (COCO-pretrained: needs RSNA_YOLO_ONLINE=1 or a local .pt path)
#               DEMO_IMGSZ=640 (the 1024-px films are converted to 640)  DEMO_EPOCHS=30
#               DEMO_HYP=yolo_configs/hyp/xray.yaml
#               DEMO_CLS_MODEL=yolo11s-cls.pt  DEMO_CLS_IMGSZ=384  DEMO_CLS_EPOCHS=15
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
  CLS_MODEL=${DEMO_CLS_MODEL:-yolo_configs/models/basic_cnn_cls.yaml}
  CLS_IMGSZ=${DEMO_CLS_IMGSZ:-128}
  TEST_DIR="$OUT/kaggle/stage_2_test_images"
else
  MODEL=${DEMO_MODEL:-yolo11s.pt}
  IMGSZ=${DEMO_IMGSZ:-640}
  EPOCHS=${DEMO_EPOCHS:-30}
  HYP=${DEMO_HYP:-yolo_configs/hyp/xray.yaml}
  CLS_MODEL=${DEMO_CLS_MODEL:-yolo11s-cls.pt}
  CLS_IMGSZ=${DEMO_CLS_IMGSZ:-384}
  TEST_DIR="$DATA/stage_2_test_images"
  # Fail before converting ~30k films if the pretrained weights cannot be had: the same check and message
  # as python -m train (a local file, weights/ or $RSNA_YOLO_WEIGHTS, or RSNA_YOLO_ONLINE=1 to download).
  $PY -c "import sys, rsna_yolo; from rsna_yolo.core.cli import call_reporting_errors; from rsna_yolo.train.args import resolve_model
sys.exit(call_reporting_errors('demo', lambda m: resolve_model(m) and 0, sys.argv[1]))" "$MODEL"
  $PY -c "import sys, rsna_yolo; from rsna_yolo.core.cli import call_reporting_errors; from rsna_yolo.train.args import resolve_model
sys.exit(call_reporting_errors('demo', lambda m: resolve_model(m) and 0, sys.argv[1]))" "$CLS_MODEL"
fi
CLS_EPOCHS=${DEMO_CLS_EPOCHS:-15}
mkdir -p "$OUT"
ABS_OUT=$(cd "$OUT" && pwd)
RUN="$ABS_OUT/runs/train"
CLS_RUN="$ABS_OUT/runs/classify"

if [ -z "$DATA" ]; then
  if [ -f "$OUT/kaggle/stage_2_train_labels.csv" ]; then
    echo "== 1/7 reusing the synthetic Kaggle-layout data in $OUT/kaggle"
  else
    echo "== 1/7 generating synthetic Kaggle-layout data in $OUT/kaggle (300 patients + 40 test)"
    $PY -m convert synth --out "$OUT/kaggle" --patients 300 --test-patients 40 --seed 0
  fi
  DATA="$OUT/kaggle"
else
  echo "== 1/7 using the Kaggle download in $DATA"
fi

echo "== 2/7 converting $DATA to a YOLO dataset in $OUT/dataset (longer side $IMGSZ px)"
$PY -m convert rsna --src "$DATA" --out "$OUT/dataset" --imgsz "$IMGSZ"

echo "== 3/7 checking the dataset (and adding its classification view: links, no copies)"
$PY -m convert check "$OUT/dataset"
$PY -m convert classify "$OUT/dataset" --no-folds

echo "== 4/7 training $MODEL ($HYP) for $EPOCHS epochs, then rescoring best.pt on val with the Kaggle metric"
rm -rf "$RUN"  # a rerun of the demo starts its training afresh
# shellcheck disable=SC2086  # DEMO_ARGS is a list of key=value words
$PY -m train data="$OUT/dataset/data.yaml" cfg="$HYP" model="$MODEL" imgsz="$IMGSZ" \
  epochs="$EPOCHS" project="$ABS_OUT/runs" name=train ${DEMO_ARGS:-}
# (python -m train wrote kaggle.json; to redo the rescoring alone: python -m analysis rescore RUN --data ...)

echo "== 5/7 training a classifier on the three classes ($CLS_MODEL), then gating the detector's boxes with it"
CLS_START=$(date +%s)
rm -rf "$CLS_RUN"
# shellcheck disable=SC2086
$PY -m train task=classify data="$OUT/dataset/classify" model="$CLS_MODEL" imgsz="$CLS_IMGSZ" \
  epochs="$CLS_EPOCHS" batch=16 project="$ABS_OUT/runs" name=classify ${DEMO_ARGS:-}
$PY -m analysis rescore "$RUN" --data "$OUT/dataset/data.yaml" --classifier "$CLS_RUN" --no-val --quiet
CLS_SECONDS=$(($(date +%s) - CLS_START))

if [ -d "$TEST_DIR" ]; then
  echo "== 6/7 predicting the test set into a submission with the tuned threshold, box scale and gate"
  $PY -m analysis submit --weights "$RUN" --from-run "$RUN/kaggle_gated" --classifier "$CLS_RUN" \
    --images "$TEST_DIR" --out "$OUT/submission.csv" --imgsz "$IMGSZ" --quiet
  echo "== 7/7 validating the submission"
  $PY -m analysis validate --images "$TEST_DIR" "$OUT/submission.csv"
  SUBMISSION="$OUT/submission.csv"
else
  echo "== 6/7, 7/7 skipped: no test images in $TEST_DIR"
  SUBMISSION="(none: no $TEST_DIR)"
fi

# The tuned score is the best setting on the very images it is scored on; the held-out score beside it tunes
# on one half of them (by patientId) and scores the other half, both ways, averaged.
HELDOUT="h=k.get('score_heldout'); ho='n/a' if h is None else f'{h:.4f}'"
SCORE=$($PY -c "import json,sys; k=json.load(open(sys.argv[1])); $HELDOUT; \
print(f\"{k['score']:.4f} (held-out {ho}; conf {k['conf']:.2f}, box scale {k['scale']:.2f}, {k['n_images']} val images)\")" \
  "$RUN/kaggle.json")
GATED=$($PY -c "import json,sys; k=json.load(open(sys.argv[1])); g=k['gate']; $HELDOUT; \
how='no gate' if g['mode']=='hard' and not g['gate'] else (f\"soft gate\" if g['mode']=='soft' else f\"hard gate {g['gate']:.2f}\"); \
print(f\"{k['score']:.4f} (held-out {ho}; {how}, conf {k['conf']:.2f}, box scale {k['scale']:.2f})\")" "$RUN/kaggle_gated/kaggle.json")
CLS=$($PY -c "import json,sys; k=json.load(open(sys.argv[1])); a=k['auc_opacity']; \
print(f\"accuracy {k['accuracy']:.3f}, ROC AUC of P(opacity) {'n/a' if a is None else f'{a:.3f}'}\")" "$CLS_RUN/classify.json")
echo
echo "== done in $(($(date +%s) - START)) s"
echo "dataset:          $OUT/dataset/data.yaml   (report: $OUT/dataset/report.json)"
echo "training run:     $RUN   (args.yaml, results.csv, weights/best.pt)"
echo "Kaggle score:     $RUN/kaggle.json   (threshold sweep: $RUN/kaggle_threshold.png)"
echo "classifier run:   $CLS_RUN   (classify.json: $CLS; gated score: $RUN/kaggle_gated/kaggle.json)"
echo "classifier step:  ${CLS_SECONDS} s (training the classifier, then rescoring with its gate)"
echo "submission:       $SUBMISSION"
if [ -f "$RUN/WANDB_SYNC.txt" ]; then
  echo "W&B (offline):    $(tail -n 1 "$RUN/WANDB_SYNC.txt")"
fi
if [ -z "${2:-}" ]; then
  echo "SYNTHETIC data: these scores say nothing about real X-rays."
fi
echo "Kaggle mAP on the validation split, detector alone: $SCORE"
echo "Kaggle mAP on the validation split, gated by the classifier: $GATED"
