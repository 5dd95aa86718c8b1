"""What every view of the HF protocol shares: the caller, and errors shaped as the Hub's.

``huggingface_hub`` picks its exception from ``X-Error-Code`` and adds the JSON body's
``error`` to its message; see :mod:`hub.hf.api` for what each view sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from hub.api_errors import _header_safe
from hub.authentication import user_for_token
from hub.exceptions import HubError

if TYPE_CHECKING:
    from hub.models import AdapterVersion, ApiToken

# The Hub's exact words: the client raises a 401 that carries them as a token problem, not
# as "repository not found" (utils/_http.py, hf_raise_for_status).
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_ERROR_CODES = {"revision_not_found": "RevisionNotFound", "entry_not_found": "EntryNotFound"}


@dataclass
class Caller:
    user: Any
    token: ApiToken | None


class BadToken(Exception):
    pass


def request_caller(request: HttpRequest) -> Caller:
    """The token's user (``Authorization: Bearer <hub token>``), else the session's user."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        return Caller(request.user, None)
    user, token = user_for_token(secret.strip()) if secret.strip() else (None, None)
    if user is None or token is None or not token.allows("read"):  # every HF view reads
        raise BadToken
    return Caller(user, token)


def hf_error(status: int, message: str, *, code: str | None = None, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status, headers=headers)
    response["X-Error-Message"] = _header_safe(message)
    if code:
        response["X-Error-Code"] = code
    return response


def hf_error_from(exc: HubError, headers: dict | None = None) -> JsonResponse:
    code = _ERROR_CODES.get(exc.code, "RepoNotFound") if exc.status_code == 404 else None
    return hf_error(exc.status_code, exc.message, code=code, headers={**exc.headers, **(headers or {})})


def unauthorized(message: str) -> JsonResponse:
    response = hf_error(401, message)
    response["X-Error-Message"] = INVALID_CREDENTIALS
    response["WWW-Authenticate"] = 'Bearer realm="pefthub"'
    return response


def hf_view(view):
    """GET and HEAD only; authenticate; turn hub errors into HF-shaped ones."""

    # Exempt so that other methods get this 405, not the CSRF page: nothing here writes.
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return hf_error(405, f"{request.method} is not supported here", headers={"Allow": "GET, HEAD"})
        try:
            caller = request_caller(request)
        except BadToken:
            return unauthorized(
                "invalid or revoked token, or one that expired or lacks the `read` scope: HF clients send "
                "HF_TOKEN or the token of `hf auth login`; "
                "pass a pefthub token (token=... or HF_TOKEN) or none (token=False)"
            )
        try:
            return view(request, caller, **kwargs)
        except HubError as exc:
            return hf_error_from(exc)

    return wrapper


def deprecation_warning(response: HttpResponseBase, version: AdapterVersion) -> None:
    """The client logs ``X-HF-Warning`` (``topic; message``) once per topic."""
    if version.deprecated_at is not None:
        reason = f": {version.deprecation_reason}" if version.deprecation_reason else ""
        response["X-HF-Warning"] = _header_safe(
            f"pefthub-deprecated-{version.pk}; {version} is deprecated{reason}".replace("\n", " ")
        )
