"""Server-rendered pages of the hub (the full catalog UI grows in templates/)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from . import selectors


def home(request: HttpRequest) -> HttpResponse:
    adapters = selectors.adapter_list(user=request.user, filters=selectors.CatalogFilters())[:50]
    return render(
        request,
        "hub/home.html",
        {"adapters": adapters, "base_models": selectors.base_model_list()},
    )


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
