"""Where each live adapter is loaded, kept in the database, and the reconciler that makes
the replicas match it.

The hub is the source of truth: a :class:`~serving.models.Placement` row says "this
replica should hold this adapter". vLLM's own load/unload endpoints neither keep state
across replicas nor survive a restart, so the reconciler (``serving_engine``'s loop and
the ``serving.replicas_reconcile`` beat task) checks each replica's ``/health`` and
loaded set (``/v1/models``), then loads and unloads until they match:

- a replica that answers is refilled first and only then marked ``healthy`` (so one that
  restarted gets no traffic before it holds its adapters again);
- one that stops answering leaves the rotation (``unhealthy``, with why), and each of its
  adapters that no healthy replica holds is placed on the least loaded healthy one;
- the base's identity LoRA is placed on every LoRA-enabled replica;
- what a replica holds that no row asks for (a deprecated or undeployed version, a load
  done behind the hub's back) is unloaded.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from hub.exceptions import HubError
from hub.models import BaseModel

from . import metrics, router
from .engines.vllm_engine import IDENTITY_NAME, VLLMEngine
from .exceptions import EngineDown, EngineError, ServingError
from .locks import host_lock
from .materialize import version_materialize
from .models import Deployment, Placement, Replica
from .selectors import engine_model_version_id

log = logging.getLogger(__name__)

LEASE = datetime.timedelta(minutes=2)


# --- replicas ---------------------------------------------------------------------------------
def replica_register(
    *,
    base: BaseModel,
    url: str,
    kind: str = Replica.Kind.VLLM,
    max_loras: int | None = None,
    max_cpu_loras: int | None = None,
    base_only: bool = False,
    managed: bool = False,
) -> Replica:
    """Register (or update) the engine at ``url`` as a replica of ``base``; checked by the next reconcile."""
    url = url.rstrip("/")
    other = Replica.objects.filter(url=url).exclude(base_model=base).select_related("base_model").first()
    if other is not None:
        raise HubError(f"{url} is already a replica of `{other.base_model.name}`; one engine serves one base model")
    replica, _ = Replica.objects.update_or_create(
        url=url,
        defaults={
            "base_model": base,
            "kind": kind,
            "max_loras": max_loras or settings.PEFTHUB_VLLM_MAX_LORAS,
            "max_cpu_loras": max_cpu_loras or settings.PEFTHUB_VLLM_MAX_CPU_LORAS + (0 if base_only else 1),
            "base_only": base_only,
            "managed": managed,
        },
    )
    return replica


def replica_mark_down(*, replica: Replica, why: str) -> None:
    """Take ``replica`` out of the rotation now (a request could not reach it); the reconciler
    brings it back once it answers and holds its adapters again."""
    log.warning("replica %s leaves the rotation: %s", replica.url, why)
    Replica.objects.filter(pk=replica.pk).update(
        health=Replica.Health.UNHEALTHY,
        last_error=why[:2000],
        failures=max(replica.failures, settings.PEFTHUB_SERVING_REPLICA_FAILURES),
        checked_at=timezone.now(),
    )
    Placement.objects.filter(replica=replica).update(state=Placement.State.DESIRED, loaded_at=None)


def _replica_lock(replica: Replica):
    """One loader at a time per replica, across this host's processes."""
    return host_lock(f"replica-{replica.pk}")


def _path(deployment: Deployment) -> Path:
    path = Path(deployment.path)
    if (path / "adapter_config.json").is_file():
        return path
    return version_materialize(version=deployment.version)


def _on_replicas_revision(replica: Replica, deployment: Deployment) -> bool:
    """Whether ``deployment``'s version was made on the revision ``replica`` runs (its base's
    current one); a version on an older revision is served by the peft engine on that one."""
    made_on = deployment.version.base_revision
    return not made_on or made_on == replica.base_model.revision


def _evict_for(replica: Replica, *, keep: Deployment) -> None:
    """Drop the least recently used placements until one more adapter fits on ``replica``."""
    rows = list(
        Placement.objects.filter(replica=replica, deployment__isnull=False)
        .exclude(deployment=keep)
        .select_related("deployment")
    )
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    rows.sort(key=lambda p: (p.deployment.last_used_at if p.deployment else None) or epoch)
    while len(rows) + 1 > replica.adapter_slots and rows:
        victim = rows.pop(0)
        victim.delete()
        try:
            router.replica_engine(replica).unload(victim.engine_model)
        except EngineError as exc:  # the reconciler unloads it later
            log.warning("could not unload %s from %s now: %s", victim.engine_model, replica.url, exc.message)
        metrics.ADAPTER_EVICTIONS.labels(engine="vllm").inc()
        log.info("replica %s: evicted %s (least recently used)", replica.url, victim.engine_model)


def placement_ensure(*, replica: Replica, deployment: Deployment, verify: bool = False) -> VLLMEngine:
    """Place ``deployment`` on ``replica`` (evicting the least recently used) and make sure it
    is loaded; ``verify`` asks the engine even when the row says it is (the engine said 404)."""
    if not _on_replicas_revision(replica, deployment):
        raise ServingError(
            f"{deployment.version} was made on revision {deployment.version.base_revision[:12]} of "
            f"`{replica.base_model.name}`, and {replica.url} runs revision {replica.base_model.revision[:12]}; "
            "it is served on its own revision by the peft engine",
            code="older_base_revision",
        )
    engine = router.replica_engine(replica)
    name = deployment.engine_model
    row = Placement.objects.filter(replica=replica, deployment=deployment).first()
    if row is not None and row.state == Placement.State.LOADED and not verify:
        return engine
    with _replica_lock(replica):
        if row is None:
            _evict_for(replica, keep=deployment)
            row, _ = Placement.objects.get_or_create(
                replica=replica, engine_model=name, defaults={"deployment": deployment}
            )
        if name not in engine.loaded_all():
            engine.load(name, _path(deployment))
            metrics.ADAPTER_LOADS.labels(engine="vllm").inc()
        Placement.objects.filter(pk=row.pk).update(state=Placement.State.LOADED, loaded_at=timezone.now())
    return engine


def deployment_place(*, deployment: Deployment) -> Replica | None:
    """A version just went live: load it on a replica of its base now (the least loaded),
    unless a healthy one holds it already. None when no replica can take it now."""
    base = deployment.version.base_model
    try:
        replica = router.pick(base=base, deployment=deployment)
    except EngineDown as exc:
        log.warning("%s is live but no replica can load it now: %s", deployment.version, exc.message)
        return None
    try:
        placement_ensure(replica=replica, deployment=deployment)
    except EngineDown as exc:
        replica_mark_down(replica=replica, why=exc.message)
        return None
    return replica


def deployment_unplace_rows(*, deployment: Deployment) -> None:
    """The version is off: no replica should hold it (inside the caller's transaction)."""
    Placement.objects.filter(deployment=deployment).delete()


def deployment_unload(*, deployment: Deployment) -> None:
    """Unload the version from every replica of its base that answers (after commit); the
    reconciler drops it from the others when they come back."""
    for replica in router.replicas_for(deployment.version.base_model):
        if replica.health == Replica.Health.UNHEALTHY:
            continue
        try:
            with _replica_lock(replica):
                router.replica_engine(replica).unload(deployment.engine_model)
        except EngineError as exc:
            log.warning("could not unload %s from %s now: %s", deployment.version, replica.url, exc.message)


def versions_unload(*, version_ids: Iterable[int], bases: Iterable[BaseModel]) -> list[str]:
    """Unload deleted versions from every replica of ``bases`` that answers; ``url: name`` of
    each unload. Their rows (deployments, placements) went with them, so this matches the
    engines' adapter names to the version ids; the reconciler drops them from the replicas
    that are down when those come back (no placement asks for them)."""
    gone = set(version_ids)
    done = []
    for base in bases:
        for replica in router.replicas_for(base):
            if replica.health == Replica.Health.UNHEALTHY or replica.base_only:
                continue
            engine = router.replica_engine(replica)
            try:
                with _replica_lock(replica):
                    for name in sorted(engine.loaded_all()):
                        if engine_model_version_id(name) in gone:
                            engine.unload(name)
                            done.append(f"{replica.url}: {name}")
            except EngineError as exc:
                log.warning("could not unload deleted versions from %s now: %s", replica.url, exc.message)
    return done


# --- the reconciler --------------------------------------------------------------------------------
def _claim(replica: Replica) -> bool:
    """Lease the replica to this reconciler (one conditional UPDATE: two never work on one)."""
    now = timezone.now()
    return bool(
        Replica.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=replica.pk).update(
            lease_until=now + LEASE
        )
    )


def _check_failed(replica: Replica, why: str) -> None:
    failures = replica.failures + 1
    down = replica.health != Replica.Health.HEALTHY or failures >= settings.PEFTHUB_SERVING_REPLICA_FAILURES
    if down and replica.health != Replica.Health.UNHEALTHY:
        log.warning("replica %s leaves the rotation: %s", replica.url, why)
    Replica.objects.filter(pk=replica.pk).update(
        failures=failures,
        last_error=why[:2000],
        checked_at=timezone.now(),
        **({"health": Replica.Health.UNHEALTHY} if down else {}),
    )
    if down:
        Placement.objects.filter(replica=replica).update(state=Placement.State.DESIRED, loaded_at=None)


def _refill(replica: Replica, engine: VLLMEngine) -> list[str]:
    """Load what is placed on ``replica`` and unload what is not; the names loaded."""
    if not replica.base_only:
        Placement.objects.get_or_create(replica=replica, engine_model=IDENTITY_NAME)
    rows = {}
    for p in Placement.objects.filter(replica=replica).select_related("deployment__version"):
        if p.deployment is not None and not _on_replicas_revision(replica, p.deployment):
            log.info("replica %s: %s was made on an older base revision; placement dropped", replica.url, p)
            p.delete()
            continue
        rows[p.engine_model] = p
    over = [p for p in rows.values() if p.deployment_id is not None]
    if len(over) > replica.adapter_slots:  # re-placements from a dead replica may overfill it
        epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        over.sort(key=lambda p: (p.deployment.last_used_at if p.deployment else None) or epoch)
        for victim in over[: len(over) - replica.adapter_slots]:
            victim.delete()
            rows.pop(victim.engine_model)
    loaded = engine.loaded_all()
    for name in sorted(loaded - set(rows)):
        engine.unload(name)
        log.info("replica %s: unloaded %s (not placed there)", replica.url, name)
    done = []
    for name, row in rows.items():
        if name not in loaded:
            try:
                path = engine.identity_path() if row.deployment is None else _path(row.deployment)
                engine.load(name, path)
            except EngineDown:
                raise
            except HubError as exc:  # this adapter's fault (its files, its rank), not the replica's
                log.warning("replica %s cannot load %s: %s; placement dropped", replica.url, name, exc.message)
                row.delete()
                continue
            done.append(name)
        if row.state != Placement.State.LOADED:
            Placement.objects.filter(pk=row.pk).update(state=Placement.State.LOADED, loaded_at=timezone.now())
    return done


def replica_reconcile(*, replica: Replica) -> Replica:
    """Check one replica, refill it, and mark it healthy or not; the row as it is now."""
    if not _claim(replica):
        return replica
    try:
        engine = router.replica_engine(replica)
        why = engine.probe()
        if why:
            _check_failed(replica, why)
        else:
            try:
                with _replica_lock(replica):
                    refilled = [] if replica.kind != Replica.Kind.VLLM else _refill(replica, engine)
            except EngineError as exc:
                _check_failed(replica, f"refill: {exc.message}")
            else:
                if replica.health != Replica.Health.HEALTHY:
                    log.info("replica %s is back in rotation (%d adapter(s) loaded)", replica.url, len(refilled))
                now = timezone.now()
                Replica.objects.filter(pk=replica.pk).update(
                    health=Replica.Health.HEALTHY, failures=0, last_error="", last_seen_at=now, checked_at=now
                )
    finally:
        Replica.objects.filter(pk=replica.pk).update(lease_until=None)
    replica.refresh_from_db()
    return replica


def _replace_orphans(base: BaseModel) -> int:
    """Place each adapter held only by unhealthy replicas on a healthy one; how many moved."""
    moved = 0
    stranded = (
        Deployment.objects.filter(
            live=True, placements__replica__base_model=base, placements__replica__health=Replica.Health.UNHEALTHY
        )
        .exclude(placements__replica__health=Replica.Health.HEALTHY)
        .select_related("version__base_model")
        .distinct()
    )
    for deployment in stranded:
        try:
            replica = router.pick(base=base, deployment=deployment)
        except EngineDown:
            return moved
        if replica.health != Replica.Health.HEALTHY:
            return moved
        try:
            placement_ensure(replica=replica, deployment=deployment)
            moved += 1
            log.info("placed %s on %s (its replica is down)", deployment.version, replica.url)
        except EngineDown as exc:
            replica_mark_down(replica=replica, why=exc.message)
        except HubError as exc:
            log.warning("could not place %s on %s: %s", deployment.version, replica.url, exc.message)
    return moved


def replicas_reconcile(*, base: BaseModel | None = None) -> list[Replica]:
    """Reconcile every replica (of ``base``), then re-place what dead ones held."""
    bases = [base] if base is not None else list(BaseModel.objects.filter(replicas__isnull=False).distinct())
    done: list[Replica] = []
    for each in bases:
        for replica in router.replicas_for(each):
            try:
                done.append(replica_reconcile(replica=replica))
            except Exception:  # one replica's trouble must not stop the others' checks
                log.exception("reconciling %s failed", replica.url)
        _replace_orphans(each)
    return done
