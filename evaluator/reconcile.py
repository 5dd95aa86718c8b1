"""The evaluator's reconciler: versions whose ``version.created`` event never arrived.

Registered in ``PEFTHUB_RECONCILERS`` (the hub runs it periodically and from
``manage.py hub_events_replay``). A version is missing an evaluation when an active
domain suite registered before it has no job for it: the suites registered later did not
exist when it was pushed, and re-scoring the whole registry is a decision for a person.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from hub.events import VERSION_CREATED, task_names
from hub.models import AdapterVersion

from .models import EvaluationJob, Suite

log = logging.getLogger(__name__)

SUBSCRIBER = "evaluator.version_created"


def versions_missing_evaluation(*, grace_seconds: float | None = None, limit: int = 100):
    """Versions older than the grace period with no job on an active suite that predates them."""
    grace = settings.PEFTHUB_RECONCILE_GRACE if grace_seconds is None else grace_seconds
    no_job = ~Exists(EvaluationJob.objects.filter(suite=OuterRef("pk"), version=OuterRef(OuterRef("pk"))))
    suite_without_job = Suite.objects.filter(
        active=True, role=Suite.Role.DOMAIN, created_at__lte=OuterRef("created_at")
    ).filter(no_job)
    return (
        AdapterVersion.objects.filter(
            deprecated_at__isnull=True, created_at__lt=timezone.now() - timedelta(seconds=grace)
        )
        .filter(Exists(suite_without_job))
        .order_by("created_at")[:limit]
    )


def evaluations_reconcile(*, grace_seconds: float | None = None) -> list[int]:
    """Request the missing evaluations; returns the ids of the versions that got jobs.

    Does nothing where the evaluator does not subscribe to ``version.created`` (evaluation
    switched off by settings).
    """
    from .services import evaluation_request

    if SUBSCRIBER not in task_names(VERSION_CREATED):
        return []
    fixed = []
    for version in versions_missing_evaluation(grace_seconds=grace_seconds):
        try:
            if evaluation_request(version=version):
                fixed.append(version.pk)
        except IntegrityError:  # its event arrived at the same time and requested it
            log.info("version %s was requested meanwhile", version.pk)
    return fixed
