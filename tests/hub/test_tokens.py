"""Token scopes, expiry and lineage (issue 16, finding 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from hub import services
from hub.exceptions import PermissionDenied
from hub.models import ApiToken
from hub.permissions import ServeScope
from tests.factories import client_for

pytestmark = pytest.mark.django_db


def _client(secret: str):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _token(user, *scopes: str, **kwargs) -> str:
    _, secret = services.api_token_create(user=user, name="t", scopes=scopes or None, **kwargs)
    return secret


def test_revoking_a_token_revokes_every_token_it_minted(alice):
    parent = _client(_token(alice, "read", "write", "tokens"))
    child = parent.post("/api/v1/tokens/", {"name": "child", "scopes": ["read", "tokens"]}, format="json")
    assert child.status_code == 201, child.json()
    assert child.json()["created_by_token"] is not None
    grandchild = _client(child.json()["token"]).post(
        "/api/v1/tokens/", {"name": "grandchild", "scopes": ["read"]}, format="json"
    )
    assert grandchild.status_code == 201, grandchild.json()
    heirs = [_client(child.json()["token"]), _client(grandchild.json()["token"])]
    assert all(c.get("/api/v1/whoami/").status_code == 200 for c in heirs)

    minting = ApiToken.objects.get(pk=child.json()["created_by_token"])
    assert parent.delete(f"/api/v1/tokens/{minting.pk}/").status_code == 204
    assert [c.get("/api/v1/whoami/").status_code for c in heirs] == [401, 401]


def test_a_token_without_the_tokens_scope_cannot_mint(alice, alice_client):
    response = alice_client.post("/api/v1/tokens/", {"name": "sneaky"}, format="json")
    assert response.status_code == 403
    assert "`tokens`" in response.json()["error"]["message"]
    own = ApiToken.objects.filter(user=alice).first()
    assert alice_client.delete(f"/api/v1/tokens/{own.pk}/").status_code == 403
    assert alice_client.get("/api/v1/tokens/").status_code == 200  # listing is a read
    assert ApiToken.objects.filter(user=alice).count() == 1


def test_a_token_mints_only_its_own_scopes_and_lifetime(alice):
    soon = timezone.now() + timedelta(hours=1)
    parent = _client(_token(alice, "read", "tokens", expires_at=soon))
    wider = parent.post("/api/v1/tokens/", {"scopes": ["read", "write"]}, format="json")
    assert wider.status_code == 403
    assert "write" in wider.json()["error"]["message"]
    later = (soon + timedelta(days=1)).isoformat()
    response = parent.post("/api/v1/tokens/", {"scopes": ["read"], "expires_at": later}, format="json")
    assert response.status_code == 403
    # No expiry asked: the child gets its parent's.
    response = parent.post("/api/v1/tokens/", {"scopes": ["read"]}, format="json")
    assert response.status_code == 201
    assert ApiToken.objects.get(pk=response.json()["id"]).expires_at == soon


def test_a_session_manages_tokens_with_any_scopes(alice):
    browser = client_for()
    browser.force_login(alice)
    response = browser.post("/api/v1/tokens/", {"name": "ops", "scopes": ["tokens", "read"]}, format="json")
    assert response.status_code == 201
    assert response.json()["scopes"] == ["read", "tokens"]
    assert response.json()["expires_at"] is None


def test_scopes_limit_what_a_token_does(alice, tiny_base):
    reader = _client(_token(alice, "read"))
    assert reader.get("/api/v1/adapters/").status_code == 200
    response = reader.post("/api/v1/adapters/", {"namespace": "alice", "name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    writer = _client(_token(alice, "write"))
    assert writer.post("/api/v1/adapters/", {"namespace": "alice", "name": "x"}, format="json").status_code == 201
    assert writer.get("/api/v1/adapters/").status_code == 403
    assert writer.get("/api/v1/whoami/").status_code == 403
    # The HF protocol only reads.
    assert writer.get("/api/whoami-v2").status_code == 401
    assert reader.get("/api/whoami-v2").status_code == 200


def test_expired_tokens_are_refused(alice):
    token, secret = services.api_token_create(user=alice, name="brief", expires_at=timezone.now() + timedelta(hours=1))
    client = _client(secret)
    assert client.get("/api/v1/whoami/").status_code == 200
    an_hour_ago = timezone.now() - timedelta(hours=1)  # as if created then
    ApiToken.objects.filter(pk=token.pk).update(
        created_at=an_hour_ago, expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get("/api/v1/whoami/")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_serve_scope_permission_for_the_gateway(alice):
    class Probe(APIView):
        permission_classes = [ServeScope]

        def get(self, request):
            from rest_framework.response import Response

            return Response({"ok": True})

    factory = APIRequestFactory()
    for scopes, status in ((("serve",), 200), (("read", "write"), 403)):
        request = factory.get("/probe", HTTP_AUTHORIZATION=f"Bearer {_token(alice, *scopes)}")
        assert Probe.as_view()(request).status_code == status, scopes


def test_default_and_cli_scopes(alice, capsys):
    token, _ = services.api_token_create(user=alice, name="web")
    assert token.scopes == ["read", "serve", "write"]
    call_command("hub_token_create", "carol", "--scopes", "read,serve", "--expires-in", "2d")
    carol = ApiToken.objects.get(user__username="carol")
    assert carol.scopes == ["read", "serve"]
    assert timedelta(days=2) - timedelta(minutes=1) < carol.expires_at - timezone.now() <= timedelta(days=2)
    call_command("hub_token_create", "dave")
    assert ApiToken.objects.get(user__username="dave").scopes == sorted(ApiToken.Scope.values)
    with pytest.raises(PermissionDenied):
        services.api_token_create(user=alice, name="x", created_by_token=token)
