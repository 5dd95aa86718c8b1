"""Reading the registry: catalog filters, version references, aliases, downloads."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(alice_client, tiny_base, lora_dir, lora_dir_2, prompt_tuning_dir):
    def make(name, folder, **metadata):
        alice_client.post(
            "/api/v1/adapters/",
            {"namespace": "alice", "name": name, "description": f"{name} adapter"},
            format="json",
        )
        response = upload(alice_client, f"alice/{name}", folder_files(folder), metadata=metadata)
        assert response.status_code == 201, response.json()

    make("support-bot", lora_dir, task_tags=["qa"], license="apache-2.0")
    make("legal-bot", lora_dir_2, task_tags=["legal"], license="mit")
    make("prompt-bot", prompt_tuning_dir, task_tags=["qa"], license="mit")
    return alice_client


def _names(client, **params):
    response = client.get("/api/v1/adapters/", params)
    assert response.status_code == 200, response.json()
    return [row["full_name"] for row in response.json()["results"]]


def test_catalog_filters(catalog, anon_client):
    assert set(_names(anon_client, method="lora")) == {"alice/support-bot", "alice/legal-bot"}
    assert _names(anon_client, method="prompt_tuning") == ["alice/prompt-bot"]
    assert set(_names(anon_client, task="qa")) == {"alice/support-bot", "alice/prompt-bot"}
    assert set(_names(anon_client, license="MIT")) == {"alice/legal-bot", "alice/prompt-bot"}
    assert _names(anon_client, q="legal") == ["alice/legal-bot"]
    assert len(_names(anon_client, base_model="test-org/tiny-llama")) == 3
    assert _names(anon_client, base_model="other") == []
    assert len(_names(anon_client, namespace="alice")) == 3
    assert _names(anon_client, peft_type="PROMPT_TUNING") == ["alice/prompt-bot"]


def test_catalog_ordering(catalog, anon_client):
    by_size = catalog.get("/api/v1/adapters/", {"ordering": "-size"}).json()["results"]
    sizes = [row["latest"]["card"]["size_bytes"] for row in by_size]
    assert sizes == sorted(sizes, reverse=True)
    assert _names(anon_client, ordering="name") == [
        "alice/legal-bot",
        "alice/prompt-bot",
        "alice/support-bot",
    ]


def test_catalog_rejects_unknown_ordering(anon_client, db):
    response = anon_client.get("/api/v1/adapters/", {"ordering": "bogus"})
    assert response.status_code == 400
    assert "ordering" in response.json()["error"]["message"]


def test_catalog_query_count_is_constant(catalog, alice_client, lora_dir):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get("/api/v1/adapters/").status_code == 200
        return len(ctx)

    few = count()
    for i in range(6):
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": f"more-{i}"}, format="json")
        upload(alice_client, f"alice/more-{i}", folder_files(lora_dir), metadata={"task_tags": ["x", f"t{i}"]})
    assert count() == few


@pytest.mark.parametrize("ref", ["1", "v1", "latest", "prod"])
def test_version_by_number_alias_or_hash(catalog, ref):
    catalog.put("/api/v1/adapters/alice/support-bot/aliases/prod/", {"version": "1"}, format="json")
    response = catalog.get(f"/api/v1/adapters/alice/support-bot/versions/{ref}/")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    digest = response.json()["content_hash"]
    for prefix in (digest, digest[:12]):
        assert catalog.get(f"/api/v1/adapters/alice/support-bot/versions/{prefix}/").json()["version"] == 1


def test_missing_version_is_a_clear_404(catalog):
    response = catalog.get("/api/v1/adapters/alice/support-bot/versions/7/")
    assert response.status_code == 404
    assert response["X-Error-Code"] == "RevisionNotFound"
    assert "no version `7`" in response.json()["error"]["message"]


def test_alias_move_and_delete(catalog, lora_dir_2):
    upload(catalog, "alice/support-bot", folder_files(lora_dir_2))
    base = "/api/v1/adapters/alice/support-bot/aliases"
    assert catalog.put(f"{base}/production/", {"version": "1"}, format="json").json()["version"] == 1
    assert catalog.put(f"{base}/production/", {"version": "v2"}, format="json").json()["version"] == 2
    aliases = {a["name"]: a["version"] for a in catalog.get(f"{base}/").json()}
    assert aliases == {"latest": 2, "production": 2}
    assert catalog.delete(f"{base}/production/").status_code == 204
    assert catalog.delete(f"{base}/latest/").status_code == 400
    response = catalog.put(f"{base}/v9/", {"version": "1"}, format="json")
    assert response.status_code == 400
    assert "version number" in response.json()["error"]["message"]


def test_deprecate_keeps_version_downloadable(catalog):
    url = "/api/v1/adapters/alice/support-bot/versions/1"
    response = catalog.post(f"{url}/deprecate/", {"reason": "superseded"}, format="json")
    assert response.status_code == 200
    assert response.json()["deprecated"] is True
    assert response.json()["deprecation_reason"] == "superseded"
    assert catalog.get(f"{url}/files/adapter_config.json").status_code == 200


def test_download_file_and_archives_match_upload(catalog, lora_dir):
    url = "/api/v1/adapters/alice/support-bot/versions/latest"
    expected = folder_files(lora_dir)
    response = catalog.get(f"{url}/files/adapter_model.safetensors")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == expected["adapter_model.safetensors"]
    missing = catalog.get(f"{url}/files/nope.json")
    assert missing.status_code == 404
    assert missing["X-Error-Code"] == "EntryNotFound"

    tar = catalog.get(f"{url}/archive/")
    with tarfile.open(fileobj=io.BytesIO(b"".join(tar.streaming_content))) as archive:
        assert {m.name: archive.extractfile(m).read() for m in archive.getmembers()} == expected
    zipped = catalog.get(f"{url}/archive/?type=zip")
    with zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == expected


def test_base_models_api(tiny_base, anon_client):
    rows = anon_client.get("/api/v1/base-models/").json()
    assert [r["name"] for r in rows] == ["tiny-llama"]
    assert "test-org/tiny-llama" in rows[0]["aliases"]
    assert rows[0]["target_modules"]["q_proj"] == ["linear", 64, 64]
    assert anon_client.get("/api/v1/base-models/test-org/tiny-llama/").json()["name"] == "tiny-llama"


def test_schema_and_docs_are_served(anon_client, db):
    schema = anon_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/adapters/{namespace}/{name}/versions/" in schema.content
    docs = anon_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn." not in docs.content  # served from our own static files


def test_hash_shared_by_a_reupload_resolves_to_the_newest(catalog, lora_dir, lora_dir_2):
    """v1's files pushed again after v2 become v3, with v1's hash: the hash names v3."""
    upload(catalog, "alice/support-bot", folder_files(lora_dir_2))
    third = upload(catalog, "alice/support-bot", folder_files(lora_dir))
    assert third.status_code == 201
    assert third.json()["version"] == 3
    digest = third.json()["content_hash"]
    resolved = catalog.get(f"/api/v1/adapters/alice/support-bot/versions/{digest[:10]}/")
    assert resolved.json()["version"] == 3
