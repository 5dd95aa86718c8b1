from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Adapter registry"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)

        _make_local_folders()


def _make_local_folders() -> None:
    """Two folders a process needs before its first request, made at start (two mkdirs)
    rather than by the settings on import: the upload temp folder (Django's checks refuse a
    missing one) and the embedded SQLite database's (SQLite creates the file, not its folder).
    The blob store, collectstatic and config.celery_app make their own."""
    if settings.FILE_UPLOAD_TEMP_DIR:
        Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
    database = settings.DATABASES["default"]
    name = str(database.get("NAME") or "")
    if database["ENGINE"].endswith("sqlite3") and name and name != ":memory:" and not name.startswith("file:"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
