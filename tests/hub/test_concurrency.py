"""Many training jobs pushing to one adapter at once (real PostgreSQL, real threads)."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection

from hub.models import AdapterVersion
from hub.storage.blobstore import blob_open
from tests.factories import client_for
from tests.utils import folder_files, upload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_uploads_get_consecutive_unique_versions(alice, alice_client, tiny_base, lora_dir, lora_dir_2):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "busy"}, format="json")
    jobs = 8
    barrier = threading.Barrier(jobs)
    results: list = [None] * jobs

    def push(i: int) -> None:
        try:
            folder = lora_dir if i % 2 else lora_dir_2
            files = folder_files(folder, README__md=f"# run {i}\n".encode())  # distinct content
            barrier.wait()
            results[i] = upload(client_for(alice), "alice/busy", files)
        finally:
            connection.close()

    threads = [threading.Thread(target=push, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [r.status_code for r in results] == [201] * jobs, [r.json() for r in results if r.status_code != 201]
    numbers = sorted(r.json()["version"] for r in results)
    assert numbers == list(range(1, jobs + 1))
    assert AdapterVersion.objects.filter(adapter__name="busy").count() == jobs
    detail = alice_client.get("/api/v1/adapters/alice/busy/").json()
    assert detail["version_count"] == jobs
    assert detail["latest"]["version"] == jobs
    # every stored file still hashes to its address: no blob was torn by a racing writer
    for version in AdapterVersion.objects.prefetch_related("files__blob"):
        for entry in version.files.all():
            with blob_open(entry.blob_id) as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == entry.blob_id
