"""Tests: whatever DATABASE_URL says (CI sets PostgreSQL), fast hashing, no broker."""

import os

from .base import *  # noqa: F403
from .base import env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
# Nothing a test enqueues outside eager mode may land in a developer's broker.
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default="memory://")

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not Django's in-memory default: with an in-memory database the live server's
    # thread shares the test thread's one connection, so a test that writes (as the worker
    # would) while a client polls the server interleaves two threads' savepoints on it (CI:
    # "no such savepoint", then every later test's transaction broken). On a file each
    # thread has its own connection, as the processes of `make run` do. One file per run.
    DATABASES["default"]["TEST"] = {"NAME": str(PEFTHUB_DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    # A test database per run, so two runs on one server (a developer's and CI's) never
    # drop each other's database.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": env.str(
            "PEFTHUB_TEST_DB_NAME",
            default=f"test_{DATABASES['default']['NAME']}_{os.getpid()}",  # noqa: F405
        )
    }
