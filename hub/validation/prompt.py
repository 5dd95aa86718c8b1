"""Check prompt-learning adapters (prompt tuning, P-tuning, prefix tuning).

peft 0.21.2 saves a single tensor, ``prompt_embeddings``, for all three (P-tuning's
prompt encoder and prefix tuning's projection are evaluated once at save time and not
saved). Its shape, as found by saving real adapters for a GQA Llama:

* PROMPT_TUNING / P_TUNING: [num_virtual_tokens * num_transformer_submodules,
  token_dim], with token_dim = hidden_size.
* PREFIX_TUNING: [num_virtual_tokens, num_layers * 2 * token_dim] (a key and a value
  per layer), where for grouped-query attention peft writes token_dim =
  num_key_value_heads * head_dim and num_attention_heads = num_key_value_heads into
  adapter_config.json (SmolLM2-135M: token_dim 192, num_attention_heads 3, so
  [n, 30 * 2 * 192] = [n, 11520]).
"""

from __future__ import annotations

from typing import Any

from hub.exceptions import UploadRejected
from hub.specs import BaseModelSpec
from hub.validation.files import CONFIG_NAME
from hub.validation.safetensors_header import TensorInfo
from hub.validation.shapes import check_dtypes

PROMPT_TENSOR = "prompt_embeddings"


def check_prompt_tensors(
    peft_type: str, cfg: Any, tensors: dict[str, TensorInfo], base: BaseModelSpec, *, filename: str
) -> None:
    """Check the config's geometry against the base model and the one tensor's shape."""
    for name in sorted(tensors):
        if name != PROMPT_TENSOR:
            raise UploadRejected(
                f"{filename}: tensor `{name}` is not part of a {peft_type} adapter, which holds only "
                f"`{PROMPT_TENSOR}`; save the adapter with peft's save_pretrained",
                file=filename,
                field=name,
            )
    check_dtypes(tensors, filename=filename)

    submodules = cfg.num_transformer_submodules or 1
    if submodules != 1:
        raise _mismatch(
            "num_transformer_submodules",
            submodules,
            1,
            "a causal LM has one transformer stack (2 is for seq2seq)",
        )
    if cfg.num_layers is not None and cfg.num_layers != base.num_layers:
        raise _mismatch(
            "num_layers",
            cfg.num_layers,
            base.num_layers,
            f"base model `{base.name}` has {base.num_layers} layers",
        )

    if peft_type == "PREFIX_TUNING":
        expected_shape = _prefix_shape(cfg, base)
        why = (
            f"num_virtual_tokens is {cfg.num_virtual_tokens} and base model `{base.name}` has "
            f"{base.num_layers} layers x 2 (key, value) x "
            f"{base.num_key_value_heads * base.head_dim} key/value features"
        )
    else:
        if cfg.token_dim is not None and cfg.token_dim != base.hidden_size:
            raise _mismatch(
                "token_dim",
                cfg.token_dim,
                base.hidden_size,
                f"base model `{base.name}` has hidden size {base.hidden_size}",
            )
        expected_shape = (cfg.num_virtual_tokens * submodules, base.hidden_size)
        why = (
            f"num_virtual_tokens is {cfg.num_virtual_tokens} and base model `{base.name}` has hidden size "
            f"{base.hidden_size}"
        )

    info = tensors.get(PROMPT_TENSOR)
    if info is None:
        raise UploadRejected(
            f"{filename}: no `{PROMPT_TENSOR}` tensor; a {peft_type} adapter holds exactly that one",
            file=filename,
            field=PROMPT_TENSOR,
        )
    if info.shape != expected_shape:
        raise UploadRejected(
            f"{filename}: tensor `{PROMPT_TENSOR}` has shape {list(info.shape)} but {CONFIG_NAME} {why}, "
            f"so expected {list(expected_shape)}",
            file=filename,
            field=PROMPT_TENSOR,
        )


def _prefix_shape(cfg: Any, base: BaseModelSpec) -> tuple[int, int]:
    # peft stores past key/values per layer, so the prefix width follows the K/V
    # projection (num_key_value_heads * head_dim), not the hidden size, under GQA.
    kv_dim = base.num_key_value_heads * base.head_dim
    if cfg.token_dim is not None and cfg.token_dim != kv_dim:
        hint = (
            "; the config looks written without grouped-query-attention support (older peft): "
            "re-create the adapter with a current peft"
            if cfg.token_dim == base.hidden_size
            else ""
        )
        raise _mismatch(
            "token_dim",
            cfg.token_dim,
            kv_dim,
            f"prefix tuning on base model `{base.name}` works on its key/value width "
            f"{base.num_key_value_heads} kv heads x {base.head_dim}{hint}",
        )
    if cfg.num_attention_heads is not None and cfg.num_attention_heads != base.num_key_value_heads:
        raise _mismatch(
            "num_attention_heads",
            cfg.num_attention_heads,
            base.num_key_value_heads,
            f"for prefix tuning peft splits the prefix by key/value heads, and base model `{base.name}` "
            f"has {base.num_key_value_heads}",
        )
    return (cfg.num_virtual_tokens, base.num_layers * 2 * kv_dim)


def _mismatch(field: str, got: Any, expected: Any, why: str) -> UploadRejected:
    return UploadRejected(
        f"{CONFIG_NAME}: `{field}` is {got} but {why}, so expected {expected}; "
        "was the adapter trained on a different base model?",
        file=CONFIG_NAME,
        field=field,
    )
