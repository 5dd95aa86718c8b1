"""Periodic hub tasks (Celery beat, ``CELERY_BEAT_SCHEDULE``): the outbox and the reconcilers."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="hub.outbox_deliver", ignore_result=True)
def outbox_deliver() -> dict:
    """Send the events the broker refused, and drop those sent long ago."""
    from .outbox import outbox_deliver, outbox_purge

    report = outbox_deliver(idle_seconds=settings.PEFTHUB_OUTBOX_RETRY_AFTER)
    outbox_purge()
    return {"sent": report.sent, "failed": report.failed}


@shared_task(name="hub.reconcile", ignore_result=True)
def reconcile() -> dict:
    """Repair what lost events left undone (jobs never requested, versions never served)."""
    from .reconcile import reconcilers_run

    return reconcilers_run()


@shared_task(name="hub.base_model_import", acks_late=True, ignore_result=True)
def base_model_import(import_id: int) -> None:
    """Download a base model staff asked for (``services.base_model_import_request``); on the
    ``downloads`` queue (CELERY_TASK_ROUTES), so events never wait behind a download."""
    from pathlib import Path

    from .services import base_model_import_run

    base_model_import_run(import_id=import_id, data_dir=Path(settings.PEFTHUB_DATA_DIR))
