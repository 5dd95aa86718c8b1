"""Events go through the outbox: written with the version, sent after commit, and sent
again once the broker is back. The broker is a Redis server of the test's own, stopped
and started for real."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.management import CommandError, call_command

from hub import tasks
from hub.models import AdapterVersion, OutboxEvent
from tests.utils import folder_files, upload

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _queued(server, queue: str = "default") -> list[dict]:
    messages = []
    for raw in reversed(server.client().lrange(queue, 0, -1)):  # oldest first
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": body[0]})
    return messages


@pytest.fixture
def adapter(alice_client, tiny_base):
    assert (
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "ev"}, format="json").status_code == 201
    )
    return "alice/ev"


def test_upload_succeeds_while_the_broker_is_down_and_its_event_is_sent_when_it_is_back(
    own_broker, alice_client, adapter, lora_dir, settings
):
    own_broker.stop()
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 201, response.content
    version_id = response.json()["id"]
    assert AdapterVersion.objects.filter(pk=version_id).exists()
    event = OutboxEvent.objects.get()
    assert (event.event, event.task, event.args) == ("version.created", "evaluator.version_created", [version_id])
    assert event.sent_at is None and event.attempts == 1
    assert event.last_error  # the broker's refusal, kept for whoever looks

    own_broker.start()  # empty: whatever was queued before is gone
    settings.PEFTHUB_OUTBOX_RETRY_AFTER = 0
    tasks.outbox_deliver()  # what Celery beat runs every PEFTHUB_OUTBOX_INTERVAL seconds
    assert _queued(own_broker) == [{"task": "evaluator.version_created", "args": [version_id]}]
    event.refresh_from_db()
    assert event.sent_at is not None and event.last_error == ""

    tasks.outbox_deliver()
    assert len(_queued(own_broker)) == 1  # sent once, not again


def test_event_is_sent_after_commit_and_only_with_its_version(own_broker, alice_client, adapter, lora_dir):
    assert upload(alice_client, adapter, folder_files(lora_dir, adapter_config__json=None)).status_code == 422
    assert not OutboxEvent.objects.exists()  # a refused upload has no event

    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 201
    assert _queued(own_broker) == [{"task": "evaluator.version_created", "args": [response.json()["id"]]}]
    assert OutboxEvent.objects.get().sent_at is not None


def test_periodic_delivery_leaves_events_just_tried_to_their_sender(
    own_broker, alice_client, adapter, lora_dir, settings
):
    own_broker.stop()
    assert upload(alice_client, adapter, folder_files(lora_dir)).status_code == 201
    own_broker.start()
    settings.PEFTHUB_OUTBOX_RETRY_AFTER = 3600
    tasks.outbox_deliver()
    assert _queued(own_broker) == []  # tried a moment ago: not yet
    call_command("hub_events_replay", "--no-reconcile")  # on demand: now
    assert len(_queued(own_broker)) == 1
    assert OutboxEvent.objects.get().attempts == 2


def test_replay_resends_sent_events_since_a_moment(own_broker, alice_client, adapter, lora_dir):
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert len(_queued(own_broker)) == 1
    call_command("hub_events_replay", "--no-reconcile")
    assert len(_queued(own_broker)) == 1  # nothing pending: nothing sent
    call_command("hub_events_replay", "--no-reconcile", "--all-since", "1h")
    assert _queued(own_broker)[-1] == {"task": "evaluator.version_created", "args": [response.json()["id"]]}
    assert len(_queued(own_broker)) == 2
    with pytest.raises(CommandError, match="duration like 30m"):
        call_command("hub_events_replay", "--all-since", "yesterday")


def test_replay_says_when_the_broker_refuses(own_broker, alice_client, adapter, lora_dir):
    own_broker.stop()
    assert upload(alice_client, adapter, folder_files(lora_dir)).status_code == 201
    with pytest.raises(CommandError, match="is the broker"):
        call_command("hub_events_replay", "--no-reconcile")
    assert OutboxEvent.objects.get().sent_at is None
