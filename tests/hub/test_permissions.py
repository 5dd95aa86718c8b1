"""Who may see and change what: tokens, namespaces, private adapters."""

from __future__ import annotations

import pytest

from hub import services
from tests.factories import client_for
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_adapter(alice, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "secret", "private": True}, format="json")
    assert upload(alice_client, "alice/secret", folder_files(lora_dir)).status_code == 201
    return "alice/secret"


@pytest.fixture
def public_adapter(alice, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "open"}, format="json")
    assert upload(alice_client, "alice/open", folder_files(lora_dir)).status_code == 201
    return "alice/open"


def _names(client, **params) -> set[str]:
    response = client.get("/api/v1/adapters/", params)
    assert response.status_code == 200
    return {row["full_name"] for row in response.json()["results"]}


def test_private_adapter_is_invisible_to_anonymous_and_outsiders(
    private_adapter, public_adapter, anon_client, bob_client, alice_client
):
    assert _names(anon_client) == {public_adapter}
    assert _names(bob_client) == {public_adapter}
    assert _names(alice_client) == {public_adapter, private_adapter}
    for client in (anon_client, bob_client):
        for path in ("", "versions/", "versions/1/", "versions/latest/files/adapter_config.json", "aliases/"):
            response = client.get(f"/api/v1/adapters/{private_adapter}/{path}")
            assert response.status_code == 404, path
            assert "not found" in response.json()["error"]["message"]
    assert alice_client.get(f"/api/v1/adapters/{private_adapter}/versions/1/").status_code == 200


def test_member_of_namespace_sees_private_adapter(private_adapter, alice, bob, bob_client):
    from hub.models import Namespace

    services.membership_set(namespace=Namespace.objects.get(name="alice"), user=bob, role="reader")
    assert bob_client.get(f"/api/v1/adapters/{private_adapter}/").status_code == 200
    # a reader may read but not push
    response = bob_client.put(f"/api/v1/adapters/{private_adapter}/aliases/prod/", {"version": "1"}, format="json")
    assert response.status_code == 403


def test_outsider_cannot_write_to_another_namespace(public_adapter, bob_client, lora_dir_2):
    response = upload(bob_client, public_adapter, folder_files(lora_dir_2))
    assert response.status_code == 403
    assert "alice" in response.json()["error"]["message"]
    response = bob_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "x"}, format="json")
    assert response.status_code == 403
    response = bob_client.put(f"/api/v1/adapters/{public_adapter}/aliases/prod/", {"version": "1"}, format="json")
    assert response.status_code == 403
    response = bob_client.post(f"/api/v1/adapters/{public_adapter}/versions/1/deprecate/", {}, format="json")
    assert response.status_code == 403


def test_anonymous_cannot_write(public_adapter, anon_client, lora_dir_2):
    assert upload(anon_client, public_adapter, folder_files(lora_dir_2)).status_code == 403
    response = anon_client.post("/api/v1/namespaces/", {"name": "anon"}, format="json")
    assert response.status_code == 401


def test_bad_and_revoked_tokens_are_refused(alice, public_adapter):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Bearer ph_not-a-real-token")
    response = client.get("/api/v1/adapters/")
    assert response.status_code == 401
    assert "token" in response.json()["error"]["message"]
    client.credentials(HTTP_AUTHORIZATION="Bearer")
    assert client.get("/api/v1/adapters/").status_code == 401

    token, secret = services.api_token_create(user=alice, name="short-lived")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/whoami/").json()["username"] == "alice"
    services.api_token_revoke(token=token)
    assert client.get("/api/v1/whoami/").status_code == 401


def test_token_secret_is_not_stored(alice):
    from hub.models import ApiToken

    assert not ApiToken.objects.filter(key_hash=alice.token).exists()
    assert ApiToken.objects.filter(key_hash=services.token_hash(alice.token)).exists()


def test_token_api_creates_and_revokes(alice):
    # From a session: the fixture's token has no `tokens` scope (see test_tokens.py).
    alice_client = client_for()
    alice_client.force_login(alice)
    created = alice_client.post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    secret = created.json()["token"]
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.get("/api/v1/whoami/").status_code == 200
    assert alice_client.delete(f"/api/v1/tokens/{created.json()['id']}/").status_code == 204
    assert client.get("/api/v1/whoami/").status_code == 401


def test_namespace_names_are_unique_ignoring_case(alice_client, bob_client):
    assert alice_client.post("/api/v1/namespaces/", {"name": "acme"}, format="json").status_code == 201
    response = bob_client.post("/api/v1/namespaces/", {"name": "ACME"}, format="json")
    assert response.status_code == 409
    assert "acme" in response.json()["error"]["message"].lower()


def test_owner_adds_member_who_can_then_push(alice_client, bob, bob_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/namespaces/", {"name": "acme"}, format="json")
    alice_client.post("/api/v1/adapters/", {"namespace": "acme", "name": "bot"}, format="json")
    assert upload(bob_client, "acme/bot", folder_files(lora_dir)).status_code == 403
    response = alice_client.put(
        "/api/v1/namespaces/acme/members/", {"username": "bob", "role": "writer"}, format="json"
    )
    assert response.status_code == 200
    assert upload(bob_client, "acme/bot", folder_files(lora_dir)).status_code == 201
    # bob is a writer, not an owner: he cannot add members
    response = bob_client.put("/api/v1/namespaces/acme/members/", {"username": "bob", "role": "owner"}, format="json")
    assert response.status_code == 403
