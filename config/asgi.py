"""The hub as an ASGI application: what the production server runs (gunicorn with uvicorn
workers, ``docker/gunicorn.conf.py``; ``make run`` too).

One event loop per worker process holds the connections, so an idle stream (an OpenAI SSE
answer waiting for its next token) costs a coroutine, not a thread. Synchronous views run
in a thread of their own per request (Django's ``sync_to_async``); the gateway's streams
are asynchronous (``serving.gateway``).

Django's handler reads a *synchronous* streaming body to its end before sending its first
byte (``StreamingHttpResponse.__aiter__``): a blob download would sit in memory whole, and
a stream would arrive at once. The handler below reads such bodies chunk by chunk instead,
each read in the request's own thread (where its database connection lives).

Django's handler also spools every request body past ``FILE_UPLOAD_MAX_MEMORY_SIZE`` to the
system's temporary folder, before the view runs. Ours spools it under
``FILE_UPLOAD_TEMP_DIR`` (the data volume, where the upload handlers write too), as an
unnamed file: a process killed mid-upload leaves nothing behind, and the disk writes run
off the event loop.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

_END: Any = object()


def _next(iterator: Iterator) -> Any:
    return next(iterator, _END)


async def _chunk_by_chunk(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    iterator = iter(chunks)
    read = sync_to_async(_next, thread_sensitive=True)
    while (chunk := await read(iterator)) is not _END:
        yield chunk


class HubASGIHandler(ASGIHandler):
    async def read_body(self, receive):
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (returned to the request, which closes it)
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b", dir=settings.FILE_UPLOAD_TEMP_DIR or None
        )
        write_to_disk = sync_to_async(body_file.write, thread_sensitive=False)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            if "body" in message:
                if getattr(body_file, "_rolled", False):
                    await write_to_disk(message["body"])
                else:
                    body_file.write(message["body"])
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def send_response(self, response, send):
        if getattr(response, "streaming", False) and not response.is_async:
            # The original body's close() stays registered: response.close() still calls it.
            response.streaming_content = _chunk_by_chunk(response.streaming_content)
        await super().send_response(response, send)


django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does first
application = HubASGIHandler()
