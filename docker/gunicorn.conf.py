"""Gunicorn settings of the pefthub web server (``docker/entrypoint.sh web``, and ``make run``).

Each value can be changed from the environment without rebuilding: the variables read
below, or any gunicorn flag in ``GUNICORN_CMD_ARGS`` (which gunicorn applies on top of this
file, e.g. ``GUNICORN_CMD_ARGS="--log-level debug"``).
"""

import os

bind = [os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")]

# ASGI (config/asgi.py) on uvicorn workers: each process holds its connections on one event
# loop, so hundreds of idle OpenAI streams (/v1, waiting on the engine's next token) cost a
# coroutine each, not a thread; under the former gthread workers (2 x 4 threads) eight long
# streams filled the site. Synchronous views (the pages, the REST API, uploads) run in a
# thread of their own per request. A few processes use the cores for validation (peft is
# imported lazily, on the first upload, by each one).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# Connections the kernel queues before a worker accepts them: a burst waits, not resets
# (Django's runserver queues 10, hence the resets `make run` gave under a burst before).
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))

# An upload may be up to PEFTHUB_MAX_UPLOAD_BYTES (1 GiB by default); over a slow link
# that takes minutes, and a worker must not be killed half-way through one.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
# On stop, requests in flight get this long to finish (compose's stop_grace_period is longer).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "90"))
keepalive = 5

# The heartbeat file: in memory rather than on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def post_worker_init(worker):
    """Move everything loaded at start-up out of the cyclic collector's reach.

    Full collections walk every tracked object; once torch is imported that is most of a
    million, and each pass stalls a request (measured in bench/: p95 pauses of ~1 s).
    """
    import gc

    if os.environ.get("PEFTHUB_PRELOAD_PEFT", "1") == "1":
        # Upload validation uses peft's config classes; importing peft (and torch) here
        # spares the first upload of each worker a ~5-10 s import, and lets it be frozen.
        import peft  # noqa: F401

    gc.collect()
    gc.freeze()
