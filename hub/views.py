"""Plain Django views of the hub. The pages (catalog, adapter pages, ...) live in ``web/``."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from . import selectors


def healthz(request: HttpRequest) -> JsonResponse:
    selectors.database_ping()
    return JsonResponse({"status": "ok"})
