"""Unpack a suite uploaded as a tar (optionally gzip-compressed), refusing anything that
could escape the folder or that is not suite data.

Names, kinds, count and declared sizes are judged from the tar headers before a member's
data is read, and no member may unpack to more than it declared. A suite registered over
the API holds data only: built-in task kinds need no code, and lm-eval YAMLs can run
Python (``!function``, Jinja), so a suite with its own YAML or Python is installed on the
server (``manage.py evaluator_install_suites FOLDER``).
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO

from hub.exceptions import UploadRejected, UploadTooLarge
from hub.validation.files import human_bytes

MAX_MEMBERS = 32
DATA_SUFFIXES = (".json", ".jsonl", ".md", ".txt")
_CHUNK = 1024 * 1024


def _refuse(what: str, *, file: str | None = None) -> UploadRejected:
    return UploadRejected(f"suite archive: {what}", file=file, field="archive")


def _too_large(what: str, *, file: str | None = None) -> UploadTooLarge:
    return UploadTooLarge(f"suite archive: {what}", file=file, field="archive")


def _member_name(raw: str) -> str:
    name = raw.replace("\\", "/")
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../") or "\x00" in name:
        raise _refuse(f"member `{raw}` points outside the suite folder; pack the folder with relative paths only")
    return normal


def unpack_suite(fileobj: BinaryIO, target: Path, *, max_bytes: int) -> None:
    """Write the suite's files into the empty folder ``target``: its top level, whether the
    tar holds the files themselves or one folder with them."""
    try:
        opened = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _refuse(f"not a readable tar or tar.gz ({exc}); pack the folder with `tar -czf suite.tgz -C FOLDER .`")
    with opened:
        members: list[tuple[str, tarfile.TarInfo]] = []
        total = 0
        try:
            while (info := opened.next()) is not None:
                if len(members) >= MAX_MEMBERS:
                    raise _too_large(f"holds more than {MAX_MEMBERS} files; a suite needs suite.json and a few JSONL")
                name = _member_name(info.name)
                if info.isdir() or name == ".":
                    continue
                if not info.isfile():
                    raise _refuse(f"`{info.name}` is a link or special file; a suite holds regular files only")
                total += info.size
                if total > max_bytes:
                    raise _too_large(f"unpacks to more than {human_bytes(max_bytes)}, the limit for a suite")
                members.append((name, info))
        except tarfile.TarError as exc:
            raise _refuse(f"the tar is damaged ({exc}); pack the folder again") from None
        if not members:
            raise _refuse("is empty; pack the suite folder (suite.json, test.jsonl, ...)")
        names = [n for n, _ in members]
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1 and all("/" in n for n in names):
            names = [n.split("/", 1)[1] for n in names]
        seen: set[str] = set()
        for name in names:
            if "/" in name:
                raise _refuse(
                    f"`{name}` is in a subfolder; a suite folder is flat (suite.json and JSONL files)", file=name
                )
            if name.startswith(".") or not name.endswith(DATA_SUFFIXES):
                raise _refuse(
                    f"`{name}` is not suite data: a suite registered over the API holds {', '.join(DATA_SUFFIXES)} "
                    "files only. Built-in task kinds need no code; a suite with its own lm-eval YAML or Python is "
                    "installed on the server (manage.py evaluator_install_suites FOLDER)",
                    file=name,
                )
            if name in seen:
                raise _refuse(f"holds `{name}` twice; pack each file once", file=name)
            seen.add(name)
        for name, (_, info) in zip(names, members, strict=True):
            source = opened.extractfile(info)
            if source is None:
                raise _refuse(f"`{name}` cannot be read; pack the folder again", file=name)
            written = 0
            with source, (target / name).open("xb") as out:
                while chunk := source.read(min(_CHUNK, info.size - written + 1)):
                    written += len(chunk)
                    if written > info.size:
                        raise _refuse(f"`{name}` unpacks to more than its header declares; pack the folder again")
                    out.write(chunk)
            if written != info.size:
                raise _refuse(
                    f"`{name}` is cut short ({written} of {info.size} bytes); pack the folder again", file=name
                )
