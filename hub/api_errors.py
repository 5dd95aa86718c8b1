"""The single DRF exception handler: every error leaves as ``{"error": {...}}``."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import HubError

log = logging.getLogger(__name__)

# A lost or refused database connection (a restart, a failover) is the hub's outage, not
# the request's fault: 503 tells clients to retry, and Django drops the broken connection
# at the end of the request, so the next one reconnects.
DATABASE_UNAVAILABLE = {
    "code": "database_unavailable",
    "message": "the hub's database is unavailable right now (restarting?); nothing was stored, retry in a few seconds",
}


def _first_message(detail) -> tuple[str, str | None]:
    """Flatten DRF's nested validation detail into one readable line and its field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            message, sub = _first_message(value)
            field = key if key != "non_field_errors" else None
            if sub and field:
                field = f"{field}.{sub}"
            return (f"{field}: {message}" if field else message), field
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail), None


def _header_safe(text: str) -> str:
    """One line of printable ASCII: user input echoed in a message must not break headers."""
    ascii_text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else " " for c in ascii_text)[:500]


def exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):
        log.warning("database unavailable: %s", exc)
        return Response(
            {"error": DATABASE_UNAVAILABLE}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "2"}
        )
    if isinstance(exc, HubError):
        response = Response({"error": exc.as_dict()}, status=exc.status_code, headers=exc.headers)
        if exc.status_code == status.HTTP_404_NOT_FOUND:
            response["X-Error-Code"] = {
                "revision_not_found": "RevisionNotFound",
                "entry_not_found": "EntryNotFound",
            }.get(exc.code, "RepoNotFound")
            response["X-Error-Message"] = _header_safe(exc.message)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message, field = _first_message(exc.detail)
        body = {"code": "invalid", "message": message, "details": exc.detail}
        if field:
            body["field"] = field
    else:
        detail = getattr(exc, "detail", str(exc))
        body = {"code": getattr(detail, "code", "error"), "message": str(detail)}
    response.data = {"error": body}
    return response
