"""Security headers (HSTS in production, a CSP everywhere) and the sign-in rate limit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from evaluator.models import EvaluationJob
from tests.web.conftest import KEPT
from web.middleware import DEFAULT_POLICY

ROOT = Path(__file__).resolve().parents[2]


def _sign_in(username: str, password: str, address: str = "127.0.0.1"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post("/accounts/login/", {"username": username, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_sign_in_is_limited_per_username_and_per_address(alice, bob, settings):
    settings.PEFTHUB_LOGIN_RATE_PER_USERNAME = "3/m"
    settings.PEFTHUB_LOGIN_RATE_PER_ADDRESS = "5/m"
    for user in (alice, bob):
        user.set_password("s3cret-pass")
        user.save()

    for _ in range(3):
        client, response = _sign_in("alice", "wrong")
        assert response.status_code == 200 and "Please enter a correct username" in response.content.decode()
    # The fourth try for alice is refused before the password is looked at, even the right
    # one, whatever the case of the name and from wherever it comes.
    for name, address in (("alice", "127.0.0.1"), ("ALICE ", "10.0.0.9")):
        client, response = _sign_in(name, "s3cret-pass", address=address)
        assert response.status_code == 429
        assert response["Retry-After"] == "60"
        assert "Too many sign-in attempts" in response.content.decode()
        assert not _signed_in(client)
    # Another name from the first address: its fifth attempt is still allowed ...
    client, response = _sign_in("bob", "s3cret-pass")
    assert response.status_code == 302 and _signed_in(client)
    # ... and the sixth is over that address's limit, whoever it names.
    client, response = _sign_in("carol", "anything")
    assert response.status_code == 429 and not _signed_in(client)
    # Elsewhere, bob signs in as usual.
    client, response = _sign_in("bob", "s3cret-pass", address="10.0.0.7")
    assert response.status_code == 302 and _signed_in(client)


@pytest.mark.django_db
def test_pages_send_a_csp_their_scripts_satisfy(alice, push, evaluate):
    """Scripts may come only from this site, and no page has an inline script or handler."""
    version = push(alice, "alice/support-bot", task_tags=["qa"])
    evaluate(version, {"base": 0.0, "base_rag": 0.75, "adapter": 0.75, "adapter_rag": 0.5}, general=KEPT)
    job = EvaluationJob.objects.get(version=version)
    script_src = re.search(r"script-src ([^;]*)", DEFAULT_POLICY).group(1)
    assert script_src == "'self'"
    client = Client()
    client.force_login(alice)
    pages = [
        "/", "/adapters/", "/adapters/alice/support-bot/", "/leaderboard/", "/evaluations/", "/playground/",
        f"/adapters/alice/support-bot/v/1/evaluations/{job.pk}/samples/", "/settings/tokens/", "/accounts/login/",
        "/api/docs/",
    ]  # fmt: skip
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == DEFAULT_POLICY, url
        body = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"<[a-z]+\s[^>]*\son[a-z]+=", body), url
    # Swagger UI's settings are a script file of this site.
    docs = client.get("/api/docs/").content.decode()
    script = re.search(r'<script src="(/api/docs/\?script=[^"]*)"', docs).group(1).replace("&amp;", "&")
    assert client.get(script).status_code == 200


def test_production_sends_hsts_and_a_csp(tmp_path):
    """``config.settings.production`` as deployed behind a TLS proxy."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "STORAGE_URL": f"file://{tmp_path / 'blobs'}",
        "PEFTHUB_DATA_DIR": str(tmp_path),
    }
    code = (
        "import json, django; django.setup(); from django.test import Client; c = Client(); "
        "r = c.get('/healthz', HTTP_X_FORWARDED_PROTO='https'); p = c.get('/healthz'); "
        "print(json.dumps([r.status_code, dict(r.headers), dict(p.headers)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    status, https, plain = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 200
    assert https["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert https["Content-Security-Policy"] == DEFAULT_POLICY
    assert "Strict-Transport-Security" not in plain  # HSTS means nothing over plain HTTP
