"""Settings read the environment and do nothing else; production names its blob storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "DJANGO_SECRET_KEY": "x",
    "DJANGO_ALLOWED_HOSTS": "hub.example",
    "DATABASE_URL": "sqlite:////nonexistent/db.sqlite3",
    "CELERY_BROKER_URL": "memory://",
}


def _import_settings(module: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("STORAGE_URL", "PEFTHUB_ALLOW_LOCAL_STORAGE")}
    environ.update(PEFTHUB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE=module, **env)
    code = "from django.conf import settings; print(settings.STORAGES['default']['BACKEND'])"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, check=False
    )


def test_importing_settings_creates_no_folder(tmp_path):
    data_dir = tmp_path / "data"
    for module in ("config.settings.local", "config.settings.test"):
        result = _import_settings(module, data_dir)
        assert result.returncode == 0, result.stderr
    assert not data_dir.exists()


def test_production_refuses_to_start_without_storage_url(tmp_path):
    result = _import_settings("config.settings.production", tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "STORAGE_URL is not set" in result.stderr
    assert "PEFTHUB_ALLOW_LOCAL_STORAGE=true" in result.stderr


def test_production_keeps_blobs_on_local_disk_only_when_told_and_says_so(tmp_path):
    result = _import_settings("config.settings.production", tmp_path, PEFTHUB_ALLOW_LOCAL_STORAGE="true", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "FileSystemStorage" in result.stdout
    assert f"adapter files go to local disk at {tmp_path / 'blobs'}" in result.stderr
    s3 = _import_settings("config.settings.production", tmp_path, STORAGE_URL="s3://bucket", **PRODUCTION)
    assert s3.returncode == 0, s3.stderr
    assert "S3Storage" in s3.stdout
    assert "local disk" not in s3.stderr


def test_the_filesystem_broker_gets_its_folders_when_celery_reads_its_configuration(tmp_path):
    from types import SimpleNamespace

    from config.celery_app import _make_broker_folders

    broker = tmp_path / "broker"
    broker.mkdir()
    options = {"data_folder_in": str(broker / "queue"), "processed_folder": str(broker / "processed")}
    _make_broker_folders(SimpleNamespace(conf=SimpleNamespace(broker_url="redis://x", broker_transport_options={})))
    assert list(broker.iterdir()) == []
    conf = SimpleNamespace(broker_url="filesystem://", broker_transport_options=options)
    _make_broker_folders(SimpleNamespace(conf=conf))
    assert sorted(p.name for p in broker.iterdir()) == ["processed", "queue"]
