"""What a job has to compute, and the keys its arm runs are stored and found under.

Pure helpers: no writes, no queue. The worker (:mod:`evaluator.lifecycle`,
:mod:`evaluator.runjob`) and the readers (:mod:`evaluator.selectors`) share them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from hub.models import AdapterVersion

from .models import ArmRun, EvaluationJob, Suite

DOMAIN_ARMS = (ArmRun.Arm.BASE, ArmRun.Arm.BASE_RAG, ArmRun.Arm.ADAPTER, ArmRun.Arm.ADAPTER_RAG)
GENERAL_ARMS = (ArmRun.Arm.BASE, ArmRun.Arm.ADAPTER)
ADAPTER_ARMS = (ArmRun.Arm.ADAPTER, ArmRun.Arm.ADAPTER_RAG)
RAG_ARMS = (ArmRun.Arm.BASE_RAG, ArmRun.Arm.ADAPTER_RAG)
# Methods a shared pass mixes in one batch (peft's adapter_names=; DoRA cannot).
SHAREABLE_METHODS = (AdapterVersion.Method.LORA, AdapterVersion.Method.QLORA)


@dataclass(frozen=True)
class PlannedArm:
    suite: Suite
    arm: str


def plan(job: EvaluationJob) -> list[PlannedArm]:
    """The arms a job scores: four on its domain suite, base and adapter on its general suite."""
    arms = [PlannedArm(job.suite, arm) for arm in DOMAIN_ARMS]
    if job.suite.general_suite is not None:
        arms += [PlannedArm(job.suite.general_suite, arm) for arm in GENERAL_ARMS]
    return arms


def settings_key(*, backend: str, seed: int, batch_size: int, limit: int | None) -> str:
    blob = json.dumps({"backend": backend, "seed": seed, "batch_size": batch_size, "limit": limit}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def job_base_revision(job: EvaluationJob) -> str:
    """The base revision a job scores on: a re-evaluation's newer one, else its version's."""
    return job.base_revision or job.version.base_revision


def on_revision(revision: str) -> Q:
    """A filter for the jobs that score on ``revision``."""
    return Q(base_revision=revision) | Q(base_revision="", version__base_revision=revision)


def run_key(job: EvaluationJob, planned: PlannedArm) -> dict:
    """The fields that identify an arm run: two jobs with equal keys share the run.

    An adapter arm keys on the version's answers hash (its files but the card, see
    ``hub.validation.files.answers_hash``), so a version that only changes README.md
    reuses its parent's runs."""
    version = job.version
    return {
        "suite_hash": planned.suite.content_hash,
        "base_revision": job_base_revision(job),
        "arm": planned.arm,
        "adapter_hash": version.evaluation_hash if planned.arm in ADAPTER_ARMS else "",
        "backend": job.backend,
        "settings_key": settings_key(
            backend=job.backend,
            seed=settings.PEFTHUB_EVAL_SEED,
            batch_size=settings.PEFTHUB_EVAL_BATCH_SIZE,
            limit=settings.PEFTHUB_EVAL_LIMIT,
        ),
    }


def shareable(job: EvaluationJob) -> bool:
    """Whether a job can share a pass with others: a LoRA on the `hf` backend, not set apart
    by a failed shared pass."""
    return job.backend == "hf" and job.version.method in SHAREABLE_METHODS and not job.solo
