"""The peft engine's batch loop: requests queued by the engine, run together in one batch
mixing the base, LoRAs and prompt-learning adapters (static batching).

How one batch mixes methods: prompt-learning adapters are constant tensors once trained
(peft saves each one's final virtual-token output as ``prompt_embeddings``), so

- prompt tuning / P-tuning rows get their virtual tokens' embeddings put in front of the
  prompt's embeddings (what peft does, ``inputs_embeds``);
- prefix-tuning rows get their per-layer keys/values in the KV cache before the prompt,
  left-padded to the longest prefix in the batch (masked out for other rows);
- LoRA rows go through peft's LoRA layers with ``adapter_names`` (``__base__`` elsewhere).

Positions are given per row, so each row sees exactly what it would see alone. Requests
that arrive while a batch runs wait for the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .peft_loading import LoadedAdapter

log = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    """One prompt to generate for, and what the loop has produced for it so far (``out``
    carries ``("text", delta)``, ``("done", None)`` or ``("error", message)`` events)."""

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


class BatchLoop:
    """The thread that runs queued requests in batches (a mixin of :class:`PeftEngine`)."""

    max_batch: int
    recent_batches: list[tuple[int, int]]
    _adapters: dict[str, LoadedAdapter]
    _lock: threading.RLock
    _queue: queue.Queue[GenerationRequest]
    _model: Any
    _lora_model: Any
    _tokenizer: Any

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
                log.exception("peft engine: a batch of %d failed", len(batch))
                self._isolate(batch, exc)

    def _isolate(self, batch: list[GenerationRequest], exc: Exception) -> None:
        """After a failed batch: each request that got nothing yet runs again alone, so an
        error reaches only the request that fails by itself, never its batch neighbours
        (other callers). One that already streamed text cannot start over: it gets the error."""
        for request in batch:
            if request.done:
                continue
            if request.generated or len(batch) == 1:
                _fail(request, exc)
                continue
            try:
                with self._lock:
                    self._run_batch([request])
            except Exception as alone:
                log.warning("peft engine: request for %s failed alone: %s", request.model, alone)
                if not request.done:
                    _fail(request, alone)

    def _run_batch(self, batch: list[GenerationRequest]) -> None:
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
                        if adapter is not None and adapter.kind == "prefix" and adapter.prefix is not None:
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
    def _generator(request: GenerationRequest):
        import torch

        if request.temperature <= 0:
            return None
        generator = torch.Generator()
        generator.manual_seed(request.seed if request.seed is not None else int(time.time_ns() % 2**31))
        return generator

    @staticmethod
    def _pick(logits, request: GenerationRequest, generator) -> int:
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

    def _emit(self, request: GenerationRequest, token: int) -> None:
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
    def _finish(request: GenerationRequest, text: str, reason: str) -> None:
        delta = text[len(request.text) :] if text.startswith(request.text) else ""
        request.text = text
        if delta:
            request.out.put(("text", delta))
        request.finish_reason = reason
        request.done = True
        request.out.put(("done", None))


def _fail(request: GenerationRequest, exc: Exception) -> None:
    request.done = True
    request.out.put(("error", str(exc)))
