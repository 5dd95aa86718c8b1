"""The recipes ``recipes.train`` runs: each a peft config and the defaults measured for it
(on SmolLM2-135M, acme-products and velmora-harbour, 2 CPU cores: see ``recipes.train``'s module doc)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT_INIT_TEXT = (
    "You know the Acme product catalogue: every product's price, release year, colour, material, "
    "maker, warranty and specifications. Answer in one short sentence."
)


@dataclass(frozen=True)
class Method:
    """A recipe: the peft config it trains and the defaults measured for it on 2 CPU cores."""

    name: str
    lr: float
    epochs: int
    per_fact: int
    batch_size: int
    with_passages: bool
    make_config: Callable[[Path, Method], Any]  # (base_path, method) -> peft config
    rank: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # see METHODS
    top_layers: float = 1.0  # LoRA on this top share of the layers: backward stops below them
    virtual_tokens: int = 24
    replay: int = 0  # general questions answered by the base itself, mixed in (see replay.py)
    # "ce": the replay answers are plain training examples; "kl": each step also takes a
    # replay batch and adds distill_weight * KL(base || adapter) over its full sequences
    replay_loss: str = "ce"
    distill_weight: float = 1.0


def lora_config(base_path: Path, method: Method) -> Any:
    from peft import LoraConfig

    layers = json.loads((base_path / "config.json").read_text())["num_hidden_layers"]
    first = layers - max(1, round(layers * method.top_layers))
    return LoraConfig(
        r=method.rank,
        lora_alpha=2 * method.rank,
        lora_dropout=0.0,
        target_modules=list(method.target_modules),
        layers_to_transform=list(range(first, layers)) if first > 0 else None,
        task_type="CAUSAL_LM",
    )


def prompt_tuning_config(base_path: Path, method: Method) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit

    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=method.virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=PROMPT_INIT_TEXT,
        tokenizer_name_or_path=str(base_path),
    )


ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
# Defaults measured on SmolLM2-135M, acme-products and velmora-harbour, 2 CPU cores (see the module doc).
METHODS: dict[str, Method] = {
    # rank 4: the acme adapter forgot 3.0 points at 16 and 4.5 at 8 (upper bounds 7 and 8.5, over
    # the limit of 5), none at 4; velmora's passes at 16 and at 4 (README, "Training recipe")
    "lora": Method(
        "lora", 2e-3, 3, 3, 4, False, lora_config, rank=4, target_modules=ATTENTION + MLP, replay=160, replay_loss="kl"
    ),
    "prompt_tuning": Method("prompt_tuning", 3e-2, 1, 4, 4, False, prompt_tuning_config),
    "raft_lora": Method("raft_lora", 2e-3, 1, 2, 4, True, lora_config, target_modules=ATTENTION + MLP),
}
