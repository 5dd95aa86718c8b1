"""Versions' files, copied from the hub's own blob store to a folder an engine reads.

Only what the registry vetted is ever loaded: the files of a version (validated at upload),
read by their content hash from the blob store and checked against it again on the way out.
Folders are named after the version's content hash and appear complete or not at all.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from hub import blobstore
from hub.models import AdapterVersion

from .exceptions import ServingError

COMPLETE = ".complete"


def adapters_dir() -> Path:
    return Path(settings.PEFTHUB_SERVING_DIR) / "adapters"


def version_folder(version: AdapterVersion) -> Path:
    return adapters_dir() / version.content_hash


def version_materialize(*, version: AdapterVersion) -> Path:
    """The folder holding ``version``'s files (written once, verified)."""
    target = version_folder(version)
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{version.content_hash}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        for file in version.files.select_related("blob").all():
            name = Path(file.path).name
            if name != file.path or name.startswith("."):
                raise ServingError(f"{version}: file `{file.path}` has a path the engine will not read")
            digest = hashlib.sha256()
            with open(tmp / name, "wb") as out:
                for chunk in blobstore.blob_iter(file.blob_id):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != file.blob_id:
                raise ServingError(
                    f"{version}: stored content of `{file.path}` does not match its hash", status_code=500
                )
        (tmp / COMPLETE).write_text(version.content_hash)
        try:
            tmp.rename(target)
        except OSError:  # another process finished it first (same content)
            if not (target / COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
