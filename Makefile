# Zhanyou: `make run` starts everything, `make test` proves it. Each target sets up what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
FLASK := .venv/bin/flask --app webhook
export PORT ?= 5000
# honcho gives each process its own PORT (5000, 5100, …), so the webhook's port travels under another name.
export WEBHOOK_PORT := $(PORT)
export RASA_URL ?= http://127.0.0.1:5005
export ACTION_SERVER_URL ?= http://127.0.0.1:5055/webhook
# Locally WeChat's servers are out of reach: the simulator stands in for them unless you point elsewhere.
export WECHAT_SIM_PORT ?= 5099
export WECHAT_API_BASE ?= http://127.0.0.1:$(WECHAT_SIM_PORT)/

.PHONY: help setup run test chat train lint db-upgrade seed staff nlu-report clean

help:
	@echo "make run    - set up and start Zhanyou (Rasa, actions, webhook, broadcast worker)"
	@echo "make test   - set up and run every test (integration tests use a real trained model)"
	@echo "make chat   - talk to the running webhook as a WeChat user would"
	@echo "make train | lint | db-upgrade | seed | staff | nlu-report | clean"

setup:
	@bash scripts/setup.sh

db-upgrade: setup
	@$(FLASK) db-upgrade

seed: db-upgrade
	@$(FLASK) seed

staff: db-upgrade
	@$(FLASK) staff create

train: setup
	@bash scripts/train.sh >/dev/null

run: seed train
	@MODEL=$$(bash scripts/train.sh) exec .venv/bin/honcho start -f Procfile

test: setup train
	@bash scripts/test.sh

chat: setup
	@$(PY) -m wechatsim.chat

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check bureau webhook actions wechatsim tests
	.venv/bin/mypy

nlu-report: setup
	bash benchmarks/nlu/run_cv.sh

clean:
	rm -rf .stamps models instance/*.db results .pytest_cache
