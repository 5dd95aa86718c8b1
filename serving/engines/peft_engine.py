"""transformers + peft in this process, with mixed-adapter batches.

vLLM dropped prompt adapters, so prompt tuning, prefix tuning and P-tuning versions are
served here; LoRA works too (peft's ``adapter_names=`` mixed batches), for machines
without vLLM and for the fast tests on a tiny model.

How one batch mixes methods: prompt-learning adapters are constant tensors once trained
(peft saves each one's final virtual-token output as ``prompt_embeddings``), so

- prompt tuning / P-tuning rows get their virtual tokens' embeddings put in front of the
  prompt's embeddings (what peft does, ``inputs_embeds``);
- prefix-tuning rows get their per-layer keys/values in the KV cache before the prompt,
  left-padded to the longest prefix in the batch (masked out for other rows);
- LoRA rows go through peft's LoRA layers with ``adapter_names`` (``__base__`` elsewhere).

Positions are given per row, so each row sees exactly what it would see alone. Requests
that arrive while a batch runs wait for the next one (static batching).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Engine, EngineError, EngineSpec

log = logging.getLogger(__name__)

LORA_TYPES = {"LORA"}
PROMPT_TYPES = {"PROMPT_TUNING", "P_TUNING"}
PREFIX_TYPES = {"PREFIX_TUNING"}
UNSUPPORTED_PARAMS = ("logprobs", "top_logprobs", "echo", "tools", "functions", "prompt_logprobs", "best_of")


@dataclass
class _Adapter:
    kind: str  # "lora" | "prompt" | "prefix"
    prompt: Any = None  # prompt: [nv, hidden]
    prefix: list[tuple[Any, Any]] | None = None  # prefix: per layer (keys, values), each [kv_heads, nv, head_dim]

    @property
    def virtual_tokens(self) -> int:
        if self.prompt is not None:
            return int(self.prompt.shape[0])
        if self.prefix:
            return int(self.prefix[0][0].shape[1])
        return 0


@dataclass
class _Request:
    model: str
    adapter: str | None
    ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    out: queue.Queue = field(default_factory=queue.Queue)
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    done: bool = False


def _param(body: dict[str, Any], name: str, default, kind=float):
    value = body.get(name)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise EngineError(f"`{name}` must be a number, got {value!r}", status=400, code="invalid_request_error")


class PeftEngine(Engine):
    name = "peft"
    methods = frozenset({"lora", "qlora", "dora", "prompt_tuning", "prefix_tuning", "p_tuning"})

    def __init__(self, spec: EngineSpec, *, max_batch: int = 16, max_model_len: int | None = None) -> None:
        super().__init__(spec)
        self.max_batch = max_batch
        self.max_model_len = max_model_len
        self._adapters: dict[str, _Adapter] = {}
        self._lock = threading.RLock()  # the model is mutated (load/unload) only between batches
        self._queue: queue.Queue[_Request] = queue.Queue()
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
                    raise EngineError(
                        f"base model `{self.spec.base_name}` at {path} has no usable tokenizer: {exc}", status=503
                    )
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

    # --- adapters --------------------------------------------------------------------------
    def load(self, name: str, path: Path) -> None:
        if name in self._adapters:
            return
        config = json.loads((Path(path) / "adapter_config.json").read_text())
        peft_type = str(config.get("peft_type", "")).upper()
        if config.get("use_dora"):
            peft_type = "LORA"
        with self._lock:
            self._ensure_model()
            if peft_type in LORA_TYPES:
                self._load_lora(name, Path(path), config)
            elif peft_type in PROMPT_TYPES | PREFIX_TYPES:
                self._adapters[name] = self._load_prompt_learning(Path(path), peft_type, config)
            else:
                raise EngineError(f"the peft engine cannot serve {peft_type} adapters", status=422, code="unsupported")
        log.info("peft engine: loaded %s (%s) from %s", name, peft_type, path)

    def _load_lora(self, name: str, path: Path, config: dict) -> None:
        from peft import PeftModel

        targets = config.get("target_modules") or []
        if isinstance(targets, str) or any("embed" in t or "lm_head" in t for t in targets):
            raise EngineError(
                "the peft engine serves LoRAs on linear layers only (target_modules lists embeddings or a regex)",
                status=422,
                code="unsupported",
            )
        if self._lora_model is None:
            self._lora_model = PeftModel.from_pretrained(self._model, str(path), adapter_name=name, is_trainable=False)
            self._lora_model.eval()
        elif name in self._dormant:  # names carry the content hash: same name, same weights
            self._dormant.discard(name)
        else:
            self._lora_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        self._lora_model.set_adapter(name)
        for old in sorted(self._dormant):
            self._lora_model.delete_adapter(old)
        self._dormant.clear()
        self._adapters[name] = _Adapter(kind="lora")

    def _load_prompt_learning(self, path: Path, peft_type: str, config: dict) -> _Adapter:
        """The adapter's constant virtual tokens.

        peft saves a trained prompt-learning adapter's final virtual-token output as
        ``prompt_embeddings`` (``get_prompt_embedding_to_save``) and uses it as is in
        inference mode; prefix tuning's is reshaped into per-layer keys/values the way
        ``PeftModel.get_prompt`` does.
        """
        import torch
        from safetensors.torch import load_file

        weights = path / "adapter_model.safetensors"
        tensors = load_file(str(weights))
        prompt = tensors.get("prompt_embeddings")
        if prompt is None:
            raise EngineError(f"{weights.name} has no `prompt_embeddings` tensor", status=422, code="load_failed")
        prompt = prompt.to(torch.float32)
        model_config = self._model.config
        virtual = int(config["num_virtual_tokens"])
        if peft_type in PROMPT_TYPES:
            if tuple(prompt.shape) != (virtual, model_config.hidden_size):
                raise EngineError(
                    f"prompt embeddings have shape {list(prompt.shape)}, "
                    f"expected [{virtual}, {model_config.hidden_size}]",
                    status=422,
                    code="load_failed",
                )
            return _Adapter(kind="prompt", prompt=prompt.contiguous())
        layers = int(config.get("num_layers") or model_config.num_hidden_layers)
        heads = int(config.get("num_attention_heads") or model_config.num_key_value_heads)
        token_dim = int(config.get("token_dim") or prompt.shape[-1] // (2 * layers))
        if layers != model_config.num_hidden_layers or tuple(prompt.shape) != (virtual, layers * 2 * token_dim):
            raise EngineError("prefix tensors do not match the base model", status=422, code="load_failed")
        if config.get("num_transformer_submodules", 1) != 1:
            raise EngineError("encoder-decoder prefixes are not served", status=422, code="unsupported")
        kv = prompt.view(1, virtual, layers * 2, heads, token_dim // heads).permute([2, 0, 3, 1, 4])
        pairs = kv.split(2)  # per layer: [2, 1, heads, nv, head_dim]
        return _Adapter(kind="prefix", prefix=[(p[0, 0].contiguous(), p[1, 0].contiguous()) for p in pairs])

    def unload(self, name: str) -> None:
        with self._lock:
            adapter = self._adapters.pop(name, None)
            if adapter is not None and adapter.kind == "lora" and self._lora_model is not None:
                others = [n for n, a in self._adapters.items() if a.kind == "lora"]
                if others:
                    # peft keeps an active adapter; it must not be the one deleted
                    self._lora_model.set_adapter(others[0])
                    self._lora_model.delete_adapter(name)
                else:
                    # peft cannot hold zero LoRAs: keep the last one dormant (no row names it)
                    # and delete it when another LoRA arrives
                    self._dormant.add(name)
        if adapter is not None:
            log.info("peft engine: unloaded %s", name)

    # --- requests ----------------------------------------------------------------------------
    def _prompt_ids(self, kind: str, body: dict[str, Any]) -> list[list[int]]:
        tokenizer = self._tokenizer
        if kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise EngineError("`messages` must be a non-empty list", status=400, code="invalid_request_error")
            try:
                ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            except Exception as exc:
                raise EngineError(f"cannot apply the chat template: {exc}", status=400, code="invalid_request_error")
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return [list(ids)]
        prompt = body.get("prompt")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        out = []
        for item in prompts:
            if isinstance(item, str):
                out.append(tokenizer(item, add_special_tokens=False)["input_ids"] or [tokenizer.bos_token_id or 0])
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                out.append(list(item))
            else:
                raise EngineError(
                    "`prompt` must be a string, a list of strings or a list of token ids",
                    status=400,
                    code="invalid_request_error",
                )
        return out

    def openai(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | Iterator[dict[str, Any]]:
        for param in UNSUPPORTED_PARAMS:
            if body.get(param) is not None and body.get(param) is not False:
                raise EngineError(
                    f"`{param}` is not supported for this model (it runs on the peft engine)",
                    status=400,
                    code="invalid_request_error",
                )
        if int(body.get("n") or 1) != 1:
            raise EngineError("only n=1 is supported on the peft engine", status=400, code="invalid_request_error")
        model = body["model"]
        adapter = None if model == self.spec.base_name else model
        if adapter is not None and adapter not in self._adapters:
            raise EngineError(f"adapter `{model}` is not loaded", status=404, code="model_not_found")
        self._ensure_model()
        prompts = self._prompt_ids(kind, body)
        max_tokens = int(_param(body, "max_completion_tokens", None, int) or _param(body, "max_tokens", 16, int))
        if max_tokens < 1:
            raise EngineError("`max_tokens` must be at least 1", status=400, code="invalid_request_error")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        virtual = self._adapters[adapter].virtual_tokens if adapter else 0
        for ids in prompts:
            if virtual + len(ids) + max_tokens > self.max_model_len:
                raise EngineError(
                    f"this model's maximum context length is {self.max_model_len} tokens; the prompt has "
                    f"{len(ids)} and max_tokens is {max_tokens}",
                    status=400,
                    code="context_length_exceeded",
                )
        requests = [
            _Request(
                model=model,
                adapter=adapter,
                ids=ids,
                max_tokens=max_tokens,
                temperature=_param(body, "temperature", 1.0),
                top_p=_param(body, "top_p", 1.0),
                seed=_param(body, "seed", None, int),
                stop=stop,
            )
            for ids in prompts
        ]
        if body.get("stream") and len(requests) != 1:
            raise EngineError("streaming takes one prompt", status=400, code="invalid_request_error")
        for request in requests:
            self._queue.put(request)
        created = int(time.time())
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        if body.get("stream"):
            return self._stream(kind, rid, created, requests[0], body)
        return self._collect(kind, rid, created, requests)

    def _events(self, request: _Request) -> Iterator[tuple[str, Any]]:
        while True:
            event, value = request.out.get(timeout=600)
            if event == "error":
                raise EngineError(f"generation failed: {value}")
            yield event, value
            if event == "done":
                return

    def _collect(self, kind, rid, created, requests) -> dict[str, Any]:
        choices = []
        for index, request in enumerate(requests):
            for _event, _value in self._events(request):
                pass
            if kind == "chat":
                choice = {
                    "index": index,
                    "message": {"role": "assistant", "content": request.text},
                    "finish_reason": request.finish_reason,
                    "logprobs": None,
                }
            else:
                choice = {
                    "index": index,
                    "text": request.text,
                    "finish_reason": request.finish_reason,
                    "logprobs": None,
                }
            choices.append(choice)
        prompt_tokens = sum(len(r.ids) for r in requests)
        completion_tokens = sum(len(r.generated) for r in requests)
        return {
            "id": rid,
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": created,
            "model": requests[0].model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _stream(self, kind, rid, created, request: _Request, body) -> Iterator[dict[str, Any]]:
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def chunk(delta: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
            if kind == "chat":
                d: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
                if delta:
                    d["content"] = delta
                choice = {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            return {"id": rid, "object": obj, "created": created, "model": request.model, "choices": [choice]}

        def gen():
            if kind == "chat":
                yield chunk(None, None, first=True)
            for event, value in self._events(request):
                if event == "text" and value:
                    yield chunk(value, None)
            yield chunk(None, request.finish_reason)
            usage = {
                "prompt_tokens": len(request.ids),
                "completion_tokens": len(request.generated),
                "total_tokens": len(request.ids) + len(request.generated),
            }
            yield {"id": rid, "object": obj, "created": created, "model": request.model, "choices": [], "usage": usage}

        return gen()

    # --- the batch loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            deadline = time.monotonic() + 0.005  # let requests sent together share a batch
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                with self._lock:
                    self._run_batch(batch)
            except Exception as exc:  # one bad batch must not kill the loop
                log.exception("peft engine: batch failed")
                for request in batch:
                    if not request.done:
                        request.out.put(("error", str(exc)))

    def _run_batch(self, batch: list[_Request]) -> None:
        import torch
        from transformers import DynamicCache

        model = self._model
        config = model.config
        for request in batch:
            if request.adapter is not None and request.adapter not in self._adapters:
                request.done = True
                request.out.put(("error", f"adapter `{request.model}` was unloaded"))
        batch = [r for r in batch if not r.done]
        if not batch:
            return
        adapters = [self._adapters.get(r.adapter) if r.adapter else None for r in batch]
        self.recent_batches = [*self.recent_batches[-99:], (len(batch), len({r.model for r in batch}))]
        embed = model.get_input_embeddings()
        size = len(batch)
        prefix_len = max((a.virtual_tokens for a in adapters if a is not None and a.kind == "prefix"), default=0)
        lengths = []
        rows = []
        with torch.no_grad():
            for request, adapter in zip(batch, adapters, strict=True):
                tokens = embed(torch.tensor(request.ids, dtype=torch.long))
                if adapter is not None and adapter.kind == "prompt":
                    tokens = torch.cat([adapter.prompt.to(tokens.dtype), tokens], dim=0)
                rows.append(tokens)
                lengths.append(tokens.shape[0])
            width = max(lengths)
            hidden = rows[0].shape[-1]
            embeds = torch.zeros(size, width, hidden, dtype=rows[0].dtype)
            token_mask = torch.zeros(size, width, dtype=torch.long)
            positions = torch.zeros(size, width, dtype=torch.long)
            prefix_mask = torch.zeros(size, prefix_len, dtype=torch.long)
            offsets = []
            for i, (tokens, adapter) in enumerate(zip(rows, adapters, strict=True)):
                n = tokens.shape[0]
                embeds[i, width - n :] = tokens
                token_mask[i, width - n :] = 1
                offset = adapter.virtual_tokens if adapter is not None and adapter.kind == "prefix" else 0
                if offset:
                    prefix_mask[i, prefix_len - offset :] = 1
                positions[i, width - n :] = torch.arange(offset, offset + n)
                offsets.append(offset + n)
            cache = DynamicCache()
            if prefix_len:
                heads = config.num_key_value_heads
                head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
                for layer in range(config.num_hidden_layers):
                    keys = torch.zeros(size, heads, prefix_len, head_dim)
                    values = torch.zeros(size, heads, prefix_len, head_dim)
                    for i, adapter in enumerate(adapters):
                        if adapter is not None and adapter.kind == "prefix":
                            k, v = adapter.prefix[layer]
                            keys[i, :, prefix_len - k.shape[1] :] = k
                            values[i, :, prefix_len - v.shape[1] :] = v
                    cache.update(keys, values, layer)
            mask = torch.cat([prefix_mask, token_mask], dim=1)
            forward = self._forward(batch, adapters)
            logits = forward(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache)
            next_positions = torch.tensor(offsets, dtype=torch.long)
            generators = [self._generator(r) for r in batch]
            steps = max(r.max_tokens for r in batch)
            for _step in range(steps):
                next_ids = []
                for i, request in enumerate(batch):
                    token = self._pick(logits[i], request, generators[i])
                    next_ids.append(token)
                    if not request.done:
                        self._emit(request, token)
                if all(r.done for r in batch):
                    break
                mask = torch.cat([mask, torch.ones(size, 1, dtype=torch.long)], dim=1)
                logits = forward(
                    input_ids=torch.tensor(next_ids, dtype=torch.long)[:, None],
                    attention_mask=mask,
                    position_ids=next_positions[:, None],
                    past_key_values=cache,
                )
                next_positions = next_positions + 1
        for request in batch:
            if not request.done:
                request.finish_reason = request.finish_reason or "length"
                request.done = True
                request.out.put(("done", None))

    def _forward(self, batch, adapters):
        lora_rows = [
            r.adapter if a is not None and a.kind == "lora" else "__base__"
            for r, a in zip(batch, adapters, strict=True)
        ]
        lora = self._lora_model if self._lora_model is not None and self._lora_model.peft_config else None

        def forward(**inputs):
            if lora is not None:
                out = lora(**inputs, use_cache=True, adapter_names=lora_rows)
            else:
                out = self._model(**inputs, use_cache=True)
            return out.logits[:, -1, :].float()

        return forward

    @staticmethod
    def _generator(request: _Request):
        import torch

        if request.temperature <= 0:
            return None
        generator = torch.Generator()
        generator.manual_seed(request.seed if request.seed is not None else int(time.time_ns() % 2**31))
        return generator

    @staticmethod
    def _pick(logits, request: _Request, generator) -> int:
        import torch

        if request.temperature <= 0 or generator is None:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / request.temperature, dim=-1)
        if request.top_p < 1.0:
            ordered, index = torch.sort(probs, descending=True)
            keep = torch.cumsum(ordered, dim=-1) - ordered < request.top_p
            ordered = ordered * keep
            probs = torch.zeros_like(probs).scatter(0, index, ordered)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))

    def _emit(self, request: _Request, token: int) -> None:
        tokenizer = self._tokenizer
        eos = set()
        for source in (tokenizer.eos_token_id, getattr(self._model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, list):
                eos.update(source)
        if token in eos:
            request.finish_reason = "stop"
            request.done = True
            request.out.put(("done", None))
            return
        request.generated.append(token)
        text = tokenizer.decode(request.generated, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            if len(request.generated) >= request.max_tokens:
                self._finish(request, text, "length")
            return
        for stop in request.stop:
            at = text.find(stop)
            if at >= 0:
                self._finish(request, text[:at], "stop")
                return
        if len(request.generated) >= request.max_tokens:
            self._finish(request, text, "length")
            return
        delta = text[len(request.text) :]
        request.text = text
        request.out.put(("text", delta))

    @staticmethod
    def _finish(request: _Request, text: str, reason: str) -> None:
        delta = text[len(request.text) :] if text.startswith(request.text) else ""
        request.text = text
        if delta:
            request.out.put(("text", delta))
        request.finish_reason = reason
        request.done = True
        request.out.put(("done", None))
