"""Reads. Visibility rules live here, so every API and page applies the same ones."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q, QuerySet

from .exceptions import HubError, NotFound, PermissionDenied, UploadRejected
from .filters import DEFAULT_ORDERING, ordered
from .models import (
    Adapter,
    AdapterVersion,
    Alias,
    ApiToken,
    BaseModel,
    BaseModelAlias,
    BaseModelImport,
    BaseModelRevision,
    Membership,
    Namespace,
    VersionFile,
)
from .specs import SPEC_FIELDS, BaseModelSpec

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    # Whoever sent the request: ``request.user``, signed in or not.
    AnyUser = User | AnonymousUser

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.WRITER)


# --- base models ---------------------------------------------------------------------------
def base_model_find(name: str) -> BaseModel | None:
    """A base model by its name or any alias (case-insensitive), or None."""
    base = BaseModel.objects.filter(name__iexact=name).first()
    if base is None:
        hit = BaseModelAlias.objects.select_related("base_model").filter(alias__iexact=name).first()
        base = hit.base_model if hit else None
    return base


def base_model_resolve(name: str, *, field: str = "base_model") -> BaseModel:
    """Find a base model by its name or any alias (case-insensitive)."""
    base = base_model_find(name)
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
    return BaseModelSpec.from_json(
        {key: getattr(base, key) for key in SPEC_FIELDS},
        name=base.name,
        aliases=tuple(base.aliases.values_list("alias", flat=True)),
    )


def base_revision_get(*, base: BaseModel, revision: str) -> BaseModelRevision | None:
    """The recorded revision of a base (None for one registered before revisions were kept)."""
    return BaseModelRevision.objects.filter(base_model=base, revision=revision).first()


def base_revision_spec(row: BaseModelRevision) -> BaseModelSpec:
    """The shapes of one revision: what the versions made on it were validated against."""
    return BaseModelSpec.from_json(
        {key: getattr(row, key) for key in SPEC_FIELDS},
        name=row.base_model.name,
        aliases=tuple(row.base_model.aliases.values_list("alias", flat=True)),
    )


def version_base_path(version: AdapterVersion) -> str:
    """The folder of the base revision a version was validated against, for workers to load."""
    row = base_revision_get(base=version.base_model, revision=version.base_revision)
    return row.local_path if row is not None else version.base_model.local_path


def base_revision_resolve_hf(*, base: BaseModel, revision: str) -> BaseModelRevision:
    """A base revision for an HF client's revision: ``main`` for the current one, else a
    prefix (7 to 64 hex digits) of exactly one recorded revision (the commit id
    :func:`base_revision_commit_sha` is such a prefix)."""
    rows = BaseModelRevision.objects.select_related("base_model").filter(base_model=base)
    if revision == HF_DEFAULT_REVISION:
        found = list(rows.filter(revision=base.revision)[:2])
    elif _HASH_PREFIX.match(revision):
        found = list(rows.filter(revision__startswith=revision)[:2])
    else:
        found = []
    if len(found) != 1:
        known = ", ".join(r[:12] for r in rows.values_list("revision", flat=True)) or "none"
        raise NotFound(
            f"base model `{base.name}` has no revision `{revision}`: use `main` (its current revision, "
            f"{base.revision[:12]}) or a revision's hash or prefix ({known})",
            code="revision_not_found",
        )
    return found[0]


def base_revision_commit_sha(row: BaseModelRevision) -> str:
    """The revision's commit id for HF clients: like :func:`version_commit_sha`, the first
    40 hex digits of its content hash."""
    return row.revision[:HF_COMMIT_LENGTH]


def base_model_import_list(*, user) -> QuerySet[BaseModelImport]:
    """Base model downloads, newest first: staff only."""
    require_staff(user=user, action="reading base model downloads")
    return BaseModelImport.objects.select_related("base_model", "requested_by").prefetch_related("base_model__aliases")


def base_model_import_get(*, user, import_id: int) -> BaseModelImport:
    try:
        return base_model_import_list(user=user).get(pk=import_id)
    except BaseModelImport.DoesNotExist:
        raise NotFound(f"no base model download #{import_id}") from None


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.prefetch_related("aliases").order_by("name")


# --- permissions ---------------------------------------------------------------------------
def user_role(*, user: AnyUser, namespace: Namespace) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(namespace=namespace, user=user).values_list("role", flat=True).first()


def can_write(*, user: AnyUser, namespace: Namespace) -> bool:
    if user.is_authenticated and user.is_superuser:
        return True
    return user_role(user=user, namespace=namespace) in WRITE_ROLES


def require_authenticated(*, user: AnyUser, action: str) -> User:
    """401 unless someone is logged in or sent a token; ``action`` says what needed it.

    Returns the signed-in user, for the services that record who acted.
    """
    if not user.is_authenticated:
        raise HubError(f"{action} needs a token", status_code=401, code="not_authenticated")
    return user


def require_staff(*, user: AnyUser, action: str) -> User:
    """401 for anonymous callers, 403 unless the user is staff; ``action`` says what needed it."""
    user = require_authenticated(user=user, action=action)
    if not user.is_staff:
        raise PermissionDenied(f"user `{user.get_username()}` is not staff; {action} is for staff users only")
    return user


def require_owner(*, user: AnyUser, namespace: Namespace) -> None:
    """403 unless the user owns ``namespace`` (or is a superuser)."""
    if user.is_authenticated and user.is_superuser:
        return
    if user_role(user=user, namespace=namespace) != Membership.Role.OWNER:
        raise PermissionDenied(f"only owners of `{namespace.name}` manage its members")


def require_write(*, user: AnyUser, namespace: Namespace) -> None:
    if not can_write(user=user, namespace=namespace):
        who = "anonymous users" if not user.is_authenticated else f"user `{user.get_username()}`"
        raise PermissionDenied(
            f"{who} may not write to namespace `{namespace.name}`; ask one of its owners to add "
            "you as a writer, or use a token of a member"
        )


def visible_adapters(*, user: AnyUser) -> QuerySet[Adapter]:
    """Public adapters, plus private ones in the user's namespaces."""
    qs = Adapter.objects.all()
    if user.is_authenticated and user.is_superuser:
        return qs
    if not user.is_authenticated:
        return qs.filter(private=False)
    mine = Membership.objects.filter(user=user).values("namespace_id")
    return qs.filter(Q(private=False) | Q(namespace_id__in=mine))


def user_get(*, username: str) -> User:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user `{username}` not found")
    return user


def membership_list(*, user: User) -> QuerySet[Membership]:
    """The user's memberships with their namespaces, by namespace name."""
    return Membership.objects.filter(user=user).select_related("namespace").order_by("namespace__name")


def api_token_get(*, user: AnyUser, token_id: int) -> ApiToken:
    """One of the user's own tokens; someone else's is as absent as a missing one."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first() if user.is_authenticated else None
    if token is None:
        raise NotFound(f"you have no token {token_id}")
    return token


def database_ping() -> None:
    """Raise unless the database answers (the health check)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


# --- namespaces ----------------------------------------------------------------------------
def namespace_get(*, name: str) -> Namespace:
    namespace = Namespace.objects.filter(name__iexact=name).first()
    if namespace is None:
        raise NotFound(f"namespace `{name}` not found")
    return namespace


def namespace_list(*, user: AnyUser) -> QuerySet[Namespace]:
    """Namespaces that hold a public adapter, plus the user's own (all, for superusers).

    Every user gets a personal namespace, so listing them all would list every username.
    """
    qs = Namespace.objects.order_by("name")
    if user.is_authenticated and user.is_superuser:
        return qs
    shown = Q(pk__in=Adapter.objects.filter(private=False).values("namespace_id"))
    if user.is_authenticated:
        shown |= Q(pk__in=Membership.objects.filter(user=user).values("namespace_id"))
    return qs.filter(shown)


# --- adapters ------------------------------------------------------------------------------
CATALOG_DEFERRED = (
    "latest_version__readme",
    "latest_version__config",
    "latest_version__metadata",
    "latest_version__base_model__modules",
    "latest_version__base_model__config",
)


def adapter_list(*, user: AnyUser) -> QuerySet[Adapter]:
    """The catalog: one row per visible adapter, carrying its newest version's card.

    Filter and order it with :class:`hub.filters.CatalogFilterSet`. A constant number of
    queries whatever the page size: the namespace, newest version and base model are
    joined, and task tags are prefetched in one query.
    """
    qs = (
        visible_adapters(user=user)
        .select_related("namespace", "latest_version", "latest_version__base_model")
        # A catalog row shows the card, not the README, config or the base's module table.
        .defer(*CATALOG_DEFERRED)
        .prefetch_related("latest_version__task_tags")
    )
    return ordered(qs, DEFAULT_ORDERING)


def adapter_get_writable(*, user: AnyUser, namespace: str, name: str) -> Adapter:
    """A visible adapter the user may write to: 404 if hidden or missing, else 403 if read-only."""
    adapter = adapter_get(user=user, namespace=namespace, name=name)
    require_write(user=user, namespace=adapter.namespace)
    return adapter


def adapter_get(*, user: AnyUser, namespace: str, name: str) -> Adapter:
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


def adapter_exists(*, namespace: str, name: str) -> bool:
    """Whether an adapter has this id, visible to the caller or not."""
    return Adapter.objects.filter(namespace__name__iexact=namespace, name__iexact=name).exists()


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


def version_file_get(*, version: AdapterVersion, path: str) -> VersionFile:
    """One file of a version (``version_queryset`` prefetched them); 404 names the files it has."""
    files = list(version.files.all())
    entry = next((f for f in files if f.path == path), None)
    if entry is None:
        raise NotFound(
            f"{version} has no file `{path}`; it has: " + ", ".join(f.path for f in files),
            code="entry_not_found",
        )
    return entry


def alias_list(*, adapter: Adapter) -> QuerySet[Alias]:
    return adapter.aliases.select_related("version").all()


def version_list(*, adapter: Adapter) -> QuerySet[AdapterVersion]:
    return version_queryset().filter(adapter=adapter).order_by("-number")


# --- the Hugging Face Hub protocol (hub.hf.api) ---------------------------------------------
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
