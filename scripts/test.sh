#!/usr/bin/env bash
# The whole suite: lint, unit and database tests (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
# then the integration tests against a real trained model, Rasa server and action server.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL=${MODEL:-$(bash scripts/train.sh)}
echo "==> lint"
.venv/bin/ruff check .
.venv/bin/mypy
echo "==> rasa data validate"
.venv-rasa/bin/rasa data validate --config config.yml --domain bot/domain --data nlu_data bot/stories bot/rules \
  --fail-on-warnings >/tmp/zhanyou-validate.log 2>&1 || { cat /tmp/zhanyou-validate.log; exit 1; }
echo "==> pytest"
.venv/bin/python -m pytest "$@"
