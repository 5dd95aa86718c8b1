"""The evaluator's writes behind the API and the hub's events: register a suite, request,
re-run and cancel evaluations. The worker's side of a job is in :mod:`evaluator.lifecycle`;
what a job computes in :mod:`evaluator.planning`."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hub.exceptions import Conflict, HubError, UploadRejected
from hub.models import AdapterVersion, BaseModel, BaseModelRevision

from .lifecycle import LIVE, job_conclude
from .models import EvaluationJob, Suite
from .planning import on_revision
from .suite_archive import unpack_suite
from .suite_check import check_folder
from .suites_registry import suite_hash

if TYPE_CHECKING:
    from django.contrib.auth.models import User


# --- suites --------------------------------------------------------------------------------
@transaction.atomic
def suite_register(*, folder: Path, active: bool = True, user: User | None = None) -> Suite:
    """Register a suite folder (idempotent for the same content; a new version otherwise).

    Every file is checked first (:func:`evaluator.suite_check.check_folder`). An active new
    version retires the older versions of the same suite (they stop scoring new uploads;
    their finished jobs stay)."""
    manifest = check_folder(folder)
    digest = suite_hash(folder, manifest)
    general = None
    if manifest.general_suite:
        general = Suite.objects.filter(slug=manifest.general_suite).order_by("-created_at").first()
        if general is None:
            raise HubError(
                f"suite `{manifest.slug}` measures forgetting on `{manifest.general_suite}`, which is not "
                "registered; register it first",
                field="general_suite",
            )
    existing = Suite.objects.filter(slug=manifest.slug, version=manifest.version).first()
    if existing is not None:
        if existing.content_hash != digest:
            raise Conflict(
                f"suite `{manifest.slug}` version {manifest.version} is registered with other content; "
                "bump `version` in suite.json"
            )
        return existing
    suite = Suite.objects.create(
        slug=manifest.slug,
        version=manifest.version,
        name=manifest.name,
        description=manifest.description,
        role=manifest.role,
        content_hash=digest,
        path=str(folder.resolve()),
        tasks=manifest.tasks,
        retriever=manifest.retriever,
        top_k=manifest.top_k,
        system_instruction=manifest.system_instruction,
        policy={**manifest.policy, "primary_metrics": manifest.primary_metrics},
        general_suite=general,
        active=active and manifest.role == Suite.Role.DOMAIN,
        registered_by=user,
    )
    if suite.active:  # the new version replaces the older ones: new uploads get one job per suite
        Suite.objects.filter(slug=suite.slug, active=True).exclude(pk=suite.pk).update(active=False)
        reevaluation_request(suite=suite)
    return suite


def suite_register_archive(*, fileobj: BinaryIO, user: User) -> tuple[Suite, bool]:
    """Register a suite uploaded as a tar of its folder: (the suite, whether it is new).

    The archive is unpacked into a staging folder and checked whole; only then is it moved
    (one rename) to its own folder under ``PEFTHUB_SUITES_DIR`` and the row created, in one
    transaction. A refusal at any step leaves no folder and no row behind."""
    root = Path(settings.PEFTHUB_SUITES_DIR)
    staging = root / "_incoming" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    moved: Path | None = None
    try:
        unpack_suite(fileobj, staging, max_bytes=settings.PEFTHUB_SUITE_MAX_BYTES)
        manifest = check_folder(staging)
        digest = suite_hash(staging, manifest)
        existing = Suite.objects.filter(slug=manifest.slug, version=manifest.version, content_hash=digest).first()
        if existing is not None:
            return existing, False
        final = root / f"{manifest.slug}@{manifest.version}-{digest[:16]}"
        with transaction.atomic():
            if not final.is_dir():
                os.rename(staging, final)
                moved = final
            suite = suite_register(folder=final, user=user)
        return suite, True
    except BaseException as exc:
        if moved is not None:
            shutil.rmtree(moved, ignore_errors=True)
        if type(exc) is HubError:  # the suite's content is wrong: 422, as for adapter uploads
            raise UploadRejected(exc.message, file=exc.file, field=exc.field) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- requesting, re-running, cancelling ------------------------------------------------------
def _enqueue(job: EvaluationJob) -> None:
    from .tasks import jobs_enqueue

    jobs_enqueue([job.pk])


def _reuse_or_enqueue(job: EvaluationJob) -> EvaluationJob:
    """A new job takes the runs of a finished twin (and concludes at once), else goes to the queue."""
    twin = _finished_twin(job.version, job.suite, job.backend, job.base_revision)
    if twin is not None:
        job.runs.set(twin.runs.all())
        job_conclude(job=job, reused=True)
    else:
        _enqueue(job)
    return job


def _finished_twin(version: AdapterVersion, suite: Suite, backend: str, revision: str = "") -> EvaluationJob | None:
    """An earlier finished job on the same answer-changing files (weights, config: not the
    card), suite and base revision (``revision``, else the version's): its runs are ours."""
    same_answers = Q(version__answers_hash=version.evaluation_hash) | Q(
        version__answers_hash="", version__content_hash=version.evaluation_hash
    )
    return (
        EvaluationJob.objects.filter(
            same_answers,
            on_revision(revision or version.base_revision),
            suite=suite,
            backend=backend,
            status=EvaluationJob.Status.FINISHED,
        )
        .order_by("-finished_at")
        .first()
    )


@transaction.atomic
def evaluation_request(*, version: AdapterVersion) -> list[EvaluationJob]:
    """Score a version on every active domain suite. Identical content reuses results."""
    backend = settings.PEFTHUB_EVAL_BACKEND
    jobs = []
    for suite in Suite.objects.filter(active=True, role=Suite.Role.DOMAIN):
        if EvaluationJob.objects.filter(version=version, suite=suite).exists():
            continue  # a redelivered event: this version is already requested
        jobs.append(_reuse_or_enqueue(EvaluationJob.objects.create(version=version, suite=suite, backend=backend)))
    return jobs


@transaction.atomic
def reevaluation_request(*, suite: Suite) -> list[EvaluationJob]:
    """Score the live versions (accepted, not deprecated) on a new version of a suite, at
    the lowest priority (:func:`evaluator.tasks.jobs_enqueue`), so the leaderboard's newest
    comparable group fills without holding up new uploads. Versions already requested on it
    are skipped; identical content reuses its runs as for an upload."""
    backend = settings.PEFTHUB_EVAL_BACKEND
    live = AdapterVersion.objects.filter(status=AdapterVersion.Status.ACCEPTED, deprecated_at__isnull=True).exclude(
        evaluations__suite=suite
    )
    jobs = []
    for version in live.select_related("base_model").order_by("pk"):
        job = EvaluationJob.objects.create(version=version, suite=suite, backend=backend, reevaluation=True)
        jobs.append(_reuse_or_enqueue(job))
    return jobs


@transaction.atomic
def reevaluation_on_base_revision(*, base: BaseModel) -> list[EvaluationJob]:
    """Score the live versions made on older revisions of ``base`` on its current one, on
    every active domain suite, at the lowest priority. Only versions whose revision has the
    same module shapes as the new one: their weights load on it unchanged."""
    backend, revision = settings.PEFTHUB_EVAL_BACKEND, base.revision
    new = BaseModelRevision.objects.filter(base_model=base, revision=revision).first()
    if new is None:
        return []
    shapes = dict(BaseModelRevision.objects.filter(base_model=base).values_list("revision", "modules"))
    live = AdapterVersion.objects.filter(
        base_model=base, status=AdapterVersion.Status.ACCEPTED, deprecated_at__isnull=True
    ).exclude(base_revision=revision)
    jobs = []
    for suite in Suite.objects.filter(active=True, role=Suite.Role.DOMAIN):
        for version in live.order_by("pk"):
            if shapes.get(version.base_revision) != new.modules:
                continue  # other shapes: the adapter does not load on the new revision
            asked = EvaluationJob.objects.filter(version=version, suite=suite)
            if asked.filter(on_revision(revision)).exists() or asked.filter(status__in=LIVE).exists():
                continue  # already scored there, or a job of it is still under way
            job = EvaluationJob.objects.create(
                version=version, suite=suite, backend=backend, base_revision=revision, reevaluation=True
            )
            jobs.append(_reuse_or_enqueue(job))
    return jobs


@transaction.atomic
def evaluation_rerun(*, job: EvaluationJob, user: User | None) -> EvaluationJob:
    """A fresh job for the same version and suite; its runs are recomputed, not reused."""
    if EvaluationJob.objects.filter(version=job.version, suite=job.suite, status__in=LIVE).exists():
        raise Conflict(f"{job.version} is already being evaluated on {job.suite}; cancel it first")
    new = EvaluationJob.objects.create(
        version=job.version,
        suite=job.suite,
        backend=job.backend,
        rerun_of=job,
        fresh=True,
        base_revision=job.base_revision,
        reevaluation=job.reevaluation,
    )
    _enqueue(new)
    return new


@transaction.atomic
def evaluation_cancel(*, job: EvaluationJob, user: User | None) -> EvaluationJob:
    """Stop a pending or running job; the worker notices between request chunks."""
    job = EvaluationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in LIVE:
        raise Conflict(f"the job is {job.status}; only pending or running jobs can be cancelled")
    job.status = EvaluationJob.Status.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job
