"""IA3: one scaling vector per module, shaped by whether the module is feedforward."""

from __future__ import annotations

import pytest
from peft import IA3Config

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from tests.hub.validation.builders import CONFIG, WEIGHTS, renamed

PREFIX = "base_model.model.model.layers.0"


def test_default_ia3(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(IA3Config(task_type="CAUSAL_LM"))
    header = upload.header()
    # peft's shapes: feedforward modules scale inputs [1, in]; others scale outputs [out, 1].
    assert header[f"{PREFIX}.mlp.down_proj.ia3_l"]["shape"] == [1, 96]
    assert header[f"{PREFIX}.self_attn.k_proj.ia3_l"]["shape"] == [32, 1]
    result = upload.validate(tiny_spec)
    assert result.peft_type == "IA3"
    assert (result.rank, result.alpha, result.num_virtual_tokens) == (None, None, None)
    assert result.target_modules == ["down_proj", "k_proj", "v_proj"]
    assert result.trainable_params == upload.peft_trainable == 2 * (96 + 32 + 32)
    assert result.config["feedforward_modules"] == ["down_proj"]


def test_ia3_custom_feedforward(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(
        IA3Config(task_type="CAUSAL_LM", target_modules=["q_proj", "up_proj"], feedforward_modules=["up_proj"])
    )
    assert upload.header()[f"{PREFIX}.mlp.up_proj.ia3_l"]["shape"] == [1, 64]
    assert upload.validate(tiny_spec).trainable_params == upload.peft_trainable


def test_ia3_feedforward_mismatch_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(IA3Config(task_type="CAUSAL_LM"))
    # down_proj's vector is [1, 96]; declared non-feedforward it would have to be [64, 1].
    with pytest.raises(UploadRejected) as info:
        upload.with_config(feedforward_modules=[]).validate(tiny_spec)
    assert info.value.file == WEIGHTS
    assert f"`{PREFIX}.mlp.down_proj.ia3_l` has shape [1, 96]" in info.value.message
    assert "expected [64, 1]" in info.value.message and "feedforward_modules" in info.value.message


def test_ia3_unknown_target_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(IA3Config(task_type="CAUSAL_LM"))
    with pytest.raises(UploadRejected) as info:
        upload.with_config(target_modules=["k_proj", "v_proj", "down_proj", "fc2"]).validate(tiny_spec)
    assert info.value.file == CONFIG and "target module `fc2` not found" in info.value.message


def test_ia3_on_an_embedding_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    upload = make_adapter(IA3Config(task_type="CAUSAL_LM", target_modules=["v_proj"], feedforward_modules=[]))
    old = f"{PREFIX}.self_attn.v_proj.ia3_l"
    bad = renamed(upload, old, "base_model.model.model.embed_tokens.ia3_l").with_config(
        target_modules=["v_proj", "embed_tokens"]
    )
    with pytest.raises(UploadRejected, match="IA3 adapts linear modules only") as info:
        bad.validate(tiny_spec)
    assert info.value.field == "base_model.model.model.embed_tokens.ia3_l"
