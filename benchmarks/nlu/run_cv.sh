#!/usr/bin/env bash
# 5-fold cross-validation of the NLU (config.yml + nlu_data/), then REPORT.md.
# Run from the repository root:  bash benchmarks/nlu/run_cv.sh
# Env: RASA (default .venv-rasa/bin/rasa), FOLDS (default 5), OUT (default a fresh dir under /tmp),
#      HOLDOUT_MODEL (optional path to a trained model .tar.gz: also scores benchmarks/nlu/holdout.yml
#      with it; by default a model is trained from config.yml + nlu_data into OUT and used),
#      SKIP_HOLDOUT=1 to skip the holdout part; REPORT_NOTE / TRAIN_NOTE: free text for the summary /
#      the timing section of the report.
set -euo pipefail

cd "$(dirname "$0")/../.."
RASA="${RASA:-.venv-rasa/bin/rasa}"
FOLDS="${FOLDS:-5}"
OUT="${OUT:-$(mktemp -d /tmp/zhanyou-nlu-cv.XXXXXX)}"
mkdir -p "$OUT"

if [ ! -x "$RASA" ]; then
  echo "run_cv.sh: $RASA not found; create the Rasa environment first (make run / make test set it up)" >&2
  exit 1
fi

export SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2

echo "== ${FOLDS}-fold cross-validation -> $OUT/cv"
start=$(date +%s)
"$RASA" test nlu --nlu nlu_data --config config.yml --cross-validation --folds "$FOLDS" \
  --successes --out "$OUT/cv" > "$OUT/cv.log" 2>&1 || { tail -40 "$OUT/cv.log" >&2; exit 1; }
cv_seconds=$(( $(date +%s) - start ))

args=(--cv-dir "$OUT/cv" --cv-seconds "$cv_seconds" --folds "$FOLDS" --out benchmarks/nlu/REPORT.md)
[ -n "${REPORT_NOTE:-}" ] && args+=(--note "$REPORT_NOTE")
[ -n "${TRAIN_NOTE:-}" ] && args+=(--train-note "$TRAIN_NOTE")

if [ "${SKIP_HOLDOUT:-0}" != "1" ] && [ -f benchmarks/nlu/holdout.yml ]; then
  model="${HOLDOUT_MODEL:-}"
  if [ -z "$model" ]; then
    echo "== training a model for the holdout set -> $OUT/model"
    start=$(date +%s)
    "$RASA" train nlu --config config.yml --nlu nlu_data --out "$OUT/model" \
      --fixed-model-name nlu > "$OUT/train.log" 2>&1 || { tail -40 "$OUT/train.log" >&2; exit 1; }
    args+=(--train-seconds "$(( $(date +%s) - start ))")
    model="$OUT/model/nlu.tar.gz"
  fi
  echo "== holdout set -> $OUT/holdout"
  "$RASA" test nlu --nlu benchmarks/nlu/holdout.yml --model "$model" --successes \
    --out "$OUT/holdout" > "$OUT/holdout.log" 2>&1 || { tail -40 "$OUT/holdout.log" >&2; exit 1; }
  args+=(--holdout-dir "$OUT/holdout")
fi

python3 benchmarks/nlu/report.py "${args[@]}"
echo "== wrote benchmarks/nlu/REPORT.md (raw results in $OUT)"
