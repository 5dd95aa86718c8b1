"""What every write of the HF protocol shares: a token, a method, HF-shaped errors.

Writes need a hub token (``Authorization: Bearer``), never a session: these views are
CSRF-exempt because HF clients do not send CSRF tokens, so a browser's cookie must not be
enough to write.
"""

from __future__ import annotations

import json
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from hub import selectors
from hub.exceptions import HubError
from hub.models import Adapter

from .protocol import BadToken, Caller, hf_error, hf_error_from, request_caller, unauthorized

MODEL_TYPES = (None, "model")


def hf_write(*methods: str, token: bool = True):
    """Allow ``methods``; require a token (unless ``token=False``: a read sent as a POST);
    turn hub errors into HF-shaped ones."""

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs) -> HttpResponse:
            if request.method not in methods:
                allowed = ", ".join(methods)
                return hf_error(405, f"{request.method} is not supported here", headers={"Allow": allowed})
            try:
                caller = request_caller(request)
            except BadToken:
                return unauthorized("invalid or revoked token: pass a pefthub token (token=... or HF_TOKEN)")
            if token and caller.token is None:
                return unauthorized("writing needs a pefthub token: pass token=... or set HF_TOKEN")
            try:
                return view(request, caller, **kwargs)
            except HubError as exc:
                return hf_error_from(exc)

        return wrapper

    return decorate


def json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise HubError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise HubError("the request body must be a JSON object")
    return data


def check_model_type(repo_type: Any) -> None:
    if repo_type not in MODEL_TYPES:
        raise HubError(f"pefthub hosts models (peft adapters), not {repo_type}s: use repo_type='model'")


def writable_adapter(caller: Caller, namespace: str, name: str) -> Adapter:
    """An adapter the caller may write to; one it cannot see is not found."""
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    selectors.require_write(user=caller.user, namespace=adapter.namespace)
    return adapter


def repo_url(request: HttpRequest, adapter: Adapter) -> str:
    return request.build_absolute_uri(f"/{adapter.full_name}")
