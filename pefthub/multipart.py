"""A ``multipart/form-data`` body that streams files from disk and reports bytes sent.

``requests`` would read every file into memory to build the body; this reads each file
in chunks as the connection asks for them, so the progress callback sees the bytes as
they go out and an adapter of any size needs no extra memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Part:
    """One form part: a text field (``value``) or a file read from ``path``."""

    name: str
    value: str | None = None
    path: Path | None = None
    filename: str | None = None


def _quote(value: str) -> str:
    # RFC 7578: names are quoted strings; escape what would end or break them.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A file-like, sized request body; ``requests`` sends it with a Content-Length."""

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        on_read: Callable[[int], None] | None = None,
        chunk_size: int = 256 * 1024,
    ) -> None:
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._on_read = on_read
        self._chunk_size = chunk_size
        # Each segment is bytes to send or a (path, size) to stream.
        self._segments: list[bytes | tuple[Path, int]] = []
        for part in parts:
            disposition = f'form-data; name="{_quote(part.name)}"'
            if part.path is not None:
                filename = part.filename or part.path.name
                disposition += f'; filename="{_quote(filename)}"'
                head = (
                    f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n"
                )
                self._segments.append(head.encode())
                self._segments.append((part.path, part.path.stat().st_size))
            else:
                head = f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n\r\n"
                self._segments.append(head.encode() + (part.value or "").encode())
            self._segments.append(b"\r\n")
        self._segments.append(f"--{self.boundary}--\r\n".encode())
        self._length = sum(len(s) if isinstance(s, bytes) else s[1] for s in self._segments)
        self._index = 0
        self._offset = 0  # within the current segment
        self._handle: BinaryIO | None = None
        self._sent = 0

    def __len__(self) -> int:
        return self._length

    @property
    def bytes_read(self) -> int:
        return self._sent

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length
        out = bytearray()
        while len(out) < size and self._index < len(self._segments):
            segment = self._segments[self._index]
            want = size - len(out)
            if isinstance(segment, bytes):
                piece = segment[self._offset : self._offset + want]
                self._offset += len(piece)
                if self._offset >= len(segment):
                    self._next()
            else:
                path, size_declared = segment
                if self._handle is None:
                    self._handle = open(path, "rb")  # noqa: SIM115 -- closed in _next()
                remaining = size_declared - self._offset
                if remaining <= 0:
                    self._next()
                    continue
                piece = self._handle.read(min(want, self._chunk_size, remaining))
                if not piece:
                    # The Content-Length is promised already; a short body would hang the server.
                    raise OSError(f"{path} shrank while it was being uploaded")
                self._offset += len(piece)
            out += piece
        self._sent += len(out)
        if out and self._on_read is not None:
            self._on_read(len(out))
        return bytes(out)

    def _next(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._index += 1
        self._offset = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
