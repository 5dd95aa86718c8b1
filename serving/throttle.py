"""Rate and concurrency limits of the /v1 gateway, counted in Redis by the ``limits`` library.

Who is counted: a request with an API token counts against that token, a signed-in browser
against its user, an anonymous one against its address (``REMOTE_ADDR``: behind a proxy,
have it set the client's address there). Each has a rate (``PEFTHUB_SERVING_RATE_TOKEN`` /
``_ADDRESS``, a moving window) and a number of requests in flight
(``PEFTHUB_SERVING_CONCURRENCY_TOKEN`` / ``_ADDRESS``). Past either the gateway answers
``429 rate_limit_exceeded`` with ``Retry-After``.

In-flight requests are a fixed-window counter of the same library that each request
takes one from and gives back when its answer (or stream) ends; the window is a lease
(``PEFTHUB_SERVING_CONCURRENCY_LEASE``), so the slots of a process killed mid-request come
back by themselves.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItemPerSecond, parse
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from .exceptions import ServingError

log = logging.getLogger(__name__)

NAMESPACE = "pefthub-v1"


class RateLimited(ServingError):
    """Too many requests for now; ``retry_after`` says in how many seconds to try again."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Backend:
    storage: Storage
    rates: MovingWindowRateLimiter
    slots: FixedWindowRateLimiter


_backend_lock = threading.Lock()


def _backend(url: str, prefix: str) -> _Backend:
    # Made once, under a lock: the first requests of a burst arrive together (one thread
    # each, under ASGI), and ``limits`` imports its redis driver lazily, so threads racing
    # there saw a half-imported module ("minimum version of 3.0 for 'redis'... found 0.0.0").
    with _backend_lock:
        return _make_backend(url, prefix)


@functools.cache
def _make_backend(url: str, prefix: str) -> _Backend:
    options = {"key_prefix": prefix} if url.startswith(("redis", "valkey")) else {}
    storage = storage_from_string(url, wrap_exceptions=True, **options)
    if not isinstance(storage, Storage):  # a ``async+...`` URL: the gateway's limiters are synchronous
        raise ImproperlyConfigured(f"PEFTHUB_SERVING_LIMITS_URL `{url}` names an async storage; use a synchronous one")
    return _Backend(storage, MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage))


def backend() -> _Backend:
    return _backend(settings.PEFTHUB_SERVING_LIMITS_URL, getattr(settings, "PEFTHUB_SERVING_LIMITS_PREFIX", "LIMITS"))


def caller(request) -> tuple[str, str]:
    """(kind, who): ``("token", id)``, ``("user", id)`` or ``("address", ip)``."""
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "pk", None) is not None:
        return "token", str(auth.pk)
    if request.user.is_authenticated:
        return "user", str(request.user.pk)
    return "address", request.META.get("REMOTE_ADDR") or "unknown"


@dataclass
class Slot:
    """One request in flight; :meth:`release` (idempotent) gives it back."""

    _release: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if callable(release):
            release()


def admit(request) -> Slot:
    """Count ``request`` against its caller's limits; a :class:`RateLimited` past them.

    If the counters cannot be reached (Redis down) the request is let through and the
    failure logged: serving stays up, unlimited, until Redis is back."""
    try:
        return _admit(request)
    except StorageError as exc:
        log.error("gateway limits not enforced: their storage failed (%s)", exc)
        return Slot()


def _admit(request) -> Slot:
    kind, who = caller(request)
    anonymous = kind == "address"
    rate = settings.PEFTHUB_SERVING_RATE_ADDRESS if anonymous else settings.PEFTHUB_SERVING_RATE_TOKEN
    most = settings.PEFTHUB_SERVING_CONCURRENCY_ADDRESS if anonymous else settings.PEFTHUB_SERVING_CONCURRENCY_TOKEN
    scope = "this address" if anonymous else "this token" if kind == "token" else "this user"
    limits = backend()
    if rate:
        item = parse(rate)
        if not limits.rates.hit(item, NAMESPACE, "rate", kind, who):
            reset = limits.rates.get_window_stats(item, NAMESPACE, "rate", kind, who).reset_time
            raise RateLimited(
                f"rate limit reached: {rate} requests for {scope}; try again in a moment"
                + ("" if not anonymous else ", or sign in and use an API token"),
                retry_after=max(1, math.ceil(reset - time.time())),
            )
    if not most:
        return Slot()
    lease = RateLimitItemPerSecond(most, settings.PEFTHUB_SERVING_CONCURRENCY_LEASE)
    key = lease.key_for(NAMESPACE, "inflight", kind, who)

    def give_back() -> None:
        try:
            left = limits.storage.incr(key, lease.get_expiry(), amount=-1)
            if left < 0:  # the lease ran out while this request ran: never below zero
                limits.storage.incr(key, lease.get_expiry(), amount=-left)
        except StorageError as exc:
            log.error("could not give back an in-flight slot (%s); the lease returns it", exc)

    if not limits.slots.hit(lease, NAMESPACE, "inflight", kind, who):
        give_back()  # a refused hit still counted
        raise RateLimited(
            f"too many requests in flight: {scope} may have {most} at once; wait for one to finish",
            retry_after=1,
        )
    return Slot(give_back)
