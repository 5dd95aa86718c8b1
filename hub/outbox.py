"""The outbox: hub events kept in the database until the broker has taken them.

A row is written in the transaction of the change it announces (``outbox_add``), sent
right after commit, and sent again by the periodic ``hub.outbox_deliver`` task (every
``PEFTHUB_OUTBOX_INTERVAL`` seconds) and by ``manage.py hub_events_replay`` while the broker
refuses it. Delivery is at least once: every subscribed task is idempotent.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .events import task_names
from .models import OutboxEvent

log = logging.getLogger(__name__)

# A send waits this long at most for the broker, so that an upload's request (which sends
# its event after commit) is not held up by a broker outage: the periodic task retries.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# Consecutive failed sends after which one delivery round gives up (the broker is down).
GIVE_UP_AFTER = 3


@dataclass
class Delivery:
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # claimed meanwhile by another deliverer


def outbox_add(*, event: str, args: list) -> list[OutboxEvent]:
    """Record ``event`` for each subscribed task in the current transaction; send after commit."""
    rows = [OutboxEvent.objects.create(event=event, task=name, args=args) for name in task_names(event)]
    if rows:
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: outbox_deliver(ids=ids))
    return rows


@functools.cache
def _registered_tasks() -> dict:
    """The tasks this process can run, after Celery's autodiscovery of ``<app>.tasks``.

    A web process never starts a worker, so autodiscovery has not run there; running it
    once lets eager mode (tests, a single-process setup) call tasks in-process.
    """
    from config.celery_app import app

    app.loader.import_default_modules()
    return app.tasks


def _send(name: str, args: list) -> None:
    from config.celery_app import app

    task = _registered_tasks().get(name)
    if task is not None:
        task.apply_async(args=args, retry_policy=RETRY_POLICY)  # honours eager mode in tests
    else:
        app.send_task(name, args=args, retry_policy=RETRY_POLICY)


def outbox_deliver(
    *,
    ids: list[int] | None = None,
    idle_seconds: float = 0,
    since: datetime | None = None,
    limit: int | None = 500,
) -> Delivery:
    """Send pending events, oldest first; returns how many went, failed or were skipped.

    ``ids``: only these rows. ``idle_seconds``: only rows nobody tried for that long (so the
    periodic task does not race the send right after commit). ``since``: also send again
    the events already sent that were created since then (a consumer lost them).

    Each row is claimed with a conditional update of its attempt count, so two deliverers
    running at once do not both send it.
    """
    rows = OutboxEvent.objects.all() if since is not None else OutboxEvent.objects.filter(sent_at__isnull=True)
    if since is not None:
        rows = rows.filter(Q(created_at__gte=since) | Q(sent_at__isnull=True))
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    if idle_seconds:
        cutoff = timezone.now() - timedelta(seconds=idle_seconds)
        rows = rows.filter(Q(last_attempt_at__lt=cutoff) | Q(last_attempt_at__isnull=True, created_at__lt=cutoff))
    report = Delivery()
    failures_in_a_row = 0
    ordered = rows.order_by("id")
    for row in ordered[:limit] if limit is not None else ordered:
        claimed = OutboxEvent.objects.filter(pk=row.pk, attempts=row.attempts).update(
            attempts=F("attempts") + 1, last_attempt_at=timezone.now()
        )
        if not claimed:
            report.skipped += 1
            continue
        try:
            _send(row.task, row.args)
        except Exception as exc:  # the change is committed; the row keeps the event for later
            error = f"{type(exc).__name__}: {exc}"
            OutboxEvent.objects.filter(pk=row.pk).update(last_error=error[:2000])
            log.warning("could not send %s to %s (attempt %s): %s", row.event, row.task, row.attempts + 1, error)
            report.failed += 1
            failures_in_a_row += 1
            if failures_in_a_row >= GIVE_UP_AFTER:
                break  # the broker is away: the next round tries again
        else:
            OutboxEvent.objects.filter(pk=row.pk).update(sent_at=timezone.now(), last_error="")
            report.sent += 1
            failures_in_a_row = 0
    return report


def outbox_purge(*, older_than_days: float | None = None) -> int:
    """Delete events sent more than ``older_than_days`` ago (``PEFTHUB_OUTBOX_KEEP_DAYS``)."""
    days = settings.PEFTHUB_OUTBOX_KEEP_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OutboxEvent.objects.filter(sent_at__lt=cutoff).delete()
    return deleted
