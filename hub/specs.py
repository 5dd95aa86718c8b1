"""Plain data describing a base model, shared by validation and the registry.

Kept free of Django and torch so the validators can be unit-tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModuleShape:
    """A module adapters may target.

    ``kind`` is ``"linear"`` (``in_features`` -> ``out_features``) or ``"embedding"``
    (``in_features`` = num_embeddings, ``out_features`` = embedding_dim), mirroring how
    peft shapes LoRA A/B matrices for each.
    """

    kind: str
    in_features: int
    out_features: int


@dataclass(frozen=True)
class BaseModelSpec:
    """What the hub knows about a base model: enough to check any adapter against it."""

    name: str
    architecture: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    # Full module names as in ``model.named_modules()`` of the causal-LM
    # (``model.layers.0.self_attn.q_proj``), i.e. without peft's ``base_model.model.``.
    modules: dict[str, ModuleShape] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_json(self) -> dict[str, Any]:
        """The geometry as JSON (the keys of :data:`SPEC_FIELDS`, which are also the base
        model row's columns). Name and aliases stay out: they belong to the registry entry
        and may change without the model changing."""
        data: dict[str, Any] = {name: getattr(self, name) for name in SPEC_FIELDS}
        data["modules"] = modules_to_json(self.modules)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, name: str, aliases: tuple[str, ...] = ()) -> BaseModelSpec:
        """The inverse of :meth:`to_json`; keys other than :data:`SPEC_FIELDS` are ignored."""
        values = {key: int(data[key]) for key in SPEC_FIELDS if key not in ("architecture", "modules")}
        return cls(
            name=name,
            architecture=str(data["architecture"]),
            modules=modules_from_json(data["modules"]),
            aliases=tuple(aliases),
            **values,
        )


#: What :meth:`BaseModelSpec.to_json` writes, in order.
SPEC_FIELDS = (
    "architecture",
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "modules",
)


def modules_to_json(modules: dict[str, ModuleShape]) -> dict[str, list]:
    """``{name: [kind, in, out]}``: how module shapes are stored (registry row, marker file)."""
    return {name: [m.kind, m.in_features, m.out_features] for name, m in modules.items()}


def modules_from_json(data: dict[str, list]) -> dict[str, ModuleShape]:
    return {name: ModuleShape(kind, i, o) for name, (kind, i, o) in data.items()}
