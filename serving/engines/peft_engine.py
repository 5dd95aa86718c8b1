"""transformers + peft in this process, with mixed-adapter batches.

vLLM dropped prompt adapters, so prompt tuning, prefix tuning and P-tuning versions are
served here; LoRA works too (peft's ``adapter_names=`` mixed batches), for machines
without vLLM and for the fast tests on a tiny model.

The engine is three parts: loading adapters (``peft_loading``), the batch loop that
mixes them (``peft_batching``, which says how), and the OpenAI side, prompts in and
responses out (``peft_openai``). This module validates a request and queues it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .base import Engine, EngineError, EngineSpec, EngineUnavailable
from .peft_batching import BatchLoop, GenerationRequest
from .peft_loading import AdapterLoading, LoadedAdapter
from .peft_openai import completion_chunks, completion_response, param, prompt_ids

log = logging.getLogger(__name__)

UNSUPPORTED_PARAMS = ("logprobs", "top_logprobs", "echo", "tools", "functions", "prompt_logprobs", "best_of")


class PeftEngine(AdapterLoading, BatchLoop, Engine):
    name = "peft"
    methods = frozenset({"lora", "qlora", "dora", "prompt_tuning", "prefix_tuning", "p_tuning"})

    def __init__(self, spec: EngineSpec, *, max_batch: int = 16, max_model_len: int | None = None) -> None:
        super().__init__(spec)
        self.max_batch = max_batch
        self.max_model_len = max_model_len
        self._adapters: dict[str, LoadedAdapter] = {}
        self._lock = threading.RLock()  # the model is mutated (load/unload) only between batches
        self._queue: queue.Queue[GenerationRequest] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._model = None
        self._lora_model = None
        self._dormant: set[str] = set()
        self._tokenizer = None
        #: sizes of the most recent batches, and how many adapters each mixed (benchmarks, tests)
        self.recent_batches: list[tuple[int, int]] = []

    # --- lifecycle -----------------------------------------------------------------------
    def _ensure_model(self):
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                path = str(self.spec.base_path)
                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(path)
                except Exception as exc:
                    raise EngineUnavailable(
                        f"base model `{self.spec.base_name}` at {path} has no usable tokenizer: {exc}"
                    ) from exc
                self._model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
                if self.max_model_len is None:
                    self.max_model_len = int(getattr(self._model.config, "max_position_embeddings", 2048))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name=f"peft-engine-{self.spec.base_name}", daemon=True
                )
                self._thread.start()
        return self._model

    def start(self) -> None:
        self._ensure_model()

    def healthy(self) -> bool:
        return True  # in-process: it answers whenever this process does

    def loaded(self) -> set[str]:
        return set(self._adapters)

    # --- requests ----------------------------------------------------------------------------
    def openai(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | Iterator[dict[str, Any]]:
        for name in UNSUPPORTED_PARAMS:
            if body.get(name) is not None and body.get(name) is not False:
                raise EngineError(
                    f"`{name}` is not supported for this model (it runs on the peft engine)",
                    status_code=400,
                    code="invalid_request_error",
                )
        if int(body.get("n") or 1) != 1:
            raise EngineError("only n=1 is supported on the peft engine", status_code=400, code="invalid_request_error")
        model = body["model"]
        adapter = None if model == self.spec.base_name else model
        if adapter is not None and adapter not in self._adapters:
            raise EngineError(f"adapter `{model}` is not loaded", status_code=404, code="model_not_found")
        self._ensure_model()
        prompts = prompt_ids(self._tokenizer, kind, body)
        vocab = int(self._model.get_input_embeddings().num_embeddings)
        for ids in prompts:
            bad = next((t for t in ids if not 0 <= t < vocab), None)
            if bad is not None:
                raise EngineError(
                    f"token id {bad} in `prompt` is out of range: this model's ids are 0 to {vocab - 1}",
                    status_code=400,
                    code="invalid_request_error",
                )
        max_tokens = int(param(body, "max_completion_tokens", None, int) or param(body, "max_tokens", 16, int))
        if max_tokens < 1:
            raise EngineError("`max_tokens` must be at least 1", status_code=400, code="invalid_request_error")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        limit = self.max_model_len or 0  # set when the model loads, before any request is checked
        virtual = self._adapters[adapter].virtual_tokens if adapter else 0
        for ids in prompts:
            if virtual + len(ids) + max_tokens > limit:
                raise EngineError(
                    f"this model's maximum context length is {self.max_model_len} tokens; the prompt has "
                    f"{len(ids)} and max_tokens is {max_tokens}",
                    status_code=400,
                    code="context_length_exceeded",
                )
        requests = [
            GenerationRequest(
                model=model,
                adapter=adapter,
                ids=ids,
                max_tokens=max_tokens,
                temperature=param(body, "temperature", 1.0),
                top_p=param(body, "top_p", 1.0),
                seed=param(body, "seed", None, int),
                stop=stop,
            )
            for ids in prompts
        ]
        if body.get("stream") and len(requests) != 1:
            raise EngineError("streaming takes one prompt", status_code=400, code="invalid_request_error")
        for request in requests:
            self._queue.put(request)
        created = int(time.time())
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        if body.get("stream"):
            return completion_chunks(kind, rid, created, requests[0], self._events)
        return completion_response(kind, rid, created, requests, self._events)

    def _events(self, request: GenerationRequest) -> Iterator[tuple[str, Any]]:
        while True:
            event, value = request.out.get(timeout=600)
            if event == "error":
                raise EngineError(f"generation failed: {value}")
            yield event, value
            if event == "done":
                return
