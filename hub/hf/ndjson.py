"""An HF commit's NDJSON body, read without holding a file's content in memory.

``huggingface_hub`` sends each regular file base64-encoded on one line
(``{"key": "file", "value": {"content": "...", "path": ..., "encoding": "base64"}}``), so
a 400 MB adapter is one 530 MB line. Short lines are parsed as JSON; a long one must be
such a ``file`` line, and its content is decoded to a temporary file as it arrives.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO

from django.conf import settings

from hub.exceptions import HubError

CHUNK = 1024 * 1024
SHORT_LINE = 8 * 1024 * 1024
_TAIL = 64 * 1024
# What json.dumps (the client's serializer) writes before a file's content.
FILE_PREFIX = b'{"key": "file", "value": {"content": "'

Spooled = tuple[BinaryIO, int]


class _Body:
    def __init__(self, stream, limit: int) -> None:
        self.stream, self.limit, self.read, self.pending = stream, limit, 0, b""

    def chunk(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        data = self.stream.read(CHUNK)
        self.read += len(data)
        if self.read > self.limit:
            raise HubError(f"the commit is over {self.limit} bytes; leave out files the adapter does not need")
        return data

    def line(self, max_bytes: int) -> tuple[bytes, bool] | None:
        """The next line and True; its first ``max_bytes``-odd bytes and False if longer;
        None at the end of the body."""
        parts: list[bytes] = []
        size = 0
        while data := self.chunk():
            newline = data.find(b"\n")
            if newline >= 0:
                parts.append(data[:newline])
                self.pending = data[newline + 1 :]
                return b"".join(parts), True
            parts.append(data)
            size += len(data)
            if size > max_bytes:
                return b"".join(parts), False
        return (b"".join(parts), True) if parts else None


class _Base64Sink:
    """Decodes base64 written in pieces of any length into ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.carry = out, b""

    def write(self, data: bytes) -> None:
        data = self.carry + data
        cut = len(data) - len(data) % 4
        try:
            self.out.write(base64.b64decode(data[:cut], validate=True))
        except (binascii.Error, ValueError):
            raise HubError("a `file` line's content is not valid base64") from None
        self.carry = data[cut:]

    def close(self) -> None:
        if self.carry:
            raise HubError("a `file` line's content is not valid base64 (cut short)")


def spool(stack: ExitStack) -> BinaryIO:
    handle = tempfile.SpooledTemporaryFile(CHUNK, dir=settings.FILE_UPLOAD_TEMP_DIR or None)  # noqa: SIM115
    stack.callback(handle.close)
    return handle  # type: ignore[return-value]


def decode(content: str, stack: ExitStack) -> Spooled:
    """A short line's base64 content, as a temporary file and its size."""
    handle = spool(stack)
    sink = _Base64Sink(handle)
    sink.write(content.encode("ascii", errors="replace"))
    sink.close()
    size = handle.tell()
    handle.seek(0)
    return handle, size


def _loads(line: bytes) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except ValueError:
        raise HubError("the commit body is not NDJSON (one JSON object a line)") from None
    if not isinstance(item, dict):
        raise HubError("each line of the commit must be a JSON object")
    return item


def items(stream, *, limit: int, stack: ExitStack) -> Iterator[tuple[dict[str, Any], Spooled | None]]:
    """Each line of the body, with a long ``file`` line's content already in a temporary file
    (its ``content`` is then empty)."""
    body = _Body(stream, limit)
    while (read := body.line(max(SHORT_LINE, len(FILE_PREFIX)))) is not None:
        line, complete = read
        if complete:
            if line.strip():
                yield _loads(line), None
            continue
        if not line.startswith(FILE_PREFIX):
            raise HubError("a commit line over 8 MiB must be a base64 `file` line")
        handle = spool(stack)
        sink = _Base64Sink(handle)
        rest = line[len(FILE_PREFIX) :]
        while (quote := rest.find(b'"')) < 0:
            sink.write(rest)
            rest = body.chunk()
            if not rest:
                raise HubError("the commit body ends inside a file's content; send it again")
        sink.write(rest[:quote])
        sink.close()
        body.pending = rest[quote + 1 :] + body.pending
        tail = body.line(_TAIL)
        if tail is None or not tail[1]:
            raise HubError("a `file` line must end with its path and encoding")
        item = _loads(FILE_PREFIX + b'"' + tail[0])
        size = handle.tell()
        handle.seek(0)
        yield item, (handle, size)
