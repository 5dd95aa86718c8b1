"""Serving tasks: the hub's ``version.accepted``/``version.deprecated`` events (by id)."""

from __future__ import annotations

import logging

from celery import shared_task

from hub.models import AdapterVersion

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
