"""Evaluation jobs written into the test database as the evaluator's worker leaves them.

The suites are registered inactive, so a push does not start a real evaluation; a
test moves a version's job along (running, finished, failed) while the client watches.
Finishing uses the evaluator's own policy (summarize, decide) and the hub's service
that records the verdict, as the worker does.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

# Exact-match scores per arm: the adapter beats the base by 30 points and forgets little.
GOOD = {"base": 0.2, "base_rag": 0.5, "adapter": 0.5, "adapter_rag": 0.7}
# The adapter is worse than the base model on the domain.
BAD = {"base": 0.4, "base_rag": 0.6, "adapter": 0.3, "adapter_rag": 0.45}
GENERAL = {"base": 0.6, "adapter": 0.58}


def make_suites():
    """`acme-products@1` (domain, task acme_qa) judged against `general@1` (general_qa)."""
    from evaluator.models import Suite

    general = Suite.objects.create(
        slug="general", version="1", name="General", role=Suite.Role.GENERAL, content_hash="b" * 64,
        path="/nonexistent/general", tasks=["general_qa"], active=False,
    )  # fmt: skip
    return Suite.objects.create(
        slug="acme-products", version="1", name="ACME products", role=Suite.Role.DOMAIN, content_hash="a" * 64,
        path="/nonexistent/acme", tasks=["acme_qa"], general_suite=general, active=False,
        policy={"min_gain_over_base": 0.05, "max_forgetting": 0.05, "primary_metrics": {"acme_qa": "exact_match"}},
    )  # fmt: skip


def version_of(full_name: str, number: int = 1):
    from hub.models import AdapterVersion

    namespace, name = full_name.split("/")
    return AdapterVersion.objects.get(adapter__namespace__name=namespace, adapter__name=name, number=number)


def start_job(version, suite, *, progress: float = 0.0, current: str = "", arms=(), scores=GOOD):
    """A running job on ``suite`` whose ``arms`` have run already."""
    from evaluator.models import EvaluationJob

    job = EvaluationJob.objects.create(
        version=version,
        suite=suite,
        backend="hf",
        status=EvaluationJob.Status.RUNNING,
        progress=progress,
        current=current,
        started_at=timezone.now(),
    )
    job.runs.set([_run(version, suite, arm, {"acme_qa": {"exact_match": scores[arm]}}) for arm in arms])
    return job


def finish_job(job, *, scores=GOOD, general=GENERAL):
    """Every arm run; the job decided by the suite's policy; the verdict on the version."""
    from evaluator.models import EvaluationJob
    from evaluator.policy import decide, summarize
    from hub.services import adapter_version_set_status

    suite = job.suite
    runs = [_run(job.version, suite, arm, {"acme_qa": {"exact_match": value}}) for arm, value in scores.items()]
    runs += [
        _run(job.version, suite.general_suite, arm, {"general_qa": {"exact_match": value}})
        for arm, value in general.items()
    ]
    job.runs.set(runs)
    summary = summarize(job)
    decision, reasons = decide(job, summary)
    job.summary, job.decision, job.reasons = summary, decision, reasons
    job.status, job.progress, job.current = EvaluationJob.Status.FINISHED, 1.0, ""
    job.finished_at = timezone.now()
    with transaction.atomic():  # as the worker does (evaluator.lifecycle): a client never sees one without the other
        job.save()
        adapter_version_set_status(version=job.version, status=decision, reasons=reasons)
    return job


def fail_job(job, *, status: str = "failed", error: str = ""):
    job.status, job.error, job.finished_at = status, error, timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    return job


def _run(version, suite, arm: str, metrics: dict):
    from evaluator.models import ArmRun

    run, _ = ArmRun.objects.update_or_create(
        suite=suite,
        suite_hash=suite.content_hash,
        base_model=version.base_model,
        base_revision=version.base_revision,
        arm=arm,
        adapter_hash=version.content_hash if arm.startswith("adapter") else "",
        backend="hf",
        settings_key="test",
        defaults={"metrics": metrics, "duration_seconds": 12.0},
    )
    return run
