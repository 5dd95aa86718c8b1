"""Storage maintenance: removing blob content that no version uses any more."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from hub.models import Blob

from . import blobstore


def blobs_collect_garbage(*, grace_seconds: int = 3600, dry_run: bool = False) -> list[str]:
    """Delete blob content no version uses: rows left by deleted versions, and files left
    by an upload whose transaction was rolled back by a caller after the service returned.

    Only content older than ``grace_seconds`` goes, so an upload in flight is never hit.
    Returns the hashes removed (or that would be, with ``dry_run``).
    """
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
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


def upload_temp_collect_garbage(*, grace_seconds: int = 3600, dry_run: bool = False) -> list[str]:
    """Delete spooled upload bodies (``FILE_UPLOAD_TEMP_DIR``) a killed web process left.

    A live upload writes its spool file as the body arrives and closes (deletes) it when
    the request ends, so a file untouched for ``grace_seconds`` belongs to no request.
    Returns the names removed (or that would be, with ``dry_run``).
    """
    from pathlib import Path

    from django.conf import settings

    if not settings.FILE_UPLOAD_TEMP_DIR or not Path(settings.FILE_UPLOAD_TEMP_DIR).is_dir():
        return []
    cutoff = timezone.now().timestamp() - grace_seconds
    removed = []
    for path in sorted(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir()):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                if not dry_run:
                    path.unlink()
                removed.append(path.name)
        except FileNotFoundError:
            continue  # its request ended meanwhile
    return removed
