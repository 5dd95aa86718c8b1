"""Versions' files in the serving folder, where engines read them (see :mod:`hub.storage.materialize`)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from hub.models import AdapterVersion
from hub.storage import materialize


def adapters_dir() -> Path:
    return Path(settings.PEFTHUB_SERVING_DIR) / "adapters"


def version_folder(version: AdapterVersion) -> Path:
    return adapters_dir() / version.content_hash


def version_materialize(*, version: AdapterVersion) -> Path:
    """The folder holding ``version``'s files (written once, verified)."""
    return materialize.version_materialize(version=version, root=adapters_dir())
