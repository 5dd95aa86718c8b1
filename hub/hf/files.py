"""A version's files as the Hub describes them: every file an LFS file, listed as a tree."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.models import AdapterVersion


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def version_files(version: AdapterVersion) -> list[tuple[str, str, int]]:
    return sorted((f.path, f.blob_id, f.blob.size) for f in version.files.all())


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def tree_entries(files: list[tuple[str, str, int]], under: str, recursive: bool) -> list[dict] | None:
    """The tree listing under folder ``under`` ("" for the root), or None if no such folder.

    ``files`` are ``(path, sha256, size)``. Folder ids are stable hashes of their content,
    not git tree ids (nothing in the client reads them).
    """
    folders: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    for path, sha256, size in files:
        pointer = lfs_pointer(sha256, size)
        oid = git_blob_id(pointer)
        for parent in _parents(path):
            folders.setdefault(parent, []).append(oid)
        lfs = {"oid": sha256, "size": size, "pointerSize": len(pointer)}
        rows.append({"type": "file", "oid": oid, "size": size, "path": path, "lfs": lfs})
    for folder, oids in folders.items():
        oid = hashlib.sha1("\n".join(sorted(oids)).encode(), usedforsecurity=False).hexdigest()
        rows.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
    if under and under not in folders:
        return None
    prefix = f"{under}/" if under else ""
    return sorted(
        (
            row
            for row in rows
            if row["path"].startswith(prefix) and (recursive or "/" not in row["path"][len(prefix) :])
        ),
        key=lambda row: row["path"],
    )


def siblings(files: list[tuple[str, str, int]]) -> list[dict]:
    siblings = []
    for path, sha256, size in files:
        pointer = lfs_pointer(sha256, size)
        lfs = {"size": size, "sha256": sha256, "pointerSize": len(pointer)}
        siblings.append({"rfilename": path, "size": size, "blobId": git_blob_id(pointer), "lfs": lfs})
    return siblings
