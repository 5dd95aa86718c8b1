"""Writes. Each service is one atomic state change with its side effects
(audit row, enqueued event), and raises :class:`hub.exceptions.HubError` to refuse."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import blobstore, events, validation
from .exceptions import Conflict, HubError, NotFound, UploadRejected
from .models import (
    Adapter,
    AdapterVersion,
    Alias,
    ApiToken,
    AuditEvent,
    BaseModel,
    BaseModelAlias,
    Blob,
    Membership,
    Namespace,
    TaskTag,
    VersionFile,
)
from .selectors import base_model_resolve, base_model_spec, version_resolve
from .specs import modules_to_json
from .validation.files import check_upload_files

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .basemodels import InstalledModel

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
RESERVED_NAMESPACES = {"api", "admin", "static", "v1", "auth", "accounts", "new", "settings"}


def _check_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name) or name.endswith(".") or ".." in name:
        raise HubError(
            f"{kind} name `{name}` is not valid: use 1-96 letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit",
            field="name",
        )


# --- base models ---------------------------------------------------------------------------
@transaction.atomic
def base_model_register(*, installed: InstalledModel) -> BaseModel:
    """Register (or refresh) a base model from an installed HF folder. Idempotent."""
    spec = installed.spec
    modules = modules_to_json(spec.modules)
    base, created = BaseModel.objects.update_or_create(
        name=installed.name,
        defaults={
            "display_name": installed.display_name,
            "architecture": installed.architecture,
            "revision": installed.revision,
            "license": installed.license,
            "local_path": str(installed.path),
            "hidden_size": spec.hidden_size,
            "num_layers": spec.num_layers,
            "num_attention_heads": spec.num_attention_heads,
            "num_key_value_heads": spec.num_key_value_heads,
            "vocab_size": spec.vocab_size,
            "modules": modules,
            "config": installed.config,
        },
    )
    unique = {alias.lower(): alias for alias in (*installed.aliases, installed.name)}
    for alias in unique.values():
        clash = BaseModelAlias.objects.filter(alias__iexact=alias).exclude(base_model=base).first()
        if clash is not None:
            raise Conflict(f"alias `{alias}` already names base model `{clash.base_model.name}`")
        if not base.aliases.filter(alias__iexact=alias).exists():
            BaseModelAlias.objects.create(base_model=base, alias=alias)
    if created:
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.BASE_MODEL_REGISTERED,
            payload={"name": base.name, "revision": base.revision},
        )
    return base


# --- namespaces, tokens ----------------------------------------------------------------------
@transaction.atomic
def namespace_create(*, name: str, owner: AbstractBaseUser, description: str = "") -> Namespace:
    _check_name("namespace", name)
    if name.lower() in RESERVED_NAMESPACES:
        raise HubError(f"namespace name `{name}` is reserved; pick another", field="name")
    if Namespace.objects.filter(name__iexact=name).exists():
        raise Conflict(f"namespace `{name}` already exists", field="name")
    namespace = Namespace.objects.create(name=name, description=description)
    Membership.objects.create(namespace=namespace, user=owner, role=Membership.Role.OWNER)
    AuditEvent.objects.create(kind=AuditEvent.Kind.NAMESPACE_CREATED, actor=owner, payload={"name": name})
    return namespace


@transaction.atomic
def membership_set(*, namespace: Namespace, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise HubError(f"role `{role}` is not one of {', '.join(Membership.Role.values)}", field="role")
    membership, _ = Membership.objects.update_or_create(namespace=namespace, user=user, defaults={"role": role})
    return membership


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token; the secret is returned once and only its hash is kept."""
    secret = "ph_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name or "token", prefix=secret[:10], key_hash=token_hash(secret))
    return token, secret


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


# --- adapters --------------------------------------------------------------------------------
@transaction.atomic
def adapter_create(
    *,
    namespace: Namespace,
    name: str,
    user: AbstractBaseUser,
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
    *, adapter: Adapter, user: AbstractBaseUser, private: bool | None = None, description: str | None = None
) -> Adapter:
    changes: dict[str, Any] = {}
    if private is not None and private != adapter.private:
        adapter.private = private
        changes["private"] = private
    if description is not None and description != adapter.description:
        adapter.description = description
        changes["description"] = description
    if changes:
        adapter.save()
        AuditEvent.objects.create(kind=AuditEvent.Kind.ADAPTER_UPDATED, actor=user, adapter=adapter, payload=changes)
    return adapter


@dataclass
class CardInput:
    """What the uploader tells us beyond the files (all optional)."""

    base_model: str | None = None
    task_tags: list[str] = field(default_factory=list)
    license: str = ""
    datasets: list[str] = field(default_factory=list)
    training_time_seconds: float | None = None
    training_hardware: str = ""
    num_training_examples: int | None = None
    training_run_url: str = ""
    parent: str | None = None  # "namespace/name@ref"
    quantization_bits: int | None = None
    quantization_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _readme_front_matter(text: str) -> dict[str, Any]:
    """The YAML block HF model cards start with (license, datasets, tags), if any."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    import yaml

    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    return []


def _method_for(validated: validation.ValidatedAdapter, card: CardInput) -> str:
    method = {
        "LORA": AdapterVersion.Method.LORA,
        "PROMPT_TUNING": AdapterVersion.Method.PROMPT_TUNING,
        "PREFIX_TUNING": AdapterVersion.Method.PREFIX_TUNING,
        "P_TUNING": AdapterVersion.Method.P_TUNING,
        "IA3": AdapterVersion.Method.IA3,
    }[validated.peft_type]
    if method == AdapterVersion.Method.LORA:
        if card.quantization_bits:
            return AdapterVersion.Method.QLORA  # a LoRA trained on a quantized base
        if validated.config.get("use_dora"):
            return AdapterVersion.Method.DORA
    return method


def _read_small_json(files: Mapping[str, BinaryIO], name: str) -> dict[str, Any]:
    import json

    handle = files.get(name)
    if handle is None:
        return {}
    handle.seek(0)
    raw = handle.read(1024 * 1024 + 1)
    handle.seek(0)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _resolve_base(files: Mapping[str, BinaryIO], card: CardInput) -> BaseModel:
    """An explicit base model wins; otherwise the config's ``base_model_name_or_path``."""
    if card.base_model:
        return base_model_resolve(card.base_model, field="base_model")
    declared = _read_small_json(files, "adapter_config.json").get("base_model_name_or_path")
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
    user: AbstractBaseUser | None,
    files: Mapping[str, BinaryIO],
    sizes: Mapping[str, int],
    card: CardInput,
    aliases: list[str] | None = None,
) -> tuple[AdapterVersion, bool]:
    """Validate an upload against its base model and store it as the next version.

    Returns ``(version, created)``. Uploading the same files as the adapter's newest
    version returns that version (``created=False``), so a client may retry safely.
    Nothing is stored unless everything passes: no row, no blob, no temp file.
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
    parent = _parent_resolve(card.parent) if card.parent else None

    hashes = {path: blobstore.sha256_of(handle) for path, handle in files.items()}
    manifest = "".join(f"{path}\0{hashes[path]}\n" for path in sorted(hashes))
    content_hash = hashlib.sha256(manifest.encode()).hexdigest()

    readme = ""
    if "README.md" in files:
        files["README.md"].seek(0)
        readme = files["README.md"].read().decode("utf-8", errors="replace")
        files["README.md"].seek(0)
    front = _readme_front_matter(readme)
    metadata = {**_read_small_json(files, "training_metadata.json"), **card.extra}

    written: list[str] = []
    try:
        with transaction.atomic():
            locked = Adapter.objects.select_for_update().get(pk=adapter.pk)
            latest = locked.latest_version
            if latest is not None and latest.content_hash == content_hash:
                return latest, False
            number = locked.version_count + 1
            for path, sha in hashes.items():
                _, inserted = Blob.objects.get_or_create(sha256=sha, defaults={"size": sizes[path]})
                if inserted or not blobstore.blob_exists(sha):
                    blobstore.blob_write(sha, files[path])
                    if inserted:
                        written.append(sha)
            version = AdapterVersion.objects.create(
                adapter=locked,
                number=number,
                content_hash=content_hash,
                created_by=user,
                peft_type=validated.peft_type,
                method=_method_for(validated, card),
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
                license=(card.license or str(front.get("license") or "")).strip().lower(),
                datasets=card.datasets or _as_str_list(front.get("datasets")),
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
            )
            VersionFile.objects.bulk_create(
                [VersionFile(version=version, path=p, blob_id=hashes[p]) for p in sorted(hashes)]
            )
            tags = sorted({t.strip().lower() for t in card.task_tags or _as_str_list(front.get("tags")) if t.strip()})
            if tags:
                for tag in tags:
                    TaskTag.objects.get_or_create(name=tag[:64])
                version.task_tags.set(TaskTag.objects.filter(name__in=[t[:64] for t in tags]))
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
        # The rows rolled back; the blob files this upload wrote must go too.
        for sha in written:
            if not Blob.objects.filter(sha256=sha).exists():
                blobstore.blob_delete(sha)
        raise
    return version, True


def _parent_resolve(ref: str) -> AdapterVersion:
    full, _, rev = ref.partition("@")
    namespace, _, name = full.partition("/")
    adapter = Adapter.objects.filter(namespace__name__iexact=namespace, name__iexact=name).first()
    if adapter is None:
        raise UploadRejected(f"parent `{ref}` not found: give it as namespace/name@version", field="parent")
    return version_resolve(adapter=adapter, ref=rev or "latest")


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
def alias_set(*, adapter: Adapter, name: str, version: AdapterVersion, user: AbstractBaseUser) -> Alias:
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
def alias_delete(*, adapter: Adapter, name: str, user: AbstractBaseUser) -> None:
    if name == "latest":
        raise HubError("`latest` always points at the newest version and cannot be deleted", field="alias")
    deleted, _ = Alias.objects.filter(adapter=adapter, name=name).delete()
    if not deleted:
        raise NotFound(f"{adapter} has no alias `{name}`")
    AuditEvent.objects.create(kind=AuditEvent.Kind.ALIAS_DELETED, actor=user, adapter=adapter, payload={"alias": name})


@transaction.atomic
def adapter_version_deprecate(*, version: AdapterVersion, user: AbstractBaseUser, reason: str = "") -> AdapterVersion:
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
    """Record the evaluator's verdict; accepted versions emit the event serving listens to."""
    if status not in AdapterVersion.Status.values:
        raise HubError(f"status `{status}` is not one of {', '.join(AdapterVersion.Status.values)}")
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
    return version


# --- storage maintenance ------------------------------------------------------------------
def blobs_collect_garbage(*, grace_seconds: int = 3600, dry_run: bool = False) -> list[str]:
    """Delete blob content no version uses: rows left by deleted versions, and files left
    by an upload whose transaction was rolled back by a caller after the service returned.

    Only content older than ``grace_seconds`` goes, so an upload in flight is never hit.
    Returns the hashes removed (or that would be, with ``dry_run``).
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=grace_seconds)
    unused_rows = set(
        Blob.objects.filter(version_files__isnull=True, created_at__lt=cutoff).values_list("sha256", flat=True)
    )
    known = set(Blob.objects.values_list("sha256", flat=True))
    stray_files = {sha for sha in blobstore.blob_keys() if sha not in known and blobstore.blob_modified(sha) < cutoff}
    removed = sorted(unused_rows | stray_files)
    if not dry_run:
        for sha in removed:
            with transaction.atomic():
                if sha in unused_rows:
                    deleted, _ = Blob.objects.filter(sha256=sha, version_files__isnull=True).delete()
                    if not deleted:
                        continue  # a new upload took it meanwhile
                blobstore.blob_delete(sha)
    return removed


__all__ = [
    "CardInput",
    "adapter_create",
    "adapter_update",
    "adapter_version_create",
    "adapter_version_deprecate",
    "adapter_version_set_status",
    "alias_delete",
    "alias_set",
    "api_token_create",
    "api_token_revoke",
    "base_model_register",
    "blobs_collect_garbage",
    "membership_set",
    "namespace_create",
]
