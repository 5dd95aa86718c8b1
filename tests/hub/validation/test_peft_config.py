"""adapter_config.json: peft's own checks plus the hub's policy."""

from __future__ import annotations

import json

import pytest

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from tests.hub.validation.builders import CONFIG, DELETE, Upload


def reject(upload: Upload, base: BaseModelSpec) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        upload.validate(base)
    assert info.value.file == CONFIG
    assert CONFIG in info.value.message
    return info.value


def test_unknown_peft_type_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(peft_type="FOO"), tiny_spec)
    assert "unknown peft_type `FOO`; supported: LORA, IA3, PROMPT_TUNING, P_TUNING, PREFIX_TUNING" in error.message
    assert error.field == "peft_type"


@pytest.mark.parametrize("peft_type", ["LOHA", "ADALORA", "VERA"])
def test_peft_type_known_to_peft_but_unsupported_is_refused(
    lora: Upload, tiny_spec: BaseModelSpec, peft_type: str
) -> None:
    error = reject(lora.with_config(peft_type=peft_type), tiny_spec)
    assert f"peft_type `{peft_type}` is not supported yet" in error.message and error.field == "peft_type"


def test_missing_peft_type_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(peft_type=DELETE), tiny_spec)
    assert "no `peft_type`" in error.message


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe\x00", "not valid UTF-8"),
    ],
)
def test_unparseable_config_is_refused(lora: Upload, tiny_spec: BaseModelSpec, payload: bytes, expected: str) -> None:
    assert expected in reject(lora.with_file(CONFIG, payload), tiny_spec).message


@pytest.mark.parametrize(
    "auto_mapping",
    [
        {"base_model_class": "Evil", "parent_library": "transformers_modules.someone.modeling_evil"},
        {"base_model_class": "Evil", "parent_library": "evil_package"},
        {"base_model_class": "os.system", "parent_library": "transformers"},
        "transformers.LlamaForCausalLM",
    ],
)
def test_auto_mapping_to_custom_code_is_refused(lora: Upload, tiny_spec: BaseModelSpec, auto_mapping) -> None:
    error = reject(lora.with_config(task_type=None, auto_mapping=auto_mapping), tiny_spec)
    assert error.field == "auto_mapping" and "makes peft import custom code" in error.message


def test_auto_mapping_to_a_transformers_class_is_accepted(make_adapter, tiny_spec: BaseModelSpec) -> None:
    # What peft itself writes when the adapter was made without a task type.
    from peft import LoraConfig

    upload = make_adapter(LoraConfig(r=4, target_modules=["q_proj"]))
    assert upload.config()["auto_mapping"]["parent_library"].startswith("transformers.")
    assert upload.validate(tiny_spec).config["auto_mapping"]["base_model_class"] == "LlamaForCausalLM"


@pytest.mark.parametrize("field, value", [("modules_to_save", ["lm_head"]), ("trainable_token_indices", [1, 2])])
def test_full_module_copies_are_refused(lora: Upload, tiny_spec: BaseModelSpec, field: str, value) -> None:
    error = reject(lora.with_config(**{field: value}), tiny_spec)
    assert error.field == field and f"retrain without `{field}`" in error.message


def test_real_modules_to_save_adapter_is_refused(make_adapter, tiny_spec: BaseModelSpec) -> None:
    from peft import LoraConfig

    upload = make_adapter(
        LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj"], modules_to_save=["lm_head"])
    )
    assert reject(upload, tiny_spec).field == "modules_to_save"


@pytest.mark.parametrize("task_type", ["SEQ_CLS", "SEQ_2_SEQ_LM", "TOKEN_CLS"])
def test_non_causal_task_type_is_refused(lora: Upload, tiny_spec: BaseModelSpec, task_type: str) -> None:
    error = reject(lora.with_config(task_type=task_type), tiny_spec)
    assert f"`task_type` is `{task_type}`" in error.message and 'task_type="CAUSAL_LM"' in error.message


def test_peft_post_init_errors_become_rejections(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    # peft's LoraConfig.__post_init__ refuses layers_to_transform with a regex target.
    error = reject(lora.with_config(target_modules=".*q_proj", layers_to_transform=[0]), tiny_spec)
    assert "peft rejects this LORA config" in error.message and "layers_to_transform" in error.message


def test_wrongly_typed_value_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(r="eight"), tiny_spec)
    assert error.field == "r" and "'eight'" in error.message


def test_invalid_regex_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(target_modules="(q_proj"), tiny_spec)
    assert error.field == "target_modules" and "not a valid regular expression" in error.message


def test_empty_target_modules_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    assert reject(lora.with_config(target_modules=[]), tiny_spec).field == "target_modules"


def test_unknown_key_that_is_set_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(use_future_trick=True), tiny_spec)
    assert error.field == "use_future_trick" and "does not know it" in error.message


def test_unknown_key_that_is_unset_is_only_flagged(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    result = lora.with_config(use_future_trick=False).validate(tiny_spec)
    assert any("use_future_trick" in flag for flag in result.flags)


def test_config_comes_back_json_safe(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    result = lora.validate(tiny_spec)
    assert json.loads(json.dumps(result.config)) == result.config
    assert result.config["target_modules"] == ["k_proj", "q_proj", "v_proj"]  # peft's set, sorted
    assert result.config["peft_type"] == "LORA" and result.config["r"] == 4


def test_foreign_base_model_name_is_flagged_not_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    flags = lora.with_config(base_model_name_or_path="meta-llama/Llama-3-8B").validate(tiny_spec).flags
    assert any("meta-llama/Llama-3-8B" in flag for flag in flags)
    own = lora.with_config(base_model_name_or_path="test/tiny-llama").validate(tiny_spec).flags
    assert not any("base_model_name_or_path" in flag for flag in own)


@pytest.mark.parametrize("pattern", [r"(.*)*x", r"(a+)+$", r".*.*.*.*.*\.q_proj"])
def test_regex_that_could_backtrack_forever_is_refused(lora: Upload, tiny_spec: BaseModelSpec, pattern: str) -> None:
    error = reject(lora.with_config(target_modules=pattern), tiny_spec)
    assert error.field == "target_modules" and "repetition" in error.message


def test_rank_pattern_keys_are_checked_as_regexes(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_config(rank_pattern={"(q|k)+)": 2}), tiny_spec)
    assert error.field == "rank_pattern" and "not a valid regular expression" in error.message


@pytest.mark.parametrize("value", [float("-inf"), 1.5, {}], ids=["-inf", "float", "object"])
def test_layers_to_transform_of_the_wrong_type_is_refused(lora: Upload, tiny_spec: BaseModelSpec, value) -> None:
    """Found by tests/hub/test_fuzz.py: a float crashed the check with TypeError."""
    error = reject(lora.with_config(layers_to_transform=value), tiny_spec)
    assert error.field == "layers_to_transform"


def test_config_with_a_huge_integer_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    """json.loads raises a bare ValueError for integers past 4300 digits (issue 16 fuzzing)."""
    upload = lora.with_file(CONFIG, b'{"peft_type": "LORA", "r": ' + b"9" * 5000 + b"}")
    assert "not a config peft wrote" in reject(upload, tiny_spec).message
