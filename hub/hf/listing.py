"""Listings ``HfApi`` browses a hub with: ``list_models``, ``list_repo_refs``,
``list_repo_commits`` and ``get_paths_info``.

- ``GET /api/models``: the catalog (``hub.selectors.adapter_list``, so the same visibility
  and filters): ``search``, ``author`` (a namespace), ``filter`` (``base_model:adapter:<base>``,
  ``license:<id>``, ``peft`` or a task tag), ``sort`` (``lastModified``, ``createdAt``,
  ``downloads``; the Hub's ``likes`` and ``trendingScore`` sort by last modified, as the
  hub counts neither), ``direction``, ``limit`` (one page, ``Link`` to the next),
  ``full`` (siblings) and ``cardData``.
- ``GET /api/models/{ns}/{name}/refs``: aliases are branches (``main`` is ``latest``),
  versions are tags ``v1``, ``v2``...
- ``GET /api/models/{ns}/{name}/commits/{rev}``: the versions up to ``rev``, newest first,
  with their commit title (``v3`` when the version came without one), author and date.
- ``POST /api/models/{ns}/{name}/paths-info/{rev}`` (form ``paths``): those paths' entries,
  as in the tree listing.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.http import urlencode

from hub import selectors
from hub.exceptions import HubError
from hub.filters import CatalogFilterSet
from hub.models import Adapter, Alias

from .api import adapter_model_info, hf_date
from .files import tree_entries, version_files
from .protocol import Caller, hf_view
from .writes import hf_write

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_SORTS = {
    "lastModified": "updated",
    "last_modified": "updated",
    "createdAt": "created",
    "created_at": "created",
    "id": "name",
    "downloads": "downloads",
    "likes": "updated",
    "trendingScore": "updated",
}


def _catalog_query(request: HttpRequest) -> dict[str, str]:
    """``list_models``' parameters as the catalog's filters (:class:`hub.filters.CatalogFilterSet`)."""
    query = {"q": request.GET.get("search", ""), "namespace": request.GET.get("author", "")}
    for value in request.GET.getlist("filter"):
        for item in value.split(","):
            item = item.strip()
            if item.startswith("base_model:adapter:"):
                query["base_model"] = item.removeprefix("base_model:adapter:")
            elif item.startswith("base_model:"):
                query["base_model"] = item.rsplit(":", 1)[-1]
            elif item.startswith("license:"):
                query["license"] = item.removeprefix("license:")
            elif item and item not in ("peft", "safetensors"):
                query["task"] = item
    sort = request.GET.get("sort", "lastModified")
    if sort not in _SORTS:
        raise HubError(f"sort `{sort}` is not supported: use one of {', '.join(_SORTS)}")
    descending = request.GET.get("direction", "-1") != "1"
    query["ordering"] = ("-" if descending else "") + _SORTS[sort]
    return {key: value for key, value in query.items() if value}


def _catalog(request: HttpRequest, caller: Caller) -> QuerySet[Adapter]:
    filterset = CatalogFilterSet(_catalog_query(request), queryset=selectors.adapter_list(user=caller.user))
    if not filterset.is_valid():
        field, errors = next(iter(filterset.errors.items()))
        raise HubError(f"`{field}`: {' '.join(errors)}", field=field)
    return filterset.qs


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "").lower() in ("1", "true", "yes")


@hf_view
def model_list(request: HttpRequest, caller: Caller):
    qs = _catalog(request, caller)
    full, card = _flag(request, "full"), _flag(request, "cardData")
    qs = qs.prefetch_related("latest_version__base_model__aliases")
    if full:
        qs = qs.prefetch_related("latest_version__files__blob")
    limit = request.GET.get("limit", "")
    size = min(int(limit), MAX_PAGE) if limit.isdigit() and int(limit) > 0 else DEFAULT_PAGE
    cursor = request.GET.get("cursor", "0")
    start = int(cursor) if cursor.isdigit() else 0
    page = list(qs[start : start + size + 1])
    rows = []
    for adapter in page[:size]:
        info = adapter_model_info(adapter, adapter.latest_version)
        if not full:
            info.pop("siblings", None)
        if not (card or full):
            info.pop("cardData", None)
        rows.append(info)
    response = JsonResponse(rows, safe=False)
    if len(page) > size:
        query = {k: v for k, v in request.GET.lists() if k != "cursor"} | {"cursor": [start + size]}
        url = request.build_absolute_uri(reverse("hf:model-list"))
        response["Link"] = f'<{url}?{urlencode(query, doseq=True)}>; rel="next"'
    return response


def _ref(name: str, kind: str, version) -> dict:
    return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": selectors.version_commit_sha(version)}


@hf_view
def repo_refs(request: HttpRequest, caller: Caller, namespace: str, name: str):
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    versions = list(selectors.version_list(adapter=adapter))
    aliases = Alias.objects.filter(adapter=adapter).select_related("version").order_by("name")
    branches = [_ref(alias.name, "heads", alias.version) for alias in aliases]
    if adapter.latest_version is not None and not any(a.name == "main" for a in aliases):
        branches.insert(0, _ref("main", "heads", adapter.latest_version))
    tags = [_ref(f"v{v.number}", "tags", v) for v in versions]
    return JsonResponse({"branches": branches, "tags": tags, "converts": [], "pullRequests": []})


@hf_view
def repo_commits(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str):
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    head = selectors.version_resolve_hf(adapter=adapter, revision=revision)
    versions = selectors.version_list(adapter=adapter).filter(number__lte=head.number).select_related("created_by")
    commits = [
        {
            "id": selectors.version_commit_sha(v),
            "title": v.commit_title or f"v{v.number}",
            "message": v.commit_description,
            "authors": [{"user": v.created_by.get_username() if v.created_by else "", "avatar": None}],
            "date": hf_date(v.created_at),
        }
        for v in versions
    ]
    return JsonResponse(commits, safe=False)


@hf_write("POST", token=False)
def paths_info(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str):
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    version = selectors.version_resolve_hf(adapter=adapter, revision=revision)
    wanted = {p.strip("/") for p in request.POST.getlist("paths")}
    entries = tree_entries(version_files(version), "", recursive=True) or []
    return JsonResponse([e for e in entries if e["path"] in wanted], safe=False)
