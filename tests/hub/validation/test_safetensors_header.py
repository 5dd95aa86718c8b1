"""The safetensors header parser: every way a header can lie about the file."""

from __future__ import annotations

import io
import struct

import pytest
import torch

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from hub.validation import TensorInfo, read_safetensors_header
from tests.hub.validation.builders import WEIGHTS, Upload, raw_safetensors, tensors_bytes

LIMIT = 16 * 1024**2


def read(data: bytes, limit: int = LIMIT) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    return read_safetensors_header(io.BytesIO(data), len(data), filename=WEIGHTS, max_header_bytes=limit)


def rejected(data: bytes, limit: int = LIMIT) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        read(data, limit)
    assert info.value.file == WEIGHTS
    assert info.value.message.startswith(f"{WEIGHTS}: ")
    return info.value


def two_tensors() -> tuple[dict, bytes]:
    """A header for a [2, 3] F32 tensor `a` followed by a [4] F16 tensor `b`."""
    header = {
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
    }
    return header, bytes(32)


def test_reads_what_safetensors_wrote() -> None:
    data = tensors_bytes({"x": torch.zeros(3, 5, dtype=torch.bfloat16), "y": torch.ones(2, dtype=torch.float64)})
    metadata, tensors = read(data)
    assert metadata == {}
    assert tensors["x"].dtype == "BF16" and tensors["x"].shape == (3, 5)
    assert tensors["y"].end - tensors["y"].start == 16
    assert {tensors["x"].numel, tensors["y"].numel} == {15, 2}


def test_metadata_is_returned() -> None:
    header, data = two_tensors()
    metadata, tensors = read(raw_safetensors({"__metadata__": {"format": "pt"}, **header}, data))
    assert metadata == {"format": "pt"} and set(tensors) == {"a", "b"}


def test_garbage_bytes_are_refused() -> None:
    error = rejected(b"this is definitely not a safetensors file at all" * 3)
    assert "header length" in error.message


def test_too_short_file_is_refused() -> None:
    assert "too short" in rejected(b"\x01\x02").message


def test_header_length_beyond_file_is_refused() -> None:
    data = struct.pack("<Q", 1000) + b'{"a": 1}'
    error = rejected(data)
    assert "1000 bytes" in error.message and "truncated" in error.message


def test_header_length_over_cap_is_refused() -> None:
    header, data = two_tensors()
    error = rejected(raw_safetensors(header, data), limit=16)
    assert "16-byte limit" in error.message


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"[1, 2, 3]", "does not start with a JSON object"),
        (b'{"a": ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"__metadata__": {"format": 1}}', "__metadata__"),
        (b'{"__metadata__": {"format": "pt"}}', "no tensors"),
    ],
)
def test_malformed_header_json_is_refused(payload: bytes, expected: str) -> None:
    assert expected in rejected(struct.pack("<Q", len(payload)) + payload).message


def test_duplicate_tensor_names_are_refused() -> None:
    entry = b'{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    payload = b'{"a": ' + entry + b', "a": ' + entry + b"}"
    error = rejected(struct.pack("<Q", len(payload)) + payload + b"\x00")
    assert "`a` twice" in error.message


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}, "dtype `F33`"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "shape [-1]"),
        ({"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}, "shape '1'"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4]}, "data_offsets [4]"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "end before they begin"),
        ({"dtype": "F32", "shape": [1]}, "no `data_offsets`"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "needs 8 bytes"),
    ],
)
def test_bad_tensor_entries_are_refused(entry: dict, expected: str) -> None:
    error = rejected(raw_safetensors({"t": entry}, bytes(4)))
    assert error.field == "t"
    assert "tensor `t`" in error.message and expected in error.message


def test_offsets_that_overlap_are_refused() -> None:
    header, _ = two_tensors()
    header["b"]["data_offsets"] = [16, 24]
    header["a"]["data_offsets"] = [0, 24]
    error = rejected(raw_safetensors(header, bytes(24)))
    assert "overlaps" in error.message and "`a`" in error.message and "`b`" in error.message


def test_offsets_with_a_gap_are_refused() -> None:
    header, _ = two_tensors()
    header["b"]["data_offsets"] = [28, 36]
    error = rejected(raw_safetensors(header, bytes(36)))
    assert "bytes 24-28" in error.message and "belong to no tensor" in error.message and error.field == "b"


def test_truncated_file_is_refused() -> None:
    header, data = two_tensors()
    full = raw_safetensors(header, data)
    error = rejected(full[:-5])
    assert f"data ends at byte {len(full)} but the file has {len(full) - 5} bytes" in error.message
    assert "truncated" in error.message


def test_trailing_bytes_past_the_last_tensor_are_refused() -> None:
    header, data = two_tensors()
    full = raw_safetensors(header, data + b"hidden payload")
    assert "offsets lie" in rejected(full).message


def test_zero_sized_tensors_are_allowed() -> None:
    header = {
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
    }
    _, tensors = read(raw_safetensors(header, b"\x01\x02"))
    assert tensors["empty"].numel == 0


def test_corrupt_weights_reject_the_whole_upload(lora: Upload, tiny_spec: BaseModelSpec) -> None:
    header = lora.header()
    name = sorted(k for k in header if k != "__metadata__")[0]
    header[name]["data_offsets"][1] += 4
    bad = lora.with_file(WEIGHTS, raw_safetensors(header, lora.data_section()))
    with pytest.raises(UploadRejected) as info:
        bad.validate(tiny_spec)
    assert info.value.file == WEIGHTS and f"`{name}`" in info.value.message


def test_parser_agrees_with_safetensors_on_real_adapter(lora: Upload, tmp_path) -> None:
    from safetensors import safe_open

    path = tmp_path / WEIGHTS
    path.write_bytes(lora.blobs[WEIGHTS])
    _, tensors = read(lora.blobs[WEIGHTS])
    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == set(tensors)
        for name in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
            assert list(tensors[name].shape) == list(f.get_slice(name).get_shape())
            assert tensors[name].dtype == f.get_slice(name).get_dtype()


def test_deeply_nested_header_is_refused() -> None:
    """json.loads recurses per level: 10^5 `[` raised RecursionError, not a refusal (issue 16 fuzzing)."""
    raw = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested too deeply" in rejected(struct.pack("<Q", len(raw)) + raw).message
