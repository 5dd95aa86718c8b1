"""Hashing and durable writes of a converted folder's files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Written last into a converted folder; its presence means the folder is complete.
MARKER_FILE = "pefthub_install.json"
MARKER_FORMAT = 1
CHUNK = 1 << 20


def folder_revision(path: Path) -> str:
    """The revision of a converted folder: sha256 over its files' relative paths and digests."""
    return revision(hash_files(path))


def hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative posix path: {"sha256", "size"}}`` for every file but the marker, sorted."""
    files: dict[str, dict[str, Any]] = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relpath = file.relative_to(folder).as_posix()
        if relpath == MARKER_FILE:
            continue
        files[relpath] = {"sha256": sha256_file(file), "size": file.stat().st_size}
    return dict(sorted(files.items()))


def revision(files: dict[str, dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for relpath in sorted(files):
        digest.update(f"{relpath}\0{files[relpath]['sha256']}\n".encode())
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def match_file_modes(folder: Path) -> None:
    """Give every file the mode a plain ``open()`` got here (i.e. the umask's).

    safetensors writes its file 0600; readers running as another user (a vLLM or
    worker container on a shared volume) could not open the weights.
    """
    mode = (folder / "config.json").stat().st_mode & 0o777
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(mode)


def write_json(path: Path, data: dict[str, Any]) -> None:
    # transformers' own layout (indent 2, sorted keys, trailing newline), so the rewrite
    # changes only the keys we touched and the bytes stay reproducible.
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
