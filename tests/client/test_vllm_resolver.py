"""The vLLM LoRA resolver against a live hub: fetch, verify, cache by content hash, refuse.

These run vLLM's resolver interface in-process (no engine); the slow test in
``test_vllm_resolver_server.py`` runs a real vLLM server with the plugin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from pefthub import NotFoundError, PefthubError, parse_repo
from pefthub.adapter_cache import COMPLETE, AdapterCache
from pefthub.vllm_resolver import PefthubLoRAResolver
from tests.client.conftest import REPO_ROOT
from tests.factories import client_for

pytestmark = pytest.mark.django_db(transaction=True)

REPO = "alice/support-bot"


@pytest.fixture(autouse=True)
def _pefthub_logger_restored():
    """The resolver points the `pefthub` logger at vLLM's handlers; other tests read it."""
    logger = logging.getLogger("pefthub")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


class RecordingSession(requests.Session):
    """A requests session that remembers every URL it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def request(self, method, url, *args, **kwargs):
        self.urls.append(url)
        return super().request(method, url, *args, **kwargs)

    def downloads(self) -> list[str]:
        return [url for url in self.urls if "/resolve/" in url]


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession()


@pytest.fixture
def cache_root(tmp_path) -> Path:
    return tmp_path / "lora-cache"


@pytest.fixture
def make_cache(hub, alice, cache_root, session):
    """``make_cache(token=…)``: an AdapterCache on the live hub (alice's token by default)."""
    made = []

    def make(token: str | None = "alice", root: Path = cache_root, recording: bool = True) -> AdapterCache:
        cache = AdapterCache(
            root,
            endpoint=hub,
            token=alice.token if token == "alice" else token,
            retries=1,
            backoff=0.01,
            # A body cut short by the server (the truncated-blob case) is noticed by the
            # read timeout: keep it short here, not the 300 s a slow link needs.
            timeout=(10.0, 15.0),
            session=session if recording else None,
        )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def pushed(client, lora_dir):
    """alice/support-bot v1: the tiny LoRA, pushed over HTTP."""
    return client.push(lora_dir, REPO, base_model="tiny-llama")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_path(blob_dir: Path, sha256: str) -> Path:
    return blob_dir / "sha256" / sha256[:2] / sha256[2:4] / sha256


def _weights_sha(lora_dir: Path) -> str:
    return _sha((lora_dir / "adapter_model.safetensors").read_bytes())


def _resolve(resolver: PefthubLoRAResolver, name: str):
    return asyncio.run(resolver.resolve_lora("whatever-vllm-calls-its-base", name))


def test_resolves_a_version_into_a_verified_folder_named_by_its_content(make_cache, pushed, lora_dir, cache_root):
    pytest.importorskip("vllm.lora.request", reason="vLLM is not installed (requirements/serving.txt)")
    resolver = PefthubLoRAResolver(make_cache())

    request = _resolve(resolver, f"{REPO}@v1")

    assert request is not None
    assert request.lora_name == f"{REPO}@v1"
    folder = Path(request.lora_path)
    assert folder == cache_root / pushed.content_hash
    expected = {p.name: p.read_bytes() for p in lora_dir.iterdir() if p.is_file()}
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != COMPLETE} == expected
    # nothing but the finished folder is left in the cache
    assert [p.name for p in cache_root.iterdir()] == [pushed.content_hash]


def test_versions_aliases_and_restarts_share_the_cached_folder(
    make_cache, client, pushed, lora_dir_2, session, cache_root
):
    cache = make_cache()
    first = cache.fetch(f"{REPO}@v1")
    assert first.downloaded and first.version == 1
    files_downloaded = len(session.downloads())
    assert files_downloaded >= 2  # adapter_config.json and the weights, at least

    again = cache.fetch(f"{REPO}@1")
    client.set_alias(REPO, "production", 1)
    by_alias = cache.fetch(f"{REPO}@production")
    latest = cache.fetch(REPO)
    restarted = make_cache().fetch(f"{REPO}@v1")  # a new process finds the folder on disk

    assert {r.path for r in (again, by_alias, latest, restarted)} == {first.path}
    assert not any(r.downloaded for r in (again, by_alias, latest, restarted))
    assert len(session.downloads()) == files_downloaded

    # another content is another folder; the alias follows the hub when asked again
    v2 = client.push(lora_dir_2, REPO, base_model="tiny-llama")
    client.set_alias(REPO, "production", 2)
    moved = cache.fetch(f"{REPO}@production")
    assert moved.version == 2 and moved.downloaded
    assert moved.path == cache_root / v2.content_hash != first.path
    assert sorted(p.name for p in cache_root.iterdir()) == sorted([pushed.content_hash, v2.content_hash])


def test_a_tampered_file_is_refused_and_nothing_is_cached(make_cache, pushed, lora_dir, blob_dir, cache_root):
    pytest.importorskip("vllm.lora.request", reason="vLLM is not installed (requirements/serving.txt)")
    blob = _blob_path(blob_dir, _weights_sha(lora_dir))
    original = blob.read_bytes()
    tampered = bytearray(original)
    tampered[-100] ^= 0xFF  # same size, one byte changed: only the hash can tell
    blob.write_bytes(bytes(tampered))

    with pytest.raises(PefthubError, match=r"adapter_model\.safetensors.*sha256.*refused, nothing was cached"):
        make_cache().fetch(f"{REPO}@v1")
    assert not cache_root.exists() or list(cache_root.iterdir()) == []

    # vLLM hears "no such adapter" (a 404) instead of loading the file
    assert _resolve(PefthubLoRAResolver(make_cache()), f"{REPO}@v1") is None
    assert list(cache_root.iterdir()) == []

    # a truncated file: the hub's answer ends early, and that is refused too
    blob.write_bytes(original[: len(original) // 2])
    with pytest.raises(PefthubError, match=r"adapter_model\.safetensors"):
        make_cache().fetch(f"{REPO}@v1")
    assert list(cache_root.iterdir()) == []

    # once the store is right again, the same name resolves
    blob.write_bytes(original)
    assert make_cache().fetch(f"{REPO}@v1").path == cache_root / pushed.content_hash


def test_a_cached_folder_changed_on_disk_is_fetched_again(make_cache, pushed, lora_dir, session):
    folder = make_cache().fetch(f"{REPO}@v1").path
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(b"not the weights")
    downloads = len(session.downloads())

    refetched = make_cache().fetch(f"{REPO}@v1")  # as after a restart

    assert refetched.downloaded and refetched.path == folder
    assert weights.read_bytes() == (lora_dir / "adapter_model.safetensors").read_bytes()
    assert len(session.downloads()) > downloads


def test_a_private_adapter_needs_a_members_token(make_cache, alice, pushed, bob, cache_root):
    pytest.importorskip("vllm.lora.request", reason="vLLM is not installed (requirements/serving.txt)")
    response = client_for(alice).patch(f"/api/v1/adapters/{REPO}/", {"private": True}, format="json")
    assert response.status_code == 200, response.content

    with pytest.raises(NotFoundError):
        make_cache(token=None).fetch(f"{REPO}@v1")
    with pytest.raises(NotFoundError):
        make_cache(token=bob.token).fetch(f"{REPO}@v1")
    assert _resolve(PefthubLoRAResolver(make_cache(token=None)), f"{REPO}@v1") is None
    assert not cache_root.exists() or list(cache_root.iterdir()) == []

    assert _resolve(PefthubLoRAResolver(make_cache()), f"{REPO}@v1") is not None


def test_deprecated_versions_are_refused_before_any_download(make_cache, alice, pushed, session, cache_root):
    deprecated = client_for(alice).post(
        f"/api/v1/adapters/{REPO}/versions/1/deprecate/", {"reason": "leaks the system prompt"}, format="json"
    )
    assert deprecated.status_code == 200, deprecated.content
    resolver = PefthubLoRAResolver(make_cache())

    with pytest.raises(PefthubError, match=r"deprecated \(leaks the system prompt\)"):
        resolver.fetch(parse_repo(f"{REPO}@v1"))
    assert session.downloads() == []
    assert not cache_root.exists()


def test_only_loras_on_the_configured_base_are_served(make_cache, client, pushed, prompt_tuning_dir, session):
    with pytest.raises(PefthubError, match="trained on base model `tiny-llama`, but this server runs `smollm2"):
        PefthubLoRAResolver(make_cache(), base_model="smollm2-135m-instruct").fetch(parse_repo(f"{REPO}@v1"))
    assert PefthubLoRAResolver(make_cache(), base_model="tiny-llama").fetch(parse_repo(f"{REPO}@v1")).version == 1

    client.push(prompt_tuning_dir, "alice/prompted", base_model="tiny-llama")
    downloads = len(session.downloads())
    with pytest.raises(PefthubError, match="a PROMPT_TUNING adapter; vLLM serves LoRA adapters only"):
        PefthubLoRAResolver(make_cache()).fetch(parse_repo("alice/prompted@v1"))
    assert len(session.downloads()) == downloads


def test_unknown_names_are_left_to_other_resolvers(make_cache, pushed):
    pytest.importorskip("vllm.lora.request", reason="vLLM is not installed (requirements/serving.txt)")
    resolver = PefthubLoRAResolver(make_cache())
    assert _resolve(resolver, "not a hub name") is None
    assert _resolve(resolver, f"{REPO}@v9") is None
    assert _resolve(resolver, "alice/nobody") is None


# --- registration ---------------------------------------------------------------------------------
def test_the_package_declares_the_plugin_and_stays_light():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["vllm.general_plugins"] == {"pefthub": "pefthub.vllm_resolver:register"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pefthub, pefthub.vllm_resolver; "
            "assert callable(pefthub.vllm_resolver.register); print(sorted(m for m in sys.modules if m == 'vllm'))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def registry():
    resolver_module = pytest.importorskip("vllm.lora.resolver", reason="vLLM is not installed")
    registry = resolver_module.LoRAResolverRegistry
    before = dict(registry.resolvers)
    yield registry
    registry.resolvers.clear()
    registry.resolvers.update(before)


def test_register_needs_vllm_plugins_to_name_it(registry, monkeypatch, tmp_path, hub):
    from vllm.lora.resolver import LoRAResolver

    from pefthub.vllm_resolver import register

    monkeypatch.setenv("PEFTHUB_ENDPOINT", hub)
    monkeypatch.setenv("PEFTHUB_RESOLVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "true")
    monkeypatch.delenv("VLLM_PLUGINS", raising=False)
    register()
    assert "pefthub" not in registry.resolvers

    monkeypatch.setenv("VLLM_PLUGINS", "pefthub")
    register()
    resolver = registry.get_resolver("pefthub")
    assert isinstance(resolver, LoRAResolver)
    assert resolver.cache.endpoint == hub and resolver.cache.root == tmp_path / "cache"

    monkeypatch.delenv("PEFTHUB_ENDPOINT")
    with pytest.raises(PefthubError, match="PEFTHUB_ENDPOINT is not set"):
        register()
