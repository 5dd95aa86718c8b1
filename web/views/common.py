"""What the page views share: hub errors as HTTP pages, safe redirects back."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from hub.exceptions import NotFound, PermissionDenied


def hub_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Hub's NotFound/PermissionDenied become Django's 404/403 pages, with their message."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.message) from exc

    return wrapped


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponse:
    """Back to ``next`` when it is a page of this site, else to ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


def query_without(request: HttpRequest, *keys: str) -> str:
    """The current query string minus ``keys`` (for sort and page links that keep the filters)."""
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()
