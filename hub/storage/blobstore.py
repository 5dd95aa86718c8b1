"""Content-addressed file storage on top of Django's storage API (local disk or S3)."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from typing import BinaryIO, cast

from django.core.files import File
from django.core.files.storage import default_storage

CHUNK = 1024 * 1024


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def sha256_of(fileobj: BinaryIO) -> str:
    """Hash a file object from its start, in chunks (uploads can be hundreds of MB)."""
    fileobj.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def blob_write(sha256: str, fileobj: BinaryIO) -> None:
    """Store content under its hash. Callers write only blobs whose row they inserted."""
    key = blob_key(sha256)
    if default_storage.exists(key):
        # A leftover of a crash between write and commit: the content is the same.
        return
    fileobj.seek(0)
    stored = default_storage.save(key, File(fileobj, name=key))
    if stored != key:  # another writer won the race; both wrote identical bytes
        default_storage.delete(stored)


def blob_delete(sha256: str) -> None:
    default_storage.delete(blob_key(sha256))


def blob_exists(sha256: str) -> bool:
    return default_storage.exists(blob_key(sha256))


def blob_open(sha256: str) -> BinaryIO:
    # A Django File proxies the binary file it wraps (read, seek, context manager).
    return cast(BinaryIO, default_storage.open(blob_key(sha256), "rb"))


def blob_iter(sha256: str, start: int = 0, length: int | None = None) -> Generator[bytes, None, None]:
    """Stream a blob, optionally a byte range of it (for HTTP Range requests)."""
    with blob_open(sha256) as handle:
        yield from read_range(handle, start, length)


def read_range(handle: BinaryIO, start: int = 0, length: int | None = None) -> Generator[bytes, None, None]:
    """``length`` bytes (None: to the end) of an open file from ``start``, in chunks."""
    if start:
        handle.seek(start)
    remaining = length
    while remaining is None or remaining > 0:
        size = CHUNK if remaining is None else min(CHUNK, remaining)
        chunk = handle.read(size)
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def blob_keys() -> Iterator[str]:
    """Every sha256 that has content in the store (walks the two-level fan-out)."""
    root = "sha256"
    if not default_storage.exists(root):
        return
    firsts, _ = default_storage.listdir(root)
    for first in firsts:
        seconds, _ = default_storage.listdir(f"{root}/{first}")
        for second in seconds:
            _, names = default_storage.listdir(f"{root}/{first}/{second}")
            yield from (n for n in names if len(n) == 64)


def blob_modified(sha256: str):
    return default_storage.get_modified_time(blob_key(sha256))
