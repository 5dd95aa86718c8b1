"""Git LFS, as ``huggingface_hub`` uploads large files without Xet: the batch API and its
``basic`` transfer (one PUT of the whole file), then a verify call.

- ``POST /{ns}/{name}.git/info/lfs/objects/batch``: for each object, upload and verify
  actions, or none when the adapter already has that content. The answer names
  ``"transfer": "basic"`` and never ``xet`` or ``multipart`` (no ``chunk_size`` header), so
  the client sends one PUT.
- ``PUT /api/hf-lfs/upload/{signed}``: the client sends no token with this PUT (it follows
  the ``href`` as it would an S3 URL), so the URL carries a signed, expiring grant for one
  object of one adapter. The bytes must hash to the oid and have its size.
- ``POST /api/hf-lfs/verify/{ns}/{name}``: the object is staged, with its size.

Objects are staged per adapter (``hf-lfs/<adapter id>/<sha256>`` in the default storage),
not stored as blobs: a commit turns them into a version through the upload service, and
the commit removes the ones it named, whether the hub accepted it or not. A commit can
only name objects staged for its own adapter or files of its parent version, so knowing a
sha256 never gives access to another adapter's content.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from hub.exceptions import HubError, NotFound
from hub.models import Adapter

from .protocol import Caller, hf_error, hf_error_from
from .writes import hf_write, json_body, writable_adapter

CHUNK = 1024 * 1024
GRANT_MAX_AGE = 24 * 3600
_OID = re.compile(r"^[0-9a-f]{64}$")
_SIGNER_SALT = "hub.hf.lfs.upload"
LFS_CONTENT_TYPE = "application/vnd.git-lfs+json"


def staged_key(adapter_id: int, oid: str) -> str:
    return f"hf-lfs/{adapter_id}/{oid}"


def staged_size(adapter_id: int, oid: str) -> int | None:
    key = staged_key(adapter_id, oid)
    return default_storage.size(key) if default_storage.exists(key) else None


def staged_open(adapter_id: int, oid: str):
    return default_storage.open(staged_key(adapter_id, oid), "rb")


def staged_discard(adapter_id: int, oids: list[str]) -> None:
    for oid in oids:
        default_storage.delete(staged_key(adapter_id, oid))


def _object_error(oid: str, size: int, code: int, message: str) -> dict:
    return {"oid": oid, "size": size, "error": {"code": code, "message": message}}


@hf_write("POST")
def lfs_batch(request: HttpRequest, caller: Caller, namespace: str, name: str):
    adapter = writable_adapter(caller, namespace, name)
    data = json_body(request)
    if data.get("operation") != "upload":
        raise HubError("only LFS uploads go through the batch API here; download files from /resolve/")
    transfers = data.get("transfers") or ["basic"]
    if "basic" not in transfers:
        raise HubError("pefthub speaks the `basic` LFS transfer only (no xet, no multipart)")
    objects = []
    for obj in data.get("objects") or []:
        oid, size = str(obj.get("oid", "")), obj.get("size")
        if not _OID.match(oid) or not isinstance(size, int) or size < 0:
            objects.append(_object_error(oid, size if isinstance(size, int) else 0, 422, "oid must be a sha256"))
            continue
        if size > settings.PEFTHUB_MAX_FILE_BYTES:
            message = f"{size} bytes is over the limit per file ({settings.PEFTHUB_MAX_FILE_BYTES} bytes)"
            objects.append(_object_error(oid, size, 422, message))
            continue
        if _present(adapter, oid, size):
            objects.append({"oid": oid, "size": size})
            continue
        grant = signing.dumps(
            {"a": adapter.pk, "o": oid, "s": size, "u": caller.user.pk}, salt=_SIGNER_SALT, compress=True
        )
        upload = request.build_absolute_uri(reverse("hf:lfs-upload", kwargs={"grant": grant}))
        verify = request.build_absolute_uri(
            reverse("hf:lfs-verify", kwargs={"namespace": adapter.namespace.name, "name": adapter.name})
        )
        actions = {"upload": {"href": upload, "expires_in": GRANT_MAX_AGE}, "verify": {"href": verify}}
        objects.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
    body = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
    return JsonResponse(body, content_type=LFS_CONTENT_TYPE)


def _present(adapter: Adapter, oid: str, size: int) -> bool:
    """Staged for this adapter, or in its newest version: no need to send it again."""
    if staged_size(adapter.pk, oid) == size:
        return True
    latest = adapter.latest_version
    return latest is not None and latest.files.filter(blob_id=oid, blob__size=size).exists()


@csrf_exempt
def lfs_upload(request: HttpRequest, grant: str):
    """The basic transfer's PUT: the whole file, checked against its sha256 and size."""
    if request.method != "PUT":
        return hf_error(405, f"{request.method} is not supported here", headers={"Allow": "PUT"})
    try:
        granted = signing.loads(grant, salt=_SIGNER_SALT, max_age=GRANT_MAX_AGE)
    except signing.BadSignature:
        return hf_error(403, "this upload URL is invalid or expired: ask the LFS batch API for a new one")
    adapter_id, oid, size = granted["a"], granted["o"], granted["s"]
    if not Adapter.objects.filter(pk=adapter_id).exists():
        return hf_error_from(NotFound("the adapter this upload was granted for no longer exists"))
    digest, received = hashlib.sha256(), 0
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR or None) as spool:
        while chunk := request.read(CHUNK):
            received += len(chunk)
            if received > size:
                return hf_error(400, f"the upload is longer than the {size} bytes the batch request announced")
            digest.update(chunk)
            spool.write(chunk)
        if received != size:
            return hf_error(400, f"{received} of {size} bytes arrived; upload the file again")
        if digest.hexdigest() != oid:
            return hf_error(400, f"the content's sha256 is {digest.hexdigest()}, not {oid}: upload the file again")
        key = staged_key(adapter_id, oid)
        if not default_storage.exists(key):
            spool.seek(0)
            stored = default_storage.save(key, File(spool, name=key))
            if stored != key:  # a concurrent upload of the same bytes won
                default_storage.delete(stored)
    return JsonResponse({})


@hf_write("POST")
def lfs_verify(request: HttpRequest, caller: Caller, namespace: str, name: str):
    adapter = writable_adapter(caller, namespace, name)
    data = json_body(request)
    oid, size = str(data.get("oid", "")), data.get("size")
    if not _OID.match(oid) or staged_size(adapter.pk, oid) != size:
        raise NotFound(f"object {oid} ({size} bytes) was not uploaded for {adapter.full_name}", code="entry_not_found")
    return JsonResponse({"oid": oid, "size": size})


def staged_collect_garbage(*, grace_seconds: int = 3600, dry_run: bool = False) -> list[str]:
    """Drop staged objects older than ``grace_seconds`` that no commit took (an aborted push).

    Returns their keys. ``manage.py hub_gc_blobs`` runs it with the blobs' collection.
    """
    from django.utils import timezone

    if not default_storage.exists("hf-lfs"):
        return []
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    removed = []
    adapters, _ = default_storage.listdir("hf-lfs")
    for adapter_id in adapters:
        _, oids = default_storage.listdir(f"hf-lfs/{adapter_id}")
        for oid in oids:
            key = f"hf-lfs/{adapter_id}/{oid}"
            if default_storage.get_modified_time(key) < cutoff:
                removed.append(key)
                if not dry_run:
                    default_storage.delete(key)
    return sorted(removed)
