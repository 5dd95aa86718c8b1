"""Writes of base models: register the bundled one, add one from a folder, new revisions."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import transaction

from .. import events
from ..exceptions import Conflict, HubError
from ..models import (
    AuditEvent,
    BaseModel,
    BaseModelAlias,
    BaseModelRevision,
)

if TYPE_CHECKING:
    from ..basemodels import InstalledModel


log = logging.getLogger(__name__)


# --- base models ---------------------------------------------------------------------------
@transaction.atomic
def base_model_register(*, installed: InstalledModel, chat_template: str = "") -> BaseModel:
    """Register (or refresh) a base model from an installed HF folder. Idempotent.

    The folder becomes the base's current revision (what new uploads are validated
    against); a revision it did not have before is added to its history, and versions
    made on older revisions keep theirs (``AdapterVersion.base_revision``)."""
    fields = {
        "local_path": str(installed.path),
        "config": installed.config,
        "chat_template": chat_template,
        **installed.spec.to_json(),
        "architecture": installed.architecture,
    }
    base, created = BaseModel.objects.update_or_create(
        name=installed.name,
        defaults={
            "display_name": installed.display_name,
            "revision": installed.revision,
            "license": installed.license,
            **fields,
        },
    )
    # Files hashed by the caller are recorded; otherwise the HF views hash them when first asked.
    files = {"files": installed.files} if installed.files is not None else {}
    _, new_revision = BaseModelRevision.objects.update_or_create(
        base_model=base, revision=installed.revision, defaults={**fields, **files}
    )
    _check_base_aliases(installed.aliases, name=installed.name)
    unique = {alias.lower(): alias for alias in (*installed.aliases, installed.name)}
    for alias in unique.values():
        if not base.aliases.filter(alias__iexact=alias).exists():
            BaseModelAlias.objects.create(base_model=base, alias=alias)
    if created:
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.BASE_MODEL_REGISTERED,
            payload={"name": base.name, "revision": base.revision},
        )
    elif new_revision:
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.BASE_MODEL_REVISION_ADDED,
            payload={"name": base.name, "revision": base.revision},
        )
        events.emit_on_commit(events.BASE_REVISION_ADDED, base.pk)
    return base


def _check_base_aliases(aliases: Iterable[str], *, name: str) -> None:
    for alias in (*aliases, name):
        clash = BaseModelAlias.objects.filter(alias__iexact=alias).exclude(base_model__name=name).first()
        if clash is not None:
            raise Conflict(
                f"alias `{alias}` already names base model `{clash.base_model.name}`; "
                "choose another alias, or add the folder under that name to make a new revision of it"
            )


def base_model_add(
    *,
    folder: Path,
    name: str,
    aliases: Iterable[str] = (),
    license: str = "",
    display_name: str = "",
    data_dir: Path,
) -> tuple[BaseModel, bool]:
    """Add a base model from a Hugging Face folder, or a new revision of one by that name.

    The folder is checked (config.json, safetensors weights, tokenizer; pickles refused),
    described without loading its weights, and copied once per revision under
    ``data_dir/base_models/<name>/<revision>/``. Returns ``(base, new_revision)``; adding
    the same weights again changes nothing but the description."""
    from ..basemodels.folder import keep_revision, read_folder

    installed, template = read_folder(
        Path(folder), name=name, aliases=tuple(aliases), license=license, display_name=display_name
    )
    _check_base_aliases(installed.aliases, name=name)
    known = BaseModelRevision.objects.filter(base_model__name=name, revision=installed.revision).first()
    new_revision = known is None
    if known is not None and Path(known.local_path).is_dir():
        path = Path(known.local_path)
    else:  # copied outside the transaction: weights are large; the copy is idempotent
        path = keep_revision(installed.path, data_dir=data_dir, name=name, revision=installed.revision)
    base = base_model_register(installed=dataclasses.replace(installed, path=path), chat_template=template)
    return base, new_revision


def base_revision_files(*, row: BaseModelRevision) -> dict[str, dict]:
    """``{path: {"sha256", "size"}}`` of a revision's folder, hashed and recorded once.

    Revisions added before the files were recorded (or registered by a caller that did
    not hash them) are hashed on first use; a folder whose files no longer hash to its
    revision is refused rather than served under that revision."""
    if row.files:
        return row.files
    from ..basemodels.files import hash_files, revision

    folder = Path(row.local_path)
    files = hash_files(folder) if folder.is_dir() else {}
    if not files or revision(files) != row.revision:
        raise HubError(
            f"the files of base model `{row.base_model.name}` revision {row.revision[:12]} at {folder} are "
            "missing or changed since it was added; add the folder again with `manage.py hub_base_model_add`",
            code="base_revision_changed",
            status_code=500,
        )
    BaseModelRevision.objects.filter(pk=row.pk).update(files=files)
    row.files = files
    return files


def from_hub_checks(*, repo_id: str, revision: str, name: str, aliases: Iterable[str]) -> tuple[str, ...]:
    """What a download cannot change, checked before it (weights can be large): a pinned
    revision, the name, and aliases no other base has. Returns the aliases, the repo id added."""
    from ..basemodels.folder import check_name

    if not revision:
        raise HubError(
            f"pin the revision of `{repo_id}` to add (a commit sha, e.g. --revision 12fd25f...); "
            "a branch would move under the adapters validated against it",
            field="revision",
        )
    check_name(name)
    aliases = tuple(aliases)
    known = {alias.lower() for alias in aliases}
    aliases = (*aliases, *([repo_id] if repo_id.lower() not in known else []))
    _check_base_aliases(aliases, name=name)
    return aliases


def base_model_add_from_hub(
    *,
    repo_id: str,
    revision: str,
    name: str,
    aliases: Iterable[str] = (),
    license: str = "",
    display_name: str = "",
    data_dir: Path,
    endpoint: str | None = None,
    token: str | None = None,
) -> tuple[BaseModel, bool]:
    """Add a base model downloaded from a Hugging Face hub (``endpoint``, else ``HF_ENDPOINT``)
    at a pinned revision, then as :func:`base_model_add` does for a folder.

    ``repo_id`` becomes an alias (the HF id it is known by) and its card's license the
    license unless one is given. Pickle weights are never downloaded: a repo that has only
    those is refused. Returns ``(base, new_revision)``."""
    import tempfile

    from ..basemodels.hub import download_snapshot

    aliases = from_hub_checks(repo_id=repo_id, revision=revision, name=name, aliases=aliases)
    staging = Path(data_dir) / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="base-from-hub-", dir=staging) as tmp:
        folder, card_license = download_snapshot(
            repo_id, revision=revision, target=Path(tmp) / "snapshot", endpoint=endpoint, token=token
        )
        return base_model_add(
            folder=folder,
            name=name,
            aliases=aliases,
            license=license or card_license,
            display_name=display_name,
            data_dir=data_dir,
        )
