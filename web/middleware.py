"""A Content-Security-Policy on every response (Django 5.2 has none built in).

The pages load scripts only from this site's static files (no inline ``<script>``:
chart data travels in ``json_script`` blocks, which are data, not code), so scripts are
``'self'`` only. Styles allow ``'unsafe-inline'``: a few templates use ``style=``
attributes and htmx adds its indicator ``<style>``; CSS cannot run code. Images come
from this site only (cards are sanitised so that no image reaches another host).
``PEFTHUB_CSP`` (settings, from the environment) replaces the policy; empty sends none.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

DEFAULT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "PEFTHUB_CSP", None)
        if policy is None:
            policy = DEFAULT_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
