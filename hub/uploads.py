"""Multipart request bodies that arrived whole, or a refusal.

Django's multipart parser keeps whatever arrived before a connection dropped, so a cut
upload could otherwise be stored without its last files. :class:`CompleteBodyUploadHandler`
(first in ``FILE_UPLOAD_HANDLERS``) takes over the parse through Django's documented
``handle_raw_input`` hook: it runs the parser with the other handlers over a stream that
counts the bytes it hands out, and compares the count with ``Content-Length``. It applies to
every multipart parse (DRF's and ``request.POST``).
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser

from .exceptions import UploadRejected


class _CountingStream:
    """``read()`` of the request body, counting the bytes it returns."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


class CompleteBodyUploadHandler(FileUploadHandler):
    """Parse multipart bodies with the other handlers; refuse one shorter than Content-Length."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if self.request is None:
            return None
        others = [handler for handler in self.request.upload_handlers if handler is not self]
        stream = _CountingStream(input_data)
        # The parser reads the body to its end (``exhaust``) even after the last part, so a
        # whole body is counted whole.
        post, files = MultiPartParser(META, stream, others, encoding).parse()
        if stream.count < content_length:
            for _, uploaded in files.lists():
                for fileobj in uploaded:
                    fileobj.close()  # temporary files go now, not when collected
            raise UploadRejected(
                f"the upload was cut short: {stream.count} of {content_length} bytes arrived; send it again",
                code="upload_incomplete",
                status_code=400,
            )
        return post, files

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        return raw_data  # never called: the parse above runs without this handler

    def file_complete(self, file_size: int) -> None:
        return None
