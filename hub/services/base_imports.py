"""Base models downloaded from a hub for staff (REST, admin), on a worker, never in the request.

:func:`base_model_import_request` checks in the request what a download cannot change (a
pinned revision, the name, the aliases, and, in one metadata call, that the repo has that
revision and safetensors weights), then records a :class:`BaseModelImport` and its event in
one transaction; the outbox sends ``hub.base_model_import`` (the ``downloads`` queue), which
runs :func:`base_model_import_run`. The CLI (``hub_base_model_add --from-hub``) downloads
in its own process, as before.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from .. import events
from ..exceptions import HubError
from ..models import BaseModelImport
from .basemodels import base_model_add_from_hub, from_hub_checks

log = logging.getLogger(__name__)

ACTIVE = (BaseModelImport.Status.QUEUED, BaseModelImport.Status.RUNNING)


def base_model_import_request(
    *,
    user,
    repo_id: str,
    revision: str,
    name: str,
    aliases: Iterable[str] = (),
    license: str = "",
    display_name: str = "",
    endpoint: str | None = None,
) -> tuple[BaseModelImport, bool]:
    """Queue the download of ``repo_id`` at ``revision`` as base model ``name``. Returns
    ``(import, created)``: the same request while one is queued or running gets that one."""
    from ..basemodels.hub import resolve_snapshot

    aliases = from_hub_checks(repo_id=repo_id, revision=revision, name=name, aliases=aliases)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or ""
    snapshot = resolve_snapshot(repo_id, revision=revision, endpoint=endpoint or None)
    with transaction.atomic():
        same = BaseModelImport.objects.select_for_update().filter(
            from_hub=repo_id, commit=snapshot.commit, name=name, status__in=ACTIVE
        )
        if (pending := same.first()) is not None:
            return pending, False
        job = BaseModelImport.objects.create(
            from_hub=repo_id,
            revision=revision,
            commit=snapshot.commit,
            endpoint=endpoint,
            name=name,
            aliases=list(aliases),
            license=license,
            display_name=display_name,
            requested_by=user,
        )
        events.emit_on_commit(events.BASE_MODEL_IMPORT_REQUESTED, job.pk)
    return job, True


def base_model_import_run(*, import_id: int, data_dir: Path) -> BaseModelImport | None:
    """The worker's side: download and add the base (``base_model_add_from_hub``), then record
    the outcome. An import already taken (a redelivered message) is left alone."""
    with transaction.atomic():
        job = BaseModelImport.objects.select_for_update().filter(pk=import_id).first()
        if job is None or job.status != BaseModelImport.Status.QUEUED:
            return job
        job.status, job.started_at = BaseModelImport.Status.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        base, new_revision = base_model_add_from_hub(
            repo_id=job.from_hub,
            revision=job.commit,
            name=job.name,
            aliases=job.aliases,
            license=job.license,
            display_name=job.display_name,
            data_dir=data_dir,
            endpoint=job.endpoint or None,
        )
    except HubError as error:
        _finish(job, status=BaseModelImport.Status.FAILED, error=error.message)
    except Exception as error:  # the worker must record it: the requester polls this row
        log.exception("base model import %s failed", import_id)
        _finish(job, status=BaseModelImport.Status.FAILED, error=f"{type(error).__name__}: {error}")
    else:
        job.base_model, job.new_revision = base, new_revision
        _finish(job, status=BaseModelImport.Status.DONE, error="")
    return job


def base_model_imports_expire() -> list[int]:
    """A reconciler (``PEFTHUB_RECONCILERS``): imports running for longer than
    ``PEFTHUB_BASE_IMPORT_TIMEOUT`` seconds, whose worker went away, fail with a reason, so
    that the same request can be made again (its folder is staged apart: nothing half-added)."""
    from django.conf import settings

    limit = settings.PEFTHUB_BASE_IMPORT_TIMEOUT
    cutoff = timezone.now() - datetime.timedelta(seconds=limit)
    running = BaseModelImport.objects.filter(status=BaseModelImport.Status.RUNNING, started_at__lt=cutoff)
    stale = list(running.values_list("pk", flat=True))
    BaseModelImport.objects.filter(pk__in=stale, status=BaseModelImport.Status.RUNNING).update(
        status=BaseModelImport.Status.FAILED,
        error=f"no outcome {limit:g} s after it started (its worker may have stopped); ask again",
        finished_at=timezone.now(),
    )
    return stale


def _finish(job: BaseModelImport, *, status: str, error: str) -> None:
    job.status, job.error, job.finished_at = status, error, timezone.now()
    job.save(update_fields=["status", "error", "finished_at", "base_model", "new_revision"])
