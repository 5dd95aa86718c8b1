"""Serving tasks: the hub's ``version.accepted``/``.deprecated``/``.withdrawn`` and
``adapter.deleted`` events (by id)."""

from __future__ import annotations

import logging

from celery import shared_task

from hub.models import AdapterVersion, BaseModel

from .exceptions import ServingError
from .models import Deployment

log = logging.getLogger(__name__)


@shared_task(name="serving.version_accepted", acks_late=True, ignore_result=True)
def version_accepted(version_id: int) -> None:
    from . import services

    version = AdapterVersion.objects.filter(pk=version_id).first()
    if version is None:
        log.warning("version %s is gone; nothing to serve", version_id)
        return
    if Deployment.objects.filter(version=version, reason=Deployment.Reason.UNDEPLOYED).exists():
        return  # a replayed event does not undo its owner's undeploy
    try:
        services.deployment_activate(version=version, reason=Deployment.Reason.ACCEPTED)
    except ServingError as exc:  # a fact about the version, not a transient failure: no retry
        log.warning("version %s accepted but not served: %s", version, exc.message)


@shared_task(name="serving.version_deprecated", acks_late=True, ignore_result=True)
def version_deprecated(version_id: int) -> None:
    from . import services

    version = AdapterVersion.objects.filter(pk=version_id).first()
    if version is not None:
        services.deployment_deactivate(version=version, reason=Deployment.Reason.DEPRECATED)


@shared_task(name="serving.version_withdrawn", acks_late=True, ignore_result=True)
def version_withdrawn(version_id: int) -> None:
    """A re-evaluation rejected a version that was accepted: it stops being served. Accepted
    again later, it comes back (``version_accepted``), unless its owner undeployed it."""
    from . import services

    version = AdapterVersion.objects.filter(pk=version_id).exclude(status=AdapterVersion.Status.ACCEPTED).first()
    if version is not None:
        services.deployment_deactivate(version=version, reason=Deployment.Reason.WITHDRAWN)


@shared_task(name="serving.base_revision_added", acks_late=True, ignore_result=True)
def base_revision_added(base_model_id: int) -> None:
    """A base model has a new current revision: the live versions made on an older one leave
    its vLLM replicas (which ``serving_engine`` restarts on the new weights) for the peft
    engine on their own revision. Idempotent."""
    from . import services

    base = BaseModel.objects.filter(pk=base_model_id).first()
    if base is not None:
        services.deployments_rebind(base=base)


@shared_task(name="serving.adapter_deleted", acks_late=True, ignore_result=True)
def adapter_deleted(adapter_id: int, version_ids: list[int], base_model_ids: list[int]) -> None:
    """An adapter was deleted with its versions: their deployments and placements went with
    the rows (so the gateway answers 404 at once); unload them from every replica now.
    Idempotent: a version no replica holds is left alone."""
    from . import placement

    done = placement.versions_unload(version_ids=version_ids, bases=BaseModel.objects.filter(pk__in=base_model_ids))
    if done:
        log.info("adapter %s deleted: unloaded %s", adapter_id, ", ".join(done))


@shared_task(
    name="serving.replicas_reconcile",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=300,
    time_limit=360,
)
def replicas_reconcile() -> None:
    """Periodic (``CELERY_BEAT_SCHEDULE``): check every replica, refill it, re-place what dead
    ones held. Idempotent, and a replica leased by another reconciler is skipped."""
    from . import placement

    placement.replicas_reconcile()
