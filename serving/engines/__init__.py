"""Serving engines: an ``abc.ABC`` interface and a small registry keyed by name.

``vllm`` runs (or talks to) a vLLM OpenAI server with multi-LoRA; ``peft`` runs
transformers + peft in this process, for the prompt-learning methods vLLM cannot serve
(prompt tuning, prefix tuning, P-tuning) and for LoRA on machines without vLLM. Both take
and give OpenAI request/response bodies, so the gateway does not care which one answers.
No Django and no torch/vllm at import time: each engine imports what it needs lazily.
"""

from .base import Engine, EngineError, EngineUnavailable
from .registry import ENGINES, engine_for, get_engine, reset_engines

__all__ = ["ENGINES", "Engine", "EngineError", "EngineUnavailable", "engine_for", "get_engine", "reset_engines"]
