"""The engine registry: engine classes by name, one instance per (engine, base model) per process.

Which engine serves which adapter method is a setting (``PEFTHUB_SERVING_ROUTES``), as are
each engine's limits; nothing here branches on the engine's name.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from .base import Engine, EngineSpec
from .peft_engine import PeftEngine
from .vllm_engine import VLLMEngine


def _make_vllm(*, base_name: str, base_path: Path, manage: bool) -> Engine:
    spec = EngineSpec(
        base_name=base_name,
        base_path=base_path,
        max_loaded=settings.PEFTHUB_VLLM_MAX_CPU_LORAS,
        max_rank=settings.PEFTHUB_VLLM_MAX_LORA_RANK,
    )
    return VLLMEngine(
        spec,
        url=settings.PEFTHUB_VLLM_URL,
        manage=manage,
        max_loras=settings.PEFTHUB_VLLM_MAX_LORAS,
        kv_cache_gib=settings.PEFTHUB_VLLM_KVCACHE_GIB,
        dtype=settings.PEFTHUB_VLLM_DTYPE,
        extra_args=settings.PEFTHUB_VLLM_EXTRA_ARGS,
        state_dir=Path(settings.PEFTHUB_SERVING_DIR) / "vllm",
        startup_timeout=settings.PEFTHUB_VLLM_STARTUP_TIMEOUT,
        bind_host=settings.PEFTHUB_VLLM_HOST or None,
        api_key=settings.PEFTHUB_VLLM_API_KEY,
        default_max_tokens=settings.PEFTHUB_SERVING_MAX_TOKENS,
        exclusive_wait=settings.PEFTHUB_VLLM_EXCLUSIVE_WAIT,
        prompt_logprobs_max_tokens=settings.PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS,
    )


def _make_peft(*, base_name: str, base_path: Path, manage: bool) -> Engine:
    spec = EngineSpec(base_name=base_name, base_path=base_path, max_loaded=settings.PEFTHUB_PEFT_MAX_ADAPTERS)
    return PeftEngine(spec, max_batch=settings.PEFTHUB_PEFT_MAX_BATCH)


ENGINES = {"vllm": _make_vllm, "peft": _make_peft}

_instances: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()


def get_engine(name: str, *, base_name: str, base_path: Path, manage: bool = False) -> Engine:
    """This process's engine ``name`` for a base model (made on first use)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"serving engine `{name}` is not known; use one of {', '.join(ENGINES)}") from None
    with _lock:
        engine = _instances.get((name, base_name))
        if engine is None:
            engine = _instances[(name, base_name)] = factory(
                base_name=base_name, base_path=Path(base_path), manage=manage
            )
        return engine


def engine_for(*, method: str | None, base_name: str) -> str:
    """The engine name that serves ``method`` (None: the base model itself) on ``base_name``.

    vLLM serves ``PEFTHUB_VLLM_BASE_MODEL`` and any base with vLLM replicas registered
    (``serving_replica_add``, ``serving_engine --base``); on any other base the peft engine
    answers, whatever the route says.
    """
    routes = settings.PEFTHUB_SERVING_ROUTES
    name = routes.get(method or "base")
    if name is None:
        raise ValueError(f"no serving engine is configured for `{method}` adapters")
    if name == "vllm" and base_name != settings.PEFTHUB_VLLM_BASE_MODEL and not _has_replicas(base_name):
        return "peft"
    return name


def _has_replicas(base_name: str) -> bool:
    from ..models import Replica  # the registry imports no Django models at import time

    return Replica.objects.filter(base_model__name=base_name, kind=Replica.Kind.VLLM).exists()


def reset_engines() -> None:
    """Forget this process's engines (tests, and the supervisor after a restart)."""
    from ..router import reset_clients

    with _lock:
        for engine in _instances.values():
            if not getattr(engine, "manage", False):
                engine.stop()
        _instances.clear()
    reset_clients()


def register_instance(name: str, base_name: str, engine: Engine) -> None:
    """Use ``engine`` as this process's engine ``name`` for ``base_name`` (tests, the supervisor)."""
    with _lock:
        _instances[(name, base_name)] = engine
