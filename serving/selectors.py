"""Reads: which model a request names, whether the caller may use it, what is live."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from hub import selectors as hub_selectors
from hub.exceptions import HubError
from hub.models import AdapterVersion, BaseModel, BaseModelAlias

from .exceptions import ModelNotFound
from .models import Deployment, ModelUsage

if TYPE_CHECKING:
    from hub.selectors import AnyUser

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_ADAPTER_REF = re.compile(rf"^(?P<namespace>{_NAME})/(?P<name>{_NAME})(@(?P<ref>[A-Za-z0-9._-]+))?$")


@dataclass(frozen=True)
class Served:
    """What a request's ``model`` resolved to."""

    requested: str  # as the client wrote it; answers carry it back
    canonical: str  # `base-name` or `ns/name@vN`
    base: BaseModel
    version: AdapterVersion | None = None
    deployment: Deployment | None = None

    @property
    def method(self) -> str | None:
        return self.version.method if self.version is not None else None


_ENGINE_MODEL = re.compile(r"^a(?P<version>[0-9]+)-[0-9a-f]+$")


def engine_model_name(version: AdapterVersion) -> str:
    """The name a version's adapter has inside an engine: its id and content, so a name never
    points at other weights (and says which version it was after the row is gone)."""
    return f"a{version.pk}-{version.content_hash[:12]}"


def engine_model_version_id(name: str) -> int | None:
    """The id of the version an engine's adapter ``name`` belongs to (None: not a version's,
    e.g. the base's identity LoRA)."""
    match = _ENGINE_MODEL.match(name)
    return int(match["version"]) if match else None


def version_label(version: AdapterVersion) -> str:
    return f"{version.adapter.namespace.name}/{version.adapter.name}@v{version.number}"


def live_deployments() -> QuerySet[Deployment]:
    return Deployment.objects.filter(live=True).select_related(
        "version", "version__adapter", "version__adapter__namespace", "version__base_model"
    )


def served_resolve(*, user: AnyUser, model: object) -> Served:
    """Resolve ``model`` for ``user``: a base model's name, or ``ns/name[@alias|@version]``.

    Anything the user may not see, or that is not live (unaccepted, deprecated, undeployed),
    is the same 404 ``model_not_found``.
    """
    if not isinstance(model, str) or not model:
        raise ModelNotFound("`model` is required: a base model's name or `namespace/name[@alias|@version]`")
    match = _ADAPTER_REF.match(model)
    alias = None if match is None or match["ref"] else BaseModelAlias.objects.filter(alias__iexact=model).first()
    if alias is not None:  # `HuggingFaceTB/SmolLM2-135M-Instruct`: a base model's other name
        return Served(requested=model, canonical=alias.base_model.name, base=alias.base_model)
    if match is None:
        base = BaseModel.objects.filter(name__iexact=model).first()
        if base is None:
            raise ModelNotFound(f"the model `{model}` does not exist; GET /v1/models lists the ones you can use")
        return Served(requested=model, canonical=base.name, base=base)
    try:
        adapter = hub_selectors.adapter_get(user=user, namespace=match["namespace"], name=match["name"])
    except HubError:
        raise ModelNotFound(
            f"the model `{model}` does not exist or you do not have access to it "
            "(private adapters need a member's token)"
        ) from None
    ref = match["ref"]
    deployments = live_deployments().filter(version__adapter=adapter)
    if ref is None:
        deployment = deployments.order_by("-version__number").first()
        if deployment is None:
            raise ModelNotFound(f"`{model}` has no live version (versions go live when accepted or deployed)")
    else:
        try:
            version = hub_selectors.version_resolve(adapter=adapter, ref=ref)
        except HubError:
            raise ModelNotFound(f"`{adapter.full_name}` has no version `{ref}`") from None
        deployment = deployments.filter(version=version).first()
        if deployment is None:
            state = "deprecated" if version.deprecated_at else version.status
            raise ModelNotFound(f"`{model}` (v{version.number}, {state}) is not live, so it cannot be called")
    version = deployment.version
    return Served(
        requested=model,
        canonical=version_label(version),
        base=version.base_model,
        version=version,
        deployment=deployment,
    )


def served_models(*, user: AnyUser) -> list[dict[str, Any]]:
    """What ``user`` may call: every base model, and the live versions they can see."""
    rows: list[dict[str, Any]] = [
        {"id": base.name, "parent": None, "base": base} for base in BaseModel.objects.order_by("name")
    ]
    visible = hub_selectors.visible_adapters(user=user).values("pk")
    for deployment in (
        live_deployments()
        .filter(version__adapter__in=visible)
        .order_by("version__adapter__namespace__name", "version__adapter__name", "-version__number")
    ):
        version = deployment.version
        rows.append(
            {
                "id": version_label(version),
                "parent": version.base_model.name,
                "base": version.base_model,
                "deployment": deployment,
            }
        )
    return rows


def deployment_for(*, version: AdapterVersion) -> Deployment | None:
    return Deployment.objects.filter(version=version).first()


def usage_for(*, models: list[str]) -> dict[str, ModelUsage]:
    return {u.model: u for u in ModelUsage.objects.filter(model__in=models)}


def usage_list(*, user: AnyUser) -> QuerySet[ModelUsage]:
    visible = hub_selectors.visible_adapters(user=user).values("pk")
    from django.db.models import Q

    return (
        ModelUsage.objects.filter(Q(version__isnull=True) | Q(version__adapter__in=visible))
        .select_related("base_model")
        .order_by("model")
    )


def replica_list() -> QuerySet:
    """Every replica with what it holds (for staff: the admin and the replicas API)."""
    from django.db.models import Prefetch

    from .models import Placement, Replica

    placements = Placement.objects.select_related(
        "replica__base_model", "deployment__version__adapter__namespace"
    ).order_by("engine_model")
    return (
        Replica.objects.select_related("base_model")
        .prefetch_related(Prefetch("placements", queryset=placements))
        .order_by("base_model__name", "url")
    )
