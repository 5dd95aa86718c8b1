"""Writes of the evaluator: suites, jobs and their lifecycle, arm runs, decisions."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from hub import blobstore
from hub import services as hub_services
from hub.exceptions import Conflict, HubError
from hub.materialize import version_materialize
from hub.models import AdapterVersion

from .models import ArmRun, EvaluationJob, Suite
from .policy import decide, summarize
from .suites_registry import read_manifest, suite_hash

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

LIVE = (EvaluationJob.Status.PENDING, EvaluationJob.Status.RUNNING)
DOMAIN_ARMS = (ArmRun.Arm.BASE, ArmRun.Arm.BASE_RAG, ArmRun.Arm.ADAPTER, ArmRun.Arm.ADAPTER_RAG)
GENERAL_ARMS = (ArmRun.Arm.BASE, ArmRun.Arm.ADAPTER)
# Methods a shared pass mixes in one batch (peft's adapter_names=; DoRA cannot).
SHAREABLE_METHODS = (AdapterVersion.Method.LORA, AdapterVersion.Method.QLORA)


# --- suites --------------------------------------------------------------------------------
@transaction.atomic
def suite_register(*, folder: Path, active: bool = True) -> Suite:
    """Register a suite folder (idempotent for the same content; a new version otherwise)."""
    manifest = read_manifest(folder)
    digest = suite_hash(folder)
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
    return Suite.objects.create(
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
    )


# --- requesting, re-running, cancelling ------------------------------------------------------
def _enqueue(job: EvaluationJob) -> None:
    from .tasks import run_evaluation_job

    transaction.on_commit(lambda: run_evaluation_job.apply_async(args=[job.pk], queue="evaluation"))


def _finished_twin(version: AdapterVersion, suite: Suite, backend: str) -> EvaluationJob | None:
    """An earlier finished job on identical content, suite and base: its runs are ours."""
    return (
        EvaluationJob.objects.filter(
            suite=suite,
            backend=backend,
            status=EvaluationJob.Status.FINISHED,
            version__content_hash=version.content_hash,
            version__base_revision=version.base_revision,
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
        twin = _finished_twin(version, suite, backend)
        job = EvaluationJob.objects.create(version=version, suite=suite, backend=backend)
        if twin is not None:
            job.runs.set(twin.runs.all())
            _finish(job, reused=True)
        else:
            _enqueue(job)
        jobs.append(job)
    return jobs


@transaction.atomic
def evaluation_rerun(*, job: EvaluationJob, user: AbstractBaseUser | None) -> EvaluationJob:
    """A fresh job for the same version and suite; its runs are recomputed, not reused."""
    if EvaluationJob.objects.filter(version=job.version, suite=job.suite, status__in=LIVE).exists():
        raise Conflict(f"{job.version} is already being evaluated on {job.suite}; cancel it first")
    new = EvaluationJob.objects.create(version=job.version, suite=job.suite, backend=job.backend)
    new.summary = {"rerun_of": job.pk, "fresh": True}
    new.save(update_fields=["summary"])
    _enqueue(new)
    return new


@transaction.atomic
def evaluation_cancel(*, job: EvaluationJob, user: AbstractBaseUser | None) -> EvaluationJob:
    """Stop a pending or running job; the worker notices between request chunks."""
    job = EvaluationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in LIVE:
        raise Conflict(f"the job is {job.status}; only pending or running jobs can be cancelled")
    job.status = EvaluationJob.Status.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job


# --- running -------------------------------------------------------------------------------
def adapter_folder(version: AdapterVersion) -> Path:
    """The version's files as a folder peft can load, cached by content hash."""
    return version_materialize(version=version, root=Path(settings.PEFTHUB_DATA_DIR) / "cache" / "adapters")


@dataclass(frozen=True)
class PlannedArm:
    suite: Suite
    arm: str


def plan(job: EvaluationJob) -> list[PlannedArm]:
    arms = [PlannedArm(job.suite, arm) for arm in DOMAIN_ARMS]
    if job.suite.general_suite is not None:
        arms += [PlannedArm(job.suite.general_suite, arm) for arm in GENERAL_ARMS]
    return arms


def settings_key(*, backend: str, seed: int, batch_size: int, limit: int | None) -> str:
    blob = json.dumps({"backend": backend, "seed": seed, "batch_size": batch_size, "limit": limit}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_key(job: EvaluationJob, planned: PlannedArm) -> dict:
    version = job.version
    adapter = planned.arm in (ArmRun.Arm.ADAPTER, ArmRun.Arm.ADAPTER_RAG)
    return {
        "suite_hash": planned.suite.content_hash,
        "base_revision": version.base_revision,
        "arm": planned.arm,
        "adapter_hash": version.content_hash if adapter else "",
        "backend": job.backend,
        "settings_key": settings_key(
            backend=job.backend,
            seed=settings.PEFTHUB_EVAL_SEED,
            batch_size=settings.PEFTHUB_EVAL_BATCH_SIZE,
            limit=settings.PEFTHUB_EVAL_LIMIT,
        ),
    }


def arm_run_store(*, key: dict, suite: Suite, job: EvaluationJob, outcome, replace: bool = False) -> ArmRun:
    """Keep one arm's outcome; a run with the same key (a racing or redelivered job) wins."""
    sha = hashlib.sha256(outcome.samples_jsonl).hexdigest()
    import io

    with transaction.atomic():
        from hub.models import Blob

        _, inserted = Blob.objects.get_or_create(sha256=sha, defaults={"size": len(outcome.samples_jsonl)})
        if inserted or not blobstore.blob_exists(sha):
            blobstore.blob_write(sha, io.BytesIO(outcome.samples_jsonl))
        values = dict(
            suite=suite,
            base_model=job.version.base_model,
            metrics=outcome.metrics,
            results=outcome.results,
            samples_blob=sha,
            repro={**outcome.repro, "base_revision": key["base_revision"], "retrieved": outcome.retrieved},
            duration_seconds=outcome.duration_seconds,
            requests=outcome.requests,
            tokens=outcome.tokens,
        )
        if replace:  # a re-run: the recomputed numbers replace the cached ones
            run, _ = ArmRun.objects.update_or_create(**key, defaults=values)
            job.runs.add(run)
            return run
        try:
            with transaction.atomic():
                run = ArmRun.objects.create(
                    **key,
                    suite=suite,
                    base_model=job.version.base_model,
                    metrics=outcome.metrics,
                    results=outcome.results,
                    samples_blob=sha,
                    repro={
                        **outcome.repro,
                        "base_revision": key["base_revision"],
                        "retrieved": outcome.retrieved,
                    },
                    duration_seconds=outcome.duration_seconds,
                    requests=outcome.requests,
                    tokens=outcome.tokens,
                )
        except IntegrityError:
            run = ArmRun.objects.get(**key)
        job.runs.add(run)
    return run


def job_start(*, job_id: int) -> EvaluationJob | None:
    """Claim a job for this worker; None if there is nothing (left) to do.

    A pending job is claimed. A running job is a redelivery (its worker died) and is claimed
    again, unless another job's shared pass is scoring it: while that leader runs, or while
    the job's own heartbeat is fresh, its message has nothing to do.
    """
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().select_related("version", "suite").filter(pk=job_id).first()
        if job is None or job.status not in LIVE:
            return None  # finished, failed or cancelled: a redelivery has nothing to do
        if job.status == EvaluationJob.Status.RUNNING and job.batch_leader_id not in (None, job.pk):
            leader_running = EvaluationJob.objects.filter(
                pk=job.batch_leader_id, status=EvaluationJob.Status.RUNNING
            ).exists()
            stale = timezone.now() - timedelta(seconds=settings.PEFTHUB_EVAL_STALE_AFTER)
            if leader_running or (job.heartbeat_at is not None and job.heartbeat_at >= stale):
                return None
        seen = {"status": job.status, "batch_leader": job.batch_leader_id, "attempts": job.attempts}
        job.status = EvaluationJob.Status.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.error = ""
        job.batch_leader = None
        # Conditional, so that it also holds where SELECT ... FOR UPDATE does nothing (SQLite):
        # a job claimed meanwhile by another worker's shared pass is left to it.
        claimed = EvaluationJob.objects.filter(pk=job.pk, **seen).update(
            status=job.status,
            attempts=job.attempts,
            started_at=job.started_at,
            heartbeat_at=job.heartbeat_at,
            error="",
            batch_leader=None,
        )
        if not claimed:
            return None
    return job


def shareable(job: EvaluationJob) -> bool:
    """Whether a job can share a pass with others: a LoRA on the `hf` backend, not set apart
    by a failed shared pass."""
    return job.backend == "hf" and job.version.method in SHAREABLE_METHODS and not job.summary.get("solo")


def jobs_claim_batch(*, leader: EvaluationJob, limit: int) -> list[EvaluationJob]:
    """Other jobs to score in ``leader``'s shared pass, at most ``limit - 1``.

    First the jobs it claimed before its worker died (a redelivered leader), then pending
    LoRA jobs on the same suite, backend and base revision, oldest first. Each is claimed
    with a conditional update, so two workers never claim the same job.
    """
    if limit <= 1 or not shareable(leader):
        return []
    now = timezone.now()
    claim = {
        "status": EvaluationJob.Status.RUNNING,
        "batch_leader": leader,
        "attempts": F("attempts") + 1,
        "started_at": Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
        "heartbeat_at": now,
        "error": "",
    }
    same = EvaluationJob.objects.filter(
        suite=leader.suite,
        backend=leader.backend,
        version__base_model=leader.version.base_model_id,
        version__base_revision=leader.version.base_revision,
        version__method__in=SHAREABLE_METHODS,
    ).exclude(pk=leader.pk)
    claimed: list[int] = []
    for status, extra in (
        (EvaluationJob.Status.RUNNING, {"batch_leader": leader}),  # left from the leader's last attempt
        (EvaluationJob.Status.PENDING, {}),
    ):
        for pk, summary in same.filter(status=status, **extra).order_by("created_at").values_list("pk", "summary"):
            if len(claimed) >= limit - 1:
                break
            if (summary or {}).get("solo"):
                continue  # set apart by a failed shared pass: it runs alone
            if EvaluationJob.objects.filter(pk=pk, status=status, **extra).update(**claim):
                claimed.append(pk)
    jobs = EvaluationJob.objects.select_related("version", "suite").in_bulk(claimed)
    return [jobs[pk] for pk in claimed]


def jobs_release(*, job_ids: list[int]) -> None:
    """Give claimed jobs back to the queue to run alone (a shared pass failed)."""
    with transaction.atomic():
        for job in EvaluationJob.objects.select_for_update().filter(pk__in=job_ids, status__in=LIVE):
            job.status = EvaluationJob.Status.PENDING
            job.batch_leader = None
            job.summary = {**job.summary, "solo": True}
            job.save(update_fields=["status", "batch_leader", "summary"])
            _enqueue(job)


def job_mark_solo(*, job_id: int) -> None:
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().get(pk=job_id)
        job.summary = {**job.summary, "solo": True}
        job.save(update_fields=["summary"])


def jobs_progress(*, job_ids: list[int], progress: float, current: str) -> dict[int, str]:
    """Record progress (and so the heartbeat) of running jobs; returns every job's status,
    so the runner stops scoring the ones cancelled meanwhile."""
    EvaluationJob.objects.filter(pk__in=job_ids, status=EvaluationJob.Status.RUNNING).update(
        progress=max(0.0, min(1.0, progress)), current=current[:200], heartbeat_at=timezone.now()
    )
    return dict(EvaluationJob.objects.filter(pk__in=job_ids).values_list("pk", "status"))


def jobs_requeue_stale(*, older_than_seconds: int) -> list[int]:
    """Send running jobs whose worker went silent back to the queue; returns their ids.

    A running job reports progress (its heartbeat) as its requests complete. With Redis or
    RabbitMQ an unacknowledged job comes back by itself when its worker dies; kombu's
    filesystem broker (the embedded default) drops it. Workers call this when they start,
    so a job orphaned by a killed worker runs again; its finished arms are reused.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = EvaluationJob.objects.filter(status=EvaluationJob.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    requeued = []
    for job in stale:
        # Claimed by moving its heartbeat: a second worker starting at the same time skips it.
        claimed = EvaluationJob.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at).update(
            heartbeat_at=timezone.now(), current="requeued after its worker stopped"
        )
        if claimed:
            with transaction.atomic():
                _enqueue(job)
            requeued.append(job.pk)
    if requeued:
        log.warning("requeued evaluation jobs whose worker went silent: %s", requeued)
    return requeued


def jobs_fail(*, job_ids: list[int], error: str) -> None:
    EvaluationJob.objects.filter(pk__in=job_ids, status__in=LIVE).update(
        status=EvaluationJob.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
    )


@transaction.atomic
def _finish(job: EvaluationJob, *, reused: bool = False) -> EvaluationJob:
    summary = summarize(job)
    decision, reasons = decide(job, summary)
    job.summary = {**job.summary, **summary}
    job.decision = decision
    job.reasons = reasons
    job.status = EvaluationJob.Status.FINISHED
    job.progress = 1.0
    job.current = ""
    job.reused = reused
    job.finished_at = timezone.now()
    job.save()
    hub_services.adapter_version_set_status(version=job.version, status=decision, reasons=reasons)
    return job


def job_finish(*, job_id: int) -> EvaluationJob | None:
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().filter(pk=job_id, status=EvaluationJob.Status.RUNNING).first()
        if job is None:
            return None  # cancelled meanwhile
        return _finish(job)


def find_run(job: EvaluationJob, planned: PlannedArm) -> ArmRun | None:
    if job.summary.get("fresh"):
        return job.runs.filter(**_run_key(job, planned)).first()
    return ArmRun.objects.filter(**_run_key(job, planned)).first()


def run_key(job: EvaluationJob, planned: PlannedArm) -> dict:
    return _run_key(job, planned)
