"""What a worker does with one evaluation job: every arm in turn, then the decision."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import services
from .models import ArmRun, EvaluationJob

log = logging.getLogger(__name__)

ADAPTER_ARMS = (ArmRun.Arm.ADAPTER, ArmRun.Arm.ADAPTER_RAG)
RAG_ARMS = (ArmRun.Arm.BASE_RAG, ArmRun.Arm.ADAPTER_RAG)
REPORT_EVERY_SECONDS = 1.0


def execute_job(job_id: int) -> None:
    """Run a job to its end. Safe to call again for the same job (redelivery)."""
    from .engine.runner import ArmSpec, RagSpec, run_arm
    from .engine.wrappers import Cancelled

    job = services.job_start(job_id=job_id)
    if job is None:
        return
    planned = services.plan(job)
    fresh = bool(job.summary.get("fresh"))
    adapter_dir: Path | None = None
    try:
        for index, arm in enumerate(planned):
            label = f"{arm.suite.slug} · {ArmRun.Arm(arm.arm).label}"
            existing = services.find_run(job, arm)
            if existing is not None:
                job.runs.add(existing)
                services.job_progress(job_id=job_id, progress=(index + 1) / len(planned), current=label)
                continue
            if arm.arm in ADAPTER_ARMS and adapter_dir is None:
                adapter_dir = services.adapter_folder(job.version)
            suite = arm.suite
            spec = ArmSpec(
                suite_dir=Path(suite.path),
                tasks=tuple(suite.tasks),
                base_path=Path(job.version.base_model.local_path),
                adapter_path=adapter_dir if arm.arm in ADAPTER_ARMS else None,
                backend=job.backend,
                rag=RagSpec(suite.retriever, Path(suite.path) / "corpus.jsonl", suite.top_k)
                if arm.arm in RAG_ARMS
                else None,
                system_instruction=suite.system_instruction or None,
                batch_size=settings.PEFTHUB_EVAL_BATCH_SIZE,
                seed=settings.PEFTHUB_EVAL_SEED,
                limit=settings.PEFTHUB_EVAL_LIMIT,
            )
            last = [0.0]

            def report(task: str, done: int, total: int, index=index, label=label, last=last) -> None:
                now = time.monotonic()
                if now - last[0] < REPORT_EVERY_SECONDS and done < total:
                    return
                last[0] = now
                status = services.job_progress(
                    job_id=job_id,
                    progress=(index + done / max(total, 1)) / len(planned),
                    current=f"{label}: {task}" if task else label,
                )
                if status == EvaluationJob.Status.CANCELLED:
                    raise Cancelled

            outcome = run_arm(spec, report)
            services.arm_run_store(key=services.run_key(job, arm), suite=suite, job=job, outcome=outcome, replace=fresh)
        services.job_finish(job_id=job_id)
    except Cancelled:
        log.info("evaluation job %s cancelled", job_id)
    except SoftTimeLimitExceeded:
        services.job_fail(job_id=job_id, error="the evaluation ran past its time limit")
    except Exception as exc:  # a broken suite or adapter: the job says why, nothing retries it
        log.exception("evaluation job %s failed", job_id)
        services.job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")
