"""The worker's side of a job: claim it (and others for a shared pass), report progress,
store each arm's run, then fail, release or finish it with the policy's decision.

Nothing here enqueues: functions that put jobs back in the queue return their ids, and
the Celery task (:mod:`evaluator.tasks`) sends them. So the worker never imports
``tasks``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from hub import services as hub_services
from hub.models import AdapterVersion, Blob
from hub.storage import blobstore
from hub.storage.materialize import version_materialize

from .models import ArmRun, EvaluationJob, Suite
from .planning import SHAREABLE_METHODS, job_base_revision, on_revision, shareable
from .policy import decide, summarize

log = logging.getLogger(__name__)

LIVE = (EvaluationJob.Status.PENDING, EvaluationJob.Status.RUNNING)


def adapter_folder(version: AdapterVersion) -> Path:
    """The version's files as a folder peft can load, cached by content hash."""
    return version_materialize(version=version, root=Path(settings.PEFTHUB_DATA_DIR) / "cache" / "adapters")


def superseded_by(job: EvaluationJob) -> AdapterVersion | None:
    """A newer version of the job's adapter with a job of its own on the same suite (pending,
    running or finished), if there is one: then scoring this older version is wasted work.

    Only an upload's automatic evaluation is ever superseded, never a re-run someone asked for
    or a re-evaluation on a new suite or base revision. This is what makes a training run
    that pushes every save (``Trainer(hub_strategy="every_save")``) cost one evaluation, of
    its last push, when its pushes come faster than the queue drains.
    """
    if job.fresh or job.reevaluation or job.rerun_of_id is not None:
        return None
    newer = (
        EvaluationJob.objects.filter(
            version__adapter_id=job.version.adapter_id,
            version__number__gt=job.version.number,
            suite_id=job.suite_id,
            status__in=[*LIVE, EvaluationJob.Status.FINISHED],
        )
        .select_related("version")
        .order_by("-version__number")
        .first()
    )
    return newer.version if newer is not None else None


def _cancel_superseded(job: EvaluationJob, newer: AdapterVersion) -> None:
    reason = (
        f"cancelled before it started: v{newer.number} of {job.version.adapter} was pushed meanwhile and is "
        f"evaluated instead; re-run this job to score v{job.version.number} anyway"
    )
    EvaluationJob.objects.filter(pk=job.pk, status=EvaluationJob.Status.PENDING).update(
        status=EvaluationJob.Status.CANCELLED, reasons=[reason], finished_at=timezone.now()
    )
    log.info("evaluation job %s superseded by %s", job.pk, newer)


def job_start(*, job_id: int) -> EvaluationJob | None:
    """Claim a job for this worker; None if there is nothing (left) to do.

    A pending job of an upload whose adapter has a newer version with its own job is
    cancelled instead (:func:`superseded_by`).

    A pending job is claimed. A running job is a redelivery (its worker died) and is claimed
    again, unless another job's shared pass is scoring it: while that leader runs, or while
    the job's own heartbeat is fresh, its message has nothing to do.
    """
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().select_related("version", "suite").filter(pk=job_id).first()
        if job is None or job.status not in LIVE:
            return None  # finished, failed or cancelled: a redelivery has nothing to do
        if job.status == EvaluationJob.Status.PENDING:
            newer = superseded_by(job)
            if newer is not None:
                _cancel_superseded(job, newer)
                return None
        leader_id = job.batch_leader_id
        if job.status == EvaluationJob.Status.RUNNING and leader_id is not None and leader_id != job.pk:
            leader_running = EvaluationJob.objects.filter(pk=leader_id, status=EvaluationJob.Status.RUNNING).exists()
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
        on_revision(job_base_revision(leader)),
        suite=leader.suite,
        backend=leader.backend,
        version__base_model=leader.version.base_model_id,
        version__method__in=SHAREABLE_METHODS,
        solo=False,  # set apart by a failed shared pass: it runs alone
    ).exclude(pk=leader.pk)
    claimed: list[int] = []
    for status, extra in (
        (EvaluationJob.Status.RUNNING, {"batch_leader": leader}),  # left from the leader's last attempt
        (EvaluationJob.Status.PENDING, {}),
    ):
        for pk in same.filter(status=status, **extra).order_by("created_at").values_list("pk", flat=True):
            if len(claimed) >= limit - 1:
                break
            if status == EvaluationJob.Status.PENDING:
                candidate = EvaluationJob.objects.select_related("version").get(pk=pk)
                newer = superseded_by(candidate)
                if newer is not None:
                    _cancel_superseded(candidate, newer)
                    continue
            if EvaluationJob.objects.filter(pk=pk, status=status, **extra).update(**claim):
                claimed.append(pk)
    jobs = EvaluationJob.objects.select_related("version", "suite").in_bulk(claimed)
    return [jobs[pk] for pk in claimed]


def jobs_release(*, job_ids: list[int]) -> list[int]:
    """Give claimed jobs back, to run alone (a shared pass failed); returns the ids the
    caller must send to the queue again."""
    with transaction.atomic():
        released = list(
            EvaluationJob.objects.select_for_update()
            .filter(pk__in=job_ids, status__in=LIVE)
            .values_list("pk", flat=True)
        )
        EvaluationJob.objects.filter(pk__in=released).update(
            status=EvaluationJob.Status.PENDING, batch_leader=None, solo=True
        )
    return sorted(released)


def job_mark_solo(*, job_id: int) -> None:
    EvaluationJob.objects.filter(pk=job_id).update(solo=True)


def jobs_progress(*, job_ids: list[int], progress: float, current: str) -> dict[int, str]:
    """Record progress (and so the heartbeat) of running jobs; returns every job's status,
    so the runner stops scoring the ones cancelled meanwhile."""
    EvaluationJob.objects.filter(pk__in=job_ids, status=EvaluationJob.Status.RUNNING).update(
        progress=max(0.0, min(1.0, progress)), current=current[:200], heartbeat_at=timezone.now()
    )
    return dict(EvaluationJob.objects.filter(pk__in=job_ids).values_list("pk", "status"))


def jobs_claim_stale(*, older_than_seconds: int) -> list[int]:
    """Claim running jobs whose worker went silent, for the queue; returns their ids.

    A running job reports progress (its heartbeat) as its requests complete. With Redis or
    RabbitMQ an unacknowledged job comes back by itself when its worker dies; kombu's
    filesystem broker (the embedded default) drops it. Workers requeue these when they
    start (:func:`evaluator.tasks.jobs_requeue_stale`), so a job orphaned by a killed
    worker runs again; its finished arms are reused.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = EvaluationJob.objects.filter(status=EvaluationJob.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    claimed = []
    for job in stale:
        # Claimed by moving its heartbeat: a second worker starting at the same time skips it.
        if EvaluationJob.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at).update(
            heartbeat_at=timezone.now(), current="requeued after its worker stopped"
        ):
            claimed.append(job.pk)
    if claimed:
        log.warning("requeueing evaluation jobs whose worker went silent: %s", claimed)
    return claimed


def jobs_fail(*, job_ids: list[int], error: str) -> None:
    EvaluationJob.objects.filter(pk__in=job_ids, status__in=LIVE).update(
        status=EvaluationJob.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
    )


@transaction.atomic
def job_conclude(*, job: EvaluationJob, reused: bool = False) -> EvaluationJob:
    """Summarize the job's runs, apply the suite's policy, and record the verdict on the
    job and on the version (the hub emits ``version.accepted`` after commit)."""
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
        return job_conclude(job=job)


def arm_run_store(*, key: dict, suite: Suite, job: EvaluationJob, outcome, replace: bool = False) -> ArmRun:
    """Keep one arm's outcome; a run with the same key (a racing or redelivered job) wins,
    unless ``replace`` (a fresh re-run: the recomputed numbers replace the cached ones)."""
    sha = hashlib.sha256(outcome.samples_jsonl).hexdigest()
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
        questions=outcome.questions,
        prompt_tokens=outcome.prompt_tokens,
        model_seconds=outcome.model_seconds,
    )
    with transaction.atomic():
        _, inserted = Blob.objects.get_or_create(sha256=sha, defaults={"size": len(outcome.samples_jsonl)})
        if inserted or not blobstore.blob_exists(sha):
            blobstore.blob_write(sha, io.BytesIO(outcome.samples_jsonl))
        if replace:
            run, _ = ArmRun.objects.update_or_create(**key, defaults=values)
        else:
            try:
                with transaction.atomic():
                    run = ArmRun.objects.create(**key, **values)
            except IntegrityError:
                run = ArmRun.objects.get(**key)
        job.runs.add(run)
    return run
