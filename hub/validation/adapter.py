"""Validate a whole adapter upload: the one entry point services call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from hub.specs import BaseModelSpec
from hub.validation.files import (
    CONFIG_NAME,
    DEFAULT_LIMITS,
    WEIGHTS_NAME,
    UploadLimits,
    check_upload_files,
)
from hub.validation.finite import check_finite
from hub.validation.peft_config import load_adapter_config
from hub.validation.prompt import check_prompt_tensors
from hub.validation.safetensors_header import parse_safetensors_header
from hub.validation.shapes import check_tuner_tensors


@dataclass(frozen=True)
class ValidatedAdapter:
    """Everything the registry records about an adapter that passed validation."""

    peft_type: str  # peft's enum value, e.g. "LORA", "PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "IA3"
    config: dict[str, Any]  # peft's config.to_dict(), made JSON-safe (sets -> sorted lists)
    rank: int | None  # LoRA r (None for prompt learning and IA3)
    alpha: float | None  # lora_alpha
    target_modules: list[str]  # short names actually adapted, sorted; [] for prompt learning
    num_virtual_tokens: int | None
    trainable_params: int  # total numel of all tensors in the safetensors file
    tensor_count: int
    dtypes: list[str]  # sorted distinct safetensors dtypes
    flags: list[str]  # notes about non-fatal things
    warnings: list[str]  # accepted, but a user should know before using it (an untrained LoRA)


def validate_adapter(
    files: Mapping[str, BinaryIO],
    sizes: Mapping[str, int],
    base: BaseModelSpec,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> ValidatedAdapter:
    """Check an uploaded peft adapter against ``base`` before anything is stored.

    ``files`` maps flat file names to seekable binary file objects, ``sizes`` their byte
    sizes. Cheap checks run first (names, sizes, config), the full data scan for NaN/Inf
    last. Raises :class:`hub.exceptions.UploadRejected` naming the file and field at
    fault; returns what the registry records. Imports peft (and so torch) on first use.
    """
    measured = check_upload_files(files, sizes, limits)
    parsed = load_adapter_config(files[CONFIG_NAME], max_config_bytes=limits.max_config_bytes)
    cfg = parsed.peft_config
    flags = list(parsed.flags)
    flags += _base_name_flags(cfg, base)

    weights = files[WEIGHTS_NAME]
    header_len, _, tensors = parse_safetensors_header(
        weights, measured[WEIGHTS_NAME], filename=WEIGHTS_NAME, max_header_bytes=limits.max_header_bytes
    )
    if parsed.is_prompt_learning:
        check_prompt_tensors(parsed.peft_type, cfg, tensors, base, filename=WEIGHTS_NAME)
        target_modules: list[str] = []
    else:
        report = check_tuner_tensors(parsed.peft_type, cfg, tensors, base, filename=WEIGHTS_NAME)
        target_modules = report.target_modules
        flags += report.flags
    zeros = check_finite(weights, header_len, tensors, filename=WEIGHTS_NAME)

    is_lora = parsed.peft_type == "LORA"
    warnings = _untrained_lora_warnings(cfg, tensors, zeros) if is_lora else []
    return ValidatedAdapter(
        peft_type=parsed.peft_type,
        config=parsed.config,
        rank=cfg.r if is_lora else None,
        alpha=float(cfg.lora_alpha) if is_lora else None,
        target_modules=target_modules,
        num_virtual_tokens=cfg.num_virtual_tokens if parsed.is_prompt_learning else None,
        trainable_params=sum(info.numel for info in tensors.values()),
        tensor_count=len(tensors),
        dtypes=sorted({info.dtype for info in tensors.values()}),
        flags=flags,
        warnings=warnings,
    )


def _untrained_lora_warnings(cfg: Any, tensors: dict[str, Any], zeros: frozenset[str]) -> list[str]:
    # peft starts B at zero, so an adapter saved before any training step has B = 0 and
    # changes nothing: the delta B @ A is zero, and so is a lora_B.bias left at its start.
    # DoRA is left out: its trained magnitude vector changes the output even with B = 0.
    if getattr(cfg, "use_dora", False):
        return []
    deltas = [name for name in tensors if name.endswith(_DELTA_SUFFIXES)]
    if not deltas or any(name not in zeros for name in deltas):
        return []
    return [
        f"{WEIGHTS_NAME}: every LoRA B weight is zero ({len(deltas)} tensors), so this adapter "
        "changes nothing: it looks untrained (saved before the first optimizer step, or "
        "training never updated it); its outputs will be the base model's"
    ]


_DELTA_SUFFIXES = ("lora_B.weight", "lora_B.bias", "lora_embedding_B")


def _base_name_flags(cfg: Any, base: BaseModelSpec) -> list[str]:
    # Informational only: people train on a local path or a mirror of the same weights.
    declared = getattr(cfg, "base_model_name_or_path", None)
    if not declared or not isinstance(declared, str):
        return []
    known = {base.name.lower(), *(alias.lower() for alias in base.aliases)}
    if declared.lower() in known or declared.rstrip("/").rsplit("/", 1)[-1].lower() in known:
        return []
    return [
        f"{CONFIG_NAME}: base_model_name_or_path is `{declared}`, not `{base.name}`; "
        "the shapes match, but check the adapter was trained on this base model"
    ]
