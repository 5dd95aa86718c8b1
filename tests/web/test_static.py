"""Production static files: collected with hashed names and served by whitenoise, no CDN."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client

from tests.web.conftest import KEPT

pytestmark = pytest.mark.django_db


def test_pages_load_their_vendored_libraries_through_whitenoise(settings, tmp_path, alice, push, evaluate):
    version = push(alice, "alice/support-bot")
    evaluate(version, {"base": 0.0, "base_rag": 0.75, "adapter": 0.75, "adapter_rag": 0.5}, general=KEPT)
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    client = Client()  # a new handler: whitenoise indexes the collected files now
    body = client.get("/adapters/alice/support-bot/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', body)
    assert {a.split("/")[2] for a in assets} >= {"web", "vendor"}
    assert any(re.search(r"/static/vendor/chartjs/chart\.umd\.min\.[0-9a-f]{12}\.js$", a) for a in assets), assets
    assert any(re.search(r"/static/vendor/htmx/htmx\.min\.[0-9a-f]{12}\.js$", a) for a in assets), assets
    for asset in assets:
        response = client.get(asset, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, asset
        assert response["Cache-Control"].startswith("max-age="), asset  # hashed names are cached for good
        assert response.get("Content-Encoding") == "gzip", asset
    assert not re.search(r'(?:src|href)="(?:https?:)?//', body)  # nothing from another host
