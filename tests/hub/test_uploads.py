"""The multipart body check applies to every parse, Django's ``request.POST`` included."""

from __future__ import annotations

import io

import pytest
from django.test import RequestFactory

from hub.exceptions import UploadRejected

BOUNDARY = "b0undary"
BODY = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="a.json"\r\n'
    "Content-Type: application/json\r\n\r\n{}\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()


def _request(body: bytes, content_length: int):
    return RequestFactory().generic(
        "POST",
        "/",
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        CONTENT_LENGTH=str(content_length),
        **{"wsgi.input": io.BytesIO(body)},
    )


def test_a_whole_body_parses_as_usual():
    request = _request(BODY, len(BODY))
    assert request.POST["note"] == "hello"
    assert request.FILES["files"].read() == b"{}"


def test_a_body_shorter_than_its_content_length_is_refused_and_names_both_sizes():
    request = _request(BODY, len(BODY) + 100)
    with pytest.raises(UploadRejected) as refused:
        request.POST  # noqa: B018
    assert refused.value.code == "upload_incomplete"
    assert refused.value.status_code == 400
    assert f"{len(BODY)} of {len(BODY) + 100} bytes" in refused.value.message
