"""Tests: whatever DATABASE_URL says (CI sets PostgreSQL), fast hashing, no broker."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
# Nothing a test enqueues outside eager mode may land in a developer's broker.
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default="memory://")

if not DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A test database per run, so two runs on one server (a developer's and CI's) never
    # drop each other's database.
    import os

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": env.str(
            "PEFTHUB_TEST_DB_NAME",
            default=f"test_{DATABASES['default']['NAME']}_{os.getpid()}",  # noqa: F405
        )
    }
