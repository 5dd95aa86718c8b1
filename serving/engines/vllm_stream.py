"""vLLM's SSE stream read on the event loop (the gateway under ASGI, ``config/asgi.py``).

An idle stream then costs a coroutine and a socket, not a thread blocked on a read. The
stream is opened from the request's synchronous thread (the gateway's routing and failover
are synchronous: the database) with ``async_to_sync``, which runs it on the server's event
loop; the answer's status is known before the gateway commits to a replica, so a replica
that refuses or cannot be reached is failed over exactly as with a synchronous stream.
The chunks are then read by the loop itself while Django sends them.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync

from ..exceptions import EngineUnavailable

if TYPE_CHECKING:
    import httpx

    from .vllm_engine import VLLMEngine
    from .vllm_gate import Held

# One client per (event loop, engine): an httpx.AsyncClient's connections belong to a loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _client(engine: VLLMEngine) -> httpx.AsyncClient:
    import httpx

    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(engine.url)
    if client is None:
        headers = {"Authorization": f"Bearer {engine.api_key}"} if engine.api_key else {}
        client = per_loop[engine.url] = httpx.AsyncClient(
            base_url=engine.url,
            headers=headers,
            timeout=httpx.Timeout(engine.request_timeout, connect=5),
            # as many streams as the gateway lets in (its throttle), each on a connection of its own
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
    return client


def open_stream(
    engine: VLLMEngine, path: str, body: dict[str, Any], model: str, held: Held
) -> AsyncIterator[dict[str, Any]]:
    """From a synchronous thread under ASGI: send ``body``, wait for the answer's status, and
    return its chunks as an async iterator for the event loop (an ``EngineError`` if refused).
    ``held`` (the engine's gate) is released when the stream ends, or at once if refused."""
    try:
        return async_to_sync(_open)(engine, path, body, model, held)
    except BaseException:
        held.release()
        raise


async def _open(
    engine: VLLMEngine, path: str, body: dict[str, Any], model: str, held: Held
) -> AsyncIterator[dict[str, Any]]:
    import httpx

    from .vllm_engine import _error

    client = _client(engine)
    try:
        response = await client.send(client.build_request("POST", path, json=body), stream=True)
    except httpx.TransportError as exc:
        raise EngineUnavailable(f"the vLLM engine at {engine.url} is not reachable ({exc.__class__.__name__})")
    if response.status_code != 200:
        await response.aread()
        await response.aclose()
        raise _error(response, model)
    return _chunks(response, held)


async def _chunks(response: httpx.Response, held: Held) -> AsyncIterator[dict[str, Any]]:
    import httpx

    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield json.loads(data)
        # the server closed the stream without its end marker: it died mid-answer
        raise EngineUnavailable("the vLLM engine ended the stream before its end (it may have died)")
    except httpx.TransportError as exc:
        raise EngineUnavailable(f"the vLLM engine dropped the stream ({exc.__class__.__name__})")
    finally:
        held.release()
        await response.aclose()
