"""Which replica answers a request: adapter affinity, then the least loaded.

- An adapter request goes to a healthy LoRA replica that holds the adapter (a
  :class:`~serving.models.Placement` row), fewest requests in flight first; when none
  holds it, to the least loaded healthy LoRA replica, where the caller places it.
- A hot adapter (every holder has ``PEFTHUB_SERVING_HOT_INFLIGHT`` requests in flight or
  more) goes to a replica that does not hold it yet but has a free adapter slot (no
  eviction) and fewer in flight; the caller places it there too, so its requests then
  spread across both.
- A base-model request goes to a healthy ``base_only`` replica when there is one (vLLM is
  faster with LoRA off, and needs no identity LoRA), else to the least loaded LoRA replica.
- ``unhealthy`` replicas never get traffic; ``unknown`` ones (registered, not checked yet)
  only when no replica of the base is healthy.

Requests in flight are counted per replica **in this process** (a lock and a dict): each
web process balances its own traffic. Several processes do not see each other's counts;
placement counts (in the database) break the ties they leave.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db.models import Count

from hub.models import BaseModel

from .engines.vllm_engine import VLLMEngine
from .exceptions import EngineDown
from .models import Deployment, Placement, Replica

_inflight: dict[int, int] = {}
_inflight_lock = threading.Lock()
_clients: dict[tuple, VLLMEngine] = {}
_clients_lock = threading.Lock()


# --- requests in flight (this process) ------------------------------------------------------
def inflight(replica_id: int) -> int:
    with _inflight_lock:
        return _inflight.get(replica_id, 0)


def acquire(replica_id: int):
    """Count one request in flight on the replica; returns the (idempotent) release."""
    with _inflight_lock:
        _inflight[replica_id] = _inflight.get(replica_id, 0) + 1
    released = threading.Event()

    def release() -> None:
        if released.is_set():
            return
        released.set()
        with _inflight_lock:
            _inflight[replica_id] = max(_inflight.get(replica_id, 0) - 1, 0)

    return release


class Counted:
    """``chunks``, with the replica's in-flight count given back when the stream ends, fails
    or is closed (even before its first chunk: a client that left at once)."""

    def __init__(self, chunks: Iterator, release) -> None:
        self.chunks = chunks
        self.release = release

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        try:
            return next(self.chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()
        finally:
            self.release()


class AsyncCounted:
    """:class:`Counted` for a stream read on the event loop (the gateway under ASGI)."""

    def __init__(self, chunks: AsyncIterator, release) -> None:
        self.chunks = chunks
        self.release = release

    def __aiter__(self) -> AsyncIterator:
        return self

    async def __anext__(self):
        try:
            return await anext(self.chunks)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        try:
            close = getattr(self.chunks, "aclose", None)
            if close is not None:
                await close()
        finally:
            self.release()


def counted(chunks: Iterator | AsyncIterator, release) -> Counted | AsyncCounted:
    """``chunks`` with ``release`` called when they end, fail or are closed."""
    if hasattr(chunks, "__aiter__"):
        return AsyncCounted(chunks, release)  # type: ignore[arg-type]
    return Counted(chunks, release)  # type: ignore[arg-type]


# --- clients ----------------------------------------------------------------------------------
def replica_engine(replica: Replica) -> VLLMEngine:
    """This process's HTTP client for ``replica`` (made on first use, remade when its row changes).

    The implicit replica (``PEFTHUB_VLLM_URL``) is the registry's vLLM engine, the one
    ``serving_engine`` and the single-engine setup have always used.
    """
    from .engines.base import EngineSpec
    from .engines.registry import get_engine

    base = replica.base_model
    implicit = replica.url.rstrip("/") == settings.PEFTHUB_VLLM_URL.rstrip("/")
    if implicit and base.name == settings.PEFTHUB_VLLM_BASE_MODEL:
        default = get_engine("vllm", base_name=base.name, base_path=Path(base.local_path))
        assert isinstance(default, VLLMEngine)
        return default
    # the revision too: after the base gets new weights, its identity LoRA is made from them
    key = (replica.pk, replica.url, replica.base_only, replica.max_cpu_loras, replica.max_loras, base.revision)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            spec = EngineSpec(
                base_name=base.name,
                base_path=Path(base.local_path),
                max_loaded=replica.adapter_slots,
                max_rank=settings.PEFTHUB_VLLM_MAX_LORA_RANK,
            )
            client = _clients[key] = VLLMEngine(
                spec,
                url=replica.url,
                manage=False,
                max_loras=replica.max_loras,
                dtype=settings.PEFTHUB_VLLM_DTYPE,
                state_dir=Path(settings.PEFTHUB_SERVING_DIR) / "vllm",
                api_key=settings.PEFTHUB_VLLM_API_KEY,
                default_max_tokens=settings.PEFTHUB_SERVING_MAX_TOKENS,
                lora=not replica.base_only,
                health_timeout=settings.PEFTHUB_SERVING_HEALTH_TIMEOUT,
                exclusive_wait=settings.PEFTHUB_VLLM_EXCLUSIVE_WAIT,
                prompt_logprobs_max_tokens=settings.PEFTHUB_VLLM_PROMPT_LOGPROBS_MAX_TOKENS,
            )
        return client


def reset_clients() -> None:
    """Forget this process's replica clients and in-flight counts (tests)."""
    with _clients_lock:
        _clients.clear()
    with _inflight_lock:
        _inflight.clear()


# --- replicas -----------------------------------------------------------------------------------
def replica_default(base: BaseModel) -> Replica | None:
    """The implicit replica: ``PEFTHUB_VLLM_URL`` for ``PEFTHUB_VLLM_BASE_MODEL``, so a
    single-engine install (``make run``) needs no registration step."""
    if base.name != settings.PEFTHUB_VLLM_BASE_MODEL:
        return None
    replica, _ = Replica.objects.get_or_create(
        url=settings.PEFTHUB_VLLM_URL.rstrip("/"),
        defaults={
            "base_model": base,
            "kind": Replica.Kind.VLLM,
            "managed": True,
            "max_loras": settings.PEFTHUB_VLLM_MAX_LORAS,
            "max_cpu_loras": settings.PEFTHUB_VLLM_MAX_CPU_LORAS + 1,  # + the identity LoRA
        },
    )
    return replica if replica.base_model_id == base.pk else None


def replicas_for(base: BaseModel) -> list[Replica]:
    """The base's vLLM replicas (the implicit one made when it has none), with their placement counts."""
    rows = list(_replicas(base))
    if not rows and replica_default(base) is not None:
        rows = list(_replicas(base))
    return rows


def _replicas(base: BaseModel):
    return (
        Replica.objects.filter(base_model=base, kind=Replica.Kind.VLLM)
        .select_related("base_model")
        .annotate(held=Count("placements"))
        .order_by("pk")
    )


def _pool(replicas: Iterable[Replica]) -> list[Replica]:
    replicas = list(replicas)
    healthy = [r for r in replicas if r.health == Replica.Health.HEALTHY]
    return healthy or [r for r in replicas if r.health == Replica.Health.UNKNOWN]


def _load(replica: Replica) -> tuple[int, int, int]:
    return inflight(replica.pk), getattr(replica, "held", 0), replica.pk


def _why_none(base: BaseModel, replicas: list[Replica], exclude: set[int]) -> EngineDown:
    if not replicas:
        return EngineDown(
            f"no vLLM replica serves `{base.name}`: start one with `python manage.py serving_engine` "
            "or register one with `python manage.py serving_replica_add`"
        )
    if all(r.base_only for r in replicas):
        return EngineDown(
            f"every replica of `{base.name}` runs without LoRA (base requests only); start one with LoRA "
            "(`serving_engine`, or `serving_replica_add` without --base-only) to serve its adapters"
        )
    reasons = "; ".join(
        f"{r.url}: {'failed this request' if r.pk in exclude else (r.last_error or r.health)}" for r in replicas
    )
    return EngineDown(f"no healthy vLLM replica for `{base.name}` ({reasons}); try again shortly")


def pick(*, base: BaseModel, deployment: Deployment | None, exclude: set[int] = frozenset()) -> Replica:  # type: ignore[assignment]
    """The replica to send a request for ``deployment`` (None: the base model) to."""
    replicas = replicas_for(base)
    candidates = [r for r in replicas if r.pk not in exclude]
    if deployment is None:
        pool = _pool(candidates)
        choice = [r for r in pool if r.base_only] or pool
    else:
        choice = _pool(r for r in candidates if not r.base_only)
        held = set(
            Placement.objects.filter(deployment=deployment, replica__in=[r.pk for r in choice]).values_list(
                "replica_id", flat=True
            )
        )
        holders = [r for r in choice if r.pk in held]
        if holders:
            best = min(holders, key=lambda r: (inflight(r.pk), r.pk))
            return _spill(best, [r for r in choice if r.pk not in held]) or best
    if not choice:
        raise _why_none(base, replicas, exclude)
    return min(choice, key=_load)


def _free_slots(replica: Replica) -> int:
    """Adapter slots ``replica`` has left (its placement count less the identity LoRA's)."""
    adapters = getattr(replica, "held", 0) - (0 if replica.base_only else 1)
    return replica.adapter_slots - max(adapters, 0)


def _spill(best: Replica, others: list[Replica]) -> Replica | None:
    """Another replica for a hot adapter whose least busy holder is ``best``: one with a free
    slot (placing it there evicts nothing) and fewer requests in flight; None to stay."""
    threshold = settings.PEFTHUB_SERVING_HOT_INFLIGHT
    busy = inflight(best.pk)
    if threshold <= 0 or busy < threshold:
        return None
    roomy = [r for r in others if _free_slots(r) > 0 and inflight(r.pk) < busy]
    return min(roomy, key=_load) if roomy else None


@contextlib.contextmanager
def counting(replica_id: int):
    release = acquire(replica_id)
    try:
        yield
    finally:
        release()
