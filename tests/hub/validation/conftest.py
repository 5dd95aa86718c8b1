"""Fixtures: a tiny random Llama with SmolLM2's head layout, and real peft adapters on it.

The real installer builds BaseModelSpec elsewhere; ``spec_from_model`` is the tests' own
stand-in, reading the same facts from a live transformers model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.specs import BaseModelSpec, ModuleShape
from tests.hub.validation.builders import Upload

pytest.importorskip("peft")

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


@pytest.fixture(scope="session")
def tiny_spec() -> BaseModelSpec:
    return spec_from_model(new_llama(), "tiny-llama")


@pytest.fixture
def make_adapter(tmp_path: Path) -> Callable[..., Upload]:
    """Save a real peft adapter of the given config on a fresh tiny model."""
    counter = iter(range(1000))

    def make(peft_config: Any) -> Upload:
        return save_adapter(new_llama(), peft_config, tmp_path / f"adapter{next(counter)}")

    return make


@pytest.fixture
def lora(make_adapter: Callable[..., Upload]) -> Upload:
    """A plain LoRA on q/k/v, r=4: the starting point most rejection tests edit."""
    from peft import LoraConfig

    return make_adapter(
        LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"])
    )
