"""Unpack an uploaded tar or zip of a peft folder, refusing anything that could escape it."""

from __future__ import annotations

import posixpath
import tarfile
import tempfile
import zipfile
from contextlib import ExitStack
from typing import BinaryIO

from django.conf import settings

from .exceptions import UploadRejected

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_SPOOL_BYTES = 8 * 1024 * 1024


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_member_name(archive: str, raw: str) -> str:
    name = raw.replace("\\", "/")
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../") or "\x00" in name:
        raise UploadRejected(
            f"{archive}: member `{raw}` points outside the archive's folder; "
            "pack the adapter folder with relative paths only",
            file=archive,
            field="archive",
        )
    return normal


def _strip_common_dir(names: list[str]) -> dict[str, str]:
    """``out/adapter_config.json`` -> ``adapter_config.json`` when every file shares ``out/``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return {n: n.split("/", 1)[1] for n in names}
    return {n: n for n in names}


def _spool(stack: ExitStack, source: BinaryIO, limit: int, archive: str, member: str) -> BinaryIO:
    spool = stack.enter_context(
        tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
    )
    written = 0
    for chunk in iter(lambda: source.read(1024 * 1024), b""):
        written += len(chunk)
        if written > limit:
            raise UploadRejected(
                f"{archive}: `{member}` is larger than the {limit}-byte per-file limit",
                file=member,
                field="archive",
            )
        spool.write(chunk)
    spool.seek(0)
    return spool


def unpack_archive(
    stack: ExitStack, filename: str, fileobj: BinaryIO, *, max_file_bytes: int
) -> tuple[dict[str, BinaryIO], dict[str, int]]:
    """Return ``(files, sizes)`` of the archive's regular files, spooled to temp files that
    ``stack`` closes (and so deletes). Links, devices and escaping paths are refused."""
    fileobj.seek(0)
    files: dict[str, BinaryIO] = {}
    sizes: dict[str, int] = {}
    lower = filename.lower()
    try:
        if lower.endswith(".zip"):
            archive = stack.enter_context(zipfile.ZipFile(fileobj))
            members = [m for m in archive.infolist() if not m.is_dir()]
            for m in members:
                _safe_member_name(filename, m.filename)
                if (m.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UploadRejected(
                        f"{filename}: `{m.filename}` is a symbolic link; archives may hold regular files only",
                        file=filename,
                        field="archive",
                    )
            renamed = _strip_common_dir([_safe_member_name(filename, m.filename) for m in members])
            for m in members:
                name = renamed[_safe_member_name(filename, m.filename)]
                with archive.open(m) as src:
                    files[name] = _spool(stack, src, max_file_bytes, filename, name)
                sizes[name] = files[name].seek(0, 2)
                files[name].seek(0)
        else:
            archive = stack.enter_context(tarfile.open(fileobj=fileobj, mode="r:*"))  # noqa: SIM115
            members = []
            for m in archive.getmembers():
                if m.isdir():
                    _safe_member_name(filename, m.name)
                    continue
                if not m.isfile():
                    raise UploadRejected(
                        f"{filename}: `{m.name}` is a link or special file; archives may hold regular files only",
                        file=filename,
                        field="archive",
                    )
                _safe_member_name(filename, m.name)
                members.append(m)
            renamed = _strip_common_dir([_safe_member_name(filename, m.name) for m in members])
            for m in members:
                name = renamed[_safe_member_name(filename, m.name)]
                src = archive.extractfile(m)
                assert src is not None  # regular files always have content
                files[name] = _spool(stack, src, max_file_bytes, filename, name)
                sizes[name] = m.size
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise UploadRejected(
            f"{filename}: not a readable tar or zip archive ({exc})", file=filename, field="archive"
        ) from exc
    if not files:
        raise UploadRejected(f"{filename}: the archive holds no files", file=filename, field="archive")
    return files, sizes
