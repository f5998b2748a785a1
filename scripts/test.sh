#!/usr/bin/env bash
# The whole suite: lint, Rasa data validation, unit and database tests (SQLite, and PostgreSQL when
# TEST_DATABASE_URL is set), integration tests against a real trained model, Rasa server and action
# server, then the Rasa conversation test stories.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL=${MODEL:-$(bash scripts/train.sh)}
results=$(mktemp -d)

echo "==> lint (ruff, mypy)"
.venv/bin/ruff check .
.venv/bin/mypy

echo "==> rasa data validate"
if ! .venv-rasa/bin/rasa data validate --config config.yml --domain bot/domain \
    --data nlu_data bot/stories bot/rules >"$results/validate.log" 2>&1; then
  cat "$results/validate.log"; exit 1
fi

echo "==> pytest"
.venv/bin/python -m pytest "$@"

echo "==> rasa test: conversation stories (tests/conversations)"
if ! .venv-rasa/bin/rasa test core --model "$MODEL" --stories tests/conversations \
    --fail-on-prediction-errors --out "$results/core" >"$results/core.log" 2>&1; then
  tail -n 60 "$results/core.log"
  [ -f "$results/core/failed_test_stories.yml" ] && cat "$results/core/failed_test_stories.yml"
  exit 1
fi
grep -E "Correct:|Accuracy:" "$results/core.log" | head -n 4 || true
echo "conversation stories: all passed"
