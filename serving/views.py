"""/metrics: Prometheus text exposition, for staff and for the scraper.

It names private models with their traffic, so it needs one of: a staff user's session,
a staff user's API token (with the ``read`` scope), or ``PEFTHUB_METRICS_TOKEN`` as
``Authorization: Bearer`` (what Prometheus' ``authorization`` scrape setting sends). No
credentials or a bad token: 401; someone else's: 403. A DRF view, so it authenticates and
refuses as the rest of the API does (``hub.api_errors``); only the scrape token is its own.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from hub import selectors as hub_selectors
from hub.authentication import ApiTokenAuthentication
from hub.permissions import TokenScope

from .gateway import JSONWhateverTheClientAccepts
from .metrics import REGISTRY


class ScrapeToken:
    """``request.auth`` of the metrics scraper: no user, and good for /metrics only."""


SCRAPER = ScrapeToken()


class ScrapeTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <PEFTHUB_METRICS_TOKEN>``; any other header goes on to the
    hub's own token and session authentication."""

    def authenticate(self, request):
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        secret = secret.strip()
        expected = settings.PEFTHUB_METRICS_TOKEN
        known = scheme.lower() in ("bearer", "token") and secret and expected
        if known and hmac.compare_digest(secret.encode(), expected.encode()):
            return AnonymousUser(), SCRAPER
        return None  # not the scrape token: the next authentication class decides

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="pefthub-metrics"'


class StaffOrScraper(BasePermission):
    """The scraper, or a staff user (401 for anonymous callers, 403 for other users)."""

    def has_permission(self, request, view) -> bool:
        if request.auth is SCRAPER:
            return True
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated(
                "/metrics needs a staff user's session or token, or the scrape token (PEFTHUB_METRICS_TOKEN)",
                code="authentication_required",
            )
        hub_selectors.require_staff(user=request.user, action="/metrics")
        return True


class MetricsView(APIView):
    authentication_classes = [
        ScrapeTokenAuthentication,
        ApiTokenAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [TokenScope, StaffOrScraper]
    # Refusals are JSON whatever the scraper accepts; the metrics themselves are text.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONWhateverTheClientAccepts
    schema = None  # Prometheus' format, not part of the hub's OpenAPI schema

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
