# Developer entry points. Each target just calls a script in scripts/.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
ARGS ?=

.PHONY: help run stop test reliability lint fmt services shell demo bench-jit bench-clearing bench-writer

help: ## List the targets (default)
	@echo "Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

run: ## Start everything: services, migrate, seed_demo, gunicorn, celery
	@bash scripts/run.sh

stop: ## Stop gunicorn, celery, PostgreSQL and Redis
	@bash scripts/stop.sh

test: ## Lint, then pytest (extra args: make test ARGS="-k jit -x")
	@bash scripts/test.sh $(ARGS)

reliability: ## Faults and minutes of load on a private stack, long variants (docs/reliability.md)
	@bash scripts/reliability.sh $(ARGS)

lint: | $(VENV)/bin/ruff ## ruff format --check and ruff check
	@$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

fmt: | $(VENV)/bin/ruff ## Reformat and autofix with ruff
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

services: ## Start PostgreSQL and Redis only
	@bash scripts/services.sh start

shell: ## Django shell (services started, .env loaded)
	@bash scripts/manage.sh shell

demo: ## After make run: a fake Marqeta day (5 cards, 200 auths, seed 42), checked
	@bash scripts/demo.sh $(ARGS)

bench-jit: ## Benchmark the JIT gateway vs bare Django and naive PostgreSQL (docs/benchmarks.md)
	@bash bench/jit.sh

bench-clearing: ## Benchmark clearing-file ingestion vs a bare csv parse and a naive ORM ingest
	@bash bench/clearing.sh

bench-writer: ## Benchmark the ledger writer: set-based write_batch vs one event at a time
	@bash bench/writer.sh

$(VENV)/bin/ruff:
	@bash scripts/bootstrap.sh
