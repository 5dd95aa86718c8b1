"""What the gateway forwards to an engine: allow-listed fields within the hub's caps.

An engine sees only the fields listed here (OpenAI's completions/chat fields plus the
sampling extras vLLM supports that are safe to expose); a body with any other field is
refused with a 400 that names it, so a typo is not silently ignored and nothing an engine
would act on unchecked (``logits_processors``, ``chat_template``, ``kv_transfer_params``,
``vllm_xargs``, ...) reaches it. Fields sent as ``null`` mean "the default" and are dropped.
Counts that multiply the work (``n``, ``best_of``, prompts, ``max_tokens``, logprobs) are
capped by settings, and ``ignore_eos`` is refused unless allowed. (A chat body without
``max_tokens`` gets the engine's default: 16 on peft; on vLLM, which would generate up to
the whole context, the engine sets the cap.)
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .exceptions import ServingError

_SAMPLING = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "seed",
    "user",
    # vLLM's sampling extras
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "stop_token_ids",
    "ignore_eos",
    "prompt_logprobs",
    "skip_special_tokens",
    "include_stop_str_in_output",
}
FIELDS = {
    "completions": frozenset(_SAMPLING | {"prompt", "echo", "best_of"}),
    "chat": frozenset(_SAMPLING | {"messages", "max_completion_tokens", "top_logprobs", "echo"}),
}


class OverLimit(ServingError):
    """A request asks for more than this hub allows in one call."""

    code = "over_limit"


def _count(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool):  # logprobs: true (chat) asks for logprobs; false still counts as 0
        return int(value)
    if not isinstance(value, int):
        raise ServingError(f"`{name}` must be an integer, got {value!r}", field=name)
    return value


def _cap(body: dict[str, Any], name: str, setting: str) -> None:
    if name not in body:
        return
    limit = getattr(settings, setting)
    value = _count(body, name)
    if value > limit:
        raise OverLimit(f"`{name}` is {value}; this hub allows at most {limit} ({setting})", field=name)


def request_body(*, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body to send to the engine, or a :class:`ServingError` saying what to change."""
    allowed = FIELDS[kind]
    unknown = sorted(set(body) - allowed)
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        raise ServingError(
            f"unsupported field(s) {names} for /v1/{'chat/completions' if kind == 'chat' else 'completions'}; "
            f"the gateway accepts: {', '.join(sorted(allowed))}",
            code="unsupported_field",
            field=unknown[0],
        )
    body = {name: value for name, value in body.items() if value is not None}
    _cap(body, "n", "PEFTHUB_SERVING_MAX_N")
    _cap(body, "best_of", "PEFTHUB_SERVING_MAX_BEST_OF")
    _cap(body, "max_tokens", "PEFTHUB_SERVING_MAX_TOKENS")
    _cap(body, "max_completion_tokens", "PEFTHUB_SERVING_MAX_TOKENS")
    _cap(body, "min_tokens", "PEFTHUB_SERVING_MAX_TOKENS")
    for name in ("logprobs", "top_logprobs", "prompt_logprobs"):
        _cap(body, name, "PEFTHUB_SERVING_MAX_LOGPROBS")
    if "ignore_eos" in body and not settings.PEFTHUB_SERVING_ALLOW_IGNORE_EOS:
        raise OverLimit(
            "`ignore_eos` is not allowed on this hub (PEFTHUB_SERVING_ALLOW_IGNORE_EOS)", field="ignore_eos"
        )
    prompt = body.get("prompt")
    if kind == "completions" and isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        limit = settings.PEFTHUB_SERVING_MAX_PROMPTS
        if len(prompt) > limit:
            raise OverLimit(
                f"`prompt` lists {len(prompt)} prompts; this hub allows at most {limit} per request "
                "(PEFTHUB_SERVING_MAX_PROMPTS): send them in several requests",
                field="prompt",
            )
    return body
