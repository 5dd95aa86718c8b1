"""What a worker does with an evaluation job: every arm in turn, then the decision.

A worker that takes a LoRA job on the ``hf`` backend also claims up to
``PEFTHUB_EVAL_SHARED_MAX - 1`` other pending LoRA jobs on the same suite and base
revision, and scores all of them in one shared pass (:mod:`evaluator.engine.shared`):
the base is loaded once, base arms run once, and each adapter arm's requests are run for
every adapter in the same batches. What is stored per job is what a job run alone stores.

Claimed jobs point at their leader (``batch_leader``). Their own queue messages then have
nothing to do while the leader runs; if the leader's worker dies, the leader's redelivered
message claims them again. If the shared pass fails, the other jobs go back to the queue to
run alone, so one broken adapter fails only its own job.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from hub.selectors import base_revision_get

from . import lifecycle
from .models import ArmRun, EvaluationJob
from .planning import ADAPTER_ARMS, RAG_ARMS, PlannedArm, job_base_revision, plan, run_key
from .selectors import find_run
from .suites_registry import read_manifest, tasks_folder

log = logging.getLogger(__name__)

REPORT_EVERY_SECONDS = 1.0


def execute_job(job_id: int) -> list[int]:
    """Run a job (and the jobs it claims) to its end. Safe to call again (redelivery).

    Returns the ids of jobs to send back to the queue, to run alone (a shared pass failed
    or ran out of time); the Celery task enqueues them.
    """
    from .engine.wrappers import Cancelled

    job = lifecycle.job_start(job_id=job_id)
    if job is None:
        return []
    jobs = [job, *lifecycle.jobs_claim_batch(leader=job, limit=settings.PEFTHUB_EVAL_SHARED_MAX)]
    requeue: list[int] = []
    try:
        try:
            _Batch(jobs).run()
        except (Cancelled, SoftTimeLimitExceeded):
            raise
        except Exception:
            if len(jobs) == 1:
                raise
            # One adapter or the pass itself is broken: everyone runs alone, so only the
            # guilty job fails. Finished arms are kept and reused.
            log.exception("shared pass of jobs %s failed; running them one by one", [j.pk for j in jobs])
            requeue = lifecycle.jobs_release(job_ids=[j.pk for j in jobs[1:]])
            lifecycle.job_mark_solo(job_id=job.pk)
            jobs = [job]
            _Batch(jobs).run()
    except Cancelled:
        log.info("evaluation job %s cancelled", job_id)
    except SoftTimeLimitExceeded:
        if len(jobs) > 1:  # the pass ran out of time, not the jobs: each runs alone, keeping its finished arms
            log.warning("shared pass of jobs %s ran past its time limit; requeued alone", [j.pk for j in jobs])
            requeue = lifecycle.jobs_release(job_ids=[j.pk for j in jobs])
        else:
            lifecycle.jobs_fail(job_ids=[job_id], error="the evaluation ran past its time limit")
    except Exception as exc:  # a broken suite or adapter: the job says why, nothing retries it
        log.exception("evaluation job %s failed", job_id)
        lifecycle.jobs_fail(job_ids=[job_id], error=f"{type(exc).__name__}: {exc}")
    return requeue


class _Batch:
    """One or more jobs on the same suite, scored arm by arm."""

    def __init__(self, jobs: list[EvaluationJob]) -> None:
        self.jobs = jobs
        self.alive = {j.pk for j in jobs}
        self.planned = plan(jobs[0])
        self.folders: dict[int, Path] = {}
        self.shared = None  # SharedAdapters over every job's adapter, built at the first adapter arm

    def run(self) -> None:
        from .engine.runner import run_arm

        planned = self.planned
        for index, arm in enumerate(planned):
            label = f"{arm.suite.slug} · {ArmRun.Arm(arm.arm).label}"
            todo = []
            for job in self._alive_jobs():
                existing = find_run(job, arm)
                if existing is not None:
                    job.runs.add(existing)
                else:
                    todo.append(job)
            if not todo:
                self._progress((index + 1) / len(planned), label)
                continue
            if arm.arm not in ADAPTER_ARMS or len(todo) == 1:  # a base arm serves every job
                outcome = run_arm(self._spec(todo[0], arm), self._reporter(index, label))
                outcomes = {job.pk: outcome for job in todo}
            else:
                shared = self._shared()
                shared.expect([self._index(job) for job in todo])
                label = f"{label} · shared pass, {len(todo)} adapters"
                outcomes = {}
                for k, job in enumerate(todo):
                    # The first view computes every adapter's answers; the others read theirs back.
                    report = self._reporter(index, label, finished=k > 0)
                    outcomes[job.pk] = run_arm(self._spec(job, arm), report, lm=shared.view(self._index(job)))
            self._store(todo, arm, outcomes)
        for job in self._alive_jobs():
            lifecycle.job_finish(job_id=job.pk)

    # -- helpers ------------------------------------------------------------------------------------------------

    def _alive_jobs(self) -> list[EvaluationJob]:
        return [j for j in self.jobs if j.pk in self.alive]

    def _index(self, job: EvaluationJob) -> int:
        return [j.pk for j in self.jobs].index(job.pk)

    def _folder(self, job: EvaluationJob) -> Path:
        if job.pk not in self.folders:
            self.folders[job.pk] = lifecycle.adapter_folder(job.version)
        return self.folders[job.pk]

    def _shared(self):
        if self.shared is None:
            from .engine.shared import SharedAdapters

            first = self.jobs[0]
            self.shared = SharedAdapters(
                base_path=_base_path(first),
                adapter_paths=[self._folder(j) for j in self.jobs],
                batch_size=settings.PEFTHUB_EVAL_BATCH_SIZE,
            )
        return self.shared

    def _spec(self, job: EvaluationJob, arm: PlannedArm):
        from .engine.runner import ArmSpec, RagSpec

        suite = arm.suite
        folder = Path(suite.path)
        corpus = read_manifest(folder).corpus or "corpus.jsonl"
        return ArmSpec(
            # Built-in task kinds run from the folder the hub generates for them.
            suite_dir=tasks_folder(folder),
            tasks=tuple(suite.tasks),
            base_path=_base_path(job),
            adapter_path=self._folder(job) if arm.arm in ADAPTER_ARMS else None,
            backend=job.backend,
            rag=RagSpec(suite.retriever, folder / corpus, suite.top_k) if arm.arm in RAG_ARMS else None,
            system_instruction=suite.system_instruction or None,
            batch_size=settings.PEFTHUB_EVAL_BATCH_SIZE,
            seed=settings.PEFTHUB_EVAL_SEED,
            limit=settings.PEFTHUB_EVAL_LIMIT,
        )

    def _store(self, todo: list[EvaluationJob], arm: PlannedArm, outcomes: dict) -> None:
        for job in todo:
            if job.pk in self.alive:  # a job cancelled meanwhile keeps what it had
                lifecycle.arm_run_store(
                    key=run_key(job, arm), suite=arm.suite, job=job, outcome=outcomes[job.pk], replace=job.fresh
                )

    def _progress(self, progress: float, current: str) -> None:
        from .engine.wrappers import Cancelled

        statuses = lifecycle.jobs_progress(job_ids=sorted(self.alive), progress=progress, current=current)
        self.alive = {pk for pk, status in statuses.items() if status == EvaluationJob.Status.RUNNING}
        if not self.alive:
            raise Cancelled

    def _reporter(self, index: int, label: str, *, finished: bool = False):
        last = [0.0]
        arms = len(self.planned)

        def report(task: str, done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < REPORT_EVERY_SECONDS and done < total:
                return
            last[0] = now
            share = 1.0 if finished else done / max(total, 1)
            self._progress((index + share) / arms, f"{label}: {task}" if task else label)

        return report


def _base_path(job: EvaluationJob) -> Path:
    """The folder of the base revision the job scores on (:func:`planning.job_base_revision`)."""
    row = base_revision_get(base=job.version.base_model, revision=job_base_revision(job))
    return Path(row.local_path if row is not None else job.version.base_model.local_path)
