"""The ``engine`` backend against a fake vLLM OpenAI server: what it loads, unloads and sends.

The fake answers like vLLM (``/v1/models`` with ``root`` and ``parent``, LoRA loading,
completions with ``echo`` + ``logprobs``); the real engine is in
``test_engine_backend_vllm.py`` (slow).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evaluator.engine.backends import SharedEngineBackend, get_backend
from evaluator.engine.runner import ArmSpec, run_arm
from evaluator.suites_registry import SHIPPED_DIR, lmeval_folder

KEY = "fake-engine-key"


class FakeVLLM:
    def __init__(self, base_path: Path, *, priority: bool = False) -> None:
        self.base_path = base_path
        self.priority = priority
        self.loras: dict[str, str] = {}
        self.calls: list[tuple[str, dict, dict]] = []  # (path, body, headers)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health":
                    return self._send(200, {})
                if self.path == "/version":
                    return self._send(200, {"version": "0.0-fake"})
                if self.path == "/v1/models":
                    base = {"id": "tiny", "root": str(fake.base_path), "parent": None, "max_model_len": 1024}
                    loras = [{"id": n, "root": r, "parent": "tiny"} for n, r in fake.loras.items()]
                    return self._send(200, {"data": [base, *loras]})
                return self._send(404, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.calls.append((self.path, body, dict(self.headers)))
                if self.path == "/v1/load_lora_adapter":
                    fake.loras[body["lora_name"]] = body["lora_path"]
                    return self._send(200, {})
                if self.path == "/v1/unload_lora_adapter":
                    fake.loras.pop(body["lora_name"], None)
                    return self._send(200, {})
                if body.get("priority") and not fake.priority:
                    return self._send(400, {"error": {"message": "Priority scheduling is not enabled."}})
                if body["model"] not in fake.loras:
                    return self._send(404, {"error": {"message": f"The model `{body['model']}` does not exist."}})
                prompts = body["prompt"]
                if body.get("echo"):
                    (tokens,) = prompts  # one prompt per request, or this unpacking fails
                    logprobs = [None] + [-0.25 - (t % 7) / 10 for t in tokens[1:]] + [-0.1]
                    top = [None] + [{"x": -0.05}] * len(tokens)
                    choice = {"index": 0, "text": "", "logprobs": {"token_logprobs": logprobs, "top_logprobs": top}}
                    return self._send(200, {"choices": [choice]})
                return self._send(200, {"choices": [{"index": i, "text": "Paris"} for i in range(len(prompts))]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def completions(self) -> list[tuple[dict, dict]]:
        return [(body, headers) for path, body, headers in self.calls if path == "/v1/completions"]

    def paths(self, path: str) -> list[dict]:
        return [body for p, body, _ in self.calls if p == path]


@pytest.fixture
def fake(tiny_chat_dir, settings, tmp_path):
    server = FakeVLLM(tiny_chat_dir)
    settings.PEFTHUB_EVAL_ENGINE_URL = server.url
    settings.PEFTHUB_VLLM_API_KEY = KEY
    settings.PEFTHUB_SERVING_DIR = tmp_path / "serving"
    settings.PEFTHUB_EVAL_ENGINE_SCORING = "engine"  # the default, hf, has its own test below
    yield server
    server.server.shutdown()


def _spec(base: Path, adapter: Path | None, *, tasks=("acme_mc", "acme_qa")) -> ArmSpec:
    return ArmSpec(
        suite_dir=lmeval_folder(SHIPPED_DIR / "acme-products", root=base.parent / "lmeval"),
        tasks=tasks,
        base_path=base,
        adapter_path=adapter,
        backend="engine",
        system_instruction="Answer the question in one short sentence.",
        batch_size=4,
        limit=3,
    )


def test_the_adapter_is_loaded_for_the_arm_scored_one_prompt_at_a_time_and_unloaded(
    fake, tiny_chat_dir, tiny_chat_lora_dir
):
    outcome = run_arm(_spec(tiny_chat_dir, tiny_chat_lora_dir), lambda *_: None)

    (load,) = fake.paths("/v1/load_lora_adapter")
    name = load["lora_name"]
    assert name.startswith("pefthub-eval-") and load["lora_path"] == str(tiny_chat_lora_dir.resolve())
    assert fake.paths("/v1/unload_lora_adapter") == [{"lora_name": name}]
    assert fake.loras == {}  # nothing left on the engine
    calls = fake.completions()
    assert {body["model"] for body, _ in calls} == {name}
    assert all(headers["Authorization"] == f"Bearer {KEY}" for _, headers in calls)
    (probe,) = [body for body, _ in calls if body["prompt"] == [0]]  # does the engine take priorities?
    assert probe["priority"] == 100 and probe["max_tokens"] == 1
    scoring = [body for body, _ in calls if body.get("echo")]
    generation = [body for body, _ in calls if "stop" in body]
    assert len(scoring) == 3 * 4  # 3 questions x 4 choices, each its own request
    assert all(len(body["prompt"]) == 1 and body["logprobs"] == 1 for body in scoring)
    assert len(generation) == 3 and all(len(body["prompt"]) == 1 for body in generation)
    assert all(body["max_tokens"] == 64 and "\n\n" in body["stop"] for body in generation)
    # The engine here schedules first come, first served: the probe learnt it, no priority is sent.
    assert not any("priority" in body for body in scoring + generation)
    assert outcome.metrics["acme_qa"]["answer_match"] is not None
    assert outcome.repro["backend"] == "engine" and outcome.repro["vllm"] == "0.0-fake"
    assert outcome.repro["loglikelihood"] == "engine, one request at a time" and outcome.repro["priority"] is None


def test_by_default_loglikelihood_is_scored_on_hf_and_only_generation_goes_to_the_engine(
    fake, settings, tiny_chat_dir, tiny_chat_lora_dir
):
    settings.PEFTHUB_EVAL_ENGINE_SCORING = "hf"
    outcome = run_arm(_spec(tiny_chat_dir, tiny_chat_lora_dir), lambda *_: None)
    bodies = [body for body, _ in fake.completions()]
    assert not any(body.get("echo") for body in bodies)  # no prompt logprobs reach the engine
    assert len([body for body in bodies if "stop" in body]) == 3
    assert fake.loras == {} and len(fake.paths("/v1/unload_lora_adapter")) == 1
    assert outcome.repro["loglikelihood"] == "hf" and outcome.repro["generation"] == "engine"
    assert outcome.metrics["acme_mc"]["acc"] is not None


def test_an_unknown_scoring_setting_is_refused(fake, settings, tiny_chat_dir, tiny_chat_lora_dir):
    settings.PEFTHUB_EVAL_ENGINE_SCORING = "gpu"
    with pytest.raises(ValueError, match="PEFTHUB_EVAL_ENGINE_SCORING `gpu` is not known; use hf or engine"):
        get_backend("engine").make_lm(base_path=tiny_chat_dir, adapter_path=tiny_chat_lora_dir, batch_size=4)


def test_requests_carry_the_lowest_priority_when_the_engine_schedules_by_priority(
    fake, settings, tiny_chat_dir, tiny_chat_lora_dir
):
    fake.priority = True
    settings.PEFTHUB_EVAL_ENGINE_PRIORITY = 50
    outcome = run_arm(_spec(tiny_chat_dir, tiny_chat_lora_dir, tasks=("acme_qa",)), lambda *_: None)
    bodies = [body for body, _ in fake.completions()]
    assert len(bodies) == 1 + 3 and all(body["priority"] == 50 for body in bodies)  # the probe, 3 questions
    assert outcome.repro["priority"] == 50


def test_an_adapter_live_on_the_engine_is_used_under_its_name_and_left_there(fake, tiny_chat_dir, tiny_chat_lora_dir):
    fake.loras["alice/shop@v1"] = str(tiny_chat_lora_dir)
    run_arm(_spec(tiny_chat_dir, tiny_chat_lora_dir, tasks=("acme_qa",)), lambda *_: None)
    assert fake.paths("/v1/load_lora_adapter") == [] and fake.paths("/v1/unload_lora_adapter") == []
    assert {body["model"] for body, _ in fake.completions()} == {"alice/shop@v1"}
    assert fake.loras == {"alice/shop@v1": str(tiny_chat_lora_dir)}


def test_the_base_arm_goes_through_the_identity_lora(fake, tiny_chat_dir):
    from serving.engines.vllm_engine import IDENTITY_NAME

    run_arm(_spec(tiny_chat_dir, None, tasks=("acme_qa",)), lambda *_: None)
    (load,) = fake.paths("/v1/load_lora_adapter")
    assert load["lora_name"] == IDENTITY_NAME  # loaded like serving does, and kept for it
    assert fake.paths("/v1/unload_lora_adapter") == []
    assert {body["model"] for body, _ in fake.completions()} == {IDENTITY_NAME}


def test_the_adapter_is_unloaded_when_the_evaluation_fails(fake, tiny_chat_dir, tiny_chat_lora_dir):
    spec = _spec(tiny_chat_dir, tiny_chat_lora_dir, tasks=("acme_qa",))

    def boom(*_):
        raise RuntimeError("the worker was stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        run_arm(spec, boom)
    assert len(fake.paths("/v1/load_lora_adapter")) == 1
    assert fake.paths("/v1/unload_lora_adapter") and fake.loras == {}


def test_an_engine_of_another_base_is_refused_with_what_to_change(fake, tiny_chat_lora_dir, tmp_path):
    other = tmp_path / "other-base"
    other.mkdir()
    backend = get_backend("engine")
    assert isinstance(backend, SharedEngineBackend)
    with pytest.raises(
        ValueError, match=r"serves .*tiny-chat.*not this job's base .*other-base.*PEFTHUB_EVAL_ENGINE_URL"
    ):
        backend.make_lm(base_path=other, adapter_path=tiny_chat_lora_dir, batch_size=4)
    assert fake.paths("/v1/load_lora_adapter") == []


def test_an_engine_that_does_not_answer_is_a_clear_error(settings, tiny_chat_dir, tiny_chat_lora_dir, tmp_path):
    settings.PEFTHUB_EVAL_ENGINE_URL = "http://127.0.0.1:9"  # discard: nothing listens
    settings.PEFTHUB_SERVING_DIR = tmp_path
    with pytest.raises(RuntimeError, match=r"evaluation engine is not available.*PEFTHUB_EVAL_ENGINE_URL"):
        get_backend("engine").make_lm(base_path=tiny_chat_dir, adapter_path=tiny_chat_lora_dir, batch_size=4)


def test_prompt_learning_adapters_are_scored_on_hf(fake, tiny_chat_dir, tiny_chat_prompt_dir):
    outcome = run_arm(_spec(tiny_chat_dir, tiny_chat_prompt_dir, tasks=("acme_qa",)), lambda *_: None)
    assert fake.calls == [] and outcome.repro["generation"] == "hf" and outcome.repro["backend"] == "engine"


def test_a_scoring_request_that_found_the_engine_busy_is_tried_again(monkeypatch):
    """Long streams may keep a prompt-logprob request from holding the engine alone in time
    (``EngineBusy``): the evaluation waits and tries again instead of failing its job."""
    from evaluator.engine import remote
    from serving.engines.base import EngineBusy

    class Busy:
        def __init__(self, times):
            self.times, self.calls = times, 0

        def openai(self, kind, body):
            self.calls += 1
            if self.calls <= self.times:
                raise EngineBusy("busy; retry shortly")
            return {"choices": []}

    slept = []
    monkeypatch.setattr(remote.time, "sleep", slept.append)
    lm = remote.EngineLM.__new__(remote.EngineLM)  # only the transport: no tokenizer needed
    lm.busy_retries = 3
    lm.client = Busy(2)
    assert lm._call({"prompt": [1, 2]}) == {"choices": []}
    assert lm.client.calls == 3 and slept == [1, 1]
    lm.client = Busy(10)
    with pytest.raises(EngineBusy):
        lm._call({"prompt": [1, 2]})
    assert lm.client.calls == 4
