"""Reading pages: home, catalog, adapter, samples, leaderboard. They work without JavaScript."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from evaluator import selectors as eval_selectors
from evaluator.comparable import group_rows
from evaluator.selectors import LEADERBOARD_COLUMNS, LEADERBOARD_ORDERINGS
from hub import selectors as hub_selectors
from hub.exceptions import NotFound
from hub.filters import DEFAULT_ORDERING
from hub.pagination import IdsFirstPaginator

from .. import selectors
from ..forms import LEADERBOARD_X_AXES, CatalogPageFilters, LeaderboardForm
from ..markdown import render_card
from .common import hub_errors, query_without

CATALOG_PAGE_SIZE = 20
SAMPLES_PAGE_SIZE = 25


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "web/home.html",
        {
            "adapters": selectors.catalog(user=request.user)[:10],
            "base_models": hub_selectors.base_model_list(),
            "suites": selectors.leaderboard_suites(),
        },
    )


def catalog(request: HttpRequest) -> HttpResponse:
    filters = CatalogPageFilters(request.GET, queryset=selectors.catalog(user=request.user))
    # An invalid value (an unknown method, say) is shown with the form; nothing is filtered.
    valid = filters.is_valid()
    data = filters.form.cleaned_data if valid else {}
    adapters = filters.qs if valid else filters.queryset
    page = IdsFirstPaginator(adapters, CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/catalog.html",
        {
            "form": filters.form,
            "page": page,
            "facets": selectors.catalog_facets(user=request.user),
            "sort": data.get("sort") or DEFAULT_ORDERING,
            "sorts": selectors.CATALOG_SORTS,
            "filtered": any(v for k, v in data.items() if k != "sort"),
            "query": query_without(request, "page"),
        },
    )


@hub_errors
def adapter_detail(request: HttpRequest, namespace: str, name: str, ref: str | None = None) -> HttpResponse:
    page = selectors.adapter_page(user=request.user, namespace=namespace, name=name, ref=ref)
    adapter, version = page.adapter, page.version
    origin = request.build_absolute_uri("/").rstrip("/")
    context = {
        "page": page,
        "adapter": adapter,
        "version": version,
        "origin": origin,
        "card_html": render_card(version.readme) if version else "",
        "charts": [{"id": f"chart-{r.job.pk}", "data": r.chart} for r in page.results],
    }
    if version is not None:
        base_alias = next(
            (a.alias for a in version.base_model.aliases.all() if "/" in a.alias), version.base_model.name
        )
        context["model_ref"] = f"{adapter.full_name}@v{version.number}"
        context["base_alias"] = base_alias
    return render(request, "web/adapter.html", context)


@hub_errors
def samples(request: HttpRequest, namespace: str, name: str, ref: str, job_id: int) -> HttpResponse:
    adapter = hub_selectors.adapter_get(user=request.user, namespace=namespace, name=name)
    version = hub_selectors.version_resolve(adapter=adapter, ref=ref)
    job = eval_selectors.job_get(user=request.user, job_id=job_id)
    if job.version_id != version.pk:
        raise NotFound(f"evaluation job {job_id} is not one of {version}")
    task = request.GET.get("task", "")
    tasks, rows = selectors.job_samples(job=job, task=task if task in job.suite.tasks else "")
    outcome = request.GET.get("only", "")
    if outcome == "adapter-wrong":
        rows = [r for r in rows if (r.answers.get("adapter") or {}).get("correct") is False]
    elif outcome == "rag-better":
        rows = [
            r
            for r in rows
            if (r.answers.get("base_rag") or {}).get("correct") and not (r.answers.get("adapter") or {}).get("correct")
        ]
    page = Paginator(rows, SAMPLES_PAGE_SIZE).get_page(request.GET.get("page"))
    arms = [(arm, selectors.ARM_LABELS[arm]) for arm in selectors.ARMS]
    return render(
        request,
        "web/samples.html",
        {
            "adapter": adapter,
            "version": version,
            "job": job,
            "tasks": tasks,
            "task": task,
            "only": outcome,
            "page": page,
            "arms": arms,
            "query": query_without(request, "page"),
        },
    )


@hub_errors
def decision(request: HttpRequest, slug: str) -> HttpResponse:
    """RAG or fine-tuning on one suite, from its stored runs (the JSON: the API's twin)."""
    from evaluator.decision import decision as suite_decision

    suite = eval_selectors.suite_get(slug=slug)
    return render(
        request,
        "web/decision.html",
        {
            "suite": suite,
            "d": suite_decision(user=request.user, suite=suite),
            "api": reverse("evaluator:suite-decision", kwargs={"slug": suite.slug}),
        },
    )


def leaderboard(request: HttpRequest) -> HttpResponse:
    form = LeaderboardForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    suites = selectors.leaderboard_suites()
    suite = next((s for s in suites if s.slug == data.get("suite")), suites[0] if suites else None)
    if data.get("suite") and (suite is None or suite.slug != data["suite"]):
        raise Http404(f"suite `{data['suite']}` not found")
    ordering = data.get("ordering") or "-average"
    rows: list[dict] = []
    task_columns: list[str] = []
    if suite is not None:
        rows = selectors.leaderboard(
            user=request.user,
            suite=suite,
            base_model=data.get("base_model", ""),
            accepted_only=bool(data.get("accepted")),
            ordering=ordering,
        )
        task_columns = sorted({k for row in rows for k in row if ":" in k})
        if ordering.lstrip("-") not in {*LEADERBOARD_COLUMNS, *task_columns}:
            ordering = "-average"
            rows = selectors.leaderboard_sort(rows, ordering)
    x_axis = data.get("x") or "size_bytes"
    columns = [
        ("rank", "#"),
        ("adapter", "Adapter"),
        ("version", "Version"),
        ("method", "Method"),
        ("status", "Decision"),
        *[(c, c.replace(":", " · ")) for c in task_columns],
        ("average", "Average"),
        ("gain_over_base", "Gain over base"),
        ("gain_over_rag", "Gain over RAG"),
        ("adapter_rag", "Adapter + RAG"),
        ("forgetting", "Forgetting"),
        ("trainable_params", "Trainable params"),
        ("size_bytes", "Size"),
        ("num_training_examples", "Training examples"),
        ("training_time_seconds", "Training time"),
    ]
    export = {}
    if suite is not None:
        api = reverse("evaluator:leaderboard", kwargs={"slug": suite.slug})
        # The API sorts by the fixed columns only; a task column's order stays on this page.
        dropped = () if ordering in LEADERBOARD_ORDERINGS else ("ordering",)
        params = query_without(request, "suite", "x", "page", *dropped)
        export = {
            "csv": f"{api}?{params + '&' if params else ''}export=csv",
            "json": f"{api}?{params}" if params else api,
        }
    points = [
        {"x": row.get(x_axis), "y": row.get("average"), "label": f"{row['adapter']}@v{row['version']}"}
        for row in rows
        if row.get(x_axis) is not None and row.get("average") is not None
    ]
    return render(
        request,
        "web/leaderboard.html",
        {
            "form": form,
            "suites": suites,
            "suite": suite,
            "rows": rows,
            "groups": group_rows(rows),
            "columns": columns,
            "ordering": ordering,
            "query": query_without(request, "ordering"),
            "export": export,
            "x_axis": x_axis,
            "x_axes": LEADERBOARD_X_AXES,
            "chart": {
                "points": points,
                "x_label": LEADERBOARD_X_AXES[x_axis],
                "log_x": x_axis != "num_training_examples",
            },
            "base_models": hub_selectors.base_model_list(),
        },
    )
