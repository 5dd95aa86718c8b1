"""Build real peft LoRA adapters for a SmolLM2-135M-shaped base, without its weights.

Run as a separate process by the upload benchmark (``python bench/lora.py OUT --count N``)
so that the benchmark process itself has not imported torch or peft when it sends its
first upload: that first request's cost (importing peft) is what a fresh web worker pays.

The base model is built on the meta device from a ``config.json`` with SmolLM2-135M's
geometry, so no weights are allocated. peft wraps it, the LoRA parameters are replaced by
real random tensors, and peft's own ``save_pretrained`` writes the folder: the files are
exactly what a training job would upload. Writes into ``OUT``::

    base/config.json     the base model's config (also its registered local_path)
    spec.json            hub.basemodels.spec_from_folder() of it, as JSON
    lora-000/ ...        one adapter folder per seed (adapter_config.json,
                         adapter_model.safetensors, README.md)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE_NAME = "smollm2-135m-instruct"
BASE_ALIAS = "HuggingFaceTB/SmolLM2-135M-Instruct"
# SmolLM2-135M(-Instruct)'s config.json, minus what does not affect module shapes.
SMOLLM2_135M: dict[str, Any] = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(out: Path, *, count: int, rank: int, target_modules: list[str]) -> dict[str, Any]:
    """Write the base config, its spec and ``count`` LoRA folders (seeds 0..count-1)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT))
    from hub.basemodels import spec_from_folder

    base_dir = out / "base"
    config = LlamaConfig(**SMOLLM2_135M, architectures=["LlamaForCausalLM"], name_or_path=BASE_ALIAS)
    config.save_pretrained(base_dir)
    spec = spec_from_folder(base_dir, name=BASE_NAME, aliases=(BASE_ALIAS,))
    spec_json = {"name": spec.name, "aliases": list(spec.aliases), **spec.to_json()}
    (out / "spec.json").write_text(json.dumps(spec_json))

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    lora = LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, lora)
    trainable = [(name, p.shape) for name, p in peft_model.named_parameters() if p.requires_grad]

    folders = []
    for seed in range(count):
        generator = torch.Generator().manual_seed(seed)
        for name, shape in trainable:
            # Meta parameters cannot take data in place; swap in real ones (LoRA only).
            parent, _, leaf = name.rpartition(".")
            tensor = torch.randn(shape, generator=generator) * 0.02
            setattr(peft_model.get_submodule(parent), leaf, torch.nn.Parameter(tensor))
        folder = out / f"lora-{seed:03d}"
        peft_model.save_pretrained(folder)
        folders.append(folder.name)
    weights = out / folders[0] / "adapter_model.safetensors"
    return {
        "rank": rank,
        "target_modules": target_modules,
        "tensors": len(trainable),
        "trainable_params": sum(int(torch.Size(s).numel()) for _, s in trainable),
        "weights_bytes": weights.stat().st_size,
        "folder_bytes": sum(f.stat().st_size for f in (out / folders[0]).iterdir()),
        "folders": folders,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=11)
    parser.add_argument("--rank", type=int, default=8, help="r=8 on all 7 linear modules: ~10 MB F32")
    parser.add_argument("--target-modules", default=",".join(ALL_LINEAR))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # peft warns about the meta-device base it cannot see; irrelevant for saved adapters.
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = build(args.out, count=args.count, rank=args.rank, target_modules=args.target_modules.split(","))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
