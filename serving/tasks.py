"""Serving tasks. The hub emits ``version.accepted``/``version.deprecated``; the engine
controller that loads and unloads adapters lands with the serving issue."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="serving.version_accepted", acks_late=True, ignore_result=True)
def version_accepted(version_id: int) -> None:
    log.info("version %s accepted; serving is not implemented yet", version_id)


@shared_task(name="serving.version_deprecated", acks_late=True, ignore_result=True)
def version_deprecated(version_id: int) -> None:
    log.info("version %s deprecated; serving is not implemented yet", version_id)
