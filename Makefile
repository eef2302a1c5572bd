# Dockyard: `make up` starts the embedded single-host cloud, `make test` runs the suite.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: help setup dev up down test test-unit lint typecheck contracts check bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## Install Debian and Python dependencies (idempotent)
	@scripts/setup-host.sh

dev:
	@scripts/setup-host.sh --dev

up: setup ## Install what is missing and start the embedded cloud (controller + agent)
	@.venv/bin/dockyard up

down: ## Stop the embedded cloud's daemons (containers keep running)
	@.venv/bin/dockyard down

test: dev ## Run the full test suite (as root, on the real kernel)
	@$(PY) -m pytest -q tests

test-unit: dev ## Run only the fast unit tests
	@$(PY) -m pytest -q tests/unit

lint: dev ## ruff lint and format check
	@.venv/bin/ruff check src tests bench
	@.venv/bin/ruff format --check src tests bench

typecheck: dev ## mypy --strict on src
	@.venv/bin/mypy src

contracts: dev ## import-linter dependency rules from ARCHITECTURE.md
	@.venv/bin/lint-imports

check: lint typecheck contracts test ## Everything CI and reviewers expect green

bench: dev ## Benchmarks (see bench/README.md); results go to docs/benchmarks.md
	@$(PY) bench/run.py

clean: ## Remove the venv and caches (not Dockyard's state)
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
