"""Writes, and the controller that keeps the engines' loaded sets in sync with the registry.

- A version goes live when the evaluator accepts it (``serving.version_accepted``) or its
  owner deploys it; it goes off when deprecated or undeployed. Going live loads it into
  engines every process shares (vLLM) at once; an in-process engine (peft) loads it on its
  first request.
- Engines hold at most ``max_loaded`` adapters: past that, the least recently used one is
  unloaded, and reloaded transparently on its next request.
- After an engine restart, the live adapters are loaded again (most recently used first).
"""

from __future__ import annotations

import datetime
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hub.exceptions import HubError
from hub.models import AdapterVersion, BaseModel, BaseModelRevision

from . import metrics
from .engines import Engine, get_engine
from .engines.registry import engine_for
from .exceptions import EngineDown, EngineError, ModelNotFound, ServingError
from .locks import host_lock
from .materialize import version_folder, version_materialize
from .models import Deployment, ModelUsage, Placement
from .selectors import Served, engine_model_name

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)


# --- engines -----------------------------------------------------------------------------------
def older_revision(version: AdapterVersion) -> BaseModelRevision | None:
    """The older revision of its base that ``version`` was validated against, if it was."""
    base = version.base_model
    if not version.base_revision or version.base_revision == base.revision:
        return None
    return BaseModelRevision.objects.filter(base_model=base, revision=version.base_revision).first()


def engine_get(*, name: str, base: BaseModel, version: AdapterVersion | None = None) -> Engine:
    """This process's engine ``name`` for ``base``; for a version made on an older revision of
    it, the peft engine on that revision's folder (engine base ``<base>@<revision[:12]>``),
    whatever its deployment says: vLLM replicas run the current revision only, so a version
    deployed to them moves here the moment its base gets a new revision."""
    old = older_revision(version) if version is not None else None
    if old is not None:
        return get_engine("peft", base_name=f"{base.name}@{old.revision[:12]}", base_path=Path(old.local_path))
    return get_engine(name, base_name=base.name, base_path=Path(base.local_path))


def engine_for_served(*, served: Served) -> Engine:
    if served.deployment is not None:
        return engine_get(name=served.deployment.engine, base=served.base, version=served.deployment.version)
    return engine_get(name=engine_for(method=None, base_name=served.base.name), base=served.base)


def _engine_name_for(version: AdapterVersion) -> str:
    """The engine that will serve ``version``, or a ServingError saying why none can.

    A version made on an older revision of its base runs on that revision, in this
    process's peft engine: vLLM replicas hold the base's current revision only."""
    if older_revision(version) is not None:
        return "peft"
    try:
        name = engine_for(method=version.method, base_name=version.base_model.name)
    except ValueError:
        raise ServingError(
            f"{version}: {version.get_method_display()} adapters cannot be served yet "
            "(served methods: LoRA, QLoRA, DoRA, prompt tuning, prefix tuning, P-tuning)",
            code="not_servable",
        )
    if name == "vllm":
        max_rank = settings.PEFTHUB_VLLM_MAX_LORA_RANK
        if version.rank is not None and version.rank > max_rank:
            raise ServingError(
                f"{version}: LoRA rank {version.rank} is above the engine's --max-lora-rank {max_rank}; "
                f"retrain with r <= {max_rank} or raise PEFTHUB_VLLM_MAX_LORA_RANK",
                code="rank_too_high",
            )
    return name


def _engine_lock(engine: Engine):
    """One loader at a time per engine, across this host's processes (web workers, worker)."""
    return host_lock(f"{engine.name}-{engine.spec.base_name}")


def _call(action, what: str):
    try:
        return action()
    except EngineDown:
        raise
    except EngineError as exc:  # say what the hub was doing when the engine refused
        raise ServingError(f"{what}: {exc.message}", code=exc.code, status_code=exc.status_code) from exc


# --- deployments ---------------------------------------------------------------------------------
@transaction.atomic
def deployment_activate(*, version: AdapterVersion, reason: str, user: User | None = None) -> Deployment:
    """Make ``version`` live (idempotent). Refuses what cannot be served, with why."""
    version = (
        AdapterVersion.objects.select_for_update().select_related("base_model", "adapter__namespace").get(pk=version.pk)
    )
    if version.deprecated_at is not None:
        raise ServingError(f"{version} is deprecated; deprecated versions are not served", code="deprecated")
    if version.status == AdapterVersion.Status.REJECTED:
        raise ServingError(
            f"{version} was rejected by evaluation "
            f"({'; '.join(map(str, version.status_reasons)) or 'no reason given'}); push a new version",
            code="rejected",
        )
    engine_name = _engine_name_for(version)
    path = version_folder(version)  # written on first load (now for shared engines)
    deployment, _ = Deployment.objects.update_or_create(
        version=version,
        defaults={
            "live": True,
            "reason": reason,
            "engine": engine_name,
            "engine_model": engine_model_name(version),
            "path": str(path),
            "deployed_by": user,
        },
    )
    transaction.on_commit(lambda: _load_if_shared(deployment.pk))
    return deployment


@transaction.atomic
def deployments_rebind(*, base: BaseModel) -> list[Deployment]:
    """``base`` has a new current revision: each live deployment whose version was made on an
    older one moves to the engine that runs that revision (the in-process peft engine), and
    leaves the vLLM replicas, which restart on the new weights. The deployments moved."""
    moved = []
    deployments = (
        Deployment.objects.select_for_update()
        .filter(live=True, version__base_model=base)
        .exclude(version__base_revision=base.revision)
        .exclude(version__base_revision="")
        .select_related("version__base_model", "version__adapter__namespace")
    )
    for deployment in deployments:
        try:
            engine_name = _engine_name_for(deployment.version)
        except ServingError:
            continue
        if engine_name == deployment.engine:
            continue
        log.info("%s was made on an older revision of %s: now served by %s", deployment.version, base, engine_name)
        was = deployment.engine
        Deployment.objects.filter(pk=deployment.pk).update(engine=engine_name, updated_at=timezone.now())
        Placement.objects.filter(deployment=deployment).delete()
        if was == "vllm":
            transaction.on_commit(partial(_unload_from_fleet, deployment.pk))
        moved.append(deployment)
    return moved


def _unload_from_fleet(deployment_id: int) -> None:
    from . import placement

    deployment = Deployment.objects.select_related("version__base_model").get(pk=deployment_id)
    placement.deployment_unload(deployment=deployment)


def _load_if_shared(deployment_id: int) -> None:
    """Load into an engine every process shares now; in-process engines load on first use."""
    from . import placement

    deployment = Deployment.objects.select_related("version__base_model").get(pk=deployment_id)
    engine = engine_get(name=deployment.engine, base=deployment.version.base_model, version=deployment.version)
    if not engine.shared:
        return
    try:
        placement.deployment_place(deployment=deployment)  # on the least loaded replica
    except HubError as exc:  # ServingError, or the files failing their check
        # It is live in the registry; the next request (or the reconciler) loads it.
        log.warning("could not load %s into %s now: %s", deployment.version, engine.name, exc.message)


@transaction.atomic
def deployment_deactivate(*, version: AdapterVersion, reason: str, user: User | None = None) -> Deployment | None:
    """Take ``version`` off (idempotent); the engine drops it after commit."""
    deployment = Deployment.objects.select_for_update().filter(version=version).first()
    if deployment is None:
        return None
    if deployment.live or deployment.reason != reason:
        deployment.live = False
        deployment.reason = reason
        deployment.save(update_fields=["live", "reason", "updated_at"])
    Placement.objects.filter(deployment=deployment).delete()  # no replica should hold it any more
    transaction.on_commit(lambda: _unload(deployment.pk))
    return deployment


def _unload(deployment_id: int) -> None:
    from . import placement

    deployment = Deployment.objects.select_related("version__base_model").get(pk=deployment_id)
    engine = engine_get(name=deployment.engine, base=deployment.version.base_model, version=deployment.version)
    if engine.shared:  # every replica of the base that answers; the reconciler does the others
        placement.deployment_unload(deployment=deployment)
        return
    try:
        with _engine_lock(engine):
            engine.unload(deployment.engine_model)
    except EngineError as exc:
        # Not live any more: the gateway answers 404 whatever the engine holds; sync drops it later.
        log.warning("could not unload %s from %s now: %s", deployment.version, engine.name, exc.message)


def deployment_ensure_loaded(*, deployment: Deployment) -> Engine:
    """Make sure the engine holds ``deployment``'s adapter, evicting the least recently used."""
    engine = engine_get(name=deployment.engine, base=deployment.version.base_model, version=deployment.version)
    name = deployment.engine_model
    loaded = _call(engine.loaded, "engine")
    if name not in loaded:
        with _engine_lock(engine):
            loaded = _call(engine.loaded, "engine")
            if name not in loaded:
                _evict(engine, loaded, keep=name)
                path = Path(deployment.path)
                if not (path / "adapter_config.json").is_file():
                    path = version_materialize(version=deployment.version)
                _call(lambda: engine.load(name, path), f"loading {deployment.version}")
                metrics.ADAPTER_LOADS.labels(engine=engine.name).inc()
    Deployment.objects.filter(pk=deployment.pk).update(last_used_at=timezone.now())
    return engine


def _evict(engine: Engine, loaded: set[str], *, keep: str) -> None:
    """Unload adapters until one more fits: first those no longer live, then the least recently used."""
    live = dict(
        Deployment.objects.filter(engine_model__in=loaded, live=True).values_list("engine_model", "last_used_at")
    )
    for name in loaded - set(live):
        _call(lambda name=name: engine.unload(name), "unloading")
        loaded = loaded - {name}
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    by_age = sorted((n for n in loaded if n != keep), key=lambda n: live.get(n) or epoch)
    while len(loaded) >= engine.max_loaded and by_age:
        victim = by_age.pop(0)
        _call(lambda victim=victim: engine.unload(victim), "evicting")
        loaded = loaded - {victim}
        metrics.ADAPTER_EVICTIONS.labels(engine=engine.name).inc()
        log.info("%s engine: evicted %s (least recently used)", engine.name, victim)


def deployments_reload(*, engine: Engine) -> list[str]:
    """After a restart: load the live adapters of ``engine``, most recently used first."""
    deployments = list(
        Deployment.objects.filter(live=True, engine=engine.name, version__base_model__name=engine.spec.base_name)
        .select_related("version__base_model", "version__adapter__namespace")
        .order_by(F("last_used_at").desc(nulls_last=True))[: engine.max_loaded]
    )
    done = []
    for deployment in deployments:
        try:
            engine.load(deployment.engine_model, version_materialize(version=deployment.version))
            done.append(deployment.engine_model)
        except HubError as exc:  # EngineError included
            log.warning("reload of %s failed: %s", deployment.version, exc.message)
    return done


def deployments_sync(*, engine: Engine) -> list[str]:
    """Drop adapters the engine holds that are not live any more (missed unload events)."""
    with _engine_lock(engine):
        loaded = engine.loaded()
        live = set(Deployment.objects.filter(engine_model__in=loaded, live=True).values_list("engine_model", flat=True))
        stale = sorted(loaded - live)
        for name in stale:
            engine.unload(name)
    return stale


# --- a request through an engine -------------------------------------------------------------------
def served_by_fleet(*, served: Served) -> bool:
    """Whether ``served`` goes to a replica of the fleet (a server engine, vLLM) rather than
    an in-process engine (peft)."""
    return engine_for_served(served=served).shared


def served_engine(*, served: Served, verify: bool = True) -> Engine:
    """The engine to send ``served`` to, with its adapter loaded.

    ``verify=False`` skips asking the engine (one call to vLLM per request): the gateway
    sends optimistically, and comes back with ``verify=True`` if the engine answers that it
    does not hold the adapter, or cannot be reached."""
    if served.deployment is not None and not verify:
        Deployment.objects.filter(pk=served.deployment.pk).update(last_used_at=timezone.now())
        return engine_for_served(served=served)
    if served.deployment is None:
        engine = engine_for_served(served=served)
        if verify and not engine.healthy():
            raise EngineDown(
                f"the {engine.name} engine for `{served.base.name}` is not running; "
                "start it with `python manage.py serving_engine` (or `make run`)"
            )
        return engine
    return deployment_ensure_loaded(deployment=served.deployment)


def usage_record(
    *, served: Served, engine: str, prompt_tokens: int, completion_tokens: int, seconds: float, error: bool
) -> None:
    """Count one request for the model's totals (database, shared by all processes) and metrics."""
    model = served.canonical
    increments = {
        "requests": F("requests") + 1,
        "errors": F("errors") + int(error),
        "prompt_tokens": F("prompt_tokens") + prompt_tokens,
        "completion_tokens": F("completion_tokens") + completion_tokens,
        "latency_seconds_total": F("latency_seconds_total") + seconds,
        "last_request_at": timezone.now(),
    }
    if not ModelUsage.objects.filter(model=model).update(**increments):
        usage, _ = ModelUsage.objects.get_or_create(
            model=model, defaults={"version": served.version, "base_model": served.base}
        )
        ModelUsage.objects.filter(pk=usage.pk).update(**increments)
    metrics.observe(model=model, engine=engine, seconds=seconds, error=error)


__all__ = [
    "ModelNotFound",
    "deployment_activate",
    "deployment_deactivate",
    "deployment_ensure_loaded",
    "deployments_reload",
    "deployments_sync",
    "served_engine",
    "usage_record",
]
