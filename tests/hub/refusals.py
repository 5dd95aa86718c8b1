"""Ways an adapter upload is refused, shared by the REST and the HF-protocol upload tests:
``REFUSALS[name] = (build files from a LoRA folder, expected status, words the message must contain)``."""

from __future__ import annotations

import json
import struct

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tests.utils import edit_config, folder_files


def rewrite_header(blob: bytes, edit) -> bytes:
    """Parse a safetensors file's header, let ``edit`` change it, keep the data as is."""
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    data = blob[8 + length :]
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def tensors_of(folder) -> dict[str, np.ndarray]:
    return st_load((folder / "adapter_model.safetensors").read_bytes())


def nan_weights(folder) -> bytes:
    tensors = tensors_of(folder)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[3] = np.nan
    return st_save(tensors)


def wrong_shape(folder) -> bytes:
    tensors = tensors_of(folder)
    name = next(n for n in sorted(tensors) if "lora_A" in n)
    tensors[name] = np.zeros((tensors[name].shape[0], 48), dtype=tensors[name].dtype)
    return st_save(tensors)


def lying_offsets(folder) -> bytes:
    def edit(header):
        name = sorted(k for k in header if k != "__metadata__")[0]
        begin, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [begin, end + 64]

    return rewrite_header((folder / "adapter_model.safetensors").read_bytes(), edit)


def truncated(folder) -> bytes:
    return (folder / "adapter_model.safetensors").read_bytes()[:-100]


REFUSALS = {
    # name: (build files from lora_dir, expected status, words the message must contain)
    "pickle_bin": (
        lambda d: folder_files(d, adapter_model__safetensors=None, adapter_model__bin=b"\x80\x04pickle"),
        422,
        ["adapter_model.bin", "safetensors"],
    ),
    "corrupt_header": (
        lambda d: folder_files(d, adapter_model__safetensors=b"\xff" * 64),
        422,
        ["adapter_model.safetensors", "header"],
    ),
    "lying_offsets": (
        lambda d: folder_files(d, adapter_model__safetensors=lying_offsets(d)),
        422,
        ["adapter_model.safetensors"],
    ),
    "truncated": (
        lambda d: folder_files(d, adapter_model__safetensors=truncated(d)),
        422,
        ["adapter_model.safetensors"],
    ),
    "wrong_shape": (
        lambda d: folder_files(d, adapter_model__safetensors=wrong_shape(d)),
        422,
        ["lora_A", "shape"],
    ),
    "wrong_rank": (
        lambda d: folder_files(d, adapter_config__json=edit_config(d, r=8)),
        422,
        ["r", "8"],
    ),
    "unknown_target_module": (
        lambda d: folder_files(d, adapter_config__json=edit_config(d, target_modules=["foo_proj"])),
        422,
        ["foo_proj", "tiny-llama"],
    ),
    "wrong_base": (
        lambda d: folder_files(d, adapter_config__json=edit_config(d, base_model_name_or_path="meta/llama-70b")),
        422,
        ["meta/llama-70b", "not registered"],
    ),
    "unknown_peft_type": (
        lambda d: folder_files(d, adapter_config__json=edit_config(d, peft_type="MAGIC")),
        422,
        ["MAGIC", "peft_type"],
    ),
    "auto_mapping": (
        lambda d: folder_files(
            d,
            adapter_config__json=edit_config(d, auto_mapping={"base_model_class": "Evil", "parent_library": "os"}),
        ),
        422,
        ["auto_mapping"],
    ),
    "modules_to_save": (
        lambda d: folder_files(d, adapter_config__json=edit_config(d, modules_to_save=["lm_head"])),
        422,
        ["modules_to_save"],
    ),
    "nan": (
        lambda d: folder_files(d, adapter_model__safetensors=nan_weights(d)),
        422,
        ["NaN"],
    ),
    "missing_config": (
        lambda d: folder_files(d, adapter_config__json=None),
        422,
        ["adapter_config.json"],
    ),
    "missing_weights": (
        lambda d: folder_files(d, adapter_model__safetensors=None),
        422,
        ["adapter_model.safetensors"],
    ),
    "config_not_json": (
        lambda d: folder_files(d, adapter_config__json=b"{not json"),
        422,
        ["adapter_config.json"],
    ),
    "empty": (lambda d: {}, 422, ["empty"]),
}
