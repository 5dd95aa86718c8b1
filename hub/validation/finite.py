"""Find NaN and Inf values in safetensors data without loading or converting it.

An adapter with a single NaN poisons every generation it touches, so it is refused at
upload. Files can be hundreds of MiB, so each tensor is streamed in chunks and checked
on its raw bit patterns: a float is NaN or Inf exactly when its exponent bits are all
ones (with a non-zero or zero mantissa respectively). That needs no float conversion,
works for BF16 and F8, which numpy cannot represent, and never allocates a float copy.

The same pass notes which tensors are all zeros (every bit but the sign clear), so the
validator can warn about an untrained LoRA (B = 0) without reading the data twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from hub.exceptions import UploadRejected
from hub.validation.safetensors_header import TensorInfo

CHUNK_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class _Pattern:
    """How to spot non-finite values of one dtype in its little-endian bit pattern."""

    uint: str  # numpy unsigned type of the same width, little-endian
    exponent: int = 0  # IEEE-style: exponent all ones -> NaN/Inf, split by mantissa
    mantissa: int = 0
    nan_codes: tuple[int, ...] = ()  # formats without Inf that reserve code points for NaN
    zero_mask: int | None = None  # value is zero when bits & zero_mask == 0; None: no zero


_F32 = _Pattern("<u4", exponent=0x7F800000, mantissa=0x007FFFFF, zero_mask=0x7FFFFFFF)

PATTERNS: dict[str, _Pattern] = {
    "F16": _Pattern("<u2", exponent=0x7C00, mantissa=0x03FF, zero_mask=0x7FFF),
    "BF16": _Pattern("<u2", exponent=0x7F80, mantissa=0x007F, zero_mask=0x7FFF),
    "F32": _F32,
    # complex64 is two F32s side by side; a NaN in either part is a NaN.
    "C64": _F32,
    "F64": _Pattern("<u8", exponent=0x7FF0000000000000, mantissa=0x000FFFFFFFFFFFFF, zero_mask=0x7FFFFFFFFFFFFFFF),
    "F8_E5M2": _Pattern("<u1", exponent=0x7C, mantissa=0x03, zero_mask=0x7F),
    # The "fn"/"fnuz" F8 variants and E8M0 have no Inf, only dedicated NaN codes; the
    # "fnuz" ones have no negative zero (0x80 is their NaN) and E8M0 has no zero at all.
    "F8_E4M3": _Pattern("<u1", nan_codes=(0x7F, 0xFF), zero_mask=0x7F),
    "F8_E4M3FNUZ": _Pattern("<u1", nan_codes=(0x80,), zero_mask=0xFF),
    "F8_E5M2FNUZ": _Pattern("<u1", nan_codes=(0x80,), zero_mask=0xFF),
    "F8_E8M0": _Pattern("<u1", nan_codes=(0xFF,)),
}


def check_finite(
    fileobj: BinaryIO, header_size: int, tensors: dict[str, TensorInfo], *, filename: str
) -> frozenset[str]:
    """Refuse the file if any floating tensor holds a NaN or an Inf; return the names of
    the floating tensors whose every value is zero.

    ``header_size`` is ``N``, the JSON header length stored in the file's first 8 bytes,
    so tensor data starts at byte ``8 + N``. Integer and bool tensors are skipped.
    Reads at most :data:`CHUNK_BYTES` at a time.
    """
    data_start = 8 + header_size
    zeros: set[str] = set()
    for info in sorted(tensors.values(), key=lambda t: t.start):
        pattern = PATTERNS.get(info.dtype)
        if pattern is None or info.end == info.start:
            continue
        nans, infs, all_zero = _scan(fileobj, data_start + info.start, info.end - info.start, pattern, filename)
        if nans or infs:
            found = " and ".join(
                f"{count} {kind} value{'s' if count != 1 else ''}"
                for count, kind in ((nans, "NaN"), (infs, "Inf"))
                if count
            )
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` ({info.dtype}) contains {found} out of {info.numel}; "
                "training diverged or the weights were corrupted; "
                "check the training run and upload finite weights",
                file=filename,
                field=info.name,
            )
        if all_zero:
            zeros.add(info.name)
    return frozenset(zeros)


def _scan(fileobj: BinaryIO, offset: int, length: int, pattern: _Pattern, filename: str) -> tuple[int, int, bool]:
    """Count NaNs and Infs in one tensor's bytes, and say whether every value is zero."""
    dtype = np.dtype(pattern.uint)
    # Chunks hold whole elements so a value is never split across two reads.
    chunk = CHUNK_BYTES - CHUNK_BYTES % dtype.itemsize
    nans = infs = 0
    all_zero = pattern.zero_mask is not None
    fileobj.seek(offset)
    remaining = length
    while remaining:
        data = fileobj.read(min(chunk, remaining))
        if not data:
            raise UploadRejected(f"{filename}: the file ended inside its tensor data: it is truncated", file=filename)
        if len(data) % dtype.itemsize:
            # A short read mid-element; top it up so the element boundary is kept.
            data += fileobj.read(dtype.itemsize - len(data) % dtype.itemsize)
            if len(data) % dtype.itemsize:
                raise UploadRejected(
                    f"{filename}: the file ended inside its tensor data: it is truncated", file=filename
                )
        remaining -= len(data)
        bits = np.frombuffer(data, dtype=dtype)
        if all_zero:
            all_zero = not (bits & dtype.type(pattern.zero_mask)).any()
        if pattern.nan_codes:
            nans += int(np.isin(bits, pattern.nan_codes).sum())
            continue
        special = (bits & dtype.type(pattern.exponent)) == pattern.exponent
        if special.any():
            has_mantissa = (bits[special] & dtype.type(pattern.mantissa)) != 0
            n = int(has_mantissa.sum())
            nans += n
            infs += int(special.sum()) - n
    return nans, infs, all_zero
