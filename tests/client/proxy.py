"""A TCP proxy in front of the live server that breaks the first adapter upload once.

Modes, applied to the first ``POST …/versions/`` it sees (every other request and every
later connection passes through untouched):

- ``"request"``: forward the upload only up to ``cut(content_length)`` bytes of its
  body, let the server see the end of the stream and finish with what it got, then drop
  the connection: the server never had the whole body.
- ``"response"``: forward the whole upload, then drop the connection as soon as the
  server starts answering: the server stored the version, the client never hears it.
- ``"unavailable"``: read the whole upload, answer ``503`` without forwarding it.

It runs in daemon threads, stops on ``close()`` (or leaving the ``with`` block) and by
itself after ``lifetime`` seconds, so a failing test cannot leave it running.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

_UPLOAD = re.compile(rb"POST /api/v1/adapters/[^/ ]+/[^/ ]+/versions/ HTTP/1\.[01]\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)\r\n", re.IGNORECASE)


class CuttingProxy:
    def __init__(
        self,
        upstream_url: str,
        mode: str,
        cut: Callable[[int], int] = lambda length: length // 2,
        lifetime: float = 120.0,
    ) -> None:
        assert mode in ("request", "response", "unavailable")
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "localhost", parts.port or 80)
        self.mode = mode
        self.cut = cut
        self.deadline = time.monotonic() + lifetime
        self.cuts = 0
        self.uploads_seen = 0
        # What the server answered on the broken connection (only the status line).
        self.dropped_responses: list[bytes] = []
        self._armed = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._accept_thread.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.deadline

    def _accept_loop(self) -> None:
        while self._running():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _take_sabotage(self) -> bool:
        with self._lock:
            self.uploads_seen += 1
            if self._armed:
                self._armed = False
                return True
            return False

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream, timeout=10)
        try:
            self._pump(client, upstream)
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        seen = bytearray()  # the client's bytes until the upload's headers are complete
        sabotage = False
        forward_limit: int | None = None  # stream offset to stop forwarding at ("request")
        forwarded = 0
        upload_started = False
        while self._running():
            readable, _, _ = select.select([client, upstream], [], [], 0.2)
            if client in readable:
                data = client.recv(65536)
                if not data:
                    return
                if not upload_started:
                    seen += data
                    match = _UPLOAD.search(seen)
                    end = seen.find(b"\r\n\r\n", match.start()) if match else -1
                    if match and end >= 0:
                        upload_started = True
                        sabotage = self._take_sabotage()
                        length_match = _CONTENT_LENGTH.search(bytes(seen[match.start() : end + 2]))
                        length = int(length_match.group(1)) if length_match else 0
                        # Everything before this upload on the connection is in `seen`,
                        # so offsets in `seen` are offsets in the stream.
                        body_start = end + 4
                        if sabotage and self.mode == "request":
                            forward_limit = body_start + self.cut(length)
                        if sabotage and self.mode == "unavailable":
                            body_left = length - (len(seen) - (end + 4))
                            self._answer_unavailable(client, body_left)
                            return
                if forward_limit is not None and forwarded + len(data) >= forward_limit:
                    upstream.sendall(data[: max(forward_limit - forwarded, 0)])
                    self._finish_cut(upstream)
                    return
                upstream.sendall(data)
                forwarded += len(data)
            if upstream in readable:
                data = upstream.recv(65536)
                if not data:
                    return
                if sabotage and self.mode == "response":
                    self._record(data)
                    with self._lock:
                        self.cuts += 1
                    return
                client.sendall(data)

    def _finish_cut(self, upstream: socket.socket) -> None:
        """The server gets end-of-stream, handles what it got; the client hears nothing."""
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)
        upstream.settimeout(30)
        try:
            self._record(upstream.recv(65536))
        except OSError:
            self._record(b"")
        with self._lock:
            self.cuts += 1

    def _answer_unavailable(self, client: socket.socket, body_left: int) -> None:
        client.settimeout(30)
        while body_left > 0:
            chunk = client.recv(min(body_left, 65536))
            if not chunk:
                break
            body_left -= len(chunk)
        client.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 12\r\nConnection: close\r\n\r\ntry later.\r\n"
        )
        with self._lock:
            self.cuts += 1

    def _record(self, data: bytes) -> None:
        with self._lock:
            self.dropped_responses.append(data.split(b"\r\n", 1)[0])
