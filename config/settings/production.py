"""Production: secrets have no default, so a missing one fails loudly at start."""

import logging

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import PEFTHUB_DATA_DIR, database_connections, env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES = {"default": env.db_url("DATABASE_URL")}
# A pool of 16 per process (base.py): a burst of requests waits for a connection instead of
# going past PostgreSQL's max_connections (100 by default) with one thread's connection each.
database_connections(env, DATABASES["default"], pool_default=16)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
# Serving: /v1 needs an API token (or a session) unless this is set true.
PEFTHUB_SERVING_ANONYMOUS = env.bool("PEFTHUB_SERVING_ANONYMOUS", default=False)

# HTTPS only, remembered by browsers (HSTS; sent on HTTPS responses, as the proxy reports them).
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)  # usually the proxy's job
# The Content-Security-Policy comes from web.middleware (every environment; PEFTHUB_CSP overrides).

# Sign-in rate limits count in the cache: one cache shared by every worker process, in
# Redis (CACHE_URL, else the broker's Redis); without Redis, each process counts alone.
_redis = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
CACHE_URL = env.str("CACHE_URL", default=_redis)
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}

# Blobs on one machine's disk are lost with it and unreadable from other hosts: production
# names its storage, or says out loud that local disk is what it wants.
if not env.str("STORAGE_URL", default=""):
    if not env.bool("PEFTHUB_ALLOW_LOCAL_STORAGE", default=False):
        raise ImproperlyConfigured(
            "STORAGE_URL is not set: set it to s3://BUCKET?... (or file:///PATH), or set "
            f"PEFTHUB_ALLOW_LOCAL_STORAGE=true to keep adapter files under {PEFTHUB_DATA_DIR / 'blobs'}"
        )
    logging.getLogger("config.settings").warning(
        "STORAGE_URL is not set: adapter files go to local disk at %s (PEFTHUB_ALLOW_LOCAL_STORAGE=true)",
        PEFTHUB_DATA_DIR / "blobs",
    )
