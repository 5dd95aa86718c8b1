"""Prompt tuning, P-tuning and prefix tuning: one `prompt_embeddings` tensor each."""

from __future__ import annotations

import pytest
import torch
from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from tests.hub.validation.builders import CONFIG, WEIGHTS, Upload, tensors_bytes

# Tiny model: hidden 64, 4 heads, 2 kv heads of 16 -> kv width 32, 2 layers.
KV_DIM = 2 * 16


def reject(upload: Upload, base: BaseModelSpec) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        upload.validate(base)
    return info.value


def test_prompt_tuning(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=7))
    assert upload.header()["prompt_embeddings"]["shape"] == [7, 64]
    result = upload.validate(tiny_spec)
    assert result.peft_type == "PROMPT_TUNING"
    assert (result.rank, result.alpha, result.target_modules) == (None, None, [])
    assert result.num_virtual_tokens == 7
    assert result.trainable_params == upload.peft_trainable == 7 * 64
    assert result.tensor_count == 1


def test_p_tuning(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, encoder_hidden_size=16))
    result = upload.validate(tiny_spec)
    assert result.peft_type == "P_TUNING" and result.num_virtual_tokens == 5
    # peft saves the encoder's output, not the encoder, so fewer params than it trained.
    assert result.trainable_params == 5 * 64 < upload.peft_trainable


def test_prefix_tuning_uses_key_value_width(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    config = upload.config()
    # What peft 0.21.2 writes for grouped-query attention.
    assert (config["token_dim"], config["num_attention_heads"], config["num_layers"]) == (KV_DIM, 2, 2)
    assert upload.header()["prompt_embeddings"]["shape"] == [6, 2 * 2 * KV_DIM]
    result = upload.validate(tiny_spec)
    assert result.peft_type == "PREFIX_TUNING" and result.num_virtual_tokens == 6
    assert result.trainable_params == upload.peft_trainable == 6 * 2 * 2 * KV_DIM


def test_prefix_tuning_with_projection_saves_the_same_shape(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(
        PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=8)
    )
    assert upload.validate(tiny_spec).trainable_params == 3 * 2 * 2 * KV_DIM


def test_num_layers_mismatch_names_both(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    error = reject(upload.with_config(num_layers=30), tiny_spec)
    assert error.file == CONFIG and error.field == "num_layers"
    assert "`num_layers` is 30 but base model `tiny-llama` has 2 layers, so expected 2" in error.message


def test_prefix_token_dim_of_full_hidden_size_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    error = reject(upload.with_config(token_dim=64), tiny_spec)
    assert error.field == "token_dim" and "`token_dim` is 64" in error.message and "expected 32" in error.message
    assert "grouped-query" in error.message


def test_prefix_num_attention_heads_mismatch_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    error = reject(upload.with_config(num_attention_heads=4), tiny_spec)
    assert error.field == "num_attention_heads" and "expected 2" in error.message


def test_prompt_token_dim_mismatch_names_both(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=7))
    error = reject(upload.with_config(token_dim=576), tiny_spec)
    assert "`token_dim` is 576 but base model `tiny-llama` has hidden size 64, so expected 64" in error.message


def test_prompt_embedding_shape_mismatch_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=7))
    error = reject(upload.with_config(num_virtual_tokens=8), tiny_spec)
    assert error.file == WEIGHTS and error.field == "prompt_embeddings"
    assert "has shape [7, 64] but adapter_config.json num_virtual_tokens is 8" in error.message
    assert "expected [8, 64]" in error.message


def test_prefix_shape_mismatch_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    wrong = upload.with_file(WEIGHTS, tensors_bytes({"prompt_embeddings": torch.zeros(6, 2 * 2 * 64)}))
    error = reject(wrong, tiny_spec)
    assert "has shape [6, 256]" in error.message and "expected [6, 128]" in error.message


def test_extra_tensors_are_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    extra = {"prompt_embeddings": torch.zeros(2, 64), "prompt_encoder.mlp.weight": torch.zeros(3, 3)}
    error = reject(upload.with_file(WEIGHTS, tensors_bytes(extra)), tiny_spec)
    assert error.field == "prompt_encoder.mlp.weight" and "holds only `prompt_embeddings`" in error.message


def test_seq2seq_submodules_are_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    assert reject(upload.with_config(num_transformer_submodules=2), tiny_spec).field == "num_transformer_submodules"


def test_bad_num_virtual_tokens_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    error = reject(upload.with_config(num_virtual_tokens=0), tiny_spec)
    assert error.field == "num_virtual_tokens" and error.file == CONFIG
