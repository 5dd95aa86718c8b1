"""One exception per kind of API error, each carrying the server's message.

The hub answers every error with ``{"error": {"code", "message", "file"?, "field"?}}``;
:func:`error_for_response` turns such an answer into the matching exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ConnectionFailed",
    "EvaluationTimeout",
    "InvalidRequestError",
    "NotFoundError",
    "PefthubError",
    "PermissionDeniedError",
    "ServerError",
    "UploadRejectedError",
    "error_for_response",
]


class PefthubError(Exception):
    """Any error the hub answered with (or that kept us from reaching it).

    ``status`` is the HTTP status (None when no answer came), ``code`` the hub's error
    code (``upload_rejected``, ``not_found``, …), ``message`` what to fix, and ``file``
    / ``field`` the uploaded file or request field it is about, when the hub says.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        file: str | None = None,
        field: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.file = file
        self.field = field
        self.body = body

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(PefthubError):
    """400: the request was malformed (a bad alias name, metadata that is not an object, …)."""


class AuthenticationError(PefthubError):
    """401: no token, or an invalid or revoked one."""


class PermissionDeniedError(PefthubError):
    """403: the token's user may not do this in that namespace."""


class NotFoundError(PefthubError):
    """404: no such namespace, adapter, version, alias or file (or it is private)."""


class ConflictError(PefthubError):
    """409: it exists already (an adapter of that name, …)."""


class UploadRejectedError(PefthubError):
    """422 or 413: the upload failed validation; nothing of it was stored."""


class ServerError(PefthubError):
    """5xx: the hub failed; retrying later may help."""


class ConnectionFailed(PefthubError):
    """The hub could not be reached, or the connection dropped, on every try."""


class EvaluationTimeout(PefthubError):
    """No verdict came within the time given; ``evaluation`` is the last status seen
    (a :class:`pefthub.EvaluationStatus`)."""

    def __init__(self, message: str, *, evaluation: Any = None) -> None:
        super().__init__(message)
        self.evaluation = evaluation


_BY_STATUS: dict[int, type[PefthubError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: UploadRejectedError,
    422: UploadRejectedError,
}


def error_class(status: int) -> type[PefthubError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, PefthubError)


def error_for_response(status: int, body: Any, *, url: str, text: str = "") -> PefthubError:
    """The exception for an error answer: the hub's JSON error body, or a plain one."""
    cls = error_class(status)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return cls(
            error["message"],
            status=status,
            code=error.get("code"),
            file=error.get("file"),
            field=error.get("field"),
            body=body,
        )
    # Not the hub's error shape: a proxy, a wrong endpoint, or a crash page.
    snippet = " ".join(text.split())[:200]
    hint = " (is the endpoint a pefthub server?)" if status == 404 else ""
    message = f"HTTP {status} from {url}{hint}" + (f": {snippet}" if snippet else "")
    return cls(message, status=status, body=body)
