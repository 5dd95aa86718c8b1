"""/metrics: Prometheus text exposition, for staff and for the scraper.

It names private models with their traffic, so it needs one of: a staff user's session,
a staff user's API token, or ``PEFTHUB_METRICS_TOKEN`` as ``Authorization: Bearer`` (what
Prometheus' ``authorization`` scrape setting sends). No credentials: 401; someone else's: 403.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.authentication import user_for_token

from .metrics import REGISTRY


def _refuse(status: int, message: str) -> HttpResponse:
    code = "authentication_required" if status == 401 else "permission_denied"
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="pefthub-metrics"'
    return response


def _allowed(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read the metrics, else the refusal."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() in ("bearer", "token") and secret:
        expected = settings.PEFTHUB_METRICS_TOKEN
        if expected and hmac.compare_digest(secret.encode(), expected.encode()):
            return None
        user, _token = user_for_token(secret)
        if user is None:
            return _refuse(401, "invalid token: send PEFTHUB_METRICS_TOKEN or a staff user's API token")
    else:
        user = request.user
        if not user.is_authenticated:
            return _refuse(
                401, "/metrics needs a staff user's session or token, or the scrape token (PEFTHUB_METRICS_TOKEN)"
            )
    if not user.is_staff:
        return _refuse(403, "/metrics is for staff users and the metrics scraper")
    return None


def metrics(request: HttpRequest) -> HttpResponse:
    refused = _allowed(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
