"""Keeps managed engines up.

``FleetSupervisor`` (what ``serving_engine`` runs): a base model's local replicas, restarted
when they exit or stay unhealthy, refilled by the reconciler (``serving.placement``).
``EngineSupervisor``: one engine without replica rows, restarted with the live adapters
reloaded (kept for code that drives a single engine directly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections, connections

from .engines import Engine, EngineError

if TYPE_CHECKING:
    from .engines.vllm_engine import VLLMEngine

log = logging.getLogger(__name__)


class EngineSupervisor:
    def __init__(self, engine: Engine, *, interval: float = 2.0, failures: int = 3, sync_every: float = 30.0) -> None:
        self.engine = engine
        self.interval = interval
        self.failures = failures
        self.sync_every = sync_every
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_engine(self) -> list[str]:
        """Start the engine and load the live adapters; what was loaded."""
        from . import services

        self.engine.start()
        close_old_connections()
        return services.deployments_reload(engine=self.engine)

    def check_once(self, bad: int) -> int:
        """One health check; restarts after ``failures`` bad ones in a row. The new count."""
        from . import services

        process = getattr(self.engine, "process", None)
        died = process is not None and process.poll() is not None
        if not died and self.engine.healthy():
            return 0
        bad = self.failures if died else bad + 1
        if bad < self.failures:
            return bad
        log.error("%s engine is down (%s); restarting it", self.engine.name, "process exited" if died else "no health")
        self.engine.stop()
        reloaded = self.start_engine()
        self.restarts += 1
        log.warning("%s engine restarted; reloaded %d adapter(s)", self.engine.name, len(reloaded))
        close_old_connections()
        services.deployments_sync(engine=self.engine)
        return 0

    def run(self) -> None:
        from . import services

        bad = 0
        last_sync = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                bad = self.check_once(bad)
                if time.monotonic() - last_sync > self.sync_every:
                    close_old_connections()
                    stale = services.deployments_sync(engine=self.engine)
                    if stale:
                        log.info("dropped %d adapter(s) no longer live", len(stale))
                    last_sync = time.monotonic()
            except EngineError as exc:
                log.error("engine supervision: %s", exc.message)
            except Exception:
                log.exception("engine supervision failed; trying again")
        connections.close_all()  # this thread's own connection

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="engine-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


class FleetSupervisor:
    """Keeps a base model's local replicas up (``serving_engine --replicas N``) and runs the
    reconciler over all its replicas, local or registered.

    A managed process that exits leaves the rotation at once and is started again; one that
    stays unhealthy longer than its startup timeout is killed and started again. It is back
    in rotation when the reconciler has refilled it (``serving.placement``).
    """

    def __init__(
        self,
        base,
        engines: dict[int, VLLMEngine],
        *,
        interval: float = 2.0,
        make_engine: Callable[[Any, str, int], VLLMEngine] | None = None,
    ) -> None:
        self.base = base
        self.engines = engines  # replica id -> its managed engine
        self.interval = interval
        #: (base, url, index) -> a managed engine on the base's current folder; None: the
        #: engines are kept on the revision they started with
        self.make_engine = make_engine
        self.restarts = dict.fromkeys(engines, 0)
        self._down_since: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_all(self) -> dict[int, str]:
        """Start every replica (in parallel), wait for each, fill them; why each that failed did."""
        from . import placement
        from .models import Replica

        for engine in self.engines.values():
            engine.server.spawn()
        failed = {}
        for pk, engine in self.engines.items():
            try:
                engine.start()
            except EngineError as exc:
                failed[pk] = exc.message
                placement.replica_mark_down(replica=Replica.objects.get(pk=pk), why=exc.message)
                self._down_since[pk] = time.monotonic()
        close_old_connections()
        placement.replicas_reconcile(base=self.base)
        return failed

    def follow_revision(self) -> bool:
        """The base has a new current revision (``hub_base_model_add`` with other weights):
        stop every local replica and start it again on the new folder; whether it did.

        All of them at once, not one by one: a replica still on the old weights would answer
        for versions made on the new ones. Each leaves the rotation until the reconciler has
        refilled it with the versions made on the new revision (those made on an older one
        are served by the peft engine on their own revision, never placed here)."""
        from hub.models import BaseModel

        from . import placement
        from .models import Replica

        current = BaseModel.objects.get(pk=self.base.pk)
        if self.make_engine is None or current.revision == self.base.revision:
            return False
        log.warning(
            "base model `%s` has a new revision (%s, was %s): restarting its %d local replica(s) on %s",
            current.name,
            current.revision[:12],
            self.base.revision[:12],
            len(self.engines),
            current.local_path,
        )
        for index, (pk, old) in enumerate(list(self.engines.items())):
            why = f"restarting on revision {current.revision[:12]} of `{current.name}`"
            placement.replica_mark_down(replica=Replica.objects.get(pk=pk), why=why)
            old.stop()
            engine = self.make_engine(current, old.url, index)
            engine.server.spawn()
            self.engines[pk] = engine
            self.restarts[pk] += 1
            self._down_since[pk] = time.monotonic()
        self.base = current
        return True

    def check_once(self) -> None:
        from . import placement
        from .models import Replica

        self.follow_revision()
        for pk, engine in self.engines.items():
            server = engine.server
            replica = Replica.objects.get(pk=pk)
            if server.exited():
                status = server.process.returncode if server.process is not None else "?"
                why = f"the process exited with status {status}; restarting it"
                log.error("replica %s: %s", replica.url, why)
                placement.replica_mark_down(replica=replica, why=why)
                server.spawn()
                self.restarts[pk] += 1
                self._down_since[pk] = time.monotonic()
            elif replica.health == Replica.Health.UNHEALTHY:
                since = self._down_since.setdefault(pk, time.monotonic())
                if time.monotonic() - since > engine.startup_timeout:
                    log.error("replica %s stays unhealthy (%s); restarting it", replica.url, replica.last_error)
                    engine.stop()
                    server.spawn()
                    self.restarts[pk] += 1
                    self._down_since[pk] = time.monotonic()
            else:
                self._down_since.pop(pk, None)
        placement.replicas_reconcile(base=self.base)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                close_old_connections()
                self.check_once()
            except EngineError as exc:
                log.error("fleet supervision: %s", exc.message)
            except Exception:
                log.exception("fleet supervision failed; trying again")
        connections.close_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="fleet-supervisor", daemon=True)
        self._thread.start()

    def stop(self, *, engines: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if engines:
            for engine in self.engines.values():
                engine.stop()
