"""LoRA adapters: real peft output accepted, every inconsistency refused."""

from __future__ import annotations

import pytest
from peft import LoraConfig

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from tests.hub.validation.builders import CONFIG, WEIGHTS, Upload, raw_safetensors, renamed, tensors_bytes

Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


def reject(upload: Upload, base: BaseModelSpec) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        upload.validate(base)
    return info.value


def tensor_total(upload: Upload) -> int:
    from safetensors.torch import load

    return sum(t.numel() for t in load(upload.blobs[WEIGHTS]).values())


def test_plain_lora(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    result = lora.validate(tiny_spec)
    assert result.peft_type == "LORA"
    assert (result.rank, result.alpha) == (4, 8.0)
    assert result.target_modules == ["k_proj", "q_proj", "v_proj"]
    assert result.num_virtual_tokens is None
    assert result.trainable_params == lora.peft_trainable == tensor_total(lora)
    assert result.tensor_count == 2 * 3 * 2  # layers x modules x (A, B)
    assert result.dtypes == ["F32"]
    assert not any("DoRA" in flag for flag in result.flags)


def test_rank_and_alpha_pattern(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(
        LoraConfig(
            task_type="CAUSAL_LM",
            r=4,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj", "down_proj"],
            rank_pattern={"v_proj": 2, "model.layers.1.mlp.down_proj": 6},
            alpha_pattern={"v_proj": 4},
        )
    )
    result = upload.validate(tiny_spec)
    assert result.rank == 4 and result.alpha == 16.0
    assert result.target_modules == ["down_proj", "q_proj", "v_proj"]
    assert result.trainable_params == upload.peft_trainable


def test_rank_pattern_is_honored_for_expected_shapes(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(
        LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"], rank_pattern={"v_proj": 2})
    )
    # Same tensors, but the config no longer says v_proj has rank 2.
    error = reject(upload.with_config(rank_pattern={}), tiny_spec)
    assert (
        "v_proj.lora_A.weight` has shape [2, 64] but adapter_config.json `r` is 4, so expected [4, 64]" in error.message
    )
    error = reject(upload.with_config(rank_pattern={"v_proj": 3}), tiny_spec)
    assert "`rank_pattern` entry `v_proj` is 3" in error.message


def test_wrong_rank_names_tensor_config_and_expected_shape(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(r=8), tiny_spec)
    assert error.file == WEIGHTS
    assert error.message == (
        f"{WEIGHTS}: tensor `base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight` "
        f"has shape [4, 64] but {CONFIG} `r` is 8, so expected [8, 64]"
    )
    assert error.field == "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"


def test_wrong_feature_dimension_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    import torch
    from safetensors.torch import load

    tensors = load(lora.blobs[WEIGHTS])
    tensors[f"{Q0}.lora_B.weight"] = torch.zeros(32, 4)  # q_proj outputs 64, not 32
    error = reject(lora.with_file(WEIGHTS, tensors_bytes(tensors)), tiny_spec)
    assert f"`{Q0}.lora_B.weight` has shape [32, 4]" in error.message and "expected [64, 4]" in error.message


def test_dora(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=4, use_dora=True, target_modules=["q_proj", "v_proj"]))
    assert f"{Q0}.lora_magnitude_vector" in upload.header()
    result = upload.validate(tiny_spec)
    assert "use_dora: DoRA magnitude vectors present" in result.flags
    assert result.trainable_params == upload.peft_trainable
    assert result.tensor_count == 2 * 2 * 3


def test_dora_vectors_without_use_dora_are_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=4, use_dora=True, target_modules=["q_proj"]))
    error = reject(upload.with_config(use_dora=False), tiny_spec)
    assert (
        "lora_magnitude_vector` is a DoRA magnitude vector" in error.message and "`use_dora` is false" in error.message
    )


def test_use_dora_without_vectors_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(use_dora=True), tiny_spec)
    assert "`use_dora` is true" in error.message and error.field.endswith("lora_magnitude_vector")


def test_embedding_lora(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["embed_tokens", "q_proj"]))
    header = upload.header()
    assert header["base_model.model.model.embed_tokens.lora_embedding_A"]["shape"] == [4, 128]
    assert header["base_model.model.model.embed_tokens.lora_embedding_B"]["shape"] == [64, 4]
    result = upload.validate(tiny_spec)
    assert result.target_modules == ["embed_tokens", "q_proj"]
    # peft's save_embedding_layers adds the full base embedding, which peft does not count.
    assert result.trainable_params == tensor_total(upload) == upload.peft_trainable + 128 * 64
    assert any("embed_tokens.base_layer.weight" in flag for flag in result.flags)


def test_embedding_dora_on_tied_lm_head_with_bias(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(
        LoraConfig(task_type="CAUSAL_LM", r=2, use_dora=True, target_modules=["embed_tokens"], lora_alpha=4)
    )
    assert upload.validate(tiny_spec).target_modules == ["embed_tokens"]
    head = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=2, lora_bias=True, target_modules=["lm_head"]))
    assert head.validate(tiny_spec).target_modules == ["lm_head"]


def test_linear_weights_on_an_embedding_are_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["embed_tokens"]))
    emb = "base_model.model.model.embed_tokens"
    upload = renamed(upload, f"{emb}.lora_embedding_A", f"{emb}.lora_A.weight")
    error = reject(upload, tiny_spec)
    assert f"`{emb}.lora_A.weight`" in error.message and "embedding module" in error.message


def test_layers_to_transform_and_regex_targets(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["o_proj"], layers_to_transform=[1]))
    assert upload.validate(tiny_spec).tensor_count == 2
    regex = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=r".*\.0\.mlp\.(up|gate)_proj"))
    assert regex.validate(tiny_spec).target_modules == ["gate_proj", "up_proj"]


def test_all_linear_string_matches_like_peft(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    assert lora.with_config(target_modules="all-linear").validate(tiny_spec).target_modules == [
        "k_proj",
        "q_proj",
        "v_proj",
    ]


def test_layers_to_transform_beyond_the_base_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(layers_to_transform=[0, 1, 5]), tiny_spec)
    assert error.field == "layers_to_transform" and "layer 5" in error.message and "2 layers" in error.message


def test_unknown_target_module_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(target_modules=["q_proj", "k_proj", "v_proj", "foo_proj"]), tiny_spec)
    assert error.file == CONFIG and error.field == "target_modules"
    assert (
        "target module `foo_proj` not found in base model `tiny-llama`; it has: embed_tokens, q_proj" in error.message
    )


def test_regex_target_matching_nothing_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(target_modules=r".*\.attn\.c_attn"), tiny_spec)
    assert "regex `.*\\.attn\\.c_attn` matches no module" in error.message


def test_tensor_for_a_layer_the_base_lacks_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    name = f"{Q0}.lora_A.weight"
    bad = name.replace("layers.0.", "layers.7.")
    error = reject(renamed(lora, name, bad), tiny_spec)
    assert error.field == bad
    assert (
        f"tensor `{bad}` targets module `model.layers.7.self_attn.q_proj`, which base model `tiny-llama` "
        "does not have (it has 2 layers, numbered 0-1)"
    ) in error.message


def test_tensor_for_a_module_the_base_lacks_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    name = f"{Q0}.lora_A.weight"
    error = reject(renamed(lora, name, name.replace("q_proj", "c_attn")), tiny_spec)
    assert "`model.layers.0.self_attn.c_attn`, which base model `tiny-llama` does not have" in error.message


def test_tensor_outside_target_modules_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(target_modules=["q_proj", "v_proj"]), tiny_spec)
    assert "k_proj" in error.field and "does not select it" in error.message


def test_missing_b_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    header = lora.header()
    # Turn B into a same-sized stray tensor so the file stays well-formed.
    header[f"{Q0}.lora_X.weight"] = header.pop(f"{Q0}.lora_B.weight")
    error = reject(lora.with_file(WEIGHTS, raw_safetensors(header, lora.data_section())), tiny_spec)
    assert "lora_X.weight` is not a LORA weight peft would load" in error.message
    only_a = {k: v for k, v in lora.header().items() if k != f"{Q0}.lora_B.weight"}
    from safetensors.torch import load

    tensors = {k: v for k, v in load(lora.blobs[WEIGHTS]).items() if k in only_a}
    error = reject(lora.with_file(WEIGHTS, tensors_bytes(tensors)), tiny_spec)
    assert f"module `model.layers.0.self_attn.q_proj` has `{Q0}.lora_A.weight` but no `lora_B.weight`" in error.message


@pytest.mark.parametrize(
    "new_name",
    [
        "model.layers.0.self_attn.q_proj.lora_A.weight",  # no base_model.model. prefix
        f"{Q0}.lora_A.default.weight",  # a raw state_dict, not save_pretrained output
    ],
)
def test_names_peft_would_not_load_are_refused(lora: Upload, tiny_spec: BaseModelSpec, new_name: str) -> None:
    error = reject(renamed(lora, f"{Q0}.lora_A.weight", new_name), tiny_spec)
    assert error.field == new_name and "save_pretrained" in error.message


def test_integer_weights_are_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    import torch
    from safetensors.torch import load

    tensors = load(lora.blobs[WEIGHTS])
    tensors[f"{Q0}.lora_A.weight"] = tensors[f"{Q0}.lora_A.weight"].to(torch.int32)
    error = reject(lora.with_file(WEIGHTS, tensors_bytes(tensors)), tiny_spec)
    assert "has dtype I32" in error.message


def test_half_precision_adapter(make_adapter, tiny_spec: BaseModelSpec) -> None:
    import torch
    from safetensors.torch import load

    upload = make_adapter(LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"]))
    tensors = {k: v.to(torch.bfloat16) for k, v in load(upload.blobs[WEIGHTS]).items()}
    tensors[f"{Q0}.lora_A.weight"] = tensors[f"{Q0}.lora_A.weight"].to(torch.float16)
    result = upload.with_file(WEIGHTS, tensors_bytes(tensors)).validate(tiny_spec)
    assert result.dtypes == ["BF16", "F16"]
