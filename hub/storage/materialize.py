"""A version's files as a folder that peft, lm-eval or an engine reads.

Only what the registry vetted is ever written: the files of a version (validated at upload),
read by their content hash from the blob store and checked against it again on the way out.
Folders are named after the version's content hash and appear complete or not at all.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from hub.exceptions import HubError
from hub.models import AdapterVersion

from . import blobstore

COMPLETE = ".complete"


def version_materialize(*, version: AdapterVersion, root: Path) -> Path:
    """``root/<content hash>`` holding ``version``'s files (written once, verified)."""
    target = Path(root) / version.content_hash
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{version.content_hash}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        for file in version.files.select_related("blob").all():
            name = Path(file.path).name
            if name != file.path or name.startswith("."):
                raise HubError(f"{version}: file `{file.path}` has a path the engine will not read")
            digest = hashlib.sha256()
            with open(tmp / name, "wb") as out:
                for chunk in blobstore.blob_iter(file.blob_id):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != file.blob_id:
                raise HubError(f"{version}: stored content of `{file.path}` does not match its hash", status_code=500)
        (tmp / COMPLETE).write_text(version.content_hash)
        try:
            tmp.rename(target)
        except OSError:  # another process finished it first (same content)
            if not (target / COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
