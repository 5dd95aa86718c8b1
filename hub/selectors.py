"""Reads. Visibility rules live here, so every API and page applies the same ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from .exceptions import NotFound, PermissionDenied, UploadRejected
from .models import (
    Adapter,
    AdapterVersion,
    Alias,
    BaseModel,
    BaseModelAlias,
    Membership,
    Namespace,
)
from .specs import BaseModelSpec, modules_from_json

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.WRITER)


# --- base models ---------------------------------------------------------------------------
def base_model_resolve(name: str, *, field: str = "base_model") -> BaseModel:
    """Find a base model by its name or any alias (case-insensitive)."""
    base = BaseModel.objects.filter(name__iexact=name).first()
    if base is None:
        hit = BaseModelAlias.objects.select_related("base_model").filter(alias__iexact=name).first()
        base = hit.base_model if hit else None
    if base is None:
        known = ", ".join(BaseModel.objects.values_list("name", flat=True)) or "none yet"
        hint = (
            " (a local path? name the base model in the upload's `base_model` field)"
            if "/" in name and not re.match(r"^[\w.-]+/[\w.-]+$", name)
            else ""
        )
        raise UploadRejected(
            f"base model `{name}` is not registered{hint}; registered base models: {known}",
            field=field,
            file="adapter_config.json" if field == "base_model_name_or_path" else None,
        )
    return base


def base_model_spec(base: BaseModel) -> BaseModelSpec:
    return BaseModelSpec(
        name=base.name,
        architecture=base.architecture,
        hidden_size=base.hidden_size,
        num_layers=base.num_layers,
        num_attention_heads=base.num_attention_heads,
        num_key_value_heads=base.num_key_value_heads,
        vocab_size=base.vocab_size,
        modules=modules_from_json(base.modules),
        aliases=tuple(base.aliases.values_list("alias", flat=True)),
    )


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.prefetch_related("aliases").order_by("name")


# --- permissions ---------------------------------------------------------------------------
def user_role(*, user: User, namespace: Namespace) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(namespace=namespace, user=user).values_list("role", flat=True).first()


def can_write(*, user: User, namespace: Namespace) -> bool:
    if user.is_authenticated and user.is_superuser:
        return True
    return user_role(user=user, namespace=namespace) in WRITE_ROLES


def require_write(*, user: User, namespace: Namespace) -> None:
    if not can_write(user=user, namespace=namespace):
        who = "anonymous users" if not user.is_authenticated else f"user `{user.get_username()}`"
        raise PermissionDenied(
            f"{who} may not write to namespace `{namespace.name}`; ask one of its owners to add "
            "you as a writer, or use a token of a member"
        )


def visible_adapters(*, user: User) -> QuerySet[Adapter]:
    """Public adapters, plus private ones in the user's namespaces."""
    qs = Adapter.objects.all()
    if user.is_authenticated and user.is_superuser:
        return qs
    if not user.is_authenticated:
        return qs.filter(private=False)
    mine = Membership.objects.filter(user=user).values("namespace_id")
    return qs.filter(Q(private=False) | Q(namespace_id__in=mine))


# --- namespaces ----------------------------------------------------------------------------
def namespace_get(*, name: str) -> Namespace:
    namespace = Namespace.objects.filter(name__iexact=name).first()
    if namespace is None:
        raise NotFound(f"namespace `{name}` not found")
    return namespace


def namespace_list(*, user: User) -> QuerySet[Namespace]:
    return Namespace.objects.order_by("name")


# --- adapters ------------------------------------------------------------------------------
@dataclass
class CatalogFilters:
    q: str = ""
    namespace: str = ""
    base_model: str = ""
    method: str = ""
    peft_type: str = ""
    task: str = ""
    license: str = ""
    status: str = ""
    ordering: str = "-updated"


ORDERINGS = {
    "updated": "updated_at",
    "-updated": "-updated_at",
    "created": "created_at",
    "-created": "-created_at",
    "name": "name",
    "-name": "-name",
    "size": "latest_size_bytes",
    "-size": "-latest_size_bytes",
    "params": "latest_trainable_params",
    "-params": "-latest_trainable_params",
}


CATALOG_DEFERRED = (
    "latest_version__readme",
    "latest_version__config",
    "latest_version__metadata",
    "latest_version__base_model__modules",
    "latest_version__base_model__config",
)


def _versions_tagged(tag: str) -> QuerySet:
    through = AdapterVersion.task_tags.through
    return through.objects.filter(tasktag__name__iexact=tag).values("adapterversion_id")


def adapter_list(*, user: User, filters: CatalogFilters) -> QuerySet[Adapter]:
    """The catalog: one row per adapter, carrying its newest version's card.

    A constant number of queries whatever the page size: the namespace, newest version
    and base model are joined, and task tags are prefetched in one query.
    """
    if filters.ordering not in ORDERINGS:
        raise ValueError(filters.ordering)
    qs = visible_adapters(user=user)
    if filters.q:
        for word in filters.q.split()[:8]:
            qs = qs.filter(
                Q(name__icontains=word)
                | Q(namespace__name__icontains=word)
                | Q(description__icontains=word)
                | Q(latest_version_id__in=_versions_tagged(word))
            )
    if filters.namespace:
        qs = qs.filter(namespace__name__iexact=filters.namespace)
    if filters.base_model:
        named = BaseModel.objects.filter(
            Q(name__iexact=filters.base_model) | Q(aliases__alias__iexact=filters.base_model)
        ).values("pk")
        qs = qs.filter(latest_version__base_model_id__in=named)
    if filters.method:
        qs = qs.filter(latest_version__method=filters.method)
    if filters.peft_type:
        qs = qs.filter(latest_version__peft_type__iexact=filters.peft_type)
    if filters.task:
        qs = qs.filter(latest_version_id__in=_versions_tagged(filters.task))
    if filters.license:
        qs = qs.filter(latest_version__license=filters.license.strip().lower())  # stored lowercase
    if filters.status:
        qs = qs.filter(latest_version__status=filters.status)
    return (
        qs.select_related("namespace", "latest_version", "latest_version__base_model")
        # A catalog row shows the card, not the README, config or the base's module table.
        .defer(*CATALOG_DEFERRED)
        .prefetch_related("latest_version__task_tags")
        .order_by(ORDERINGS[filters.ordering], "-pk")
    )


def adapter_get(*, user: User, namespace: str, name: str) -> Adapter:
    """A visible adapter; private ones look absent to outsiders (404, not 403)."""
    adapter = (
        visible_adapters(user=user)
        .select_related("namespace", "latest_version", "latest_version__base_model")
        .filter(namespace__name__iexact=namespace, name__iexact=name)
        .first()
    )
    if adapter is None:
        raise NotFound(f"adapter `{namespace}/{name}` not found (private adapters need a member's token)")
    return adapter


# --- versions ------------------------------------------------------------------------------
_VERSION_NUMBER = re.compile(r"^v?([0-9]+)$")
_HASH_PREFIX = re.compile(r"^[0-9a-f]{7,64}$")


def version_queryset() -> QuerySet[AdapterVersion]:
    return AdapterVersion.objects.select_related(
        "adapter", "adapter__namespace", "base_model", "parent", "parent__adapter__namespace"
    ).prefetch_related("task_tags", "aliases", "files__blob")


def version_resolve(*, adapter: Adapter, ref: str) -> AdapterVersion:
    """A version by number (``3``, ``v3``), alias (``latest``) or content hash (or prefix)."""
    qs = version_queryset().filter(adapter=adapter)
    match = _VERSION_NUMBER.match(ref)
    version = None
    if match:
        version = qs.filter(number=int(match.group(1))).first()
    if version is None:
        alias = Alias.objects.filter(adapter=adapter, name=ref).values_list("version_id", flat=True).first()
        if alias is not None:
            version = qs.get(pk=alias)
    if version is None and _HASH_PREFIX.match(ref):
        # Older files uploaded again make a newer version with the same hash: same files,
        # so the newest stands for them. A prefix of two different hashes is ambiguous.
        same = qs.filter(content_hash__startswith=ref)
        hashes = list(same.order_by().values_list("content_hash", flat=True).distinct()[:2])
        if len(hashes) == 1:
            version = same.order_by("-number").first()
    if version is None:
        raise NotFound(
            f"{adapter.full_name} has no version `{ref}`: use a number (3 or v3), an alias or a content hash",
            code="revision_not_found",
        )
    return version


def version_list(*, adapter: Adapter) -> QuerySet[AdapterVersion]:
    return version_queryset().filter(adapter=adapter).order_by("-number")


# --- the Hugging Face Hub protocol (hub.hfapi) ---------------------------------------------
HF_DEFAULT_REVISION = "main"
HF_COMMIT_LENGTH = 40


def version_commit_sha(version: AdapterVersion) -> str:
    """The version's commit id for HF clients: the first 40 hex digits of its content hash.

    huggingface_hub treats exactly 40 lowercase hex digits as an immutable commit
    (``REGEX_COMMIT_HASH``): it names snapshot folders after it and skips the revision
    lookup for it. A content-hash prefix is such an id, and :func:`version_resolve_hf`
    maps it back (``version_resolve`` accepts hash prefixes).
    """
    return version.content_hash[:HF_COMMIT_LENGTH]


def version_resolve_hf(*, adapter: Adapter, revision: str) -> AdapterVersion:
    """A version for an HF client's revision.

    Whatever :func:`version_resolve` accepts, plus ``main`` (the branch HF clients default
    to) for the ``latest`` alias unless an alias is itself named ``main``.
    """
    try:
        return version_resolve(adapter=adapter, ref=revision)
    except NotFound:
        if revision == HF_DEFAULT_REVISION:
            latest = Alias.objects.filter(adapter=adapter, name="latest").values_list("version_id", flat=True)
            version = version_queryset().filter(pk__in=latest).first()
        else:
            version = None
        if version is None:
            raise
        return version
