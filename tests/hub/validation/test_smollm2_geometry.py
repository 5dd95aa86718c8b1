"""The same checks at the real SmolLM2-135M geometry (random weights, built once).

hidden 576, intermediate 1536, 30 layers, 9 heads of 64, 3 kv heads, vocab 49152, tied
embeddings: these are the numbers the hub's bundled base model has, so the expected
shapes and messages here are the ones users will see.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from tests.hub.validation.builders import CONFIG, WEIGHTS, Upload, new_llama, renamed, save_adapter, spec_from_model

SMOLLM2 = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    vocab_size=49152,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
)
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaseModelSpec, dict[str, Upload]]]:
    """The spec and one adapter of each kind, all made on a single ~135M-parameter model."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    model = new_llama(**SMOLLM2)
    spec = spec_from_model(model, NAME)
    root: Path = tmp_path_factory.mktemp("smollm2")
    adapters: dict[str, Upload] = {}
    configs = {
        "lora": LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"]),
        "dora": LoraConfig(task_type="CAUSAL_LM", r=8, use_dora=True, target_modules=["o_proj", "down_proj"]),
        "ia3": IA3Config(task_type="CAUSAL_LM"),
        "prefix": PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=10),
        "prompt": PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
    }
    for key, config in configs.items():
        adapters[key] = save_adapter(model, config, root / key, unload=True)
        assert spec_from_model(model, NAME) == spec, f"{key} left peft layers in the base model"
    del model
    gc.collect()
    yield spec, adapters


def test_spec_matches_smollm2(smollm2) -> None:
    spec, _ = smollm2
    assert spec.head_dim == 64 and spec.num_layers == 30
    assert spec.modules["model.layers.29.self_attn.k_proj"].out_features == 192
    assert spec.modules["model.embed_tokens"].kind == "embedding"


def test_lora(smollm2) -> None:
    spec, adapters = smollm2
    result = adapters["lora"].validate(spec)
    assert (result.rank, result.alpha, result.target_modules) == (16, 32.0, ["k_proj", "q_proj", "v_proj"])
    assert result.tensor_count == 30 * 3 * 2
    # A: 16 x 576 each; B: 576, 192, 192 rows x 16.
    assert result.trainable_params == adapters["lora"].peft_trainable == 30 * 16 * (3 * 576 + 576 + 192 + 192)


def test_wrong_rank_message(smollm2) -> None:
    spec, adapters = smollm2
    with pytest.raises(UploadRejected) as info:
        adapters["lora"].with_config(r=8).validate(spec)
    assert info.value.message == (
        f"{WEIGHTS}: tensor `base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight` has shape "
        f"[16, 576] but {CONFIG} `r` is 8, so expected [8, 576]"
    )


def test_layer_the_base_lacks(smollm2) -> None:
    spec, adapters = smollm2
    old = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    new = old.replace("layers.0.", "layers.40.")
    with pytest.raises(UploadRejected) as info:
        renamed(adapters["lora"], old, new).validate(spec)
    assert (
        f"tensor `{new}` targets module `model.layers.40.self_attn.q_proj`, which base model "
        f"`{NAME}` does not have (it has 30 layers, numbered 0-29)"
    ) in info.value.message


def test_unknown_target(smollm2) -> None:
    spec, adapters = smollm2
    with pytest.raises(UploadRejected) as info:
        adapters["lora"].with_config(target_modules=["q_proj", "k_proj", "v_proj", "c_attn"]).validate(spec)
    assert info.value.message == (
        f"{CONFIG}: target module `c_attn` not found in base model `{NAME}`; it has: embed_tokens, q_proj, "
        "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head"
    )


def test_dora(smollm2) -> None:
    spec, adapters = smollm2
    header = adapters["dora"].header()
    assert header["base_model.model.model.layers.3.mlp.down_proj.lora_magnitude_vector"]["shape"] == [576]
    result = adapters["dora"].validate(spec)
    assert "use_dora: DoRA magnitude vectors present" in result.flags
    assert result.trainable_params == adapters["dora"].peft_trainable


def test_ia3(smollm2) -> None:
    spec, adapters = smollm2
    header = adapters["ia3"].header()
    assert header["base_model.model.model.layers.0.mlp.down_proj.ia3_l"]["shape"] == [1, 1536]
    assert header["base_model.model.model.layers.0.self_attn.v_proj.ia3_l"]["shape"] == [192, 1]
    result = adapters["ia3"].validate(spec)
    assert result.trainable_params == adapters["ia3"].peft_trainable == 30 * (1536 + 192 + 192)


def test_prefix_tuning(smollm2) -> None:
    spec, adapters = smollm2
    config = adapters["prefix"].config()
    assert (config["token_dim"], config["num_attention_heads"], config["num_layers"]) == (192, 3, 30)
    assert adapters["prefix"].header()["prompt_embeddings"]["shape"] == [10, 30 * 2 * 192]
    result = adapters["prefix"].validate(spec)
    assert result.num_virtual_tokens == 10
    assert result.trainable_params == adapters["prefix"].peft_trainable == 10 * 11520


def test_prefix_from_another_model(smollm2) -> None:
    spec, adapters = smollm2
    with pytest.raises(UploadRejected) as info:
        adapters["prefix"].with_config(num_layers=24).validate(spec)
    assert f"`num_layers` is 24 but base model `{NAME}` has 30 layers, so expected 30" in info.value.message


def test_prompt_tuning(smollm2) -> None:
    spec, adapters = smollm2
    assert adapters["prompt"].header()["prompt_embeddings"]["shape"] == [20, 576]
    result = adapters["prompt"].validate(spec)
    assert result.num_virtual_tokens == 20 and result.trainable_params == 20 * 576
