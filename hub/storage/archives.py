"""Unpack an uploaded tar or zip of a peft folder, refusing anything that could escape it.

Everything that can be judged from the archive's index (the zip central directory, the
tar headers) is judged before any member's data is read: names, kinds, the files an
adapter needs, the number of members and the sizes they declare. A small archive of
huge, highly compressible members is refused without inflating a byte of them. While
members are then copied out, no more bytes than each one declared are accepted.
"""

from __future__ import annotations

import lzma
import posixpath
import struct
import tarfile
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO, cast

from django.conf import settings

from hub.exceptions import UploadRejected, UploadTooLarge
from hub.validation.files import CONFIG_NAME, WEIGHTS_NAME, check_filename, check_kind, human_bytes

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
# An adapter folder holds a config, the weights and a dozen side files at most
# (README, tokenizer files, chat template, training metadata); directories count too.
MAX_MEMBERS = 64
_SPOOL_BYTES = 8 * 1024 * 1024
# What the unpacked members of one archive may keep in memory, all together; the rest
# is spooled to disk, so thirty 7.5 MiB members do not cost 225 MiB of RAM.
_SPOOL_BUDGET_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_TOO_LARGE = 413


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class _Entry:
    """A regular file as the archive's index describes it."""

    name: str  # after stripping a common top folder
    declared: int  # the size the index declares, in bytes
    member: zipfile.ZipInfo | tarfile.TarInfo


def _reject(archive: str, what: str, *, file: str | None = None, status: int | None = None) -> UploadRejected:
    kind = UploadTooLarge if status == _TOO_LARGE else UploadRejected  # 413 for size limits, 422 for content
    return kind(f"{archive}: {what}", file=file or archive, field="archive")


def _safe_member_name(archive: str, raw: str) -> str:
    name = raw.replace("\\", "/")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject(archive, f"member {raw!r} has a name that is not UTF-8; rename it") from None
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../") or "\x00" in name:
        raise _reject(
            archive,
            f"member `{raw}` points outside the archive's folder; pack the adapter folder with relative paths only",
        )
    return normal


def _strip_common_dir(names: list[str]) -> dict[str, str]:
    """``out/adapter_config.json`` -> ``adapter_config.json`` when every file shares ``out/``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return {n: n.split("/", 1)[1] for n in names}
    return {n: n for n in names}


def _check_count(archive: str, count: int, max_members: int) -> None:
    if count > max_members:
        raise _reject(
            archive,
            f"holds more than {max_members} members; an adapter folder needs a handful "
            f"({CONFIG_NAME}, {WEIGHTS_NAME} and side files): pack only that folder",
            status=_TOO_LARGE,
        )


def _check_index(
    archive: str, raw: list[tuple[str, int, object]], *, max_file_bytes: int, max_upload_bytes: int
) -> list[_Entry]:
    """Names, kinds, required files and declared sizes, from the index alone."""
    renamed = _strip_common_dir([name for name, _, _ in raw])
    entries: list[_Entry] = []
    seen: set[str] = set()
    total = 0
    for name, declared, member in raw:
        flat = renamed[name]
        check_filename(flat)
        check_kind(flat)
        if flat in seen:
            raise _reject(archive, f"holds `{flat}` twice; pack each file once", file=flat)
        seen.add(flat)
        if declared > max_file_bytes:
            raise _reject(
                archive,
                f"`{flat}` is {human_bytes(declared)} unpacked; the limit per file is {human_bytes(max_file_bytes)}",
                file=flat,
                status=_TOO_LARGE,
            )
        total += declared
        entries.append(_Entry(name=flat, declared=declared, member=member))  # type: ignore[arg-type]
    if total > max_upload_bytes:
        raise _reject(
            archive,
            f"unpacks to {human_bytes(total)}; the limit for an upload is {human_bytes(max_upload_bytes)}: "
            "leave out files the adapter does not need",
            status=_TOO_LARGE,
        )
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if required not in seen:
            raise _reject(
                archive,
                f"has no {required}: pack the folder peft's save_pretrained wrote "
                f"(it contains {CONFIG_NAME} and {WEIGHTS_NAME})",
                file=required,
            )
    return entries


def _zip_index(archive: str, fileobj: BinaryIO, max_members: int) -> None:
    """Refuse a zip whose end record announces too many entries, before parsing them."""
    fileobj.seek(0)
    end = zipfile._EndRecData(fileobj)  # type: ignore[attr-defined]  # zipfile's own reader
    if end is None:
        raise _reject(archive, "not a readable tar or zip archive (no zip end record)")
    _check_count(archive, end[zipfile._ECD_ENTRIES_TOTAL], max_members)  # type: ignore[attr-defined]
    fileobj.seek(0)


def _zip_entries(stack: ExitStack, archive: str, fileobj: BinaryIO, **limits: int) -> tuple[object, list]:
    _zip_index(archive, fileobj, limits["max_members"])
    opened = stack.enter_context(zipfile.ZipFile(fileobj))
    infos = opened.infolist()
    _check_count(archive, len(infos), limits["max_members"])
    raw = []
    for info in infos:
        name = _safe_member_name(archive, info.filename)
        if info.is_dir():
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise _reject(archive, f"`{info.filename}` is a symbolic link; archives may hold regular files only")
        raw.append((name, info.file_size, info))
    return opened, raw


def _tar_entries(stack: ExitStack, archive: str, fileobj: BinaryIO, **limits: int) -> tuple[object, list]:
    opened = stack.enter_context(tarfile.open(fileobj=fileobj, mode="r:*"))  # noqa: SIM115
    raw = []
    count = 0
    declared = 0
    # Header by header, so a limit stops the scan before the data behind later headers
    # is decompressed (a tar.gz interleaves headers and data).
    while (info := opened.next()) is not None:
        count += 1
        _check_count(archive, count, limits["max_members"])
        name = _safe_member_name(archive, info.name)
        if info.isdir():
            continue
        if not info.isfile():
            raise _reject(archive, f"`{info.name}` is a link or special file; archives may hold regular files only")
        raw.append((name, info.size, info))
        declared += info.size
        if declared > limits["max_upload_bytes"] or info.size > limits["max_file_bytes"]:
            break  # _check_index names the limit; nothing behind this header is read
    return opened, raw


def _spool(stack: ExitStack, source: BinaryIO, entry: _Entry, archive: str, budget: list[int]) -> BinaryIO:
    in_memory = min(_SPOOL_BYTES, budget[0])
    spool = stack.enter_context(
        tempfile.SpooledTemporaryFile(max_size=in_memory, dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
    )
    written = 0
    # One byte past the declared size is enough to know the member lies about it.
    while chunk := source.read(min(_CHUNK, entry.declared - written + 1)):
        written += len(chunk)
        if written > entry.declared:
            raise _reject(
                archive,
                f"`{entry.name}` unpacks to more than the {entry.declared} bytes its index declares: "
                "the archive is corrupt or crafted; pack the folder again",
                file=entry.name,
            )
        spool.write(chunk)
    if written != entry.declared:
        raise _reject(
            archive,
            f"`{entry.name}` holds {written} bytes, not the {entry.declared} its index declares: "
            "the archive is truncated",
            file=entry.name,
        )
    if written <= in_memory:
        budget[0] -= written
    spool.seek(0)
    return cast(BinaryIO, spool)  # a binary-mode spool: a BinaryIO in all but its declared type


def unpack_archive(
    stack: ExitStack,
    filename: str,
    fileobj: BinaryIO,
    *,
    max_file_bytes: int,
    max_upload_bytes: int | None = None,
    max_members: int = MAX_MEMBERS,
) -> tuple[dict[str, BinaryIO], dict[str, int]]:
    """Return ``(files, sizes)`` of the archive's regular files, spooled to temp files that
    ``stack`` closes (and so deletes). Links, devices and escaping paths are refused (422);
    so are wrong names and a missing config or weights file. Too many members, or declared
    sizes over the per-file or total limit, are refused (413) before any data is read.
    """
    limits = {
        "max_file_bytes": max_file_bytes,
        "max_upload_bytes": settings.PEFTHUB_MAX_UPLOAD_BYTES if max_upload_bytes is None else max_upload_bytes,
        "max_members": max_members,
    }
    fileobj.seek(0)
    files: dict[str, BinaryIO] = {}
    sizes: dict[str, int] = {}
    is_zip = filename.lower().endswith(".zip")
    try:
        opened, raw = (_zip_entries if is_zip else _tar_entries)(stack, filename, fileobj, **limits)
        if not raw:
            raise _reject(filename, "the archive holds no files")
        entries = _check_index(
            filename, raw, max_file_bytes=limits["max_file_bytes"], max_upload_bytes=limits["max_upload_bytes"]
        )
        budget = [_SPOOL_BUDGET_BYTES]
        for entry in entries:
            if is_zip:
                source = opened.open(entry.member)  # type: ignore[attr-defined]
            else:
                source = opened.extractfile(entry.member)  # type: ignore[attr-defined]
                if source is None:
                    raise _reject(filename, f"`{entry.name}` has no content")
            with source:
                files[entry.name] = _spool(stack, source, entry, filename, budget)
            sizes[entry.name] = entry.declared
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        zlib.error,
        lzma.LZMAError,
        struct.error,
    ) as exc:
        # ValueError and struct.error: zipfile and tarfile raise them for some malformed
        # fields; zlib and lzma errors come from a member whose compressed data is corrupt.
        raise _reject(filename, f"not a readable tar or zip archive ({exc})") from exc
    except NotImplementedError as exc:  # a zip compression method Python lacks
        raise _reject(filename, f"uses a compression this hub cannot read ({exc}); use deflate or tar.gz") from exc
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
        raise _reject(filename, f"cannot be read ({exc}); pack the folder without a password") from exc
    return files, sizes
