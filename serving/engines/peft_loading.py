"""The peft engine's adapters: LoRAs through peft's own layers, prompt-learning adapters as
the constant tensors peft saves for them (loaded, unloaded between batches)."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import EngineError

log = logging.getLogger(__name__)

LORA_TYPES = {"LORA"}
PROMPT_TYPES = {"PROMPT_TUNING", "P_TUNING"}
PREFIX_TYPES = {"PREFIX_TUNING"}


@dataclass
class LoadedAdapter:
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


class AdapterLoading:
    """Load and unload adapters on the engine's model (a mixin of :class:`PeftEngine`)."""

    _adapters: dict[str, LoadedAdapter]
    _lock: threading.RLock
    _model: Any
    _lora_model: Any
    _dormant: set[str]

    def _ensure_model(self) -> Any:
        raise NotImplementedError

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
                raise EngineError(
                    f"the peft engine cannot serve {peft_type} adapters", status_code=422, code="unsupported"
                )
        log.info("peft engine: loaded %s (%s) from %s", name, peft_type, path)

    def _load_lora(self, name: str, path: Path, config: dict) -> None:
        from peft import PeftModel

        targets = config.get("target_modules") or []
        if isinstance(targets, str) or any("embed" in t or "lm_head" in t for t in targets):
            raise EngineError(
                "the peft engine serves LoRAs on linear layers only (target_modules lists embeddings or a regex)",
                status_code=422,
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
        self._adapters[name] = LoadedAdapter(kind="lora")

    def _load_prompt_learning(self, path: Path, peft_type: str, config: dict) -> LoadedAdapter:
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
            raise EngineError(f"{weights.name} has no `prompt_embeddings` tensor", status_code=422, code="load_failed")
        prompt = prompt.to(torch.float32)
        model_config = self._model.config
        virtual = int(config["num_virtual_tokens"])
        if peft_type in PROMPT_TYPES:
            if tuple(prompt.shape) != (virtual, model_config.hidden_size):
                raise EngineError(
                    f"prompt embeddings have shape {list(prompt.shape)}, "
                    f"expected [{virtual}, {model_config.hidden_size}]",
                    status_code=422,
                    code="load_failed",
                )
            return LoadedAdapter(kind="prompt", prompt=prompt.contiguous())
        layers = int(config.get("num_layers") or model_config.num_hidden_layers)
        heads = int(config.get("num_attention_heads") or model_config.num_key_value_heads)
        token_dim = int(config.get("token_dim") or prompt.shape[-1] // (2 * layers))
        if layers != model_config.num_hidden_layers or tuple(prompt.shape) != (virtual, layers * 2 * token_dim):
            raise EngineError("prefix tensors do not match the base model", status_code=422, code="load_failed")
        if config.get("num_transformer_submodules", 1) != 1:
            raise EngineError("encoder-decoder prefixes are not served", status_code=422, code="unsupported")
        kv = prompt.view(1, virtual, layers * 2, heads, token_dim // heads).permute([2, 0, 3, 1, 4])
        pairs = kv.split(2)  # per layer: [2, 1, heads, nv, head_dim]
        return LoadedAdapter(kind="prefix", prefix=[(p[0, 0].contiguous(), p[1, 0].contiguous()) for p in pairs])

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
