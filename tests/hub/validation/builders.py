"""Helpers that build uploads for the validation tests (real peft output, or crafted bytes).

The real installer builds BaseModelSpec elsewhere; ``spec_from_model`` is the tests' own
stand-in, reading the same facts from a live transformers model.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.specs import BaseModelSpec, ModuleShape
from hub.validation import UploadLimits, ValidatedAdapter, validate_adapter
from hub.validation.files import DEFAULT_LIMITS

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
DELETE = object()  # with_config(key=DELETE) removes the key


@dataclass(frozen=True)
class Upload:
    """An adapter upload as the hub receives it: file names -> bytes."""

    blobs: dict[str, bytes]
    peft_trainable: int | None = field(default=None, compare=False)  # peft's own count

    @classmethod
    def from_dir(cls, path: Path, peft_trainable: int | None = None) -> Upload:
        return cls({p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}, peft_trainable)

    def files(self) -> dict[str, io.BytesIO]:
        return {name: io.BytesIO(data) for name, data in self.blobs.items()}

    def sizes(self) -> dict[str, int]:
        return {name: len(data) for name, data in self.blobs.items()}

    def validate(self, base: BaseModelSpec, limits: UploadLimits = DEFAULT_LIMITS) -> ValidatedAdapter:
        return validate_adapter(self.files(), self.sizes(), base, limits)

    def config(self) -> dict[str, Any]:
        return json.loads(self.blobs[CONFIG])

    def with_config(self, **changes: Any) -> Upload:
        config = self.config()
        for key, value in changes.items():
            if value is DELETE:
                config.pop(key, None)
            else:
                config[key] = value
        return self.with_file(CONFIG, json.dumps(config).encode())

    def with_file(self, name: str, data: bytes) -> Upload:
        return Upload({**self.blobs, name: data}, self.peft_trainable)

    def without(self, name: str) -> Upload:
        return Upload({k: v for k, v in self.blobs.items() if k != name}, self.peft_trainable)

    def header(self) -> dict[str, Any]:
        data = self.blobs[WEIGHTS]
        (n,) = struct.unpack("<Q", data[:8])
        return json.loads(data[8 : 8 + n])

    def data_section(self) -> bytes:
        data = self.blobs[WEIGHTS]
        (n,) = struct.unpack("<Q", data[:8])
        return data[8 + n :]


def raw_safetensors(header: dict[str, Any], data: bytes) -> bytes:
    """Serialize a header exactly as given (no checks), followed by ``data``."""
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def tensors_bytes(tensors: dict[str, Any]) -> bytes:
    """A well-formed safetensors file from torch tensors."""
    from safetensors.torch import save

    return save({name: t.contiguous() for name, t in tensors.items()})


def renamed(upload: Upload, old: str, new: str) -> Upload:
    """Rename one tensor in the weights file, keeping its data."""
    header = upload.header()
    header[new] = header.pop(old)
    return upload.with_file(WEIGHTS, raw_safetensors(header, upload.data_section()))


# --- real peft adapters on a tiny random Llama ------------------------------------------
TINY = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,  # grouped-query attention, like SmolLM2 (9 heads, 3 kv)
    head_dim=16,
    vocab_size=128,
    max_position_embeddings=64,
    tie_word_embeddings=True,
)


def spec_from_model(model: Any, name: str) -> BaseModelSpec:
    """Describe a transformers causal LM the way the hub's installer would."""
    import torch

    modules: dict[str, ModuleShape] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            modules[module_name] = ModuleShape("linear", module.in_features, module.out_features)
        elif isinstance(module, torch.nn.Embedding):
            modules[module_name] = ModuleShape("embedding", module.num_embeddings, module.embedding_dim)
    config = model.config
    return BaseModelSpec(
        name=name,
        architecture=type(model).__name__,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        vocab_size=config.vocab_size,
        modules=modules,
        aliases=(f"test/{name}",),
    )


def new_llama(**overrides: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, **overrides}))


def save_adapter(model: Any, peft_config: Any, directory: Path, *, unload: bool = False) -> Upload:
    """Wrap ``model`` with peft, save_pretrained to ``directory``, return the upload.

    peft injects its layers into ``model``; ``unload=True`` takes them out again so the
    same base model can carry the next adapter.
    """
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, peft_config)
        trainable, _ = peft_model.get_nb_trainable_parameters()
        peft_model.save_pretrained(str(directory))
        if unload and not peft_config.is_prompt_learning:
            peft_model.unload()
    return Upload.from_dir(directory, peft_trainable=trainable)
