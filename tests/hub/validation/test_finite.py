"""NaN/Inf detection on raw bit patterns, streamed in chunks."""

from __future__ import annotations

import io
import struct

import pytest
import torch

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from hub.validation import check_finite, read_safetensors_header
from hub.validation import finite as finite_module
from tests.hub.validation.builders import WEIGHTS, Upload, raw_safetensors, tensors_bytes

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def check(data: bytes) -> None:
    fileobj = io.BytesIO(data)
    _, tensors = read_safetensors_header(fileobj, len(data), filename=WEIGHTS, max_header_bytes=1024**2)
    (header_size,) = struct.unpack("<Q", data[:8])
    check_finite(fileobj, header_size, tensors, filename=WEIGHTS)


def poisoned(dtype: torch.dtype, nans: int, infs: int, size: int = 1000) -> torch.Tensor:
    values = torch.randn(size).to(dtype)
    values[3 : 3 + nans] = float("nan")
    values[500 : 500 + infs] = float("inf")
    values[500] = float("-inf") if infs else values[500]
    return values


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_finite_tensors_pass(dtype: torch.dtype) -> None:
    info = torch.finfo(dtype)
    # The largest, smallest and subnormal values sit right next to the Inf/NaN patterns.
    extremes = torch.tensor([0.0, -0.0, info.max, info.min, info.tiny, info.tiny / 4], dtype=dtype)
    check(tensors_bytes({"ok": poisoned(dtype, 0, 0), "extremes": extremes}))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nan_is_found_and_counted(dtype: torch.dtype) -> None:
    with pytest.raises(UploadRejected) as info:
        check(tensors_bytes({"fine": torch.zeros(4, dtype=dtype), "bad.lora_A.weight": poisoned(dtype, 3, 0)}))
    assert info.value.field == "bad.lora_A.weight" and info.value.file == WEIGHTS
    assert "tensor `bad.lora_A.weight`" in info.value.message
    assert "3 NaN values" in info.value.message and "Inf" not in info.value.message


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_inf_is_found_and_counted(dtype: torch.dtype) -> None:
    with pytest.raises(UploadRejected) as info:
        check(tensors_bytes({"bad": poisoned(dtype, 0, 2)}))
    assert "2 Inf values" in info.value.message and "NaN" not in info.value.message


def test_nan_and_inf_together_are_both_reported() -> None:
    with pytest.raises(UploadRejected, match=r"1 NaN value and 1 Inf value out of 1000"):
        check(tensors_bytes({"bad": poisoned(torch.float16, 1, 1)}))


def test_overflowed_f16_from_a_large_value_is_inf() -> None:
    # A classic mixed-precision failure: a value past F16's range becomes Inf on save.
    with pytest.raises(UploadRejected, match="1 Inf value"):
        check(tensors_bytes({"w": torch.tensor([70000.0, 1.0]).to(torch.float16)}))


@pytest.mark.parametrize(
    "dtype, codes, nans, infs",
    [
        ("F8_E4M3", [0x00, 0x7E, 0x7F, 0xFF, 0x80], 2, 0),  # 0x7E is 448, the largest finite value
        ("F8_E5M2", [0x7B, 0x7C, 0xFC, 0x7D, 0x01], 1, 2),
    ],
)
def test_f8_special_codes(dtype: str, codes: list[int], nans: int, infs: int) -> None:
    header = {"t": {"dtype": dtype, "shape": [len(codes)], "data_offsets": [0, len(codes)]}}
    with pytest.raises(UploadRejected) as info:
        check(raw_safetensors(header, bytes(codes)))
    if nans:
        assert f"{nans} NaN" in info.value.message
    if infs:
        assert f"{infs} Inf" in info.value.message


def test_integer_tensors_are_not_scanned() -> None:
    check(tensors_bytes({"ids": torch.full((8,), -1, dtype=torch.int32)}))  # 0xFFFFFFFF would be NaN as F32


def test_values_on_chunk_boundaries_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny chunks: the tensor is read in many pieces, and the NaN sits in the last one.
    monkeypatch.setattr(finite_module, "CHUNK_BYTES", 10)
    values = torch.zeros(33, dtype=torch.float32)
    values[32] = float("nan")
    values[8] = float("inf")
    with pytest.raises(UploadRejected, match="1 NaN value and 1 Inf value out of 33"):
        check(tensors_bytes({"a": torch.ones(3), "w": values}))


def test_nan_in_a_real_adapter_rejects_the_upload(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    from safetensors.torch import load

    tensors = load(lora.blobs[WEIGHTS])
    name = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"
    tensors[name][0, 0] = float("nan")
    with pytest.raises(UploadRejected) as info:
        lora.with_file(WEIGHTS, tensors_bytes(tensors)).validate(tiny_spec)
    assert info.value.field == name and "1 NaN value" in info.value.message
