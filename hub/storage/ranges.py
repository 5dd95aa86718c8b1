"""One file of a version over HTTP, whole or one byte range (RFC 9110), for every download path.

The Hugging Face ``resolve`` route and the REST file download both answer with
:func:`blob_response`; clients resume interrupted downloads with ``Range`` on either.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Generator, Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from hub.exceptions import HubError

from .blobstore import blob_iter

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
UNSATISFIABLE = "unsatisfiable"


class RangeNotSatisfiable(HubError):
    """A ``Range`` wholly outside the file: 416, with ``Content-Range: bytes */<size>``."""

    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, header: str, path: str, size: int) -> None:
        super().__init__(
            f"`{header}` is outside `{path}` ({size} bytes); ask for bytes 0-{max(size - 1, 0)} or send no Range",
            headers={"Content-Range": f"bytes */{size}"},
        )


def byte_range_of(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` (inclusive) for a single ``bytes=`` range, ``"unsatisfiable"``, or
    None to send the whole file (no header, or one we ignore: other units, several ranges,
    malformed ones, as RFC 9110 allows)."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix and size else UNSATISFIABLE
    start, end = int(first), int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return (start, size - 1 if end is None else min(end, size - 1))


def blob_response(
    request: HttpRequest,
    *,
    sha256: str,
    size: int,
    path: str,
    headers: dict[str, str] | None = None,
    attachment: bool = False,
    chunks: Callable[[int, int], Generator[bytes, None, None]] | None = None,
) -> HttpResponseBase:
    """The blob ``sha256`` (``size`` bytes) served as file ``path``: 200, or 206 for one range.

    ``chunks(start, length)`` reads the bytes from elsewhere than the blob store (a base
    model's files live in its revision folder); by default :func:`blob_iter`.

    ``ETag`` is the sha256, so ``If-Range`` with it keeps the range and any other validator
    gets the whole file. A HEAD gets the same headers and no body. Raises
    :class:`RangeNotSatisfiable` for a range that starts past the end.
    """
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        **(headers or {}),
        "Accept-Ranges": "bytes",
        "Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream",
    }
    disposition = content_disposition_header(attachment, path.rsplit("/", 1)[-1])
    if disposition is not None:  # None only for an inline file without a name
        headers["Content-Disposition"] = disposition
    if_range = request.headers.get("If-Range")
    byte_range = byte_range_of(request.headers.get("Range"), size) if if_range in (None, etag) else None
    if byte_range == UNSATISFIABLE:
        raise RangeNotSatisfiable(request.headers["Range"], path, size)

    status, start, length = 200, 0, size
    if isinstance(byte_range, tuple):
        first, last = byte_range
        status, start, length = 206, first, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response: HttpResponseBase
    if request.method == "HEAD":
        response = HttpResponse(status=status, headers=headers)
    else:
        read = chunks or (lambda first, count: blob_iter(sha256, first, count))
        response = StreamingHttpResponse(_BlobBody(read(start, length)), status=status, headers=headers)
    # Set last: the same for HEAD (no body) and GET, and never recomputed by Django.
    response["Content-Length"] = str(length)
    return response


class _BlobBody:
    """A blob's bytes for StreamingHttpResponse, opened before the response starts: a missing
    blob is then a 500, not a 200 cut short. Django calls ``close`` when the response ends."""

    def __init__(self, chunks: Generator[bytes, None, None]) -> None:
        self._chunks = chunks
        self._first = next(self._chunks, b"")

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._chunks

    def close(self) -> None:
        self._chunks.close()


def fetches_from_start(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether ``response`` hands ``request`` the file from its first byte: a GET answered
    200, or 206 for a range at 0. A HEAD, a redirect or a resumed download (a range further
    on) is not a fetch of the file, so it does not count as a download."""
    if request.method != "GET":
        return False
    if response.status_code == 200:
        return True
    return response.status_code == 206 and str(response.get("Content-Range", "")).startswith("bytes 0-")
