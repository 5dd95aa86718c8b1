"""Upload-level rules: file names, kinds, required files and sizes."""

from __future__ import annotations

import io

import pytest

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from hub.validation import UploadLimits, validate_adapter
from hub.validation.files import DEFAULT_LIMITS
from tests.hub.validation.builders import CONFIG, WEIGHTS, Upload


def reject(upload: Upload, base: BaseModelSpec, limits: UploadLimits = DEFAULT_LIMITS) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        upload.validate(base, limits)
    return info.value


def test_empty_upload_is_refused(tiny_spec: BaseModelSpec) -> None:
    with pytest.raises(UploadRejected, match="upload is empty") as info:
        validate_adapter({}, {}, tiny_spec)
    assert CONFIG in info.value.message and WEIGHTS in info.value.message


@pytest.mark.parametrize("missing", [CONFIG, WEIGHTS])
def test_missing_required_file_is_refused(lora: Upload, tiny_spec: BaseModelSpec, missing: str) -> None:
    error = reject(lora.without(missing), tiny_spec)
    assert error.message.startswith(f"missing {missing}: upload the folder peft's save_pretrained wrote")
    assert error.file == missing


@pytest.mark.parametrize(
    "name", ["adapter_model.bin", "training_args.bin", "optimizer.pt", "model.PTH", "x.pkl", "a.ckpt"]
)
def test_pickle_files_are_refused_with_conversion_advice(lora: Upload, tiny_spec: BaseModelSpec, name: str) -> None:
    error = reject(lora.with_file(name, b"\x80\x04pickle"), tiny_spec)
    assert error.file == name
    assert name in error.message
    assert "save_pretrained(dir, safe_serialization=True)" in error.message
    assert "safetensors.torch.save_file" in error.message


def test_pickle_weights_instead_of_safetensors_are_refused_as_pickle(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    # The usual mistake: an old save with adapter_model.bin and no safetensors file.
    upload = lora.without(WEIGHTS).with_file("adapter_model.bin", b"\x80\x04")
    error = reject(upload, tiny_spec)
    assert error.file == "adapter_model.bin" and "pickle" in error.message


@pytest.mark.parametrize(
    "name",
    [
        "sub/adapter_config.json",
        "..\\evil.json",
        "../x.json",
        ".hidden.json",
        "a..b.json",
        "nul\x00.json",
        "tab\t.md",
        "",
    ],
)
def test_bad_filenames_are_refused(lora: Upload, tiny_spec: BaseModelSpec, name: str) -> None:
    error = reject(lora.with_file(name, b"{}"), tiny_spec)
    assert error.field == "files"
    assert repr(name) in error.message or f"`{name}`" in error.message


def test_other_safetensors_files_are_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora.with_file("model.safetensors", lora.blobs[WEIGHTS]), tiny_spec)
    assert error.file == "model.safetensors"
    assert f"only safetensors file accepted is {WEIGHTS}" in error.message


@pytest.mark.parametrize("name", ["run.sh", "weights.npz", "Makefile", "notes.html"])
def test_unknown_extensions_are_refused(lora: Upload, tiny_spec: BaseModelSpec, name: str) -> None:
    error = reject(lora.with_file(name, b"x"), tiny_spec)
    assert error.file == name and "not accepted" in error.message


def test_side_files_are_accepted(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    upload = lora
    for name in ("tokenizer.json", "notes.txt", "chat_template.jinja", "tokenizer.model", "README.md"):
        upload = upload.with_file(name, b"side file")
    assert upload.validate(tiny_spec).peft_type == "LORA"


def test_oversize_file_is_refused_with_limit_and_size(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    size = len(lora.blobs[WEIGHTS])
    error = reject(lora, tiny_spec, UploadLimits(max_file_bytes=size - 1))
    assert error.file == WEIGHTS
    assert f"({size} bytes)" in error.message or f"{size} bytes" in error.message
    assert f"{size - 1} bytes" in error.message


def test_oversize_upload_is_refused_with_limit_and_size(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    total = sum(lora.sizes().values())
    error = reject(lora, tiny_spec, UploadLimits(max_upload_bytes=total - 1))
    assert f"{total} bytes" in error.message and f"{total - 1} bytes" in error.message


def test_oversize_config_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    error = reject(lora, tiny_spec, UploadLimits(max_config_bytes=10))
    assert error.file == CONFIG and "10 bytes" in error.message


def test_declared_size_that_disagrees_with_the_data_is_refused(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    sizes = {**lora.sizes(), WEIGHTS: len(lora.blobs[WEIGHTS]) + 100}
    with pytest.raises(UploadRejected) as info:
        validate_adapter(lora.files(), sizes, tiny_spec)
    assert info.value.file == WEIGHTS and "declared" in info.value.message


def test_real_open_files_are_accepted(lora: Upload, tiny_spec: BaseModelSpec, tmp_path) -> None:
    for name, data in lora.blobs.items():
        (tmp_path / name).write_bytes(data)
    handles = {name: open(tmp_path / name, "rb") for name in lora.blobs}  # noqa: SIM115
    try:
        # Leave the files mid-way to prove the validator seeks before reading.
        for handle in handles.values():
            handle.read(3)
        result = validate_adapter(handles, lora.sizes(), tiny_spec)
    finally:
        for handle in handles.values():
            handle.close()
    assert result.target_modules == ["k_proj", "q_proj", "v_proj"]


def test_file_objects_without_sizes_are_measured(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    files = {name: io.BytesIO(data) for name, data in lora.blobs.items()}
    assert validate_adapter(files, {}, tiny_spec).tensor_count == 12
