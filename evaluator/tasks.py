"""Celery tasks of the evaluator. They take ids, re-fetch, and call services.

``run_evaluation_job`` runs on its own ``evaluation`` queue (the GPU workers' queue),
acknowledges late and is idempotent: a worker killed mid-run loses nothing, because the
broker redelivers the job and every finished arm is reused by its key.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

log = logging.getLogger(__name__)


@shared_task(name="evaluator.version_created", acks_late=True, ignore_result=True)
def version_created(version_id: int) -> None:
    """A new adapter version: request its evaluations (reusing identical content's)."""
    from hub.models import AdapterVersion

    from .services import evaluation_request

    version = AdapterVersion.objects.filter(pk=version_id).first()
    if version is None:
        log.warning("version %s vanished before it could be evaluated", version_id)
        return
    evaluation_request(version=version)


@shared_task(
    name="evaluator.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=settings.PEFTHUB_EVAL_TIME_LIMIT,
    soft_time_limit=settings.PEFTHUB_EVAL_TIME_LIMIT - 60,
)
def run_evaluation_job(job_id: int) -> None:
    from .runjob import execute_job

    execute_job(job_id)
