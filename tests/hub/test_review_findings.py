"""Issue 16's hub findings: what one user learns about another's private adapters, who
lists which namespaces, and who may publish an adapter."""

from __future__ import annotations

import pytest

from hub import services
from hub.models import AdapterVersion, Namespace
from tests.factories import client_for
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret_proj(alice, alice_client, tiny_base, lora_dir):
    """alice/secret-proj, private, v1 with alias `prodsecret`."""
    alice_client.post(
        "/api/v1/adapters/", {"namespace": "alice", "name": "secret-proj", "private": True}, format="json"
    )
    assert upload(alice_client, "alice/secret-proj", folder_files(lora_dir), aliases=["prodsecret"]).status_code == 201
    return "alice/secret-proj"


@pytest.fixture
def open_proj(alice, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "open-proj"}, format="json")
    assert upload(alice_client, "alice/open-proj", folder_files(lora_dir)).status_code == 201
    return "alice/open-proj"


@pytest.fixture
def bob_adapter(bob, bob_client, tiny_base):
    bob_client.post("/api/v1/adapters/", {"namespace": "bob", "name": "mine"}, format="json")
    return "bob/mine"


def _parent_answer(client, adapter: str, files: dict, parent: str) -> tuple[int, str]:
    response = upload(client, adapter, files, metadata={"parent": parent})
    body = response.json()
    message = body.get("error", {}).get("message", "") if response.status_code >= 400 else ""
    # The same shape whatever the ref: only the ref the caller sent differs.
    return response.status_code, message.replace(parent, "<ref>")


# --- finding 1: metadata.parent -------------------------------------------------------------------
def test_hidden_parent_gets_the_same_answer_as_a_missing_one(
    secret_proj, open_proj, bob_adapter, bob_client, lora_dir_2
):
    files = folder_files(lora_dir_2)
    answers = {
        ref: _parent_answer(bob_client, bob_adapter, files, ref)
        for ref in (
            f"{secret_proj}@prodsecret",  # hidden adapter, existing alias
            f"{secret_proj}@v1",  # hidden adapter, existing version
            f"{secret_proj}",  # hidden adapter, latest
            f"{secret_proj}@nosuchalias",  # hidden adapter, missing alias
            "alice/no-such-adapter@prodsecret",  # missing adapter
            f"{open_proj}@nosuchalias",  # visible adapter, missing alias
            f"{open_proj}@v9",  # visible adapter, missing version
        )
    }
    assert len(set(answers.values())) == 1, answers
    status, message = next(iter(answers.values()))
    assert status == 422
    assert "not found" in message and "<ref>" in message
    # Nothing was stored that records which version the private alias points to.
    assert not AdapterVersion.objects.filter(adapter__namespace__name="bob").exists()


def test_visible_parents_still_resolve(secret_proj, open_proj, alice_client, bob_adapter, bob_client, lora_dir_2):
    response = upload(bob_client, bob_adapter, folder_files(lora_dir_2), metadata={"parent": f"{open_proj}@v1"})
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["lineage"]["parent"] == f"{open_proj}@v1"
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "child"}, format="json")
    response = upload(
        alice_client, "alice/child", folder_files(lora_dir_2), metadata={"parent": f"{secret_proj}@prodsecret"}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["lineage"]["parent"] == f"{secret_proj}@v1"


# --- /api/v1/namespaces/ ----------------------------------------------------------------------------
def _namespaces(client) -> set[str]:
    response = client.get("/api/v1/namespaces/")
    assert response.status_code == 200
    return {row["name"] for row in response.json()}


def test_namespace_list_shows_only_namespaces_with_public_adapters_and_ones_own(
    secret_proj, alice, bob, anon_client, bob_client, alice_client
):
    services.namespace_create(name="quiet-org", owner=alice)
    # alice has only a private adapter, bob and quiet-org none: nobody else learns they exist.
    assert _namespaces(anon_client) == set()
    assert _namespaces(bob_client) == {"bob"}
    assert _namespaces(alice_client) == {"alice", "quiet-org"}
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "now-public"}, format="json")
    assert _namespaces(anon_client) == {"alice"}
    assert _namespaces(bob_client) == {"alice", "bob"}


# --- who may make an adapter public -----------------------------------------------------------------
def test_only_owners_change_visibility(secret_proj, alice, alice_client, bob, bob_client):
    services.membership_set(namespace=Namespace.objects.get(name="alice"), user=bob, role="writer")
    response = bob_client.patch(f"/api/v1/adapters/{secret_proj}/", {"private": False}, format="json")
    assert response.status_code == 403
    assert "owner" in response.json()["error"]["message"]
    assert client_for().get(f"/api/v1/adapters/{secret_proj}/").status_code == 404
    # A writer still edits the description (and may send `private` unchanged).
    response = bob_client.patch(
        f"/api/v1/adapters/{secret_proj}/", {"description": "by bob", "private": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["description"] == "by bob"
    response = alice_client.patch(f"/api/v1/adapters/{secret_proj}/", {"private": False}, format="json")
    assert response.status_code == 200
    assert client_for().get(f"/api/v1/adapters/{secret_proj}/").status_code == 200
