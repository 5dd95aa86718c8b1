"""The OpenAI-compatible gateway: /v1/models, /v1/completions, /v1/chat/completions.

The only door clients reach: engines listen on loopback (or in-process) and their load
endpoints are never exposed. Authenticates with the hub's API tokens or the browser's
session (with its CSRF header), resolves ``model`` through the registry's visibility
rules, makes sure the adapter is loaded, sends the body to the engine that serves the
adapter's method, and answers with the client's own model name. Errors have OpenAI's
shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

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

from . import selectors, services
from .engines import EngineError
from .exceptions import EngineDown, ModelNotFound, ServingError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
}


def _openai_error(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_exception_handler(exc, context):
    if isinstance(exc, HubError):
        status, message, code = exc.status_code, exc.message, exc.code
    elif isinstance(exc, EngineError):
        status, message, code = exc.status, exc.message, exc.code
    elif isinstance(exc, drf_exceptions.APIException):
        status, message, code = exc.status_code, str(exc.detail), getattr(exc.detail, "code", None) or exc.default_code
    else:
        return None
    param = "model" if code == "model_not_found" else getattr(exc, "field", None)
    response = Response(_openai_error(status, message, code, param), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="pefthub"'
    return response


class _JSONWhateverTheClientAccepts(BaseContentNegotiation):
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
    content_negotiation_class = _JSONWhateverTheClientAccepts
    schema = None  # OpenAI's API, documented by OpenAI; not part of the hub's OpenAPI schema

    def get_permissions(self):
        allow = AllowAny if settings.PEFTHUB_SERVING_ALLOW_ANONYMOUS else IsAuthenticated
        return [allow()]

    def get_exception_handler(self):
        return openai_exception_handler


def _model_row(row: dict[str, Any]) -> dict[str, Any]:
    created = row.get("deployment").created_at if row.get("deployment") else row["base"].created_at
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
        served = selectors.served_resolve(user=request.user, model=body.get("model"))
        started = time.perf_counter()
        try:
            engine, result = self._send(served, body)
        except (EngineError, HubError) as exc:
            self._record(served, getattr(exc, "engine", "-"), {}, started, error=True)
            raise
        if isinstance(result, dict):
            result["model"] = served.requested
            self._record(served, engine.name, result.get("usage") or {}, started, error=False)
            return Response(result)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = StreamingHttpResponse(
            self._sse(served, engine.name, result, started, wants_usage), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass tokens through as they come
        return response

    def _send(self, served, body):
        """Send to the engine without asking first what it holds; if it does not hold the
        adapter (evicted, or never loaded) or cannot be reached, check, load, and send once more."""
        for attempt in (1, 2):
            engine = services.served_engine(served=served, verify=attempt == 2)
            name = served.deployment.engine_model if served.deployment else served.base.name
            try:
                return engine, engine.openai(self.kind, {**body, "model": name})
            except EngineError as exc:
                exc.engine = engine.name
                if attempt == 1 and (exc.status == 503 or (exc.status == 404 and served.deployment is not None)):
                    continue
                if exc.status == 503:
                    raise EngineDown(exc.message)
                raise
        raise AssertionError("unreachable")

    def _sse(self, served, engine: str, chunks: Iterator[dict], started: float, wants_usage: bool) -> Iterator[bytes]:
        usage: dict[str, Any] = {}
        error = False
        try:
            for chunk in chunks:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                    if not chunk.get("choices") and not wants_usage:
                        continue
                    if not wants_usage:
                        chunk = {k: v for k, v in chunk.items() if k != "usage"}
                chunk["model"] = served.requested
                yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()
        except (EngineError, HubError) as exc:
            error = True
            status = getattr(exc, "status", None) or getattr(exc, "status_code", 500)
            payload = _openai_error(status, exc.message, exc.code)
            yield f"data: {json.dumps(payload)}\n\n".encode()
        except Exception:
            error = True
            log.exception("stream for %s failed", served.canonical)
            payload = _openai_error(500, "the engine failed while streaming", "engine_error")
            yield f"data: {json.dumps(payload)}\n\n".encode()
        finally:
            self._record(served, engine, usage, started, error=error)
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


class CompletionGateway(_CompletionGateway):
    kind = "completions"


class ChatCompletionGateway(_CompletionGateway):
    kind = "chat"
