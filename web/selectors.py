"""Reads for the pages. Each returns everything a page shows in a constant number of queries.

Visibility comes from ``hub.selectors`` and ``evaluator.selectors``, so a page never shows
what the API would hide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, FloatField, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from evaluator import selectors as eval_selectors
from evaluator.models import ArmRun, EvaluationJob, Suite
from evaluator.policy import primary_metric
from hub import selectors as hub_selectors
from hub.models import Adapter, AdapterVersion, ApiToken, BaseModel, Membership, Namespace, TaskTag
from hub.storage import blobstore

ARMS = ("base", "base_rag", "adapter", "adapter_rag")
ARM_LABELS = dict(ArmRun.Arm.choices)

# --- catalog -------------------------------------------------------------------------------
CATALOG_SORTS = {
    "-updated": "Recently updated",
    "-score": "Best score",
    "-downloads": "Most downloaded",
    "-size": "Largest",
    "size": "Smallest",
    "name": "Name",
}


def _best_score() -> Subquery:
    """The best domain score among the finished evaluations of an adapter's newest version."""
    scores = (
        EvaluationJob.objects.filter(version_id=OuterRef("latest_version_id"), status=EvaluationJob.Status.FINISHED)
        .annotate(value=Cast(KeyTextTransform("score", "summary"), FloatField()))
        .filter(value__isnull=False)
        .order_by("-value")
        .values("value")[:1]
    )
    return Subquery(scores, output_field=FloatField())


def catalog(*, user) -> QuerySet[Adapter]:
    """The visible catalog with each row's best score, newest first.

    Filter and sort it with :class:`web.forms.CatalogPageFilters` (the sort keys are
    :data:`CATALOG_SORTS`).
    """
    return hub_selectors.adapter_list(user=user).annotate(score=_best_score())


def base_model_names() -> list[str]:
    """Every base model's name, for the base filters of the catalog, leaderboard and playground."""
    return list(BaseModel.objects.order_by("name").values_list("name", flat=True))


def catalog_facets(*, user) -> dict[str, Any]:
    """The filter choices: base models, methods, and the task tags and licenses of the
    versions of adapters ``user`` may see (a private adapter's values stay private), in
    three queries."""
    visible = hub_selectors.visible_adapters(user=user).values("pk")
    versions = AdapterVersion.objects.filter(adapter_id__in=visible)
    return {
        "base_models": base_model_names(),
        "methods": AdapterVersion.Method.choices,
        "tasks": list(
            TaskTag.objects.filter(versions__in=versions.values("pk"))
            .order_by("name")
            .values_list("name", flat=True)
            .distinct()
        ),
        "licenses": list(versions.exclude(license="").order_by("license").values_list("license", flat=True).distinct()),
        "statuses": AdapterVersion.Status.choices,
    }


# --- the adapter page ------------------------------------------------------------------------
@dataclass
class ArmRow:
    arm: str
    label: str
    average: float | None
    tasks: dict[str, dict[str, Any]]


@dataclass
class SuiteResult:
    """One evaluation job as the adapter page shows it."""

    job: EvaluationJob
    arms: list[ArmRow]
    tasks: list[str]
    general: list[ArmRow]
    chart: dict[str, Any] = field(default_factory=dict)

    @property
    def chart_id(self) -> str:
        return f"chart-data-{self.job.pk}"


def _arm_rows(summary_arms: dict, arms: tuple[str, ...]) -> list[ArmRow]:
    rows = []
    for arm in arms:
        data = summary_arms.get(arm)
        if data is None:
            continue
        rows.append(ArmRow(arm, ARM_LABELS.get(arm, arm), data.get("average"), data.get("tasks", {})))
    return rows


def suite_result(job: EvaluationJob) -> SuiteResult:
    summary = job.summary or {}
    arms = _arm_rows(summary.get("arms", {}), ARMS)
    tasks = list(job.suite.tasks)
    chart = {
        "labels": [*tasks, "average"],
        "datasets": [
            {
                "label": row.label,
                "arm": row.arm,
                "data": [(row.tasks.get(t) or {}).get("value") for t in tasks] + [row.average],
                "stderr": [(row.tasks.get(t) or {}).get("stderr") for t in tasks] + [None],
            }
            for row in arms
        ],
    }
    return SuiteResult(
        job=job,
        arms=arms,
        tasks=tasks,
        general=_arm_rows(summary.get("general", {}), ("base", "adapter")),
        chart=chart,
    )


@dataclass
class AdapterPage:
    adapter: Adapter
    version: AdapterVersion | None
    versions: list[AdapterVersion]
    results: list[SuiteResult]
    can_write: bool


def adapter_page(*, user, namespace: str, name: str, ref: str | None) -> AdapterPage:
    """An adapter, all its versions (with aliases), one version's files and evaluations."""
    adapter = hub_selectors.adapter_get(user=user, namespace=namespace, name=name)
    versions = list(
        AdapterVersion.objects.filter(adapter=adapter)
        .select_related("base_model")
        .only(
            "id",
            "adapter_id",
            "number",
            "content_hash",
            "status",
            "method",
            "size_bytes",
            "commit_title",
            "created_at",
            "deprecated_at",
            "base_model__name",
        )
        .prefetch_related("aliases")
        .order_by("-number")
    )
    version = None
    if ref:
        version = hub_selectors.version_resolve(adapter=adapter, ref=ref)
    elif adapter.latest_version_id:
        version = hub_selectors.version_resolve(adapter=adapter, ref=str(adapter.latest_version.number))
    results = []
    if version is not None:
        jobs = (
            EvaluationJob.objects.filter(version=version)
            .select_related("suite", "suite__general_suite")
            .order_by("suite__slug", "-created_at")
        )
        newest: dict[int, EvaluationJob] = {}
        for job in jobs:
            newest.setdefault(job.suite_id, job)
        results = [suite_result(job) for job in newest.values()]
    return AdapterPage(
        adapter=adapter,
        version=version,
        versions=versions,
        results=results,
        can_write=hub_selectors.can_write(user=user, namespace=adapter.namespace),
    )


# --- samples -------------------------------------------------------------------------------
@dataclass
class SampleRow:
    task: str
    doc_id: int
    question: str
    target: str
    answers: dict[str, dict[str, Any]]  # arm -> {"answer", "correct"}


def _read_samples(sha256: str) -> list[dict]:
    with blobstore.blob_open(sha256) as handle:
        return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def _answer_of(sample: dict) -> str:
    """What the model answered: the generated text, or the choice with the best log-likelihood."""
    doc = sample.get("doc") or {}
    responses = sample.get("filtered_resps") or []
    choices = doc.get("choices")
    if choices and responses and all(isinstance(r, list) and r for r in responses):
        scores = [float(r[0]) for r in responses]
        best = max(range(len(scores)), key=scores.__getitem__)
        return str(choices[best]) if best < len(choices) else str(best)
    if responses:
        first = responses[0]
        return first if isinstance(first, str) else json.dumps(first)
    return ""


def _target_of(sample: dict) -> str:
    doc = sample.get("doc") or {}
    target = sample.get("target")
    choices = doc.get("choices")
    if isinstance(target, int) and choices and 0 <= target < len(choices):
        return str(choices[target])
    if isinstance(target, str) and target.isdigit() and choices and int(target) < len(choices):
        return str(choices[int(target)])
    return "" if target is None else str(target)


def job_samples(*, job: EvaluationJob, task: str = "") -> tuple[list[str], list[SampleRow]]:
    """The domain suite's questions with every arm's answer and whether it was right.

    Samples live in the blob store (one JSONL per arm run, as lm-eval logged them).
    """
    suite = job.suite
    runs = {run.arm: run for run in job.runs.filter(suite=suite).only("id", "arm", "samples_blob", "suite_id")}
    rows: dict[tuple[str, int], SampleRow] = {}
    for arm in ARMS:
        run = runs.get(arm)
        if run is None or not run.samples_blob:
            continue
        for sample in _read_samples(run.samples_blob):
            name = sample.get("task", "")
            if task and name != task:
                continue
            key = (name, int(sample.get("doc_id", 0)))
            row = rows.get(key)
            if row is None:
                doc = sample.get("doc") or {}
                question = next(
                    (doc[k] for k in ("question", "query", "input", "text") if isinstance(doc.get(k), str)), ""
                )
                row = rows[key] = SampleRow(name, key[1], question, _target_of(sample), {})
            metrics = {m: sample.get(m) for m in sample.get("metrics", []) if isinstance(sample.get(m), (int, float))}
            metric = primary_metric(suite, name, metrics)
            row.answers[arm] = {
                "answer": _answer_of(sample),
                "correct": None if metric is None else bool(metrics[metric]),
                "metric": metric,
            }
    return list(suite.tasks), sorted(rows.values(), key=lambda r: (r.task, r.doc_id))


# --- leaderboard ---------------------------------------------------------------------------
def leaderboard_suites() -> list[Suite]:
    """The newest version of each domain suite."""
    newest: dict[str, Suite] = {}
    for suite in Suite.objects.filter(role=Suite.Role.DOMAIN).order_by("slug", "-created_at"):
        newest.setdefault(suite.slug, suite)
    return list(newest.values())


def leaderboard(*, user, suite: Suite, base_model: str, accepted_only: bool, ordering: str) -> list[dict]:
    return eval_selectors.leaderboard(
        user=user, suite=suite, base_model=base_model, accepted_only=accepted_only, ordering=ordering
    )


leaderboard_sort = eval_selectors.leaderboard_sort


# --- the evaluation queue ------------------------------------------------------------------
def queue(*, user, status: str = "", adapter: str = "") -> QuerySet[EvaluationJob]:
    return eval_selectors.job_list(user=user, status=status, adapter=adapter).defer("summary", "error")


def queue_counts(*, user) -> dict[str, int]:
    rows = eval_selectors.job_queryset(user=user).order_by().values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def writable_namespace_ids(*, user) -> set[int] | None:
    """Namespaces the user may write to (None: all of them, for a superuser)."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return None
    return set(
        Membership.objects.filter(user=user, role__in=hub_selectors.WRITE_ROLES).values_list("namespace_id", flat=True)
    )


def writable_namespaces(*, user) -> QuerySet[Namespace]:
    ids = writable_namespace_ids(user=user)
    qs = Namespace.objects.order_by("name")
    return qs if ids is None else qs.filter(pk__in=ids)


# --- the playground ------------------------------------------------------------------------
def playground_models(*, user, base: str = "") -> tuple[list[dict], list[dict]]:
    """Base models and the live adapter versions ``user`` may call: what ``GET /v1/models`` lists.

    ``base`` (a base model's name or alias) keeps that base and the adapters on it; one
    that names no base model keeps nothing."""
    from serving.selectors import served_models

    rows = served_models(user=user)
    if base:
        found = hub_selectors.base_model_find(base)
        rows = [r for r in rows if found is not None and found.name in (r["id"], r["parent"])]
    return [r for r in rows if r["parent"] is None], [r for r in rows if r["parent"] is not None]


def rag_suites() -> list[Suite]:
    return [s for s in leaderboard_suites() if s.retriever]


# --- tokens --------------------------------------------------------------------------------
def token_list(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by(F("revoked_at").desc(nulls_first=True), "-created_at")


def token_get(*, user, token_id: int) -> ApiToken | None:
    return ApiToken.objects.filter(user=user, pk=token_id).first()
