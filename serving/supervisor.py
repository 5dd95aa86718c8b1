"""Keeps a managed engine up: detects a crash (process gone, or /health failing) and
restarts it with the live adapters reloaded; drops adapters that are no longer live."""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connections

from .engines import Engine, EngineError

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
