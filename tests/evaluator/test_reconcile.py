"""A version whose ``version.created`` event was lost still gets its evaluation: from the
outbox once the broker is back (a real worker with its beat, on a Redis of the test's
own that is stopped during the upload), or from the reconciler."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from evaluator import tasks
from evaluator.models import EvaluationJob, Suite
from evaluator.reconcile import evaluations_reconcile
from hub.models import AdapterVersion, OutboxEvent
from tests.utils import folder_files, upload, wait_for_workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pushed_without_event(alice_client, tiny_chat_base, tiny_chat_lora_dir):
    """Upload a version whose event is written but never sent (on_commit does not run here)."""

    def push(name: str) -> AdapterVersion:
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": name}, format="json")
        response = upload(alice_client, f"alice/{name}", folder_files(tiny_chat_lora_dir), metadata={"license": "mit"})
        assert response.status_code == 201, response.json()
        assert OutboxEvent.objects.filter(args=[response.json()["id"]], sent_at__isnull=True).exists()
        return AdapterVersion.objects.get(pk=response.json()["id"])

    return push


@pytest.mark.django_db
def test_reconciler_requests_the_evaluation_a_lost_event_did_not(pushed_without_event, shipped_suites):
    version = pushed_without_event("lost")
    assert not EvaluationJob.objects.exists()
    assert evaluations_reconcile(grace_seconds=3600) == []  # young: left to its event
    assert evaluations_reconcile(grace_seconds=0) == [version.pk]
    active = Suite.objects.filter(active=True, role=Suite.Role.DOMAIN)
    assert active.exists()
    assert set(EvaluationJob.objects.filter(version=version).values_list("suite", flat=True)) == set(
        active.values_list("pk", flat=True)
    )
    assert evaluations_reconcile(grace_seconds=0) == []  # nothing missing any more
    tasks.version_created(version.pk)  # the lost event arrives after all: nothing twice
    assert EvaluationJob.objects.filter(version=version).count() == active.count()


@pytest.mark.django_db
def test_reconciler_leaves_versions_older_than_the_suite_and_switched_off_evaluation(pushed_without_event, settings):
    from django.core.management import call_command

    old = pushed_without_event("before-suites")
    call_command("evaluator_install_suites", verbosity=0)
    assert evaluations_reconcile(grace_seconds=0) == []  # pushed before the suites existed
    new = pushed_without_event("after-suites")
    settings.PEFTHUB_EVENT_TASKS = {**settings.PEFTHUB_EVENT_TASKS, "version.created": []}
    assert evaluations_reconcile(grace_seconds=0) == []  # evaluation switched off
    settings.PEFTHUB_EVENT_TASKS = {**settings.PEFTHUB_EVENT_TASKS, "version.created": ["evaluator.version_created"]}
    assert evaluations_reconcile(grace_seconds=0) == [new.pk]
    assert not EvaluationJob.objects.filter(version=old).exists()


@pytest.mark.django_db
def test_replay_command_runs_the_reconcilers(pushed_without_event, shipped_suites, settings):
    version = pushed_without_event("replayed")
    OutboxEvent.objects.all().delete()  # the event itself is gone too
    settings.PEFTHUB_RECONCILE_GRACE = 0
    call_command("hub_events_replay")
    assert EvaluationJob.objects.filter(version=version).count() == Suite.objects.filter(active=True).count()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_redis_stopped_during_an_upload_the_job_is_created_once_it_is_back(
    own_broker, alice_client, tiny_chat_base, tiny_chat_lora_dir, shipped_suites, tmp_path, _isolated_storage
):
    """A real worker with its embedded beat (as `make run` starts it), no manual step."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": own_broker.url,
        "STORAGE_URL": f"file://{_isolated_storage / 'blobs'}",
        "PEFTHUB_DATA_DIR": str(tmp_path / "worker-data"),
        "PEFTHUB_OUTBOX_INTERVAL": "1",
        "PEFTHUB_OUTBOX_RETRY_AFTER": "1",
        "PEFTHUB_RECONCILE_GRACE": "3600",  # only the outbox may create the job here
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "-P", "solo", "-Q", "default",
         "-n", "outbox@%h", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "outage"}, format="json")
        own_broker.stop()
        response = upload(alice_client, "alice/outage", folder_files(tiny_chat_lora_dir), metadata={"license": "mit"})
        assert response.status_code == 201, response.content
        version_id = response.json()["id"]
        assert OutboxEvent.objects.get(args=[version_id]).sent_at is None
        time.sleep(3)  # the worker's beat keeps trying meanwhile
        assert not EvaluationJob.objects.filter(version_id=version_id).exists()

        back = time.monotonic()
        own_broker.start()
        wait_for_workers(
            lambda: EvaluationJob.objects.filter(version_id=version_id).exists(),
            120, "the evaluation job after Redis came back", tmp_path,
        )  # fmt: skip
        print(f"job created {time.monotonic() - back:.1f} s after Redis came back")
        assert EvaluationJob.objects.filter(version_id=version_id).count() == Suite.objects.filter(active=True).count()
        assert OutboxEvent.objects.get(args=[version_id]).sent_at is not None
        # Queued for the evaluation workers (none here): sent to the broker, not lost.
        assert own_broker.client().llen("evaluation") == 1
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
