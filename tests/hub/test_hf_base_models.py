"""Base models through the hub's HF protocol: the real huggingface_hub client downloads
exactly the files of a base revision from a live server, by the base's name or its HF id."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from hub.basemodels import MARKER_FILE
from hub.models import BaseModel, BaseModelRevision

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "tiny-llama-3"
HF_ID = "test-org/Tiny-Llama-3"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path) -> Path:
    """The base models' copies live in the test's own folder (one test changes a file)."""
    settings.PEFTHUB_DATA_DIR = str(tmp_path / "data")
    return tmp_path / "data"


def _add(folder: Path, name: str = NAME, *extra: str) -> BaseModel:
    call_command("hub_base_model_add", str(folder), "--name", name, "--alias", HF_ID, "--license", "llama3.1", *extra)
    return BaseModel.objects.get(name=name)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER_FILE
    }


@pytest.fixture
def base(hf_llama_dir) -> BaseModel:
    return _add(hf_llama_dir)


@pytest.fixture
def second_revision(base, hf_llama_dir, tmp_path) -> BaseModel:
    """The same base with another generation config: a new revision, now the current one."""
    folder = tmp_path / "tiny-llama-v2"
    shutil.copytree(hf_llama_dir, folder)
    (folder / "generation_config.json").write_text(json.dumps({"max_new_tokens": 7}))
    return _add(folder)


@pytest.mark.parametrize("repo_id", [NAME, HF_ID, HF_ID.lower()])
def test_snapshot_download_of_a_base_by_name_or_hf_id(hub, base, hf_llama_dir, repo_id):
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo_id, cache_dir=hub.cache, endpoint=hub.url, token=False))
    downloaded = _files(folder)
    assert downloaded == _files(hf_llama_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(downloaded)
    assert folder.name == base.revision[:40]


def test_each_revision_downloads_its_own_files(hub, base, second_revision, hf_llama_dir):
    from huggingface_hub import snapshot_download

    first, second = base.revision, second_revision.revision
    assert first != second
    current = Path(snapshot_download(NAME, revision="main", cache_dir=hub.cache, endpoint=hub.url, token=False))
    assert json.loads((current / "generation_config.json").read_text()) == {"max_new_tokens": 7}
    assert current.name == second[:40]
    # The older revision, by its full hash or its commit id, still has the files it had.
    for revision in (first, first[:40]):
        old = Path(snapshot_download(HF_ID, revision=revision, cache_dir=hub.cache, endpoint=hub.url, token=False))
        assert _files(old) == _files(hf_llama_dir)
        assert old.name == first[:40]


def test_model_info_lists_every_file_with_size_and_sha256(hub, base, hf_llama_dir):
    from huggingface_hub import HfApi

    info = HfApi(endpoint=hub.url, token=False).model_info(HF_ID, revision=base.revision[:12], files_metadata=True)
    assert info.sha == base.revision[:40]
    assert info.library_name == "transformers"
    assert "license:llama3.1" in info.tags
    expected = {path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in _files(hf_llama_dir).items()}
    assert {s.rfilename: (s.size, s.lfs.sha256) for s in info.siblings} == expected


def test_resolve_answers_ranges_with_the_adapter_headers(hub, base, hf_llama_dir):
    content = (hf_llama_dir / "model.safetensors").read_bytes()
    sha256, commit = hashlib.sha256(content).hexdigest(), base.revision[:40]

    moved = requests.head(hub.file_url("main", "model.safetensors", repo=NAME), timeout=30)
    assert moved.status_code == 302
    assert moved.headers["Location"] == f"/{NAME}/resolve/{commit}/model.safetensors"
    assert moved.headers["X-Repo-Commit"] == commit

    url = hub.file_url(commit, "model.safetensors", repo=HF_ID)
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["ETag"] == head.headers["X-Linked-Etag"] == f'"{sha256}"'
    assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == str(len(content))
    assert "Cache-Control" not in head.headers  # public

    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206
    assert part.content == content[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(content)}"

    missing = requests.head(hub.file_url(commit, MARKER_FILE, repo=NAME), timeout=30)
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")


def test_an_unknown_base_or_revision_is_the_clients_error(hub, base):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("no-such-base", cache_dir=hub.cache, endpoint=hub.url, token=False)
    with pytest.raises(RevisionNotFoundError, match="has no revision `v2`"):
        snapshot_download(NAME, revision="v2", cache_dir=hub.cache, endpoint=hub.url, token=False)


def test_an_adapter_id_wins_over_a_base_alias(hub, alice_client, hf_llama_dir):
    """``alice/llama`` names the base while no adapter has that id; once a private adapter
    does, outsiders get "not found", not the base."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    base = _add(hf_llama_dir, NAME, "--alias", "alice/llama")
    anonymous = HfApi(endpoint=hub.url, token=False)
    assert anonymous.model_info("alice/llama").sha == base.revision[:40]

    response = alice_client.post(
        "/api/v1/adapters/", {"namespace": "alice", "name": "llama", "private": True}, format="json"
    )
    assert response.status_code == 201, response.json()
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("alice/llama")
    assert anonymous.model_info(NAME).sha == base.revision[:40]  # its name still reaches it


def test_a_revision_without_recorded_files_is_hashed_once_and_checked(hub, base):
    """Revisions recorded before their files were (the bundled base) are hashed when first
    read; a folder changed on disk since is refused, not served under the old revision."""
    BaseModelRevision.objects.update(files={})
    info = requests.get(f"{hub.url}/api/models/{NAME}", timeout=30)
    assert info.status_code == 200
    assert "config.json" in BaseModelRevision.objects.get().files

    BaseModelRevision.objects.update(files={})
    (Path(base.local_path) / "config.json").write_text("{}")
    changed = requests.get(f"{hub.url}/api/models/{NAME}", timeout=30)
    assert changed.status_code == 500
    assert "changed since it was added" in changed.json()["error"]
