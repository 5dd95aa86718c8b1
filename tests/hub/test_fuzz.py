"""Fuzzing the parsers of untrusted upload bytes (issue 16, "Faults").

Each parser takes 100,000 generated inputs, mostly mutations of a valid one, and may
refuse them only with the hub's own error (:class:`hub.exceptions.HubError`): any other
exception is a bug, which Hypothesis reports with the smallest input it can find.
Deterministic (``derandomize``) so a failure reproduces; no example database is kept.
"""

from __future__ import annotations

import io
import json
import random
import struct
import tarfile
import zipfile
from contextlib import ExitStack, suppress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.exceptions import HubError

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=100_000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# --- mutations of a valid input ----------------------------------------------------------------
# Hypothesis draws one integer per example and a seeded Random builds the input from it:
# drawing every byte through Hypothesis costs ~10x more per example, and 100,000 examples
# must fit in about two minutes. A failure names its seed, which rebuilds the same input.
_seeds = st.integers(min_value=0, max_value=(1 << 64) - 1)


def mutate(rng: random.Random, valid: bytes) -> bytes:
    """``valid`` with a few bytes overwritten, a slice cut out or inserted, or truncated."""
    data = bytearray(valid)
    for _ in range(rng.randrange(7)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    kind = rng.randrange(4)
    if kind == 1 and data:
        start = rng.randrange(len(data) + 1)
        del data[start : start + rng.randrange(65)]
    elif kind == 2:
        start = rng.randrange(len(data) + 1)
        data[start:start] = rng.randbytes(rng.randrange(33))
    elif kind == 3:
        del data[rng.randrange(len(data) + 1) :]
    return bytes(data)


_TEXTS = ["", "a", "F32", "BF16", "q_proj", "x" * 300, "\u0000", "é", "[", "{", "(a+)+", ".*", "-1", "1e999"]


def json_scalar(rng: random.Random):
    kind = rng.randrange(6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2, 7, 48, 1 << 31, 1 << 64, -(1 << 70), rng.randrange(-100, 1000)])
    if kind == 3:
        return rng.choice([0.0, -0.5, 1.5, 1e308, float("nan"), float("inf"), -float("inf")])
    return rng.choice(_TEXTS)


def json_value(rng: random.Random):
    kind = rng.randrange(4)
    if kind == 0:
        return [json_scalar(rng) for _ in range(rng.randrange(5))]
    if kind == 1:
        return {rng.choice(_TEXTS): json_scalar(rng) for _ in range(rng.randrange(4))}
    return json_scalar(rng)


# --- safetensors header ----------------------------------------------------------------------------
def _safetensors(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


_VALID_HEADER = {
    "__metadata__": {"format": "pt"},
    "a.lora_A.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
    "a.lora_B.weight": {"dtype": "F16", "shape": [4, 2], "data_offsets": [32, 48]},
}
_VALID_SAFETENSORS = _safetensors(_VALID_HEADER, bytes(48))


def safetensors_input(seed: int) -> bytes:
    rng = random.Random(seed)
    kind = rng.randrange(3)
    if kind == 0:
        return mutate(rng, _VALID_SAFETENSORS)
    header = json.loads(json.dumps(_VALID_HEADER))
    name = rng.choice([*header, "x"])
    if kind == 1:  # one field of one entry replaced by any JSON value
        entry = header.setdefault(name, {})
        if isinstance(entry, dict):
            entry[rng.choice(["dtype", "shape", "data_offsets", "other"])] = json_value(rng)
    else:  # a whole entry replaced
        header[name] = json_value(rng)
    data = _safetensors(header, bytes(rng.randrange(65)))
    return mutate(rng, data) if rng.random() < 0.5 else data


@FUZZ
@given(_seeds)
def test_safetensors_header_parser_refuses_only_with_hub_errors(seed: int) -> None:
    from hub.validation.safetensors_header import parse_safetensors_header

    data = safetensors_input(seed)
    with suppress(HubError):
        parse_safetensors_header(
            io.BytesIO(data), len(data), filename="adapter_model.safetensors", max_header_bytes=4096
        )


# --- archives --------------------------------------------------------------------------------------
_MEMBERS = {"out/adapter_config.json": b'{"peft_type": "LORA"}', "out/adapter_model.safetensors": b"\0" * 40}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in _MEMBERS.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _tar(mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, content in _MEMBERS.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


_ARCHIVES = {"a.zip": _zip(), "a.tar": _tar("w"), "a.tar.gz": _tar("w:gz")}


def archive_input(seed: int) -> tuple[str, bytes]:
    rng = random.Random(seed)
    name = rng.choice(sorted(_ARCHIVES))
    return name, mutate(rng, _ARCHIVES[name])


@FUZZ
@given(_seeds)
def test_archive_reader_refuses_only_with_hub_errors(seed: int) -> None:
    from hub.storage.archives import unpack_archive

    name, data = archive_input(seed)
    with ExitStack() as stack, suppress(HubError):
        unpack_archive(stack, name, io.BytesIO(data), max_file_bytes=1 << 20, max_upload_bytes=1 << 21)


# --- adapter_config.json ---------------------------------------------------------------------------
_VALID_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "v_proj"],
    "bias": "none",
    "base_model_name_or_path": "test-org/tiny-llama",
    "layers_to_transform": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "use_dora": False,
    "use_rslora": False,
}
_CONFIG_KEYS = [
    *_VALID_CONFIG,
    "layers_pattern",
    "exclude_modules",
    "init_lora_weights",
    "fan_in_fan_out",
    "num_virtual_tokens",
    "auto_mapping",
    "modules_to_save",
    "token_dim",
]
_PEFT_TYPES = ["LORA", "LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "LOHA", "lora", ""]


def config_input(seed: int) -> bytes:
    rng = random.Random(seed)
    config = dict(_VALID_CONFIG)
    # Mostly LoRA with one or two fields changed, so most inputs reach peft's config class.
    config["peft_type"] = "LORA" if rng.random() < 0.6 else rng.choice(_PEFT_TYPES)
    for _ in range(rng.randrange(3)):
        config[rng.choice(_CONFIG_KEYS)] = json_value(rng)
    raw = json.dumps(config).encode()
    return mutate(rng, raw) if rng.randrange(4) == 0 else raw


@FUZZ
@given(_seeds)
def test_adapter_config_check_refuses_only_with_hub_errors(seed: int) -> None:
    from hub.validation.peft_config import load_adapter_config

    data = config_input(seed)
    with suppress(HubError):
        load_adapter_config(io.BytesIO(data), max_config_bytes=1 << 16)
