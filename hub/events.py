"""Events the hub emits, delivered to Celery tasks named in settings, through an outbox.

The hub knows event names and task names, never the apps that implement the tasks:
``PEFTHUB_EVENT_TASKS = {"version.created": ["evaluator.version_created"], ...}``.
``emit_on_commit`` writes one ``OutboxEvent`` row per subscribed task in the caller's
transaction, so the event exists exactly when the change that causes it does; the rows
are sent after commit and, while the broker is away, again by the periodic
``hub.outbox_deliver`` task (``hub.outbox``) until the broker takes them.
"""

from __future__ import annotations

from django.conf import settings

VERSION_CREATED = "version.created"
VERSION_ACCEPTED = "version.accepted"
VERSION_DEPRECATED = "version.deprecated"
# An accepted version's verdict turned (a re-evaluation on a new suite version or base
# revision rejected it): what serves it takes it off.
VERSION_WITHDRAWN = "version.withdrawn"
# Its one argument is the base model's id, not a version's.
BASE_REVISION_ADDED = "base_model.revision_added"
# An adapter was deleted with its versions. Its arguments are the adapter's id, its versions'
# ids and their base models' ids: the rows are gone when it arrives, so a subscriber (serving
# unloads the versions from its engines) works from the ids alone.
ADAPTER_DELETED = "adapter.deleted"
# Staff asked for a base model from a hub (REST, admin): its one argument is the
# BaseModelImport's id; the hub's own task downloads it (hub.base_model_import).
BASE_MODEL_IMPORT_REQUESTED = "base_model.import_requested"


def task_names(event: str) -> list[str]:
    return list(settings.PEFTHUB_EVENT_TASKS.get(event, []))


def emit_on_commit(event: str, *args: object) -> None:
    """Record ``event`` with its arguments (a version's id for the ``version.*`` events) in the
    current transaction; send it after commit."""
    from .outbox import outbox_add

    outbox_add(event=event, args=list(args))
