"""Parse and check a safetensors header ourselves, from bytes.

The ``safetensors`` library would reject a bad file too, but with messages like
"invalid header" that a user cannot act on, and ``torch.load``/pickle must never touch
an upload. The format (https://github.com/huggingface/safetensors#format) is small
enough to check exactly: an 8-byte little-endian header length ``N``, ``N`` bytes of
JSON, then the data section that the JSON's ``data_offsets`` must tile with no gaps.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from hub.exceptions import UploadRejected

# Bits per element of every dtype the safetensors format defines. Sub-byte types (F4,
# F6) are packed, so a tensor's byte length is numel * bits / 8 and must be whole.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

_LENGTH_PREFIX = 8
_MAX_DIMS = 16


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header.

    ``start``/``end`` are byte offsets relative to the data section, which begins at
    ``8 + N`` in the file (``N`` being the header length stored in the first 8 bytes).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_safetensors_header(
    fileobj: BinaryIO, file_size: int, *, filename: str, max_header_bytes: int
) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """Read and check the header of a safetensors file without loading any tensor.

    Returns ``(metadata, tensors)``: the optional ``__metadata__`` string map and every
    tensor's :class:`TensorInfo` keyed by name. Raises :class:`UploadRejected` when the
    header is malformed or its offsets do not describe the file exactly.
    """
    _, metadata, tensors = parse_safetensors_header(
        fileobj, file_size, filename=filename, max_header_bytes=max_header_bytes
    )
    return metadata, tensors


def parse_safetensors_header(
    fileobj: BinaryIO, file_size: int, *, filename: str, max_header_bytes: int
) -> tuple[int, dict[str, str], dict[str, TensorInfo]]:
    """Like :func:`read_safetensors_header`, also returning the header length ``N``.

    ``N`` is what :func:`~hub.validation.finite.check_finite` needs to find the data.
    """
    if file_size < _LENGTH_PREFIX:
        raise _reject(
            filename,
            f"the file is {file_size} bytes, too short to be safetensors (it must start "
            "with an 8-byte header length); re-save it with safetensors",
        )
    fileobj.seek(0)
    prefix = fileobj.read(_LENGTH_PREFIX)
    if len(prefix) != _LENGTH_PREFIX:
        raise _reject(filename, "could not read the 8-byte header length: the file is truncated")
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > max_header_bytes:
        raise _reject(
            filename,
            f"header length is {header_len} bytes, over the {max_header_bytes}-byte limit; "
            "this is not a safetensors file, or it is corrupt",
        )
    if header_len > file_size - _LENGTH_PREFIX:
        raise _reject(
            filename,
            f"header length says {header_len} bytes but only {file_size - _LENGTH_PREFIX} "
            "bytes follow: the file is truncated or is not safetensors",
        )
    raw = fileobj.read(header_len)
    if len(raw) != header_len:
        raise _reject(filename, "the header is cut short: the file is truncated")
    header = _decode_header(raw, filename=filename)

    metadata = _check_metadata(header.pop("__metadata__", None), filename=filename)
    if not header:
        raise _reject(filename, "the file holds no tensors; upload the adapter weights")
    tensors = {name: _check_entry(name, entry, filename=filename) for name, entry in header.items()}

    data_len = file_size - _LENGTH_PREFIX - header_len
    _check_layout(tensors, data_len=data_len, file_size=file_size, header_len=header_len, filename=filename)
    return header_len, metadata, tensors


def _decode_header(raw: bytes, *, filename: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _reject(
            filename,
            f"the header is not valid UTF-8 (byte {exc.start}): the file is corrupt or not safetensors",
        ) from None
    if not text.startswith("{"):
        # The spec requires the JSON to start right away; anything else means garbage.
        raise _reject(filename, "the header does not start with a JSON object: the file is corrupt or not safetensors")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise _reject(
            filename,
            f"the header lists `{exc.key}` twice; readers disagree on which entry wins, so re-save the file",
        ) from None
    except ValueError as exc:
        raise _reject(filename, f"the header is not valid JSON ({exc}): the file is corrupt") from None
    except RecursionError:  # json nests by recursion; a header of 10^5 `[` is not a tensor table
        raise _reject(filename, "the header's JSON is nested too deeply: the file is corrupt") from None
    if not isinstance(header, dict):
        raise _reject(filename, "the header is JSON but not an object: the file is corrupt")
    return header


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last duplicate; another reader could keep the first
    # and see different tensors than we checked.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _check_metadata(value: Any, *, filename: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise UploadRejected(
            f"{filename}: header `__metadata__` must map strings to strings; re-save the file with safetensors",
            file=filename,
            field="__metadata__",
        )
    return dict(value)


def _check_entry(name: str, entry: Any, *, filename: str) -> TensorInfo:
    def bad(what: str) -> UploadRejected:
        return UploadRejected(f"{filename}: tensor `{name}` {what}", file=filename, field=name)

    if not isinstance(entry, dict):
        raise bad("has a header entry that is not an object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise bad(f"has no {', '.join(f'`{k}`' for k in missing)} in the header")

    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise bad(f"has dtype `{dtype}`, which safetensors does not define; expected one of {', '.join(DTYPE_BITS)}")

    shape = entry["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad(f"has shape {shape!r}; expected a list of at most {_MAX_DIMS} non-negative integers")

    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise bad(f"has data_offsets {offsets!r}; expected [begin, end] with non-negative integers")
    start, end = offsets
    if end < start:
        raise bad(f"has data_offsets [{start}, {end}] that end before they begin")

    numel = math.prod(shape)
    bits = numel * DTYPE_BITS[dtype]
    if bits % 8:
        raise bad(f"has {numel} {dtype} elements, which do not fill whole bytes")
    expected = bits // 8
    if end - start != expected:
        raise bad(
            f"has data_offsets [{start}, {end}] ({end - start} bytes) but shape {shape} of {dtype} "
            f"needs {expected} bytes: the header's offsets lie"
        )
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), start=start, end=end)


def _check_layout(
    tensors: dict[str, TensorInfo], *, data_len: int, file_size: int, header_len: int, filename: str
) -> None:
    data_start = _LENGTH_PREFIX + header_len
    last_end = max(t.end for t in tensors.values())
    if last_end != data_len:
        raise UploadRejected(
            f"{filename}: header says data ends at byte {data_start + last_end} but the file has "
            f"{file_size} bytes: the file is truncated or its offsets lie; upload the file again",
            file=filename,
        )
    # safetensors requires the tensors to tile the data section exactly: no byte is
    # unaccounted for (hidden payloads) and no byte belongs to two tensors (aliasing).
    position = 0
    previous: TensorInfo | None = None
    for info in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if info.start < position:
            assert previous is not None
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` (bytes {info.start}-{info.end}) overlaps tensor "
                f"`{previous.name}` (bytes {previous.start}-{previous.end}): the header's offsets lie",
                file=filename,
                field=info.name,
            )
        if info.start > position:
            raise UploadRejected(
                f"{filename}: bytes {position}-{info.start} of the data section belong to no tensor "
                f"(gap before `{info.name}`): the header's offsets lie",
                file=filename,
                field=info.name,
            )
        position = info.end
        previous = info


def _reject(filename: str, what: str) -> UploadRejected:
    return UploadRejected(f"{filename}: {what}", file=filename)
