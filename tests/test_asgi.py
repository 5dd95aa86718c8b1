"""config.asgi: a synchronous streaming body (a blob download) is sent chunk by chunk under
the ASGI server, not read whole into memory first as Django's own handler does."""

from __future__ import annotations

import asyncio

import pytest
from django.http import StreamingHttpResponse


# response.close() sends request_finished, whose handler checks this thread's database
# connection (left open by an earlier test on SQLite): allowed here.
@pytest.mark.django_db
def test_a_synchronous_stream_is_sent_as_it_is_read_and_then_closed():
    from config.asgi import HubASGIHandler

    read: list[int] = []
    closed: list[bool] = []

    class Body:
        def __iter__(self):
            for i in range(5):
                read.append(i)
                yield b"x" * 10

        def close(self):
            closed.append(True)

    sent: list[tuple[int, bytes]] = []  # (chunks read when it was sent, what was sent)

    async def send(message):
        if message["type"] == "http.response.body":
            sent.append((len(read), message.get("body", b"")))

    response = StreamingHttpResponse(Body())
    asyncio.run(HubASGIHandler().send_response(response, send))
    response.close()
    body = [(count, chunk) for count, chunk in sent if chunk]
    assert [chunk for _, chunk in body] == [b"x" * 10] * 5
    # each chunk left before the next was read (Django's handler reads all five first)
    assert [count for count, _ in body] == [1, 2, 3, 4, 5]
    assert closed == [True]
