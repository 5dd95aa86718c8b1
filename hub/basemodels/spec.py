"""Describe a causal LM in a Hugging Face folder as a :class:`hub.specs.BaseModelSpec`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.specs import BaseModelSpec, ModuleShape


def spec_from_folder(path: Path, *, name: str, aliases: tuple[str, ...] = ()) -> BaseModelSpec:
    """Describe the causal LM in a Hugging Face folder without loading its weights.

    The model is built from ``config.json`` on the meta device, so this costs a few
    hundred milliseconds whatever the model's size, and every ``nn.Linear`` (and
    transformers' ``Conv1D``, which GPT-2-style models use for the same role) and
    ``nn.Embedding`` is listed under its full module name.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)

    modules: dict[str, ModuleShape] = {}
    for module_name, module in model.named_modules():
        shape = _module_shape(module)
        if shape is not None:
            modules[module_name] = shape

    # Multimodal configs nest the language model's; its numbers are what adapters see.
    text = config.get_text_config()
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    num_attention_heads = int(text.num_attention_heads)
    return BaseModelSpec(
        name=name,
        architecture=architectures[0],
        hidden_size=int(text.hidden_size),
        num_layers=int(text.num_hidden_layers),
        num_attention_heads=num_attention_heads,
        num_key_value_heads=int(getattr(text, "num_key_value_heads", None) or num_attention_heads),
        vocab_size=int(text.vocab_size),
        modules=modules,
        aliases=tuple(aliases),
    )


def _module_shape(module: Any) -> ModuleShape | None:
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, torch.nn.Linear):
        return ModuleShape("linear", module.in_features, module.out_features)
    if isinstance(module, Conv1D):
        # Conv1D stores its weight transposed: (in, out) = (nx, nf).
        return ModuleShape("linear", module.nx, module.nf)
    if isinstance(module, torch.nn.Embedding):
        return ModuleShape("embedding", module.num_embeddings, module.embedding_dim)
    return None
