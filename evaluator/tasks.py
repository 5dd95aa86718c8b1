"""Evaluation tasks. The hub emits ``version.created``; scoring lands with the evaluator issue."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="evaluator.version_created", acks_late=True, ignore_result=True)
def version_created(version_id: int) -> None:
    """Receives every new version's id. Evaluation itself is not built yet (issue #3)."""
    log.info("version %s created; evaluation is not implemented yet", version_id)
