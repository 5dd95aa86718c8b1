"""Hugging Face tooling against the hub: the real huggingface_hub client (and peft, in a
subprocess with HF_ENDPOINT) talking HTTP to a live server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hub.hf import files as hf_files
from tests.factories import client_for
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db(transaction=True)

REPO = "alice/support-bot"


@pytest.fixture
def support_bot(alice_client, tiny_base, lora_dir, lora_dir_2) -> dict[int, dict]:
    """``alice/support-bot``: v1 from lora_dir (alias ``prod``), v2 from lora_dir_2 (latest)."""
    response = alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "support-bot"}, format="json")
    assert response.status_code == 201, response.json()
    versions = {}
    for number, folder in ((1, lora_dir), (2, lora_dir_2)):
        response = upload(alice_client, REPO, folder_files(folder), metadata={"license": "mit"})
        assert response.status_code == 201, response.json()
        versions[number] = response.json()
    response = alice_client.put(f"/api/v1/adapters/{REPO}/aliases/prod/", {"version": "1"}, format="json")
    assert response.status_code == 200, response.json()
    return versions


def _sha40(version: dict) -> str:
    return version["content_hash"][:40]


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- downloads -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "revision, number",
    [("v1", 1), ("1", 1), ("prod", 1), ("latest", 2), ("main", 2), ("hash", 1), ("commit", 1)],
)
def test_snapshot_download_by_number_alias_or_hash(hub, support_bot, lora_dir, lora_dir_2, revision, number):
    from huggingface_hub import snapshot_download

    if revision == "hash":
        revision = support_bot[number]["content_hash"]
    elif revision == "commit":
        revision = _sha40(support_bot[number])
    folder = snapshot_download(REPO, revision=revision, cache_dir=hub.cache, endpoint=hub.url, token=False)
    assert _read_folder(Path(folder)) == folder_files({1: lora_dir, 2: lora_dir_2}[number])
    # The snapshot is named after the version's commit: the same folder whatever the revision.
    assert Path(folder).name == _sha40(support_bot[number])


def test_a_version_uploaded_again_shares_its_commit(hub, support_bot, alice_client, lora_dir):
    """v3 has v1's files: same content hash, so same commit, and both still download."""
    from huggingface_hub import snapshot_download

    response = upload(alice_client, REPO, folder_files(lora_dir))
    assert response.status_code == 201
    assert response.json()["content_hash"] == support_bot[1]["content_hash"]
    for revision in ("v3", "v1"):
        folder = snapshot_download(REPO, revision=revision, cache_dir=hub.cache, endpoint=hub.url, token=False)
        assert Path(folder).name == _sha40(support_bot[1])
        assert _read_folder(Path(folder)) == folder_files(lora_dir)


def test_hf_hub_download_one_file_into_the_cache(hub, support_bot, lora_dir_2):
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(
        REPO, "adapter_model.safetensors", revision="main", cache_dir=hub.cache, endpoint=hub.url, token=False
    )
    content = (lora_dir_2 / "adapter_model.safetensors").read_bytes()
    assert Path(path).read_bytes() == content
    storage = hub.cache / "models--alice--support-bot"
    # Cache blobs are named by ETag: the file's sha256.
    assert (storage / "blobs" / hashlib.sha256(content).hexdigest()).is_file()
    assert (storage / "refs" / "main").read_text() == _sha40(support_bot[2])
    # HEAD at `main` is redirected to the commit, and the GET goes straight there.
    commit_url = hub.file_url(_sha40(support_bot[2]), "adapter_model.safetensors")
    assert [(s[0], s[1], s[2]) for s in hub.statuses] == [
        ("HEAD", hub.file_url("main", "adapter_model.safetensors"), 302),
        ("HEAD", commit_url, 200),
        ("GET", commit_url, 200),
    ]


def test_local_dir_file_with_the_same_sha256_is_not_downloaded_again(hub, support_bot, lora_dir, tmp_path):
    """The ETag is the sha256, so the client recognises a copy it did not download itself."""
    from huggingface_hub import hf_hub_download

    target = tmp_path / "out"
    target.mkdir()
    content = (lora_dir / "adapter_model.safetensors").read_bytes()
    (target / "adapter_model.safetensors").write_bytes(content)
    path = hf_hub_download(
        REPO, "adapter_model.safetensors", revision="v1", local_dir=target, endpoint=hub.url, token=False
    )
    assert Path(path).read_bytes() == content
    assert "GET" not in [c[0] for c in hub.calls]


def test_head_describes_the_file_without_xet(hub, support_bot, lora_dir):
    content = (lora_dir / "adapter_model.safetensors").read_bytes()
    sha256, commit = hashlib.sha256(content).hexdigest(), _sha40(support_bot[1])
    moved = requests.head(hub.file_url("v1", "adapter_model.safetensors"), timeout=30)
    assert moved.status_code == 302
    assert moved.headers["Location"] == f"/{REPO}/resolve/{commit}/adapter_model.safetensors"
    response = requests.head(hub.file_url("v1", "adapter_model.safetensors"), allow_redirects=True, timeout=30)
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["Content-Length"]) == len(content)
    for answer in (moved, response):
        assert int(answer.headers["X-Linked-Size"]) == len(content)
        assert answer.headers["ETag"] == answer.headers["X-Linked-Etag"] == f'"{sha256}"'
        assert answer.headers["X-Repo-Commit"] == commit
        # With Xet headers (or an xet-auth link) the client would fetch from a Xet CAS, not from us.
        assert not [h for h in answer.headers if h.lower().startswith("x-xet")]
        assert "Link" not in answer.headers
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    "range_header, status, part",
    [
        ("bytes=10-99", 206, slice(10, 100)),
        ("bytes=100-", 206, slice(100, None)),
        ("bytes=-50", 206, slice(-50, None)),
        ("bytes=0-10000000", 206, slice(0, None)),
        ("bytes=0-0,5-6", 200, slice(0, None)),  # several ranges: ignored, the whole file
        ("items=0-5", 200, slice(0, None)),
    ],
)
def test_range_requests(hub, support_bot, lora_dir, range_header, status, part):
    content = (lora_dir / "adapter_model.safetensors").read_bytes()
    # requests asks for gzip: the hub must still send the bytes as they are.
    response = requests.get(
        hub.file_url("v1", "adapter_model.safetensors"), headers={"Range": range_header}, timeout=30
    )
    assert response.status_code == status
    assert response.content == content[part]
    assert int(response.headers["Content-Length"]) == len(content[part])
    assert "Content-Encoding" not in response.headers
    if status == 206:
        first = range(len(content))[part][0]
        last = first + len(content[part]) - 1
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(content)}"


def test_the_protocol_only_reads(hub, support_bot):
    response = requests.post(hub.file_url("v1", "adapter_config.json"), timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_unsatisfiable_range_is_416(hub, support_bot, lora_dir):
    size = (lora_dir / "adapter_model.safetensors").stat().st_size
    url = hub.file_url("v1", "adapter_model.safetensors")
    response = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    # If-Range with another validator: the range is ignored, the whole file comes back.
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=30)
    assert stale.status_code == 200
    assert len(stale.content) == size


def test_client_resumes_an_interrupted_download_with_a_range(hub, support_bot, lora_dir, tmp_path):
    """huggingface_hub resumes after a dropped connection by calling http_get with resume_size."""
    from huggingface_hub.file_download import http_get

    content = (lora_dir / "adapter_model.safetensors").read_bytes()
    cut = len(content) // 3
    partial = tmp_path / "partial"
    partial.write_bytes(content[:cut])
    url = hub.file_url(_sha40(support_bot[1]), "adapter_model.safetensors")
    with partial.open("ab") as handle:
        http_get(url, handle, resume_size=cut, expected_size=len(content))
    assert partial.read_bytes() == content
    assert [(c[0], c[2].get("range")) for c in hub.calls] == [("GET", f"bytes={cut}-")]
    assert [s[2] for s in hub.statuses] == [206]


def test_deprecated_version_warns_the_client(hub, support_bot, alice_client):
    response = alice_client.post(f"/api/v1/adapters/{REPO}/versions/1/deprecate/", {"reason": "use v2"})
    assert response.status_code == 200
    for url in (hub.file_url("v1", "adapter_config.json"), f"{hub.url}/api/models/{REPO}/revision/v1"):
        assert "alice/support-bot@v1 is deprecated: use v2" in requests.head(url, timeout=30).headers["X-HF-Warning"]
    assert "X-HF-Warning" not in requests.head(hub.file_url("v2", "adapter_config.json"), timeout=30).headers


# --- the API -----------------------------------------------------------------------------------
def test_model_info_has_sha_and_siblings(hub, support_bot, lora_dir, lora_dir_2):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=False)
    info = api.model_info(REPO, revision="v1")
    assert info.id == REPO
    assert info.sha == _sha40(support_bot[1])
    expected = folder_files(lora_dir)
    assert {s.rfilename: s.size for s in info.siblings} == {k: len(v) for k, v in expected.items()}
    assert {s.rfilename: s.lfs.sha256 for s in info.siblings} == {
        k: hashlib.sha256(v).hexdigest() for k, v in expected.items()
    }
    assert "base_model:adapter:test-org/tiny-llama" in info.tags
    assert info.card_data.license == "mit"
    assert api.model_info(REPO).sha == _sha40(support_bot[2])
    assert {s.rfilename for s in api.model_info(REPO).siblings} == set(folder_files(lora_dir_2))


def test_list_repo_tree_follows_link_pages(hub, support_bot, lora_dir, settings):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    settings.PEFTHUB_HF_TREE_PAGE_SIZE = 1
    api = HfApi(endpoint=hub.url, token=False)
    entries = list(api.list_repo_tree(REPO, revision="prod", recursive=True))
    expected = folder_files(lora_dir)
    assert all(isinstance(e, RepoFile) for e in entries)
    assert [e.path for e in entries] == sorted(expected)
    assert {e.path: e.lfs.sha256 for e in entries} == {k: hashlib.sha256(v).hexdigest() for k, v in expected.items()}
    pages = [c[1] for c in hub.calls if "/tree/" in c[1]]
    assert len(pages) == len(expected) >= 2
    # Later pages name the commit, so a moving alias cannot mix two versions in one listing.
    assert all(f"/tree/{_sha40(support_bot[1])}?" in url and "cursor=" in url for url in pages[1:])

    # The client's own checksum verification agrees with the listing.
    result = api.verify_repo_checksums(REPO, revision="v1", local_dir=lora_dir)
    assert (result.mismatches, result.missing_paths, result.extra_paths) == ([], [], [])
    assert result.checked_count == len(expected)


def test_tree_lists_folders_one_level_or_recursively():
    files = [("a.json", "1" * 64, 3), ("sub/b.bin", "2" * 64, 4), ("sub/deep/c.bin", "3" * 64, 5)]
    top = hf_files.tree_entries(files, "", recursive=False)
    assert [(e["type"], e["path"]) for e in top] == [("file", "a.json"), ("directory", "sub")]
    everything = hf_files.tree_entries(files, "", recursive=True)
    assert [e["path"] for e in everything] == ["a.json", "sub", "sub/b.bin", "sub/deep", "sub/deep/c.bin"]
    assert [e["path"] for e in hf_files.tree_entries(files, "sub", recursive=False)] == ["sub/b.bin", "sub/deep"]
    assert hf_files.tree_entries(files, "a.json", recursive=False) is None
    pointer = everything[0]
    assert pointer["lfs"] == {"oid": "1" * 64, "size": 3, "pointerSize": len(hf_files.lfs_pointer("1" * 64, 3))}


# --- errors and access -------------------------------------------------------------------------
def test_missing_repo_revision_and_file_raise_the_client_errors(hub, support_bot):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    common = {"cache_dir": hub.cache, "endpoint": hub.url, "token": False}
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/nope")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("alice/nope", **common)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nope", "adapter_config.json", **common)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="v9", **common)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "adapter_config.json", revision="no-such-alias", **common)
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(REPO, revision="v9"))
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download(REPO, "nope.json", revision="v1", **common)
    assert isinstance(missing.value, EntryNotFoundError)
    assert "has no file `nope.json`" in str(missing.value)
    # The client remembers that the commit has no such file.
    assert (hub.cache / "models--alice--support-bot" / ".no_exist" / _sha40(support_bot[1]) / "nope.json").exists()


def test_private_adapter_needs_a_members_token(hub, support_bot, alice, bob, lora_dir_2):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    response = client_for(alice).patch(f"/api/v1/adapters/{REPO}/", {"private": True}, format="json")
    assert response.status_code == 200, response.json()
    common = {"cache_dir": hub.cache, "endpoint": hub.url}
    for token in (False, bob.token):
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download(REPO, token=token, **common)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(REPO, "adapter_config.json", token=token, **common)
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub.url, token=token).model_info(REPO)

    folder = snapshot_download(REPO, token=alice.token, **common)
    assert _read_folder(Path(folder)) == folder_files(lora_dir_2)
    assert HfApi(endpoint=hub.url, token=alice.token).model_info(REPO).private is True

    # A token the hub does not know (say, a huggingface.co one) is a 401, not "not found".
    with pytest.raises(HfHubHTTPError) as bad:
        hf_hub_download(REPO, "README.md", token="hf_not_a_hub_token", cache_dir=hub.cache / "empty", endpoint=hub.url)
    assert not isinstance(bad.value, RepositoryNotFoundError)
    assert bad.value.response.status_code == 401


def test_whoami_with_a_hub_token(hub, alice, bob):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from hub import services

    services.membership_set(namespace=bob.namespaces.get(name="bob"), user=alice, role="reader")
    me = HfApi(endpoint=hub.url).whoami(token=alice.token)
    assert me["name"] == "alice"
    assert me["orgs"] == [{"type": "org", "name": "bob", "fullname": "bob", "roleInOrg": "read"}]
    assert me["auth"]["accessToken"]["displayName"] == "test"
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(endpoint=hub.url).whoami(token="ph_revoked")
    assert bad.value.response.status_code == 401


# --- peft, as a user runs it -----------------------------------------------------------------
PEFT_SCRIPT = r"""
import json, os, sys
from urllib.parse import urlsplit

import huggingface_hub
from huggingface_hub.utils._http import default_client_factory

allowed = urlsplit(os.environ["HF_ENDPOINT"]).netloc
seen = []

def check(request):
    assert f"{request.url.host}:{request.url.port}" == allowed, f"request left the hub: {request.url}"
    seen.append(f"{request.method} {request.url.path}")

def factory():
    client = default_client_factory()
    client.event_hooks = {**client.event_hooks, "request": [*client.event_hooks["request"], check]}
    return client

huggingface_hub.set_client_factory(factory)

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

base_dir, repo_id, local_dir = sys.argv[1:4]
ids = torch.tensor([[1, 5, 9, 3, 7, 2]])

def logits(model):
    model.eval()
    with torch.no_grad():
        return model(ids).logits

from_hub = logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), repo_id))
from_folder = logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), local_dir))
plain = logits(AutoModelForCausalLM.from_pretrained(base_dir))
print(json.dumps({
    "equal": torch.equal(from_hub, from_folder),
    "adapted": not torch.allclose(from_hub, plain),
    "requests": seen,
}))
"""


def test_peft_from_pretrained_through_hf_endpoint(live_server, support_bot, alice, tiny_base_dir, lora_dir_2, tmp_path):
    """``HF_ENDPOINT=<hub> HF_TOKEN=<hub token>`` and peft loads a private adapter by its name."""
    response = client_for(alice).patch(f"/api/v1/adapters/{REPO}/", {"private": True}, format="json")
    assert response.status_code == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=live_server.url,
        HF_TOKEN=alice.token,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", PEFT_SCRIPT, str(tiny_base_dir), REPO, str(lora_dir_2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["equal"] and result["adapted"], result
    commit = _sha40(support_bot[2])
    assert f"HEAD /{REPO}/resolve/main/adapter_model.safetensors" in result["requests"]
    assert f"GET /{REPO}/resolve/{commit}/adapter_model.safetensors" in result["requests"]
    snapshot = tmp_path / "hf-home" / "hub" / "models--alice--support-bot" / "snapshots" / commit
    assert (snapshot / "adapter_model.safetensors").read_bytes() == (
        lora_dir_2 / "adapter_model.safetensors"
    ).read_bytes()


# --- download counts ---------------------------------------------------------------------------
def test_downloads_count_config_fetches_through_resolve(hub, support_bot, alice_client, lora_dir):
    """HF's convention: a config fetch is one download; weights, HEAD and redirects are not."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    from hub.models import AdapterVersion

    api = HfApi(endpoint=hub.url, token=False)
    assert api.model_info(REPO).downloads == 0
    hf_hub_download(
        REPO, "adapter_model.safetensors", revision="v1", cache_dir=hub.cache, endpoint=hub.url, token=False
    )
    assert requests.head(hub.file_url("v1", "adapter_config.json"), allow_redirects=True, timeout=30).ok
    assert api.model_info(REPO).downloads == 0

    hf_hub_download(REPO, "adapter_config.json", revision="v1", cache_dir=hub.cache, endpoint=hub.url, token=False)
    snapshot_download(REPO, cache_dir=hub.cache / "again", endpoint=hub.url, token=False)  # v2: its config once
    assert api.model_info(REPO).downloads == 2
    counts = dict(AdapterVersion.objects.filter(adapter__name="support-bot").values_list("number", "downloads"))
    assert counts == {1: 1, 2: 1}

    # list_models(sort="downloads"): the most downloaded first.
    response = alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "quiet-bot"}, format="json")
    assert response.status_code == 201
    assert upload(alice_client, "alice/quiet-bot", folder_files(lora_dir)).status_code == 201
    assert [m.id for m in api.list_models(sort="downloads")] == [REPO, "alice/quiet-bot"]
    assert [(m.id, m.downloads) for m in api.list_models(sort="downloads", limit=1)] == [(REPO, 2)]
