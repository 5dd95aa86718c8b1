"""Read adapter_config.json and have peft's own config class accept it.

peft is imported lazily, inside :func:`load_adapter_config`: it pulls in torch, and the
web process must start without it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO

from hub.exceptions import UploadRejected, UploadTooLarge
from hub.validation.files import CONFIG_NAME, human_bytes

SUPPORTED_PEFT_TYPES = ("LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")
PROMPT_LEARNING_TYPES = frozenset({"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"})
# The hub's base models are all causal LMs; None is what peft writes when the adapter
# was made without a task type (it then loads through auto_mapping, checked below).
ALLOWED_TASK_TYPES = (None, "CAUSAL_LM")
# auto_mapping makes peft importlib.import_module() a name from the config. Only
# transformers' own model classes are acceptable: that is also peft's default allowlist.
_AUTO_MAPPING_LIBRARY = "transformers"
# User regexes run against every base module name; a length cap bounds their cost.
MAX_PATTERN_LENGTH = 512
MAX_PATTERN_REPEATS = 4


@dataclass(frozen=True)
class AdapterConfig:
    """adapter_config.json after peft's config class accepted it."""

    peft_type: str
    peft_config: Any  # an instance of peft's config class for peft_type (LoraConfig, ...)
    config: dict[str, Any]  # peft_config.to_dict(), JSON-safe
    flags: tuple[str, ...]

    @property
    def is_prompt_learning(self) -> bool:
        return self.peft_type in PROMPT_LEARNING_TYPES


def load_adapter_config(fileobj: BinaryIO, *, max_config_bytes: int) -> AdapterConfig:
    """Parse adapter_config.json, apply the hub's policy, and build peft's config from it.

    peft's ``__post_init__`` checks run; their errors become :class:`UploadRejected`.
    """
    raw = _read_json(fileobj, max_config_bytes)
    peft_type = _check_peft_type(raw.get("peft_type", _MISSING))
    _check_policy(raw)

    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils.peft_types import PeftType

    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType(peft_type)]
    kwargs, flags = _known_kwargs(raw, config_cls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_config = config_cls(**kwargs)
        except Exception as exc:  # any failure here means peft would not load it either
            raise UploadRejected(
                f"{CONFIG_NAME}: peft rejects this {peft_type} config: {exc}", file=CONFIG_NAME
            ) from None
    for warning in caught:
        note = f"peft: {warning.message}"
        if note not in flags:
            flags.append(note)

    if peft_type in PROMPT_LEARNING_TYPES:
        _check_prompt_learning_values(peft_config)
    else:
        _check_tuner_values(peft_type, peft_config)
    return AdapterConfig(
        peft_type=peft_type,
        peft_config=peft_config,
        config=json_safe(peft_config.to_dict()),
        flags=tuple(flags),
    )


_MISSING = object()


def _read_json(fileobj: BinaryIO, max_config_bytes: int) -> dict[str, Any]:
    fileobj.seek(0)
    data = fileobj.read(max_config_bytes + 1)
    if len(data) > max_config_bytes:
        raise UploadTooLarge(
            f"{CONFIG_NAME} is over the {human_bytes(max_config_bytes)} limit (peft writes a few KiB)",
            file=CONFIG_NAME,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            f"{CONFIG_NAME} is not valid UTF-8 (byte {exc.start}); upload the file peft wrote",
            file=CONFIG_NAME,
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UploadRejected(
            f"{CONFIG_NAME} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            file=CONFIG_NAME,
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits; nesting too deep
        raise UploadRejected(f"{CONFIG_NAME} is not a config peft wrote ({exc})", file=CONFIG_NAME) from None
    if not isinstance(raw, dict):
        raise UploadRejected(f"{CONFIG_NAME} must be a JSON object, got {type(raw).__name__}", file=CONFIG_NAME)
    return raw


def _check_peft_type(value: Any) -> str:
    supported = ", ".join(SUPPORTED_PEFT_TYPES)
    if value is _MISSING or value is None:
        raise UploadRejected(
            f"{CONFIG_NAME} has no `peft_type`; upload the config peft's save_pretrained wrote "
            f"(supported: {supported})",
            file=CONFIG_NAME,
            field="peft_type",
        )
    from peft.utils.peft_types import PeftType

    known = {member.value for member in PeftType}
    if not isinstance(value, str) or value not in known:
        raise UploadRejected(
            f"{CONFIG_NAME}: unknown peft_type `{value}`; supported: {supported}",
            file=CONFIG_NAME,
            field="peft_type",
        )
    if value not in SUPPORTED_PEFT_TYPES:
        raise UploadRejected(
            f"{CONFIG_NAME}: peft_type `{value}` is not supported yet; supported: {supported}",
            file=CONFIG_NAME,
            field="peft_type",
        )
    return value


def _check_policy(raw: dict[str, Any]) -> None:
    """Refuse settings peft accepts but the hub cannot evaluate or serve safely."""

    def refuse(field: str, why: str) -> UploadRejected:
        return UploadRejected(f"{CONFIG_NAME}: `{field}` {why}", file=CONFIG_NAME, field=field)

    task_type = raw.get("task_type")
    if task_type not in ALLOWED_TASK_TYPES:
        raise refuse(
            "task_type",
            f"is `{task_type}`, but the hub's base models are causal LMs; "
            'train with task_type="CAUSAL_LM" (or leave it unset)',
        )
    auto_mapping = raw.get("auto_mapping")
    if auto_mapping is not None and not _is_transformers_class(auto_mapping):
        raise refuse(
            "auto_mapping",
            f"is {json.dumps(auto_mapping)[:200]}, which makes peft import custom code when loading; "
            'only transformers\' own model classes are allowed: save with task_type="CAUSAL_LM" '
            "from a stock transformers model",
        )
    for field in ("modules_to_save", "trainable_token_indices"):
        if raw.get(field):
            raise refuse(
                field,
                f"is {json.dumps(raw[field])[:200]}: it trains full copies of base-model modules, "
                f"which the hub does not store; retrain without `{field}`",
            )
    if raw.get("layer_replication"):
        raise refuse(
            "layer_replication",
            "changes the base model's layer stack, which the hub cannot serve; retrain without it",
        )
    if raw.get("target_parameters"):
        raise refuse(
            "target_parameters",
            "(LoRA on raw parameters) is not supported yet; target modules with `target_modules` instead",
        )


def _is_transformers_class(auto_mapping: Any) -> bool:
    if not isinstance(auto_mapping, dict) or set(auto_mapping) != {"base_model_class", "parent_library"}:
        return False
    library, cls = auto_mapping["parent_library"], auto_mapping["base_model_class"]
    return (
        isinstance(library, str)
        and isinstance(cls, str)
        and cls.isidentifier()
        and (library == _AUTO_MAPPING_LIBRARY or library.startswith(f"{_AUTO_MAPPING_LIBRARY}."))
        and all(part.isidentifier() for part in library.split("."))
    )


def _known_kwargs(raw: dict[str, Any], config_cls: type) -> tuple[dict[str, Any], list[str]]:
    """Split off keys peft's config class does not have.

    peft itself drops unknown keys with a warning (they come from a newer peft). One that
    is set would change how a newer peft loads the adapter, and this peft would silently
    ignore it, so it is refused; unset ones are harmless and only noted.
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}
    kwargs: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        if key == "runtime_config":
            # Runtime-only knobs; peft's own from_json_file drops them the same way.
            continue
        if key in fields:
            kwargs[key] = value
        elif value in (None, False, "", [], {}):
            ignored.append(key)
        else:
            import peft

            raise UploadRejected(
                f"{CONFIG_NAME}: `{key}` is set to {json.dumps(value)[:200]}, but peft {peft.__version__} "
                f"(which the hub runs) does not know it and would ignore it; the adapter was probably saved "
                f"by a newer peft: remove `{key}` if the adapter works without it",
                file=CONFIG_NAME,
                field=key,
            )
    flags = [f"{CONFIG_NAME}: ignored unset keys peft does not know: {', '.join(sorted(ignored))}"] if ignored else []
    return kwargs, flags


def _check_prompt_learning_values(cfg: Any) -> None:
    _require_int(cfg.num_virtual_tokens, "num_virtual_tokens", minimum=1)
    for field in ("token_dim", "num_layers", "num_attention_heads", "num_transformer_submodules"):
        value = getattr(cfg, field)
        if value is not None:
            _require_int(value, field, minimum=1)


def _check_tuner_values(peft_type: str, cfg: Any) -> None:
    _check_patterns(cfg.target_modules, "target_modules", required=True)
    _check_patterns(getattr(cfg, "exclude_modules", None), "exclude_modules", required=False)
    layers = getattr(cfg, "layers_to_transform", None)
    if layers is not None:
        if not isinstance(layers, (int, list, tuple)) or isinstance(layers, bool):
            raise _bad_field("layers_to_transform", f"is {layers!r}; expected a layer index or a list of them")
        for index in [layers] if isinstance(layers, int) else layers:
            _require_int(index, "layers_to_transform", minimum=0)
    if peft_type == "IA3":
        _check_patterns(cfg.feedforward_modules, "feedforward_modules", required=False)
        return
    _require_int(cfg.r, "r", minimum=1)
    _require_number(cfg.lora_alpha, "lora_alpha")
    for field, check in (("rank_pattern", _require_int), ("alpha_pattern", _require_number)):
        pattern = getattr(cfg, field) or {}
        if not isinstance(pattern, dict):
            raise _bad_field(field, "must be an object mapping module-name patterns to values")
        for key, value in pattern.items():
            _compile(key, field)
            if check is _require_int:
                _require_int(value, f"{field}[{key!r}]", minimum=1)
            else:
                _require_number(value, f"{field}[{key!r}]")


def _check_patterns(value: Any, field: str, *, required: bool) -> None:
    # After peft's __post_init__ a list has become a set; a str is a regex.
    if value is None or (isinstance(value, (set, list, tuple)) and not value):
        if required:
            raise _bad_field(field, "is empty; list the modules the adapter was trained on (e.g. q_proj, v_proj)")
        return
    if isinstance(value, str):
        if value != "all-linear":
            _compile(value, field)
        return
    if not isinstance(value, (set, list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise _bad_field(field, "must be a list of module names or one regular expression")


def _compile(pattern: str, field: str) -> None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _bad_field(field, f"has a pattern of {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _bad_field(field, f"has `{pattern}`, which is not a valid regular expression ({exc})") from None
    nested, repeats = _repeat_profile(pattern)
    if nested or repeats > MAX_PATTERN_REPEATS:
        # Python's backtracking matcher can take exponential time on such patterns, and
        # peft would run them on every module name when loading: refuse, don't hang.
        raise _bad_field(
            field,
            f"has `{pattern}`, which has {'nested repetition' if nested else f'{repeats} repetitions'}; "
            f"use at most {MAX_PATTERN_REPEATS} non-nested repetitions (like `.*\\.(q|v)_proj`) "
            "or list the module names",
        )


def _repeat_profile(pattern: str) -> tuple[bool, int]:
    """(has a repeat inside a repeat, number of repeats) of a regex that compiles."""
    from re import _constants, _parser  # type: ignore[attr-defined]  # stable since 3.11

    repeat_ops = {
        _constants.MAX_REPEAT,
        _constants.MIN_REPEAT,
        getattr(_constants, "POSSESSIVE_REPEAT", None),
    }
    count = 0

    def walk(node: Any, inside: bool) -> bool:
        nonlocal count
        if isinstance(node, _parser.SubPattern):
            for op, av in node.data:
                if op in repeat_ops:
                    _, high, sub = av
                    multi = high > 1
                    count += multi
                    if (inside and multi) or walk(sub, inside or multi):
                        return True
                elif walk(av, inside):
                    return True
        elif isinstance(node, (tuple, list)):
            return any(walk(child, inside) for child in node)
        return False

    nested = walk(_parser.parse(pattern), False)
    return nested, count


def _require_int(value: Any, field: str, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _bad_field(field, f"is {value!r}; expected an integer >= {minimum}")


def _require_number(value: Any, field: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise _bad_field(field, f"is {value!r}; expected a number")


def _bad_field(field: str, what: str) -> UploadRejected:
    return UploadRejected(f"{CONFIG_NAME}: `{field}` {what}", file=CONFIG_NAME, field=field.split("[")[0])


def json_safe(value: Any) -> Any:
    """Turn peft's ``to_dict()`` output into plain JSON types (sets -> sorted lists)."""
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [json_safe(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
