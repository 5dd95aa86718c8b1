"""One gateway request through the fleet: pick a replica, make sure it holds the adapter,
send, and recover from what a fleet does to a request.

- The replica says it does not hold the adapter (evicted or unloaded behind the hub's
  back): load it there and send once more.
- The replica cannot be reached, or answers 5xx and then fails ``/health`` (it died): it
  leaves the rotation and the request goes once to another replica. Nothing has reached
  the client yet, so a stream that fails before its first chunk is retried the same way;
  a stream that breaks later ends with an error event (the gateway's ``_sse``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.utils import timezone

from . import placement, router
from .exceptions import EngineDown, EngineError
from .models import Deployment, Replica
from .selectors import Served

log = logging.getLogger(__name__)


def _died(replica: Replica, exc: EngineError) -> str:
    """Why ``replica`` should leave the rotation after ``exc`` (empty: it should not)."""
    if isinstance(exc, EngineDown):
        return exc.message
    if exc.status_code >= 500:
        why = router.replica_engine(replica).probe()
        return f"{exc.message}; then {why}" if why else ""
    return ""


def _recheck_stale(served: Served) -> bool:
    """No replica is in rotation and none was checked lately (no reconciler runs: a web
    process with an engine started by hand): check them now; whether one came back."""
    import datetime

    from django.conf import settings

    horizon = timezone.now() - datetime.timedelta(seconds=settings.PEFTHUB_SERVING_RECONCILE_SECONDS * 3)
    stale = [
        r
        for r in router.replicas_for(served.base)
        if r.health == Replica.Health.UNHEALTHY and (r.checked_at is None or r.checked_at < horizon)
    ]
    back = [placement.replica_reconcile(replica=r) for r in stale]
    return any(r.health == Replica.Health.HEALTHY for r in back)


def fleet_send(
    *, served: Served, kind: str, body: dict[str, Any], asgi: bool = False
) -> tuple[Replica, dict | Iterator[dict] | AsyncIterator[dict]]:
    """Send ``body`` to a replica of ``served``'s base; the replica and the engine's answer.

    A stream's iterator counts as in flight on its replica until it ends or is closed.
    ``asgi`` (the request's thread under the ASGI server): a stream is read on the event loop
    and comes back as an async iterator, and this thread's database connection is given back
    before the engine is waited for (a long answer must not hold one of the server's connections).
    """
    deployment = served.deployment
    name = deployment.engine_model if deployment is not None else served.base.name
    if deployment is not None:  # what eviction reads: the least recently used goes first
        Deployment.objects.filter(pk=deployment.pk).update(last_used_at=timezone.now())
    exclude: set[int] = set()
    failed: list[str] = []  # "url: why" of each replica that died under this request
    reloaded = False
    while True:
        try:
            replica = router.pick(base=served.base, deployment=deployment, exclude=exclude)
        except EngineDown as exc:
            if not failed and _recheck_stale(served):
                continue
            if failed:
                raise EngineDown(f"{exc.message}; failed under this request: {'; '.join(failed)}") from exc
            raise
        release = router.acquire(replica.pk)
        try:
            if deployment is not None:
                engine = placement.placement_ensure(replica=replica, deployment=deployment)
            else:
                engine = router.replica_engine(replica)
            if asgi:
                _give_back_connection()
                result = engine.openai(kind, {**body, "model": name}, stream_async=True)
            else:
                result = engine.openai(kind, {**body, "model": name})
        except EngineError as exc:
            release()
            if exc.status_code == 404 and deployment is not None and not reloaded:
                reloaded = True  # unloaded behind the hub's back: load it where it was placed
                try:
                    placement.placement_ensure(replica=replica, deployment=deployment, verify=True)
                except EngineDown as down:
                    exc = down
                else:
                    continue
            why = _died(replica, exc)
            if not why:
                raise exc
            placement.replica_mark_down(replica=replica, why=why)
            failed.append(f"{replica.url}: {why}")
            if exclude:  # one retry, on another replica
                raise EngineDown(f"no replica of `{served.base.name}` could answer ({'; '.join(failed)}); try again")
            exclude.add(replica.pk)
            log.warning("request for %s: replica %s failed (%s); trying another", served.canonical, replica.url, why)
            continue
        except BaseException:
            release()
            raise
        if isinstance(result, dict):
            release()
            return replica, result
        return replica, router.counted(result, release)


def _give_back_connection() -> None:
    """Close this thread's database connection (or hand it back to the pool) unless a
    transaction is open; the next query opens one again."""
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close()
