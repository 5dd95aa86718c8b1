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


@pytest.mark.parametrize(
    "range_header, part",
    [("bytes=10-99", slice(10, 100)), ("bytes=100-", slice(100, None)), ("bytes=-50", slice(-50, None))],
)
def test_file_download_serves_one_byte_range(catalog, lora_dir, range_header, part):
    url = "/api/v1/adapters/alice/support-bot/versions/latest/files/adapter_model.safetensors"
    content = folder_files(lora_dir)["adapter_model.safetensors"]
    response = catalog.get(url, HTTP_RANGE=range_header)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == content[part]
    first = range(len(content))[part][0]
    last = first + len(content[part]) - 1
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(content)}"
    assert response["Content-Length"] == str(len(content[part]))
    assert response["Accept-Ranges"] == "bytes"


def test_file_download_refuses_a_range_past_the_end_with_416(catalog, lora_dir):
    url = "/api/v1/adapters/alice/support-bot/versions/latest/files/adapter_model.safetensors"
    size = len(folder_files(lora_dir)["adapter_model.safetensors"])
    response = catalog.get(url, HTTP_RANGE=f"bytes={size}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    # If-Range naming other content: the range no longer applies, the whole file comes back.
    stale = catalog.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"other"')
    assert stale.status_code == 200
    assert len(b"".join(stale.streaming_content)) == size
    etag = stale["ETag"]
    assert catalog.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag).status_code == 206


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


# --- download counts -------------------------------------------------------------------------
def _downloads(client, name="support-bot") -> tuple[int, int]:
    """(the adapter's total, its newest version's) as the API shows them."""
    row = client.get(f"/api/v1/adapters/alice/{name}/").json()
    version = client.get(f"/api/v1/adapters/alice/{name}/versions/latest/").json()
    assert row["latest"]["downloads"] == version["downloads"]
    return row["downloads"], version["downloads"]


def test_a_config_fetch_counts_one_download_and_nothing_else_does(catalog):
    url = "/api/v1/adapters/alice/support-bot/versions/latest"
    before = catalog.get("/api/v1/adapters/alice/support-bot/").json()["updated_at"]
    assert _downloads(catalog) == (0, 0)
    assert b"".join(catalog.get(f"{url}/files/adapter_model.safetensors").streaming_content)  # weights
    assert catalog.head(f"{url}/files/adapter_config.json").status_code == 200  # HEAD
    assert catalog.get(f"{url}/files/adapter_config.json", HTTP_RANGE="bytes=5-").status_code == 206  # a resume
    assert catalog.get(f"{url}/files/nope.json").status_code == 404
    assert _downloads(catalog) == (0, 0)

    assert catalog.get(f"{url}/files/adapter_config.json").status_code == 200
    assert _downloads(catalog) == (1, 1)
    assert catalog.get(f"{url}/archive/").status_code == 200  # the whole version counts too
    assert _downloads(catalog) == (2, 2)
    # A download is not an update: the catalog's "recently updated" order stays put.
    assert catalog.get("/api/v1/adapters/alice/support-bot/").json()["updated_at"] == before


def test_catalog_sorts_by_downloads(catalog, anon_client):
    for name, times in (("legal-bot", 3), ("prompt-bot", 1)):
        for _ in range(times):
            response = anon_client.get(f"/api/v1/adapters/alice/{name}/versions/1/files/adapter_config.json")
            assert response.status_code == 200
    assert _names(anon_client, ordering="-downloads") == ["alice/legal-bot", "alice/prompt-bot", "alice/support-bot"]
    assert _names(anon_client, ordering="downloads")[0] == "alice/support-bot"
    assert _downloads(anon_client, "legal-bot") == (3, 3)
