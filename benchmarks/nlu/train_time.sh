#!/usr/bin/env bash
# Cold training time of the full model (issue #4: under 5 minutes on 2 cores), per component.
# Run from anywhere: bash benchmarks/nlu/train_time.sh
# Env: RUNS (default "fast stock"): a list of fast / stock, run back to back in that order; "stock" sets
#      ZHANYOU_RASA_FAST_TRAIN=0 (bot/fast_train.py off). Each run trains the command of scripts/train.sh
#      into a fresh directory with a fresh RASA_CACHE_DIRECTORY, so nothing is reused between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${RUNS:-fast stock}"
export SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2

seconds_between() { echo $(( $(date -d "$2" +%s) - $(date -d "$1" +%s) )); }

for run in $RUNS; do
  case "$run" in
    fast) switch=1 ;;
    stock) switch=0 ;;
    *) echo "train_time.sh: RUNS takes fast / stock, not '$run'" >&2; exit 2 ;;
  esac
  out=$(mktemp -d /tmp/zhanyou-train-time.XXXXXX)
  start=$(date +%s)
  ZHANYOU_RASA_FAST_TRAIN=$switch RASA_CACHE_DIRECTORY="$out/cache" .venv-rasa/bin/rasa train \
    --config config.yml --domain bot/domain --data nlu_data bot/stories bot/rules \
    --out "$out" --fixed-model-name model > "$out/train.log" 2>&1 || { tail -40 "$out/train.log" >&2; exit 1; }
  total=$(( $(date +%s) - start ))
  parts=""
  for component in DIETClassifier IntentEnsemble TEDPolicy; do
    began=$(grep "Starting to train component '$component'" "$out/train.log" | head -1 | cut -c1-19)
    ended=$(grep "Finished training component '$component'" "$out/train.log" | head -1 | cut -c1-19)
    if [ -n "$began" ] && [ -n "$ended" ]; then parts+=" $component $(seconds_between "$began" "$ended") s,"; fi
  done
  echo "$run (ZHANYOU_RASA_FAST_TRAIN=$switch): trained in $total s —${parts%,} ($(date +%H:%M:%S), log $out/train.log)"
  rm -rf "$out/cache"
done
