"""One process at a time on this host (web workers, Celery workers, the engine supervisor)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Hold the exclusive lock ``name`` (a file under ``PEFTHUB_SERVING_DIR``) while inside."""
    folder = Path(settings.PEFTHUB_SERVING_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
