"""Reads of the evaluator: jobs visible to a user, and the leaderboard."""

from __future__ import annotations

from django.db.models import QuerySet

from hub.exceptions import NotFound
from hub.models import AdapterVersion
from hub.selectors import visible_adapters

from .comparable import group_order, run_bases
from .models import ArmRun, EvaluationJob, Suite
from .planning import PlannedArm, run_key


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


def version_jobs(*, version: AdapterVersion) -> QuerySet[EvaluationJob]:
    """A version's evaluation jobs with their suites and runs (the caller checked it may see it)."""
    return version.evaluations.select_related("suite", "version__adapter__namespace").prefetch_related("runs")


def job_get(*, user, job_id: int) -> EvaluationJob:
    job = job_queryset(user=user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"evaluation job {job_id} not found")
    return job


def find_run(job: EvaluationJob, planned: PlannedArm) -> ArmRun | None:
    """The stored run a job can use for an arm: any with its key, or for a fresh re-run only
    the ones it computed itself."""
    runs = job.runs if job.fresh else ArmRun.objects
    return runs.filter(**run_key(job, planned)).first()


# Differences with a 95% interval: each has `<name>_low` and `<name>_high` columns too.
INTERVAL_COLUMNS = ("gain_over_base", "gain_over_rag", "adapter_rag_over_rag", "forgetting")
LEADERBOARD_COLUMNS = (
    "rank", "adapter", "version", "method", "status", "average", "gain_over_base", "gain_over_rag",
    "adapter_rag", "forgetting", "adapter_rag_over_rag",
    *(f"{name}_{bound}" for name in INTERVAL_COLUMNS for bound in ("low", "high")),
    "no_op", "trainable_params", "size_bytes", "num_training_examples", "training_time_seconds",
    # what the row ran on: rows whose `comparable` differs are never ranked together
    "comparable", "suite_version", "base_revision", "lm_eval", "task_hashes",
)  # fmt: skip
LEADERBOARD_ORDERINGS = {c for c in LEADERBOARD_COLUMNS} | {f"-{c}" for c in LEADERBOARD_COLUMNS}


def leaderboard(*, user, suite: Suite, base_model: str = "", accepted_only: bool = False, ordering: str = "-average"):
    """One row per version on every version of ``suite``'s slug: its scores, its card, and
    what it ran on (:mod:`evaluator.comparable`).

    Rows are grouped by what they ran on; group 0, the newest comparable runs, is ranked
    (``rank``), the older groups follow unranked. A version is shown once, with its job in
    the newest group it has one in."""
    qs = (
        job_queryset(user=user)
        .filter(suite__slug=suite.slug, status=EvaluationJob.Status.FINISHED)
        .order_by("version_id", "-finished_at")
    )
    if base_model:
        qs = qs.filter(version__base_model__name__iexact=base_model)
    if accepted_only:
        qs = qs.filter(decision="accepted")
    jobs = list(qs)
    bases = run_bases(job.pk for job in jobs)
    for job in jobs:  # a job with no stored run (none should finish so) is its own group
        bases.setdefault(
            job.pk,
            {"base_revision": job.version.base_revision, "lm_eval": "unknown", "task_hashes": {}, "comparable": ""},
        )
    position = {key: i for i, key in enumerate(group_order(jobs, bases))}
    chosen: dict[int, EvaluationJob] = {}
    for job in jobs:  # newest finished first per version: ties keep the newest
        best = chosen.get(job.version_id)
        if best is None or position[bases[job.pk]["comparable"]] < position[bases[best.pk]["comparable"]]:
            chosen[job.version_id] = job
    rows = [
        {
            **_row(job),
            **bases[job.pk],
            "suite_version": job.suite.version,
            "group": position[bases[job.pk]["comparable"]],
        }
        for job in chosen.values()
    ]
    return leaderboard_sort(rows, ordering)


def leaderboard_sort(rows: list[dict], ordering: str) -> list[dict]:
    """Rows by the ``ordering`` column (``-`` for descending) within their comparable group,
    groups in order; rows without a value go last. The first group's rows are ranked."""
    key, descending = ordering.lstrip("-"), ordering.startswith("-")
    present = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r[key], reverse=descending)
    ordered = sorted(present + [r for r in rows if r.get(key) is None], key=lambda r: r.get("group", 0))
    rank = 0
    for row in ordered:
        ranked = row.get("group", 0) == 0 and row.get(key) is not None
        rank += ranked
        row["rank"] = rank if ranked else None
    return ordered


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
        "adapter_rag_over_rag": summary.get("adapter_rag_over_rag"),
        "no_op": bool((summary.get("adapter_effect") or {}).get("no_op")),
        "trainable_params": version.trainable_params,
        "size_bytes": version.size_bytes,
        "num_training_examples": version.num_training_examples,
        "training_time_seconds": version.training_time_seconds,
        "job": job.pk,
    }
    intervals = summary.get("intervals") or {}
    for name in INTERVAL_COLUMNS:
        interval = intervals.get(name) or {}
        row[f"{name}_low"], row[f"{name}_high"] = interval.get("low"), interval.get("high")
    for task, score in (arms.get("adapter") or {}).get("tasks", {}).items():
        row[f"{task}:{score['metric']}"] = score["value"]
    return row
