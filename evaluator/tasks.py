"""Celery tasks of the evaluator. They take ids, re-fetch, and call services.

``run_evaluation_job`` runs on its own ``evaluation`` queue, or on ``evaluation.<base
model>`` for the bases named in ``PEFTHUB_EVAL_BASE_QUEUES`` (their dedicated workers),
acknowledges late and is idempotent: a worker killed mid-run loses nothing, because the
broker redelivers the job and every finished arm is reused by its key.

Only this module and the API's writes (:mod:`evaluator.services`, through
:func:`jobs_enqueue`) put jobs in the queue; the worker's code returns the ids to send.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


QUEUE = "evaluation"


def job_queue(base_model_name: str) -> str:
    """The queue a job on this base model goes to: ``evaluation.<base>`` when the base is
    named in ``PEFTHUB_EVAL_BASE_QUEUES`` (``*``: every base), else ``evaluation``.

    The operator names the bases that have a dedicated worker (a GPU node holding their
    weights consumes ``evaluation.<base>``); every other base falls back to ``evaluation``,
    which the general workers consume, so no job waits on a queue nobody reads. A static
    list rather than asking the broker which queues live workers consume: that answer
    changes while a job waits (a worker restarting would send its base's jobs elsewhere),
    costs a broadcast round trip per enqueue, and is not there at all while workers are down.
    """
    named = settings.PEFTHUB_EVAL_BASE_QUEUES
    if "*" in named or base_model_name.lower() in {name.lower() for name in named}:
        return f"{QUEUE}.{base_model_name}"
    return QUEUE


def lowest_priority() -> int | None:
    """The message priority that puts a job behind every other on its queue, for this
    broker: Redis serves 0 first and 9 last (kombu's priority lists, ``evaluation`` then
    ``evaluation\x06\x163``, ...); RabbitMQ serves the highest first, and only on a queue
    declared with ``x-max-priority``. The filesystem and memory transports have no
    priorities (None: sent without one, first in first out)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "sentinel://")):
        return 9
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return 0
    return None


def jobs_enqueue(job_ids: Iterable[int]) -> None:
    """Send jobs to their queue (:func:`job_queue`) once the current transaction commits;
    re-evaluations (``EvaluationJob.reevaluation``) at the broker's :func:`lowest_priority`.

    The one place jobs are sent: the API's writes, a worker's requeues and a failed shared
    pass's give-backs all come here."""
    from .models import EvaluationJob

    ids = list(job_ids)
    rows = EvaluationJob.objects.filter(pk__in=ids).values_list("pk", "version__base_model__name", "reevaluation")
    known = {pk: (base, low) for pk, base, low in rows}
    lowest = lowest_priority()
    for job_id in ids:
        # A job gone from the table still gets its message (the worker drops it), on the common queue.
        base, low = known.get(job_id, (None, False))
        options: dict[str, str | int] = {"queue": job_queue(base) if base else QUEUE}
        if low and lowest is not None:
            options["priority"] = lowest
        transaction.on_commit(partial(run_evaluation_job.apply_async, args=[job_id], **options))


def jobs_requeue_stale(*, older_than_seconds: int) -> list[int]:
    """Send running jobs whose worker went silent back to the queue; returns their ids."""
    from .lifecycle import jobs_claim_stale

    with transaction.atomic():
        ids = jobs_claim_stale(older_than_seconds=older_than_seconds)
        jobs_enqueue(ids)
    return ids


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


@shared_task(name="evaluator.base_revision_added", acks_late=True, ignore_result=True)
def base_revision_added(base_model_id: int) -> None:
    """A base model has a new current revision: re-score its live versions on it."""
    from hub.models import BaseModel

    from .services import reevaluation_on_base_revision

    base = BaseModel.objects.filter(pk=base_model_id).first()
    if base is not None:
        reevaluation_on_base_revision(base=base)


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

    jobs_enqueue(execute_job(job_id))  # jobs a failed shared pass gave back, to run alone
