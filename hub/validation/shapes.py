"""Check LoRA and IA3 tensors against the config and the base model.

peft saves each adapter weight as ``base_model.model.<module>.<suffix>``, where
``<module>`` is the base module's name in ``model.named_modules()``. Checked against
peft 0.21.2's own save_pretrained output:

* LoRA linear: ``lora_A.weight`` [r, in], ``lora_B.weight`` [out, r]; with
  ``lora_bias`` also ``lora_B.bias`` [out].
* LoRA embedding: ``lora_embedding_A`` [r, num_embeddings], ``lora_embedding_B``
  [embedding_dim, r].
* DoRA: ``lora_magnitude_vector`` (no ``.weight``) [out] / [embedding_dim].
* LoRA on ``embed_tokens``/``lm_head``: peft also saves the full base weight as
  ``base_layer.weight`` (its ``save_embedding_layers`` default).
* IA3: ``ia3_l``: [1, in] for feedforward modules, [out, 1] for the others.

Which modules peft adapts, and each one's rank, is decided with peft's own matching
functions, so the hub agrees with what peft would load.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec, ModuleShape
from hub.validation.files import CONFIG_NAME
from hub.validation.safetensors_header import TensorInfo

PEFT_PREFIX = "base_model.model."
ADAPTER_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# peft's EMBEDDING_LAYER_NAMES: targeting these makes save_pretrained add the base weight.
_EMBEDDING_LAYER_NAMES = ("embed_tokens", "lm_head")

LORA_SUFFIXES = {
    "lora_A.weight": "A",
    "lora_B.weight": "B",
    "lora_B.bias": "bias",
    "lora_embedding_A": "A",
    "lora_embedding_B": "B",
    "lora_magnitude_vector": "magnitude",
    "base_layer.weight": "base_weight",
}
IA3_SUFFIXES = {"ia3_l": "ia3"}
_EMBEDDING_SUFFIXES = {"A": "lora_embedding_A", "B": "lora_embedding_B"}
_LINEAR_SUFFIXES = {"A": "lora_A.weight", "B": "lora_B.weight"}
_LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class TensorReport:
    """What the tensors showed: the short names adapted and non-fatal notes."""

    target_modules: list[str]
    flags: list[str] = field(default_factory=list)


def check_tuner_tensors(
    peft_type: str, cfg: Any, tensors: dict[str, TensorInfo], base: BaseModelSpec, *, filename: str
) -> TensorReport:
    """Check every LoRA/IA3 tensor's name, module, dtype and shape; see module docstring."""
    check_dtypes(tensors, filename=filename)
    suffixes = LORA_SUFFIXES if peft_type == "LORA" else IA3_SUFFIXES
    by_module = _group_by_module(tensors, suffixes, base, peft_type=peft_type, filename=filename)
    cfg = _resolve_all_linear(cfg, base)
    _check_declared_targets(cfg, base)
    _check_layers_to_transform(cfg, base)

    from peft.tuners.tuners_utils import check_target_module_exists

    flags: list[str] = []
    for module, parts in sorted(by_module.items()):
        if not check_target_module_exists(cfg, module):
            some_tensor = next(iter(parts.values())).name
            raise UploadRejected(
                f"{filename}: tensor `{some_tensor}` adapts module `{module}`, but {CONFIG_NAME} "
                "`target_modules` does not select it, so peft would silently ignore it; "
                "upload the config that was saved with these weights",
                file=filename,
                field=some_tensor,
            )
        shape = base.modules[module]
        if peft_type == "LORA":
            flags += _check_lora_module(cfg, module, shape, parts, filename=filename)
        else:
            _check_ia3_module(cfg, module, shape, parts, filename=filename)

    if peft_type == "LORA" and cfg.use_dora:
        flags.insert(0, "use_dora: DoRA magnitude vectors present")
    supported_kinds = ("linear", "embedding") if peft_type == "LORA" else ("linear",)
    untrained = [
        name
        for name, shape in base.modules.items()
        if shape.kind in supported_kinds and name not in by_module and check_target_module_exists(cfg, name)
    ]
    if untrained:
        flags.append(
            f"{len(untrained)} module(s) selected by target_modules have no weights in {filename} "
            f"(e.g. `{untrained[0]}`); peft leaves them at their initial values"
        )
    return TensorReport(target_modules=sorted({m.rsplit(".", 1)[-1] for m in by_module}), flags=flags)


def check_dtypes(tensors: dict[str, TensorInfo], *, filename: str) -> None:
    """Adapter weights are trained floats; anything else is not an adapter peft wrote."""
    for info in tensors.values():
        if info.dtype not in ADAPTER_DTYPES:
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` has dtype {info.dtype}; adapter weights must be "
                f"{', '.join(sorted(ADAPTER_DTYPES))}",
                file=filename,
                field=info.name,
            )


def _group_by_module(
    tensors: dict[str, TensorInfo],
    suffixes: dict[str, str],
    base: BaseModelSpec,
    *,
    peft_type: str,
    filename: str,
) -> dict[str, dict[str, TensorInfo]]:
    by_module: dict[str, dict[str, TensorInfo]] = {}
    for name, info in tensors.items():
        rest = name.removeprefix(PEFT_PREFIX)
        matched = next((s for s in suffixes if rest.endswith(f".{s}")), None) if rest != name else None
        if matched is None:
            raise UploadRejected(
                f"{filename}: tensor `{name}` is not a {peft_type} weight peft would load; "
                f"expected names like `{PEFT_PREFIX}<module>.{next(iter(suffixes))}`: "
                "save the adapter with peft's save_pretrained",
                file=filename,
                field=name,
            )
        module = rest[: -len(matched) - 1]
        if module not in base.modules:
            raise UploadRejected(
                f"{filename}: tensor `{name}` targets module `{module}`, which base model `{base.name}` "
                f"does not have{_missing_module_hint(module, base)}",
                file=filename,
                field=name,
            )
        parts = by_module.setdefault(module, {})
        part = suffixes[matched]
        if part in parts:
            raise UploadRejected(
                f"{filename}: module `{module}` has both `{parts[part].name}` and `{name}`; "
                "peft saves only one of them",
                file=filename,
                field=name,
            )
        parts[part] = info
    return by_module


def _missing_module_hint(module: str, base: BaseModelSpec) -> str:
    match = _LAYER_INDEX.search(module)
    if match and int(match.group(1)) >= base.num_layers:
        return f" (it has {base.num_layers} layers, numbered 0-{base.num_layers - 1})"
    return f"; its adaptable modules are named like: {', '.join(short_module_names(base.modules))}"


def short_module_names(names: Iterable[str]) -> list[str]:
    """Distinct last name components, in first-seen order (q_proj, k_proj, ...)."""
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in names))


def _check_lora_module(
    cfg: Any, module: str, shape: ModuleShape, parts: dict[str, TensorInfo], *, filename: str
) -> list[str]:
    from peft.utils.other import get_pattern_key

    rank_key = get_pattern_key(list(cfg.rank_pattern or {}), module)
    r = (cfg.rank_pattern or {}).get(rank_key, cfg.r)
    rank_source = f"`rank_pattern` entry `{rank_key}`" if rank_key in (cfg.rank_pattern or {}) else "`r`"
    embedding = shape.kind == "embedding"
    names = _EMBEDDING_SUFFIXES if embedding else _LINEAR_SUFFIXES
    for part, wrong_name in (_LINEAR_SUFFIXES if embedding else _EMBEDDING_SUFFIXES).items():
        info = parts.get(part)
        if info is not None and not info.name.endswith(names[part]):
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` is a {wrong_name} weight but `{module}` is a {shape.kind} "
                f"module, so peft expects `{module}.{names[part]}`",
                file=filename,
                field=info.name,
            )
    for part in ("A", "B"):
        if part not in parts:
            other = next(iter(parts.values())).name
            raise UploadRejected(
                f"{filename}: module `{module}` has `{other}` but no `{names[part]}`; "
                "LoRA needs both A and B: upload the complete file save_pretrained wrote",
                file=filename,
                field=f"{PEFT_PREFIX}{module}.{names[part]}",
            )
    # ModuleShape stores embeddings as in_features=num_embeddings, out_features=dim,
    # which makes the expected A/B shapes the same formula for both kinds.
    expected = {
        "A": (r, shape.in_features),
        "B": (shape.out_features, r),
        "bias": (shape.out_features,),
        "magnitude": (shape.out_features,),
        "base_weight": (shape.in_features, shape.out_features)
        if embedding
        else (shape.out_features, shape.in_features),
    }
    why = {
        "A": f"{CONFIG_NAME} {rank_source} is {r}",
        "B": f"{CONFIG_NAME} {rank_source} is {r}",
        "bias": f"`{module}` has {shape.out_features} outputs",
        "magnitude": f"`{module}` has {shape.out_features} outputs",
        "base_weight": f"`{module}` is {shape.kind} {shape.in_features} -> {shape.out_features}",
    }
    for part, info in sorted(parts.items()):
        if info.shape != expected[part]:
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` has shape {list(info.shape)} but {why[part]}, "
                f"so expected {list(expected[part])}",
                file=filename,
                field=info.name,
            )

    flags: list[str] = []
    if "magnitude" in parts and not cfg.use_dora:
        raise _config_mismatch(parts["magnitude"], "use_dora", "is false", "DoRA magnitude vector", filename)
    if cfg.use_dora and "magnitude" not in parts:
        raise UploadRejected(
            f"{filename}: {CONFIG_NAME} `use_dora` is true but module `{module}` has no "
            "`lora_magnitude_vector`; upload the complete file save_pretrained wrote",
            file=filename,
            field=f"{PEFT_PREFIX}{module}.lora_magnitude_vector",
        )
    if "bias" in parts and not cfg.lora_bias:
        raise _config_mismatch(parts["bias"], "lora_bias", "is false", "LoRA bias", filename)
    if "base_weight" in parts:
        info = parts["base_weight"]
        if module.rsplit(".", 1)[-1] not in _EMBEDDING_LAYER_NAMES:
            raise UploadRejected(
                f"{filename}: tensor `{info.name}` is a full copy of a base-model weight; "
                "the hub stores only adapter weights: save with save_embedding_layers=False",
                file=filename,
                field=info.name,
            )
        flags.append(
            f"{info.name}: full base embedding weight included (peft's save_embedding_layers); loading it "
            "overwrites the base model's; save with save_embedding_layers=False to upload less"
        )
    return flags


def _check_ia3_module(
    cfg: Any, module: str, shape: ModuleShape, parts: dict[str, TensorInfo], *, filename: str
) -> None:
    info = parts["ia3"]
    if shape.kind != "linear":
        raise UploadRejected(
            f"{filename}: tensor `{info.name}` adapts `{module}`, a {shape.kind} module; "
            "IA3 adapts linear modules only",
            file=filename,
            field=info.name,
        )
    if _is_feedforward(cfg, module):
        expected, why = (1, shape.in_features), "a feedforward module scales its inputs"
    else:
        expected, why = (shape.out_features, 1), "a non-feedforward module scales its outputs"
    if info.shape != expected:
        raise UploadRejected(
            f"{filename}: tensor `{info.name}` has shape {list(info.shape)} but `{module}` is "
            f"{shape.in_features} -> {shape.out_features} and per {CONFIG_NAME} `feedforward_modules` {why}, "
            f"so expected {list(expected)}",
            file=filename,
            field=info.name,
        )


def _is_feedforward(cfg: Any, module: str) -> bool:
    # Same rule as peft's IA3Model._check_target_module_feedforward (note: a plain
    # endswith, without the "." that target_modules matching uses).
    ff = cfg.feedforward_modules
    if not ff:
        return False
    if isinstance(ff, str):
        return bool(re.fullmatch(ff, module))
    return any(module.endswith(key) for key in ff)


def _config_mismatch(info: TensorInfo, field: str, state: str, what: str, filename: str) -> UploadRejected:
    return UploadRejected(
        f"{filename}: tensor `{info.name}` is a {what} but {CONFIG_NAME} `{field}` {state}, "
        "so peft would ignore it; upload the config that was saved with these weights",
        file=filename,
        field=info.name,
    )


def _resolve_all_linear(cfg: Any, base: BaseModelSpec) -> Any:
    # peft expands "all-linear" at load time to every linear module but the output layer;
    # do the same on a copy so name matching below sees real names.
    if cfg.target_modules != "all-linear":
        return cfg
    resolved = copy.copy(cfg)
    resolved.target_modules = {
        name for name, shape in base.modules.items() if shape.kind == "linear" and not name.endswith("lm_head")
    }
    return resolved


def _check_declared_targets(cfg: Any, base: BaseModelSpec) -> None:
    targets = cfg.target_modules
    names = list(base.modules)
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, name) for name in names):
            raise _target_not_found(targets, base, as_regex=True)
        return
    for target in sorted(targets):
        if not any(name == target or name.endswith(f".{target}") for name in names):
            raise _target_not_found(target, base, as_regex=False)


def _target_not_found(target: str, base: BaseModelSpec, *, as_regex: bool) -> UploadRejected:
    what = f"target_modules regex `{target}` matches no module" if as_regex else f"target module `{target}` not found"
    return UploadRejected(
        f"{CONFIG_NAME}: {what} in base model `{base.name}`; it has: {', '.join(short_module_names(base.modules))}",
        file=CONFIG_NAME,
        field="target_modules",
    )


def _check_layers_to_transform(cfg: Any, base: BaseModelSpec) -> None:
    layers = getattr(cfg, "layers_to_transform", None)
    if layers is None:
        return
    for index in [layers] if isinstance(layers, int) else layers:
        if index >= base.num_layers:
            raise UploadRejected(
                f"{CONFIG_NAME}: `layers_to_transform` includes layer {index}, "
                f"but base model `{base.name}` has {base.num_layers} layers (0-{base.num_layers - 1})",
                file=CONFIG_NAME,
                field="layers_to_transform",
            )
