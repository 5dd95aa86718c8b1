"""The /v1 gateway on the peft engine and the tiny llama: auth, visibility, resolution,
the deploy API, eviction, session + CSRF, metrics."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.utils import assert_openai_error, complete

from .conftest import push


def test_models_lists_what_the_caller_may_use(live, anon_client, alice_client, bob_client):
    anon = {m["id"]: m for m in anon_client.get("/v1/models").json()["data"]}
    assert "tiny-llama" in anon and anon["tiny-llama"]["parent"] is None
    assert anon["alice/lora@v1"]["parent"] == "tiny-llama"
    assert {"alice/prompt@v1", "alice/prefix@v1", "alice/ptuning@v1", "alice/lora2@v1"} <= set(anon)
    assert "alice/secret@v1" not in anon
    assert "alice/secret@v1" not in {m["id"] for m in bob_client.get("/v1/models").json()["data"]}
    assert "alice/secret@v1" in {m["id"] for m in alice_client.get("/v1/models").json()["data"]}


def test_private_adapter_needs_a_members_token(live, anon_client, alice_client, bob_client):
    assert_openai_error(complete(anon_client, "alice/secret"), 404, "model_not_found")
    assert_openai_error(complete(bob_client, "alice/secret"), 404, "model_not_found")
    response = complete(alice_client, "alice/secret")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "alice/secret"
    assert body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] >= 1


def test_bad_token_is_401_and_anonymous_can_be_turned_off(live, anon_client, settings):
    bad = Client(HTTP_AUTHORIZATION="Bearer nope")
    assert_openai_error(bad.get("/v1/models"), 401, "authentication_failed")
    settings.PEFTHUB_SERVING_ANONYMOUS = False
    assert anon_client.get("/v1/models").status_code == 401


def test_names_aliases_and_versions_resolve(live, alice_client):
    answers = {}
    for model in (
        "alice/lora",
        "alice/lora@v1",
        "alice/lora@1",
        "alice/lora@latest",
        "tiny-llama",
        "test-org/tiny-llama",
    ):
        response = complete(alice_client, model)
        assert response.status_code == 200, (model, response.content)
        assert response.json()["model"] == model
        answers[model] = response.json()["choices"][0]["text"]
    assert len({answers[m] for m in answers if "lora" in m}) == 1
    assert answers["tiny-llama"] == answers["test-org/tiny-llama"]  # the base under its alias
    assert answers["tiny-llama"] != answers["alice/lora"]  # the adapter is applied

    response = alice_client.put("/api/v1/adapters/alice/lora/aliases/production/", {"version": 1}, format="json")
    assert response.status_code in (200, 201), response.content
    assert complete(alice_client, "alice/lora@production").json()["choices"][0]["text"] == answers["alice/lora"]
    for missing in ("alice/lora@v9", "alice/lora@nope", "alice/nothing", "nobody/x@v1", "gpt-4o", ""):
        assert_openai_error(complete(alice_client, missing), 404, "model_not_found")


def test_pending_and_deprecated_versions_are_404(
    live, alice, alice_client, strong, engine, django_capture_on_commit_callbacks
):
    push(alice_client, "alice/lora", strong["lora2"])  # v2, pending evaluation
    error = assert_openai_error(complete(alice_client, "alice/lora@v2"), 404, "model_not_found")
    assert "pending" in error["message"]
    assert complete(alice_client, "alice/lora").status_code == 200  # the bare name: newest live version (v1)

    assert complete(alice_client, "alice/lora@v1").status_code == 200
    from serving.models import Deployment

    name = Deployment.objects.get(version__adapter__name="lora", version__number=1).engine_model
    assert name in engine.loaded()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            "/api/v1/adapters/alice/lora/versions/1/deprecate/", {"reason": "old"}, format="json"
        )
    assert response.status_code == 200
    error = assert_openai_error(complete(alice_client, "alice/lora@v1"), 404, "model_not_found")
    assert "deprecated" in error["message"]
    assert_openai_error(complete(alice_client, "alice/lora"), 404, "model_not_found")
    assert name not in engine.loaded()
    assert "alice/lora@v1" not in {m["id"] for m in alice_client.get("/v1/models").json()["data"]}


def test_owner_deploys_and_undeploys(live, alice_client, bob_client, strong, django_capture_on_commit_callbacks):
    push(alice_client, "alice/manual", strong["lora2"])
    assert_openai_error(complete(alice_client, "alice/manual"), 404, "model_not_found")
    url = "/api/v1/adapters/alice/manual/versions/1"
    assert bob_client.post(f"{url}/deploy/").status_code == 403
    response = alice_client.post(f"{url}/deploy/")
    assert response.status_code == 200, response.content
    assert response.json()["live"] is True and response.json()["reason"] == "deployed"
    assert complete(alice_client, "alice/manual").status_code == 200
    assert complete(bob_client, "alice/manual@v1").status_code == 200  # public

    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post(f"{url}/undeploy/").json()["live"] is False
    assert_openai_error(complete(alice_client, "alice/manual"), 404, "model_not_found")
    usage = alice_client.get(f"{url}/deployment/").json()["usage"]
    assert usage["requests"] == 2


def test_rejected_and_unservable_versions_are_refused_at_deploy(live, alice_client, strong, settings):
    from hub.models import AdapterVersion
    from hub.services import adapter_version_set_status

    push(alice_client, "alice/bad", strong["lora"])
    version = AdapterVersion.objects.get(adapter__name="bad")
    adapter_version_set_status(version=version, status="rejected", reasons=["score 0.1 < 0.5"])
    response = alice_client.post("/api/v1/adapters/alice/bad/versions/1/deploy/")
    assert response.status_code == 400 and "rejected" in response.json()["error"]["message"]

    # LoRA on vLLM: ranks above --max-lora-rank are refused with the limit named
    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = "tiny-llama"
    settings.PEFTHUB_VLLM_MAX_LORA_RANK = 4
    push(alice_client, "alice/wide", strong["lora2"])  # r=8
    response = alice_client.post("/api/v1/adapters/alice/wide/versions/1/deploy/")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "rank_too_high"
    assert "rank 8" in error["message"] and "--max-lora-rank 4" in error["message"]


def test_least_recently_used_adapter_is_evicted_and_reloaded(live, alice_client, served_base):
    from pathlib import Path

    from serving.engines.base import EngineSpec
    from serving.engines.peft_engine import PeftEngine
    from serving.engines.registry import register_instance, reset_engines
    from serving.models import Deployment

    small = PeftEngine(EngineSpec(base_name="tiny-llama", base_path=Path(served_base.local_path), max_loaded=2))
    register_instance("peft", "tiny-llama", small)
    try:
        names = {
            repo: Deployment.objects.get(version__adapter__name=repo.split("/")[1]).engine_model
            for repo in ("alice/lora", "alice/prompt", "alice/prefix")
        }
        first = {}
        for repo in names:
            response = complete(alice_client, repo)
            assert response.status_code == 200, response.content
            first[repo] = response.json()["choices"][0]["text"]
        assert small.loaded() == {names["alice/prompt"], names["alice/prefix"]}  # lora was least recent
        again = complete(alice_client, "alice/lora")
        assert again.status_code == 200
        assert again.json()["choices"][0]["text"] == first["alice/lora"]  # reloaded, same answer
        assert small.loaded() == {names["alice/prefix"], names["alice/lora"]}
    finally:
        reset_engines()


def test_a_loaded_adapter_costs_no_extra_engine_call(live, alice_client, engine, monkeypatch):
    """The gateway sends at once; it asks the engine what it holds only when told it lacks the adapter."""
    from serving.models import Deployment

    assert complete(alice_client, "alice/lora").status_code == 200
    asked = []
    real_loaded = engine.loaded
    monkeypatch.setattr(engine, "loaded", lambda: asked.append(1) or real_loaded())
    for _ in range(3):
        assert complete(alice_client, "alice/lora").status_code == 200
    assert asked == []
    engine.unload(Deployment.objects.get(version__adapter__name="lora").engine_model)  # gone behind its back
    response = complete(alice_client, "alice/lora")
    assert response.status_code == 200, response.content
    assert asked, "a 404 from the engine makes the gateway check and load again"


def test_browser_session_with_csrf_header_streams(live, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = {"model": "alice/prompt", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 5}
    refused = browser.post("/v1/chat/completions", body, content_type="application/json")
    assert refused.status_code == 403
    browser.get("/v1/models")  # any page: the session gets its CSRF cookie
    token = browser.cookies["csrftoken"].value if "csrftoken" in browser.cookies else None
    if token is None:
        from django.middleware.csrf import _get_new_csrf_string

        token = _get_new_csrf_string()
        browser.cookies["csrftoken"] = token
    response = browser.post(
        "/v1/chat/completions",
        body,
        content_type="application/json",
        headers={"X-CSRFToken": token, "Accept": "text/event-stream"},  # what SSE clients send
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = b"".join(response.streaming_content).decode().split("\n\n")
    assert events[-2] == "data: [DONE]"
    import json

    chunks = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert all(c["model"] == "alice/prompt" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_metrics_and_usage_count_requests_tokens_and_errors(live, alice_client, settings):
    for _ in range(2):
        assert complete(alice_client, "alice/lora", max_tokens=4).status_code == 200
    assert complete(alice_client, "alice/lora", echo=True, logprobs=1).status_code == 400
    settings.PEFTHUB_METRICS_TOKEN = "scrape-secret"
    text = Client(HTTP_AUTHORIZATION="Bearer scrape-secret").get("/metrics").content.decode()
    label = 'base_model="tiny-llama",model="alice/lora@v1"'
    assert f"pefthub_serving_requests_total{{{label}}} 3.0" in text
    assert f"pefthub_serving_errors_total{{{label}}} 1.0" in text
    assert f"pefthub_serving_completion_tokens_total{{{label}}} 8.0" in text
    assert 'pefthub_serving_request_duration_seconds_count{engine="peft",model="alice/lora@v1"}' in text
    usage = {u["model"]: u for u in alice_client.get("/api/v1/serving/usage/").json()}
    assert usage["alice/lora@v1"]["requests"] == 3
    assert usage["alice/lora@v1"]["prompt_tokens"] == 10  # "Hello" twice, 5 characters each
    assert usage["alice/lora@v1"]["mean_latency_seconds"] > 0


@pytest.mark.django_db(transaction=True)
def test_real_openai_client_with_streaming_and_prompt_tuning(live, alice, live_server):
    import openai

    # clients are closed at the end: a kept-alive socket would keep a server thread (and its
    # database connection) alive past the test
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=alice.token, max_retries=0) as client:
        assert "alice/prompt@v1" in {m.id for m in client.models.list()}
        assert client.models.retrieve("alice/prompt@v1").owned_by == "alice"
        messages = [{"role": "user", "content": "Say something"}]
        whole = client.chat.completions.create(model="alice/prompt", messages=messages, max_tokens=8, temperature=0)
        assert whole.model == "alice/prompt"
        text = whole.choices[0].message.content
        assert text and whole.usage.completion_tokens >= 1
        stream = client.chat.completions.create(
            model="alice/prompt",
            messages=messages,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        base = client.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=8, temperature=0)
        assert base.choices[0].message.content != text  # the prompt-tuning adapter did its part
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="alice/none", messages=messages, max_tokens=2)
        assert info.value.code == "model_not_found"
    outsider = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="wrong", max_retries=0)
    with outsider, pytest.raises(openai.AuthenticationError):
        outsider.models.list()


def test_engine_down_is_a_clear_503_and_the_rest_keeps_working(
    served_base, alice, alice_client, strong, settings, engine, django_capture_on_commit_callbacks
):
    import socket

    from serving.engines.registry import reset_engines

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = "tiny-llama"
    settings.PEFTHUB_VLLM_URL = f"http://127.0.0.1:{port}"
    reset_engines()
    try:
        push(alice_client, "alice/lora", strong["lora"])
        push(alice_client, "alice/prompt", strong["prompt"])
        with django_capture_on_commit_callbacks(execute=True):
            assert alice_client.post("/api/v1/adapters/alice/lora/versions/1/deploy/").status_code == 200
            assert alice_client.post("/api/v1/adapters/alice/prompt/versions/1/deploy/").status_code == 200
        error = assert_openai_error(complete(alice_client, "alice/lora"), 503, "engine_unavailable")
        assert "not reachable" in error["message"]
        assert complete(alice_client, "alice/prompt").status_code == 200  # the peft engine still answers
        assert "alice/lora@v1" in {m["id"] for m in alice_client.get("/v1/models").json()["data"]}
    finally:
        reset_engines()
