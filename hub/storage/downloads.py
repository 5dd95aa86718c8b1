"""Whole-version downloads as tar (streamed, nothing buffered) or zip."""

from __future__ import annotations

import tarfile
import tempfile
import zipfile
from collections.abc import Iterator

from django.http import FileResponse, StreamingHttpResponse

from hub.models import AdapterVersion

from .blobstore import blob_iter, blob_open

_BLOCK = tarfile.BLOCKSIZE


def _tar_stream(version: AdapterVersion) -> Iterator[bytes]:
    mtime = int(version.created_at.timestamp())
    for entry in version.files.all():
        info = tarfile.TarInfo(entry.path)
        info.size = entry.blob.size
        info.mtime = mtime
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from blob_iter(entry.blob_id)
        padding = (-info.size) % _BLOCK
        if padding:
            yield b"\0" * padding
    yield b"\0" * (2 * _BLOCK)


def version_archive_response(version: AdapterVersion, fmt: str):
    stem = f"{version.adapter.namespace.name}--{version.adapter.name}--v{version.number}"
    if fmt == "tar":
        response = StreamingHttpResponse(_tar_stream(version), content_type="application/x-tar")
        response["Content-Disposition"] = f'attachment; filename="{stem}.tar"'
        return response
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in version.files.all():
            with blob_open(entry.blob_id) as src, archive.open(entry.path, "w", force_zip64=True) as dst:
                for chunk in iter(lambda: src.read(1024 * 1024), b""):
                    dst.write(chunk)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"{stem}.zip", content_type="application/zip")
