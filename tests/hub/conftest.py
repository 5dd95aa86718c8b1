"""Fixtures of the HF protocol tests: the live server as an HF endpoint."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.factories import TINY, save_tokenizer

REPO = "alice/support-bot"


@pytest.fixture(scope="session")
def hf_llama_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """The shared tiny Llama's weights (so the shared LoRA fixtures fit it) plus a tokenizer."""
    folder = tmp_path_factory.mktemp("hf-llama") / "tiny-llama"
    shutil.copytree(tiny_base_dir, folder)
    save_tokenizer(folder, TINY["vocab_size"])
    return folder


@dataclass
class Hub:
    url: str
    cache: Path
    calls: list[tuple[str, str, dict]] = field(default_factory=list)  # method, url, request headers
    statuses: list[tuple[str, str, int]] = field(default_factory=list)

    def file_url(self, revision: str, path: str, repo: str = REPO) -> str:
        return f"{self.url}/{repo}/resolve/{revision}/{path}"


def _guarded_client_factory(allowed: str, on_request, on_response):
    """huggingface_hub's own client, plus hooks that fail any request to another host."""
    from huggingface_hub.utils._http import default_client_factory

    def check(request):
        assert f"{request.url.host}:{request.url.port}" == allowed, f"request left the hub: {request.url}"
        on_request(request)

    def factory():
        client = default_client_factory()
        hooks = client.event_hooks
        client.event_hooks = {
            "request": [*hooks["request"], check],
            "response": [*hooks["response"], on_response],
        }
        return client

    return factory


@pytest.fixture
def hub(live_server, monkeypatch, tmp_path) -> Hub:
    """The live server as the HF endpoint; every client request is recorded and must go there."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils._http import default_client_factory

    # tests/conftest.py sets HF_HUB_OFFLINE=1 for the rest of the suite; these tests are online.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    state = Hub(url=live_server.url, cache=tmp_path / "hf-cache")

    def on_request(request):
        state.calls.append((request.method, str(request.url), dict(request.headers)))

    def on_response(response):
        state.statuses.append((response.request.method, str(response.request.url), response.status_code))

    allowed = urlsplit(live_server.url).netloc
    huggingface_hub.set_client_factory(_guarded_client_factory(allowed, on_request, on_response))
    yield state
    huggingface_hub.set_client_factory(default_client_factory)
