"""The peft engine's OpenAI side: prompts read from a completions/chat body, and the
response (or the stream of chunks) shaped from what the batch loop generated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .base import EngineError
from .peft_batching import GenerationRequest

Events = Callable[[GenerationRequest], Iterator[tuple[str, Any]]]


def param(body: dict[str, Any], name: str, default, kind=float):
    value = body.get(name)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise EngineError(f"`{name}` must be a number, got {value!r}", status_code=400, code="invalid_request_error")


def prompt_ids(tokenizer, kind: str, body: dict[str, Any]) -> list[list[int]]:
    """The token ids of each prompt in ``body`` (chat: one, through the chat template)."""
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EngineError("`messages` must be a non-empty list", status_code=400, code="invalid_request_error")
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:
            raise EngineError(f"cannot apply the chat template: {exc}", status_code=400, code="invalid_request_error")
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return [list(ids)]
    prompt = body.get("prompt")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    out = []
    for item in prompts:
        if isinstance(item, str):
            out.append(tokenizer(item, add_special_tokens=False)["input_ids"] or [tokenizer.bos_token_id or 0])
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            out.append(list(item))
        else:
            raise EngineError(
                "`prompt` must be a string, a list of strings or a list of token ids",
                status_code=400,
                code="invalid_request_error",
            )
    return out


def completion_response(
    kind: str, rid: str, created: int, requests: list[GenerationRequest], events: Events
) -> dict[str, Any]:
    """The whole response, once every request is done."""
    choices = []
    for index, request in enumerate(requests):
        for _event, _value in events(request):
            pass
        if kind == "chat":
            choice = {
                "index": index,
                "message": {"role": "assistant", "content": request.text},
                "finish_reason": request.finish_reason,
                "logprobs": None,
            }
        else:
            choice = {
                "index": index,
                "text": request.text,
                "finish_reason": request.finish_reason,
                "logprobs": None,
            }
        choices.append(choice)
    prompt_tokens = sum(len(r.ids) for r in requests)
    completion_tokens = sum(len(r.generated) for r in requests)
    return {
        "id": rid,
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": created,
        "model": requests[0].model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def completion_chunks(
    kind: str, rid: str, created: int, request: GenerationRequest, events: Events
) -> Iterator[dict[str, Any]]:
    """The stream's chunks as text comes, the last one with ``usage`` and no choices."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(delta: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
        if kind == "chat":
            d: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if delta:
                d["content"] = delta
            choice = {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        return {"id": rid, "object": obj, "created": created, "model": request.model, "choices": [choice]}

    def gen():
        if kind == "chat":
            yield chunk(None, None, first=True)
        for event, value in events(request):
            if event == "text" and value:
                yield chunk(value, None)
        yield chunk(None, request.finish_reason)
        usage = {
            "prompt_tokens": len(request.ids),
            "completion_tokens": len(request.generated),
            "total_tokens": len(request.ids) + len(request.generated),
        }
        yield {"id": rid, "object": obj, "created": created, "model": request.model, "choices": [], "usage": usage}

    return gen()
