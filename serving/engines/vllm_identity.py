"""The identity LoRA the vLLM engine serves the base model through (see ``vllm_engine``)."""

from __future__ import annotations

import json
from pathlib import Path

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
