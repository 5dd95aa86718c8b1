"""The OpenAI-compatible gateway: /v1/models, /v1/completions, /v1/chat/completions.

The only door clients reach: engines listen on loopback (or in-process) and their load
endpoints are never exposed. Authenticates with the hub's API tokens or the browser's
session (with its CSRF header), resolves ``model`` through the registry's visibility
rules, makes sure the adapter is loaded, sends the body to the engine that serves the
adapter's method, and answers with the client's own model name. Errors have OpenAI's
shape: ``{"error": {"message", "type", "param", "code"}}``.

Before anything reaches an engine: the body is reduced to allow-listed fields within the
hub's caps (``serving.allowlist``), and the caller is counted against its rate and
in-flight limits (``serving.throttle``, ``429`` with ``Retry-After`` past them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.authentication import ApiTokenAuthentication
from hub.exceptions import HubError

from . import dispatch, selectors, services, throttle
from .allowlist import request_body
from .exceptions import EngineError, ModelNotFound, ServingError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "requests",  # what OpenAI's API calls its request-rate limits
}


def _openai_error(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_exception_handler(exc, context):
    """The gateway's one error mapping: the hub's errors (serving's and the engines'
    included) and DRF's (authentication, parsing), in OpenAI's shape."""
    if isinstance(exc, HubError):
        status, message, code = exc.status_code, exc.message, exc.code
    elif isinstance(exc, drf_exceptions.APIException):
        status, message, code = exc.status_code, str(exc.detail), getattr(exc.detail, "code", None) or exc.default_code
    else:
        return None
    param = "model" if code == "model_not_found" else getattr(exc, "field", None)
    response = Response(_openai_error(status, message, code, param), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="pefthub"'
    retry_after = getattr(exc, "retry_after", None)  # RateLimited, EngineBusy
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


class JSONWhateverTheClientAccepts(BaseContentNegotiation):
    """OpenAI's API answers JSON (or an SSE stream, built outside DRF's renderers) whatever
    ``Accept`` says: SSE clients send ``Accept: text/event-stream`` with their POST."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _Gateway(APIView):
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONWhateverTheClientAccepts
    schema = None  # OpenAI's API, documented by OpenAI; not part of the hub's OpenAPI schema

    def get_permissions(self):
        allow = AllowAny if settings.PEFTHUB_SERVING_ANONYMOUS else IsAuthenticated
        return [allow()]

    def get_exception_handler(self):
        return openai_exception_handler


def _model_row(row: dict[str, Any]) -> dict[str, Any]:
    deployment = row.get("deployment")
    created = deployment.created_at if deployment is not None else row["base"].created_at
    owner = row["id"].split("/", 1)[0] if row["parent"] else "pefthub"
    return {
        "id": row["id"],
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": owner,
        "parent": row["parent"],
        "root": row["parent"] or row["id"],
    }


class ModelListGateway(_Gateway):
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": [_model_row(r) for r in selectors.served_models(user=request.user)]})


class ModelDetailGateway(_Gateway):
    def get(self, request: Request, model: str) -> Response:
        served = selectors.served_resolve(user=request.user, model=model)
        for row in selectors.served_models(user=request.user):
            if row["id"] == served.canonical:
                return Response(_model_row(row))
        raise ModelNotFound(f"the model `{model}` does not exist")


class _CompletionGateway(_Gateway):
    kind: str

    def post(self, request: Request):
        body = request.data
        if not isinstance(body, dict):
            raise ServingError("the body must be a JSON object")
        if self.kind == "chat" and not isinstance(body.get("messages"), list):
            raise ServingError("`messages` must be a list of {role, content}", field="messages")
        if self.kind == "completions" and body.get("prompt") in (None, "", []):
            raise ServingError("`prompt` is required", field="prompt")
        body = request_body(kind=self.kind, body=body)
        slot = throttle.admit(request)
        try:
            return self._answer(slot, body, request)
        except BaseException:
            slot.release()
            raise

    def _answer(self, slot: throttle.Slot, body: dict[str, Any], request: Request):
        served = selectors.served_resolve(user=request.user, model=body.get("model"))
        started = time.perf_counter()
        tried: list[str] = []  # the engine(s) the request went to, for the usage counters
        # Under the ASGI server (config/asgi.py) this runs in the request's own thread, and a
        # stream is handed to the event loop: an idle stream then holds no thread.
        asgi = getattr(request, "scope", None) is not None
        try:
            engine, result = self._send(served, body, tried, asgi=asgi)
        except HubError:
            self._record(served, tried[-1] if tried else "-", {}, started, error=True)
            raise
        if isinstance(result, dict):
            slot.release()
            result["model"] = served.requested
            self._record(served, engine.name, result.get("usage") or {}, started, error=False)
            return Response(result)
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        stream: _Stream | _AsyncStream
        if asgi:
            chunks = result if hasattr(result, "__aiter__") else _read_in_thread(result)
            stream = _AsyncStream(self._asse(served, engine.name, chunks, started, wants_usage), slot, chunks)
        else:
            stream = _Stream(self._sse(served, engine.name, result, started, wants_usage), slot, result)
        response = StreamingHttpResponse(stream, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass tokens through as they come
        return response

    def _send(self, served, body, tried: list[str], *, asgi: bool = False):
        """Send to the engine without asking first what it holds; if it does not hold the
        adapter (evicted, or never loaded) or cannot be reached, check, load, and send once more.

        Server engines (vLLM) are a fleet of replicas: ``serving.dispatch`` picks one by
        adapter affinity and load, and fails over to another when one dies."""
        if services.served_by_fleet(served=served):
            tried.append("vllm")
            _replica, result = dispatch.fleet_send(served=served, kind=self.kind, body=body, asgi=asgi)
            return services.engine_for_served(served=served), result
        for attempt in (1, 2):
            engine = services.served_engine(served=served, verify=attempt == 2)
            tried.append(engine.name)
            name = served.deployment.engine_model if served.deployment else served.base.name
            try:
                return engine, engine.openai(self.kind, {**body, "model": name})
            except EngineError as exc:
                missing = exc.status_code == 404 and served.deployment is not None
                if attempt == 1 and (exc.status_code == 503 or missing):
                    continue
                raise
        raise AssertionError("unreachable")

    def _sse(self, served, engine: str, chunks: Iterator[dict], started: float, wants_usage: bool) -> Iterator[bytes]:
        usage: dict[str, Any] = {}
        error = False
        try:
            for chunk in chunks:
                usage, event = _event(served, chunk, usage, wants_usage)
                if event:
                    yield event
        except Exception as exc:
            error = True
            yield _error_event(served, exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # gives the replica's in-flight count back, even if the client left
                close()
            self._record(served, engine, usage, started, error=error)
        yield b"data: [DONE]\n\n"

    async def _asse(
        self, served, engine: str, chunks: AsyncIterator[dict], started: float, wants_usage: bool
    ) -> AsyncIterator[bytes]:
        """:meth:`_sse` on the event loop (under ASGI): the same events, the same ending."""
        usage: dict[str, Any] = {}
        error = False
        try:
            async for chunk in chunks:
                usage, event = _event(served, chunk, usage, wants_usage)
                if event:
                    yield event
        except Exception as exc:
            error = True
            yield _error_event(served, exc)
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            await sync_to_async(self._record, thread_sensitive=True)(served, engine, usage, started, error=error)
        yield b"data: [DONE]\n\n"

    @staticmethod
    def _record(served, engine: str, usage: dict, started: float, *, error: bool) -> None:
        try:
            services.usage_record(
                served=served,
                engine=engine,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                seconds=time.perf_counter() - started,
                error=error,
            )
        except Exception:  # counting must never fail a request
            log.exception("could not record usage of %s", served.canonical)


class _Stream:
    """An SSE stream that gives its in-flight slot back when the server closes the response,
    whether the stream ran to its end, failed, or was never read (the client went away)."""

    def __init__(self, chunks: Iterator[bytes], slot: throttle.Slot, source: Iterator | None = None) -> None:
        self.chunks = chunks
        self.slot = slot
        self.source = source  # the engine's stream: closed too, in case ``chunks`` never started

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        try:
            for each in (self.chunks, self.source):
                close = getattr(each, "close", None)
                if close is not None:
                    close()
        finally:
            self.slot.release()


class _AsyncStream:
    """:class:`_Stream` for a stream sent by the event loop. Django calls :meth:`close` from a
    thread when the response ends (or the client left); the generators are closed on the loop."""

    def __init__(self, chunks: AsyncIterator[bytes], slot: throttle.Slot, source: AsyncIterator) -> None:
        self.chunks = chunks
        self.slot = slot
        self.source = source

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    async def _aclose(self) -> None:
        for each in (self.chunks, self.source):
            close = getattr(each, "aclose", None)
            if close is not None:
                await close()

    def close(self) -> None:
        try:
            async_to_sync(self._aclose)()
        finally:
            self.slot.release()


def _event(served, chunk: dict, usage: dict, wants_usage: bool) -> tuple[dict, bytes]:
    """The SSE event for one engine chunk (empty: none), and the usage seen so far."""
    if chunk.get("usage"):
        usage = chunk["usage"]
        if not chunk.get("choices") and not wants_usage:
            return usage, b""
        if not wants_usage:
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
    chunk["model"] = served.requested
    return usage, f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()


def _error_event(served, exc: Exception) -> bytes:
    """How a stream that failed half-way ends: one OpenAI-shaped error event (then ``[DONE]``)."""
    if isinstance(exc, HubError):
        payload = _openai_error(exc.status_code, exc.message, exc.code)
    else:
        log.error("stream for %s failed", served.canonical, exc_info=exc)
        payload = _openai_error(500, "the engine failed while streaming", "engine_error")
    return f"data: {json.dumps(payload)}\n\n".encode()


_END: Any = object()


def _next(iterator: Iterator) -> Any:
    return next(iterator, _END)


async def _read_in_thread(chunks: Iterator[dict]) -> AsyncIterator[dict]:
    """An in-process engine's (peft's) synchronous stream, read in the request's own thread."""
    read = sync_to_async(_next, thread_sensitive=True)
    try:
        while (chunk := await read(chunks)) is not _END:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


class CompletionGateway(_CompletionGateway):
    kind = "completions"


class ChatCompletionGateway(_CompletionGateway):
    kind = "chat"
