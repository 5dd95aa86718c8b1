"""Reads of the evaluator: jobs visible to a user, and the leaderboard."""

from __future__ import annotations

from django.db.models import QuerySet

from hub.exceptions import NotFound
from hub.selectors import visible_adapters

from .models import EvaluationJob, Suite


def suite_list() -> QuerySet[Suite]:
    return Suite.objects.select_related("general_suite").order_by("slug", "-created_at")


def suite_get(*, slug: str, version: str | None = None) -> Suite:
    qs = Suite.objects.filter(slug=slug)
    if version:
        qs = qs.filter(version=version)
    suite = qs.order_by("-created_at").first()
    if suite is None:
        raise NotFound(f"suite `{slug}`{'@' + version if version else ''} not found")
    return suite


def job_queryset(*, user) -> QuerySet[EvaluationJob]:
    """Jobs of versions the user may see (public adapters, and their namespaces' private ones)."""
    return EvaluationJob.objects.filter(version__adapter__in=visible_adapters(user=user)).select_related(
        "suite", "version__adapter__namespace", "version__base_model"
    )


def job_list(*, user, status: str = "", adapter: str = "") -> QuerySet[EvaluationJob]:
    qs = job_queryset(user=user)
    if status:
        qs = qs.filter(status=status)
    if adapter:
        namespace, _, name = adapter.partition("/")
        qs = qs.filter(version__adapter__namespace__name__iexact=namespace, version__adapter__name__iexact=name)
    return qs.order_by("-created_at")


def job_get(*, user, job_id: int) -> EvaluationJob:
    job = job_queryset(user=user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"evaluation job {job_id} not found")
    return job


LEADERBOARD_COLUMNS = (
    "adapter", "version", "method", "status", "average", "gain_over_base", "gain_over_rag",
    "adapter_rag", "forgetting", "trainable_params", "size_bytes", "num_training_examples",
    "training_time_seconds",
)  # fmt: skip
LEADERBOARD_ORDERINGS = {c for c in LEADERBOARD_COLUMNS} | {f"-{c}" for c in LEADERBOARD_COLUMNS}


def leaderboard(*, user, suite: Suite, base_model: str = "", accepted_only: bool = False, ordering: str = "-average"):
    """One row per version's newest finished job on ``suite``: its scores and its card."""
    qs = (
        job_queryset(user=user)
        .filter(suite=suite, status=EvaluationJob.Status.FINISHED)
        .order_by("version_id", "-finished_at")
    )
    if base_model:
        qs = qs.filter(version__base_model__name__iexact=base_model)
    if accepted_only:
        qs = qs.filter(decision="accepted")
    newest: dict[int, EvaluationJob] = {}
    for job in qs:
        newest.setdefault(job.version_id, job)
    return leaderboard_sort([_row(job) for job in newest.values()], ordering)


def leaderboard_sort(rows: list[dict], ordering: str) -> list[dict]:
    """Rows by the ``ordering`` column (``-`` for descending); rows without a value go last."""
    key, descending = ordering.lstrip("-"), ordering.startswith("-")
    present = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r[key], reverse=descending)
    return present + [r for r in rows if r.get(key) is None]


def _row(job: EvaluationJob) -> dict:
    version = job.version
    summary = job.summary or {}
    arms = summary.get("arms", {})
    row = {
        "adapter": f"{version.adapter.namespace.name}/{version.adapter.name}",
        "version": version.number,
        "method": version.method,
        "status": job.decision,
        "average": summary.get("score"),
        "base": (arms.get("base") or {}).get("average"),
        "base_rag": (arms.get("base_rag") or {}).get("average"),
        "adapter_rag": (arms.get("adapter_rag") or {}).get("average"),
        "gain_over_base": summary.get("gain_over_base"),
        "gain_over_rag": summary.get("gain_over_rag"),
        "forgetting": summary.get("forgetting"),
        "trainable_params": version.trainable_params,
        "size_bytes": version.size_bytes,
        "num_training_examples": version.num_training_examples,
        "training_time_seconds": version.training_time_seconds,
        "job": job.pk,
    }
    for task, score in (arms.get("adapter") or {}).get("tasks", {}).items():
        row[f"{task}:{score['metric']}"] = score["value"]
    return row
