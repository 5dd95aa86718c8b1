"""Writes of adapters, their versions (uploads), aliases and lifecycle."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import cards, events, validation
from ..cards import CardInput
from ..exceptions import Conflict, HubError, NotFound, PermissionDenied, StaleParent, UploadRejected
from ..models import (
    Adapter,
    AdapterVersion,
    Alias,
    AuditEvent,
    BaseModel,
    Blob,
    Membership,
    Namespace,
    TaskTag,
    VersionFile,
)
from ..selectors import base_model_resolve, base_model_spec, user_role, version_resolve, visible_adapters
from ..storage import blobstore
from ..validation.files import answers_hash, check_upload_files
from .common import ALIAS_RE, _check_name

if TYPE_CHECKING:
    from django.contrib.auth.models import User


log = logging.getLogger(__name__)


# --- adapters --------------------------------------------------------------------------------
@transaction.atomic
def adapter_create(
    *,
    namespace: Namespace,
    name: str,
    user: User,
    private: bool = False,
    description: str = "",
) -> Adapter:
    _check_name("adapter", name)
    if Adapter.objects.filter(namespace=namespace, name__iexact=name).exists():
        raise Conflict(f"adapter `{namespace.name}/{name}` already exists", field="name")
    adapter = Adapter.objects.create(
        namespace=namespace, name=name, private=private, description=description, created_by=user
    )
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.ADAPTER_CREATED, actor=user, adapter=adapter, payload={"private": private}
    )
    return adapter


@transaction.atomic
def adapter_update(
    *, adapter: Adapter, user: User, private: bool | None = None, description: str | None = None
) -> Adapter:
    """Change an adapter's description (writers) or visibility (owners only: publishing a
    private adapter discloses everything in it, which is the owners' call)."""
    changes: dict[str, Any] = {}
    if private is not None and private != adapter.private:
        owner = user.is_superuser or user_role(user=user, namespace=adapter.namespace) == Membership.Role.OWNER
        if not owner:
            raise PermissionDenied(
                f"only owners of namespace `{adapter.namespace.name}` may make {adapter.full_name} "
                f"{'private' if private else 'public'}; ask one of them (writers may edit the description)",
                field="private",
            )
        adapter.private = private
        changes["private"] = private
    if description is not None and description != adapter.description:
        adapter.description = description
        changes["description"] = description
    if changes:
        adapter.save()
        AuditEvent.objects.create(kind=AuditEvent.Kind.ADAPTER_UPDATED, actor=user, adapter=adapter, payload=changes)
    return adapter


# ``adapter_version_create(based_on=...)`` left out: no check of the newest version.
ANY_PARENT = object()


@transaction.atomic
def adapter_delete(*, adapter: Adapter, user: User) -> None:
    """Delete an adapter with its versions; their blobs go at the next garbage collection.

    Emits ``adapter.deleted`` (what serves the versions unloads them everywhere)."""
    name, adapter_id = adapter.full_name, adapter.pk
    versions = list(AdapterVersion.objects.filter(adapter=adapter).values_list("pk", "base_model_id"))
    Adapter.objects.filter(pk=adapter.pk).update(latest_version=None)
    adapter.delete()
    AuditEvent.objects.create(kind=AuditEvent.Kind.ADAPTER_DELETED, actor=user, payload={"name": name})
    if versions:
        events.emit_on_commit(
            events.ADAPTER_DELETED,
            adapter_id,
            sorted(pk for pk, _ in versions),
            sorted({base for _, base in versions}),
        )


def _resolve_base(files: Mapping[str, BinaryIO], card: CardInput) -> BaseModel:
    """An explicit base model wins; otherwise the config's ``base_model_name_or_path``."""
    if card.base_model:
        return base_model_resolve(card.base_model, field="base_model")
    declared = cards.read_small_json(files, "adapter_config.json").get("base_model_name_or_path")
    if not declared:
        raise UploadRejected(
            "adapter_config.json has no `base_model_name_or_path`; name the base model in the "
            "upload's `base_model` field",
            file="adapter_config.json",
            field="base_model_name_or_path",
        )
    return base_model_resolve(str(declared), field="base_model_name_or_path")


def adapter_version_create(
    *,
    adapter: Adapter,
    user: User | None,
    files: Mapping[str, BinaryIO],
    sizes: Mapping[str, int],
    card: CardInput,
    aliases: list[str] | None = None,
    based_on: AdapterVersion | object | None = ANY_PARENT,
) -> tuple[AdapterVersion, bool]:
    """Validate an upload against its base model and store it as the next version.

    Returns ``(version, created)``. Uploading the same files as the adapter's newest
    version returns that version (``created=False``), so a client may retry safely.
    Nothing is stored unless everything passes: no row, no blob, no temp file.
    ``based_on`` (a commit's parent; None for the first) must still be the newest
    version when the version is made, else :class:`StaleParent`.
    """
    limits = validation.UploadLimits(
        max_file_bytes=settings.PEFTHUB_MAX_FILE_BYTES,
        max_upload_bytes=settings.PEFTHUB_MAX_UPLOAD_BYTES,
        max_header_bytes=settings.PEFTHUB_MAX_HEADER_BYTES,
    )
    # Names, kinds and sizes first: cheap, and the clearest message for a wrong folder.
    check_upload_files(files, sizes, limits)
    base = _resolve_base(files, card)
    validated = validation.validate_adapter(files, sizes, base_model_spec(base), limits)
    parent = _parent_resolve(card.parent, user=user) if card.parent else None

    hashes = {path: blobstore.sha256_of(handle) for path, handle in files.items()}
    manifest = "".join(f"{path}\0{hashes[path]}\n" for path in sorted(hashes))
    content_hash = hashlib.sha256(manifest.encode()).hexdigest()

    readme = cards.read_readme(files)
    fields = cards.card_fields(card, readme)
    metadata = {**cards.read_small_json(files, "training_metadata.json"), **card.extra}

    written: list[str] = []
    try:
        # Content first, outside the adapter's row lock: a slow object-store write must not
        # hold up every other upload to the adapter. Blobs are content-addressed, so writing
        # one another upload also writes is harmless, and a file whose row never commits is
        # removed below (or, if this process dies first, by blobs_collect_garbage).
        for path, sha in hashes.items():
            if not blobstore.blob_exists(sha):
                blobstore.blob_write(sha, files[path])
                written.append(sha)
        with transaction.atomic():
            locked = Adapter.objects.select_for_update().get(pk=adapter.pk)
            latest = locked.latest_version
            if based_on is not ANY_PARENT and locked.latest_version_id != getattr(based_on, "pk", None):
                raise StaleParent(
                    f"{locked.full_name} has a newer version than the commit's parent "
                    f"(v{locked.version_count}): fetch it and commit again"
                )
            if latest is not None and latest.content_hash == content_hash:
                return latest, False
            number = locked.version_count + 1
            for path, sha in hashes.items():
                Blob.objects.get_or_create(sha256=sha, defaults={"size": sizes[path]})
            version = AdapterVersion.objects.create(
                adapter=locked,
                number=number,
                content_hash=content_hash,
                answers_hash=answers_hash(hashes),
                created_by=user,
                peft_type=validated.peft_type,
                method=cards.method_for(validated, card),
                rank=validated.rank,
                alpha=validated.alpha,
                target_modules=validated.target_modules,
                num_virtual_tokens=validated.num_virtual_tokens,
                trainable_params=validated.trainable_params,
                size_bytes=sum(sizes.values()),
                quantization_bits=card.quantization_bits,
                quantization_type=card.quantization_type,
                config=validated.config,
                flags=validated.flags,
                warnings=validated.warnings,
                license=fields.license,
                datasets=fields.datasets,
                training_time_seconds=card.training_time_seconds,
                training_hardware=card.training_hardware,
                num_training_examples=card.num_training_examples,
                training_run_url=card.training_run_url,
                base_model=base,
                base_revision=base.revision,
                parent=parent,
                parent_ref=f"{parent.adapter.full_name}@v{parent.number}" if parent else "",
                metadata=metadata,
                readme=readme,
                commit_title=card.commit_title[:300],
                commit_description=card.commit_description,
            )
            VersionFile.objects.bulk_create(
                [VersionFile(version=version, path=p, blob_id=hashes[p]) for p in sorted(hashes)]
            )
            if fields.task_tags:
                for tag in fields.task_tags:
                    TaskTag.objects.get_or_create(name=tag)
                version.task_tags.set(TaskTag.objects.filter(name__in=fields.task_tags))
            locked.version_count = number
            locked.latest_version = version
            locked.latest_size_bytes = version.size_bytes
            locked.latest_trainable_params = version.trainable_params
            locked.save(
                update_fields=[
                    "version_count",
                    "latest_version",
                    "latest_size_bytes",
                    "latest_trainable_params",
                    "updated_at",
                ]
            )
            _alias_move(adapter=locked, name="latest", version=version)
            for alias in aliases or []:
                _check_alias(alias)
                _alias_move(adapter=locked, name=alias, version=version)
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.VERSION_CREATED,
                actor=user,
                adapter=locked,
                version=version,
                payload={"number": number, "content_hash": content_hash},
            )
            events.emit_on_commit(events.VERSION_CREATED, version.pk)
    except BaseException:
        # The rows rolled back (or were never written); so must the blob files this upload
        # wrote, unless another upload has committed a row for the same content meanwhile.
        for sha in written:
            if not Blob.objects.filter(sha256=sha).exists():
                blobstore.blob_delete(sha)
        raise
    return version, True


def _parent_resolve(ref: str, *, user: User | None) -> AdapterVersion:
    """The parent version, looked up only among the adapters ``user`` may see.

    A private adapter, version or alias the user cannot see gets exactly the answer a
    missing one gets, so an upload cannot probe for them (or record where they point).
    """
    from django.contrib.auth.models import AnonymousUser

    full, _, rev = ref.partition("@")
    namespace, _, name = full.partition("/")
    not_found = UploadRejected(
        f"parent `{ref}` not found among the adapters you can see: give it as namespace/name@version "
        "(a number, an alias or a content hash) of an adapter you can read",
        field="parent",
    )
    visible = visible_adapters(user=user if user is not None else AnonymousUser())
    adapter = visible.filter(namespace__name__iexact=namespace, name__iexact=name).first()
    if adapter is None:
        raise not_found
    try:
        return version_resolve(adapter=adapter, ref=rev or "latest")
    except NotFound:
        raise not_found from None


# --- downloads -------------------------------------------------------------------------------
# HF's convention: a client fetches one of these once per download of a repo (peft reads
# adapter_config.json, transformers config.json), so a fetch of one counts one download.
DOWNLOAD_FILES = frozenset({"config.json", "adapter_config.json"})


def version_download_count(*, version: AdapterVersion) -> None:
    """Count one download of ``version`` (views call it for a fetch of a :data:`DOWNLOAD_FILES`
    file from its start, or of the whole version as an archive).

    Two relative ``UPDATE``s (``F() + 1``), never a read-modify-write, so concurrent
    downloads all count; ``updated_at`` is left alone (a download is not an update).
    """
    with transaction.atomic():
        AdapterVersion.objects.filter(pk=version.pk).update(downloads=F("downloads") + 1)
        Adapter.objects.filter(pk=version.adapter_id).update(downloads=F("downloads") + 1)


# --- aliases, lifecycle ----------------------------------------------------------------------
def _check_alias(name: str) -> None:
    if not ALIAS_RE.match(name) or re.fullmatch(r"v?[0-9]+", name):
        raise HubError(
            f"alias `{name}` is not valid: start with a letter, then letters, digits, `.`, `_` "
            "or `-` (up to 64); `v3`-style names are version numbers",
            field="alias",
        )


def _alias_move(*, adapter: Adapter, name: str, version: AdapterVersion) -> Alias:
    alias, _ = Alias.objects.update_or_create(adapter=adapter, name=name, defaults={"version": version})
    return alias


@transaction.atomic
def alias_set(*, adapter: Adapter, name: str, version: AdapterVersion, user: User) -> Alias:
    _check_alias(name)
    if version.adapter_id != adapter.pk:
        raise HubError(f"version {version} does not belong to {adapter}", field="version")
    alias = _alias_move(adapter=adapter, name=name, version=version)
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.ALIAS_SET,
        actor=user,
        adapter=adapter,
        version=version,
        payload={"alias": name, "number": version.number},
    )
    return alias


@transaction.atomic
def alias_delete(*, adapter: Adapter, name: str, user: User) -> None:
    if name == "latest":
        raise HubError("`latest` always points at the newest version and cannot be deleted", field="alias")
    deleted, _ = Alias.objects.filter(adapter=adapter, name=name).delete()
    if not deleted:
        raise NotFound(f"{adapter} has no alias `{name}`")
    AuditEvent.objects.create(kind=AuditEvent.Kind.ALIAS_DELETED, actor=user, adapter=adapter, payload={"alias": name})


@transaction.atomic
def adapter_version_deprecate(*, version: AdapterVersion, user: User, reason: str = "") -> AdapterVersion:
    """Mark a version deprecated (it stays downloadable; serving unloads it)."""
    if version.deprecated_at is None:
        version.deprecated_at = timezone.now()
        version.deprecation_reason = reason
        version.save(update_fields=["deprecated_at", "deprecation_reason"])
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.VERSION_DEPRECATED,
            actor=user,
            adapter_id=version.adapter_id,
            version=version,
            payload={"reason": reason},
        )
        events.emit_on_commit(events.VERSION_DEPRECATED, version.pk)
    return version


@transaction.atomic
def adapter_version_set_status(*, version: AdapterVersion, status: str, reasons: list[str]) -> AdapterVersion:
    """Record the evaluator's verdict. An accepted version emits the event serving listens to;
    one that was accepted and is no longer (a re-evaluation rejected it) emits its withdrawal."""
    if status not in AdapterVersion.Status.values:
        raise HubError(f"status `{status}` is not one of {', '.join(AdapterVersion.Status.values)}")
    was_accepted = version.status == AdapterVersion.Status.ACCEPTED
    version.status = status
    version.status_reasons = reasons
    version.save(update_fields=["status", "status_reasons"])
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.VERSION_STATUS,
        adapter_id=version.adapter_id,
        version=version,
        payload={"status": status, "reasons": reasons},
    )
    if status == AdapterVersion.Status.ACCEPTED:
        events.emit_on_commit(events.VERSION_ACCEPTED, version.pk)
    elif was_accepted:
        events.emit_on_commit(events.VERSION_WITHDRAWN, version.pk)
    return version
