# Digitlify Marketplace: `make run` serves the app on embedded defaults; `make test` runs every suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export APP_ENV ?= development
export DEMO_PASSWORD ?= demo-password-2026
FLASK := $(BIN)/flask --app app

.PHONY: run test install assets migrate seed clean

run: install assets migrate seed
	@FLASK="$(FLASK)" PORT=$(PORT) bash scripts/run-dev.sh

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

assets: app/static/vendor/.installed

app/static/vendor/.installed: package.json package-lock.json scripts/vendor-assets.sh
	@npm ci --no-audit --no-fund --loglevel=error
	@bash scripts/vendor-assets.sh

migrate: install
	@$(FLASK) db upgrade

seed: migrate
	@$(FLASK) seed demo --if-empty

test: install assets
	@bash scripts/test.sh


clean:
	rm -rf $(VENV) node_modules app/static/vendor
