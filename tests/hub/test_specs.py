"""``BaseModelSpec`` as JSON: the one mapping the marker file, the registry row and the bench use."""

from __future__ import annotations

import pytest

from hub.specs import SPEC_FIELDS, BaseModelSpec, ModuleShape

SPEC = BaseModelSpec(
    name="tiny",
    architecture="LlamaForCausalLM",
    hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=128,
    modules={
        "model.layers.0.self_attn.q_proj": ModuleShape("linear", 64, 64),
        "model.embed_tokens": ModuleShape("embedding", 128, 64),
    },
    aliases=("org/Tiny",),
)


def test_to_json_is_the_geometry_without_name_or_aliases():
    data = SPEC.to_json()
    assert list(data) == list(SPEC_FIELDS)
    assert data["modules"] == {
        "model.layers.0.self_attn.q_proj": ["linear", 64, 64],
        "model.embed_tokens": ["embedding", 128, 64],
    }
    assert (data["hidden_size"], data["num_key_value_heads"]) == (64, 2)


def test_from_json_inverts_to_json_and_takes_name_and_aliases_apart():
    assert BaseModelSpec.from_json(SPEC.to_json(), name="tiny", aliases=("org/Tiny",)) == SPEC
    renamed = BaseModelSpec.from_json({**SPEC.to_json(), "name": "ignored"}, name="other")
    assert (renamed.name, renamed.aliases, renamed.modules) == ("other", (), SPEC.modules)


def test_from_json_names_a_missing_key():
    data = SPEC.to_json()
    del data["vocab_size"]
    with pytest.raises(KeyError, match="vocab_size"):
        BaseModelSpec.from_json(data, name="tiny")
