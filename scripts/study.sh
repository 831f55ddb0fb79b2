#!/usr/bin/env bash
# The study of docs/study.md: what each step of the recipe is worth, measured end to end in one run.
#   data -> a small Bayesian sweep -> 3 folds with the sweep's best arguments (detector) and 3 classifier
#   folds -> out-of-fold score, alone and gated -> the ablation table -> what the sweep says about each
#   hyperparameter -> a gated fold-ensemble submission.
# Every step is a plain command you can run yourself; rerunning the script after an interruption reuses
# what finished (the sweep continues its study, finished folds are skipped, cached predictions reused).
#
#   bash scripts/study.sh [OUT] [KAGGLE_DIR]      OUT defaults to study/
#
# Without KAGGLE_DIR: a synthetic dataset sized to finish in well under an hour on 2 CPU cores, at the
# default (easy) difficulty: on hard films a detector needs 15+ epochs at 256 px before it scores at all
# (3 sweep trials of 5 epochs at 192 px on 480 hard films all scored 0.0000 here), which does not fit the
# hour; STUDY_DIFFICULTY=hard with longer training on a GPU. Synthetic scores say nothing about real X-rays.
# Sizes (environment variables; the GPU column is what docs/study.md suggests for the real data):
#   STUDY_PATIENTS=400 STUDY_TEST_PATIENTS=60 STUDY_DIFFICULTY=easy (synthetic only)
#   STUDY_IMGSZ=192            GPU: 640
#   STUDY_MODEL=yolo11n.yaml   GPU: yolo11s.pt (COCO-pretrained, a local file or RSNA_YOLO_ONLINE=1)
#   STUDY_HYP=yolo_configs/hyp/small_data.yaml   GPU: yolo_configs/hyp/xray.yaml
#   STUDY_TRIALS=6  STUDY_SWEEP_EPOCHS=8   GPU: 30 trials, 15 epochs
#   STUDY_EPOCHS=15                        GPU: 40
#   STUDY_CLS_MODEL=yolo_configs/models/basic_cnn_cls.yaml  STUDY_CLS_IMGSZ=128  STUDY_CLS_EPOCHS=10
#                              GPU: yolo11s-cls.pt, 384, 20
#   STUDY_ARGS="key=value ..." is added to every training command (e.g. "device=0 batch=32").
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${1:-study}
DATA=${2:-}
START=$(date +%s)
PATIENTS=${STUDY_PATIENTS:-400}
TEST_PATIENTS=${STUDY_TEST_PATIENTS:-60}
DIFFICULTY=${STUDY_DIFFICULTY:-easy}
IMGSZ=${STUDY_IMGSZ:-192}
MODEL=${STUDY_MODEL:-yolo11n.yaml}
HYP=${STUDY_HYP:-yolo_configs/hyp/small_data.yaml}
TRIALS=${STUDY_TRIALS:-6}
SWEEP_EPOCHS=${STUDY_SWEEP_EPOCHS:-8}
EPOCHS=${STUDY_EPOCHS:-15}
CLS_MODEL=${STUDY_CLS_MODEL:-yolo_configs/models/basic_cnn_cls.yaml}
CLS_IMGSZ=${STUDY_CLS_IMGSZ:-128}
CLS_EPOCHS=${STUDY_CLS_EPOCHS:-10}
read -r -a EXTRA <<< "${STUDY_ARGS:-}"
mkdir -p "$OUT"
ABS_OUT=$(cd "$OUT" && pwd)
D="$ABS_OUT/dataset"
SWEEP="$ABS_OUT/sweep"
FOLDS="$ABS_OUT/runs/folds"
step() { echo; echo "== $1  [$(($(date +%s) - START)) s]"; }

if [ -z "$DATA" ]; then
  export WANDB_MODE=${WANDB_MODE:-offline}  # the synthetic study never touches the network
  if [ ! -f "$ABS_OUT/kaggle/stage_2_train_labels.csv" ]; then
    step "1/8 generating $PATIENTS synthetic patients ($DIFFICULTY; + $TEST_PATIENTS test) in $OUT/kaggle"
    $PY -m convert synth --out "$ABS_OUT/kaggle" --patients "$PATIENTS" --test-patients "$TEST_PATIENTS" \
      --difficulty "$DIFFICULTY" --imgsz 512 --seed 0
  else
    step "1/8 reusing $OUT/kaggle"
  fi
  DATA="$ABS_OUT/kaggle"
else
  step "1/8 using the Kaggle download in $DATA"
  for v in STUDY_PATIENTS STUDY_TEST_PATIENTS STUDY_DIFFICULTY; do  # synthetic-only settings: say so
    if [ -n "${!v:-}" ]; then echo "note: $v is ignored: it sizes the synthetic data, and $DATA is real"; fi
  done
fi

step "2/8 converting to $IMGSZ px with 3 folds and the classification views"
$PY -m convert rsna --src "$DATA" --out "$D" --imgsz "$IMGSZ" --folds 3 --classify --no-progress

step "3/8 sweeping lr0, mosaic and box ($TRIALS trials of $SWEEP_EPOCHS epochs, $MODEL) on fold 0's split"
$PY -m train sweep yolo_configs/sweeps/study.yaml --data "$D/data.yaml" --count "$TRIALS" --out "$SWEEP" \
  model="$MODEL" imgsz="$IMGSZ" epochs="$SWEEP_EPOCHS" cfg="$HYP" "${EXTRA[@]}"
read -r -a BEST < "$SWEEP/best_args.txt"
echo "best arguments: ${BEST[*]}"

step "4/8 training 3 detector folds with them for $EPOCHS epochs (out-of-fold predictions of every image)"
$PY -m train folds "$D/folds" "${BEST[@]}" epochs="$EPOCHS" project="$FOLDS" name=det "${EXTRA[@]}"

step "5/8 training 3 classifier folds ($CLS_MODEL), then tuning the gate out of fold"
$PY -m train folds "$D/folds" task=classify model="$CLS_MODEL" imgsz="$CLS_IMGSZ" epochs="$CLS_EPOCHS" \
  batch=16 project="$FOLDS" name=cls "${EXTRA[@]}"
$PY -m train folds "$D/folds" "${BEST[@]}" epochs="$EPOCHS" project="$FOLDS" name=det \
  --classifier "$FOLDS/cls" "${EXTRA[@]}"

step "6/8 the ablation on fold 0's val images: threshold, box scale, TTA, WBF, gate"
# The WBF row fuses fold 0's detector with the sweep's best trial: both trained on fold 0's train images
# (a fold set fused on any fold's val images would score images its other folds trained on; refused).
BEST_TRIAL=$($PY -c "import sys, pandas as pd; t = pd.read_csv(sys.argv[1]); t = t[t.state == 'COMPLETE']
print(t.loc[t['kaggle/mAP'].idxmax(), 'run_dir'])" "$SWEEP/trials.csv")
$PY -m analysis ablation "$FOLDS/det/fold0" --data "$D/folds/fold0.yaml" --ensemble "$BEST_TRIAL" \
  --classifier "$FOLDS/cls/fold0" --out "$ABS_OUT/ablation" --quiet

step "7/8 what the sweep says about each hyperparameter (importances, score against each, observations)"
$PY -m analysis compare "$SWEEP" --out "$ABS_OUT/compare" --quiet

if [ -d "$D/images/test" ]; then
  step "8/8 the 3-fold ensemble, gated by the 3 classifiers, on the test images (tuned out of fold)"
  $PY -m analysis submit --weights "$FOLDS/det" --classifier "$FOLDS/cls" \
    --from-run "$FOLDS/det/kaggle_oof_gated.json" --images "$D/images/test" --out "$ABS_OUT/submission.csv" --quiet
else
  step "8/8 skipped: no test images in $D/images/test"
fi

echo
echo "== done in $(($(date +%s) - START)) s"
echo "sweep:      $SWEEP/trials.csv, best arguments $SWEEP/best_args.txt"
echo "folds:      $FOLDS/det/kaggle_oof.json, gated $FOLDS/det/kaggle_oof_gated.json, classifiers $FOLDS/cls/classify_oof.json"
echo "ablation:   $ABS_OUT/ablation/report.md (.html)"
echo "compare:    $ABS_OUT/compare/report.md (.html)"
if [ -z "${2:-}" ]; then
  echo "SYNTHETIC data: these scores say nothing about real X-rays."
fi
