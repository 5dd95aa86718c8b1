"""Blob content is written before the adapter's row is locked (issue 16, "Faults")."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from hub.models import Adapter, AdapterVersion
from hub.storage import blobstore
from tests.utils import folder_files, upload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _row_is_locked(pk: int) -> bool:
    """Ask from another connection (another thread) whether the adapter row is locked."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            with transaction.atomic():
                Adapter.objects.select_for_update(nowait=True).get(pk=pk)
            answer.append(False)
        except DatabaseError:  # "could not obtain lock on row"
            answer.append(True)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer[0]


def test_blob_writes_do_not_hold_the_adapter_lock(monkeypatch, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "slow-store"}, format="json")
    adapter = Adapter.objects.get(name="slow-store")
    real_write = blobstore.blob_write
    locked_during_write: list[bool] = []

    def observed_write(sha256, fileobj):
        locked_during_write.append(_row_is_locked(adapter.pk))
        real_write(sha256, fileobj)

    monkeypatch.setattr(blobstore, "blob_write", observed_write)
    response = upload(alice_client, "alice/slow-store", folder_files(lora_dir))
    assert response.status_code == 201, response.json()
    assert locked_during_write and not any(locked_during_write), locked_during_write
    assert AdapterVersion.objects.filter(adapter=adapter).count() == 1
    # The probe itself can see a lock: with the row locked, it answers True.
    with transaction.atomic():
        Adapter.objects.select_for_update().get(pk=adapter.pk)
        assert _row_is_locked(adapter.pk)
