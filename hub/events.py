"""Events the hub emits, delivered to Celery tasks named in settings after commit.

The hub knows event names and task names, never the apps that implement the tasks:
``PEFTHUB_EVENT_TASKS = {"version.created": ["evaluator.version_created"], ...}``.
Every event also has an ``AuditEvent`` row written in the same transaction, so a lost
broker message can be found and replayed.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

VERSION_CREATED = "version.created"
VERSION_ACCEPTED = "version.accepted"
VERSION_DEPRECATED = "version.deprecated"


def task_names(event: str) -> list[str]:
    return list(settings.PEFTHUB_EVENT_TASKS.get(event, []))


@functools.cache
def _registered_tasks() -> dict:
    """The tasks this process can run, after Celery's autodiscovery of ``<app>.tasks``.

    A web process never starts a worker, so autodiscovery has not run there; running it
    once lets eager mode (tests, a single-process setup) call tasks in-process.
    """
    from config.celery_app import app

    app.loader.import_default_modules()
    return app.tasks


def deliver(event: str, version_id: int) -> None:
    """Send the event to every task subscribed to it (now, not on commit)."""
    from config.celery_app import app

    for name in task_names(event):
        try:
            task = _registered_tasks().get(name)
            if task is not None:
                task.apply_async(args=[version_id])  # honours eager mode in tests
            else:
                app.send_task(name, args=[version_id])
        except Exception:  # the version is committed; a broker outage must not undo it
            log.exception("could not deliver %s for version %s to %s", event, version_id, name)


def emit_on_commit(event: str, version_id: int) -> None:
    transaction.on_commit(lambda: deliver(event, version_id))
