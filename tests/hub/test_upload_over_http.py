"""Uploads over a real socket: a body cut short must never become a version."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from hub.models import AdapterVersion, Blob
from tests.utils import folder_files

pytestmark = pytest.mark.django_db(transaction=True)

BOUNDARY = "pefthub-test-boundary"


def _multipart(files: dict[str, bytes]) -> bytes:
    parts = []
    for name, content in files.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _post_raw(url: str, path: str, token: str, body: bytes, send: int) -> bytes:
    """Send the headers of the whole body but only its first ``send`` bytes, then hang up."""
    parts = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body[:send])
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_body_cut_inside_an_optional_file_is_refused(live_server, alice, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "cut"}, format="json")
    files = folder_files(lora_dir, README__md=b"# A readme long enough to cut in half\n" * 50)
    ordered = {name: files[name] for name in sorted(files, key=lambda n: n == "README.md")}  # README last
    body = _multipart(ordered)
    cut = body.index(b"# A readme") + 200  # the required files arrived whole, the README not
    answer = _post_raw(live_server.url, "/api/v1/adapters/alice/cut/versions/", alice.token, body, cut)
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line, answer[:500]
    assert b"cut short" in answer
    assert AdapterVersion.objects.count() == 0
    assert Blob.objects.count() == 0

    whole = _post_raw(live_server.url, "/api/v1/adapters/alice/cut/versions/", alice.token, body, len(body))
    assert b" 201 " in whole.split(b"\r\n", 1)[0], whole[:500]
    assert AdapterVersion.objects.count() == 1
