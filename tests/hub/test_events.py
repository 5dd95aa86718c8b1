"""A new version emits its event through a real Redis broker, after commit only."""

from __future__ import annotations

import base64
import json
import os

import pytest
from django.db import transaction

from config.celery_app import app
from tests.utils import folder_files, upload

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/15"


@pytest.fixture
def redis_broker():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: start it (scripts/services-up)")
    client.flushdb()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url = REDIS_URL
    app.conf.task_always_eager = False
    app._pool = None
    app.amqp._producer_pool = None
    yield client
    app.conf.broker_url, app.conf.task_always_eager = saved
    app._pool = None
    app.amqp._producer_pool = None
    client.flushdb()


def _queued(client) -> list[dict]:
    messages = []
    for raw in client.lrange("default", 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": body[0]})
    return messages


def test_new_version_enqueues_evaluation_event(redis_broker, alice_client, tiny_base, lora_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "evented"}, format="json")
    response = upload(alice_client, "alice/evented", folder_files(lora_dir))
    assert response.status_code == 201
    assert _queued(redis_broker) == [{"task": "evaluator.version_created", "args": [response.json()["id"]]}]


def test_refused_or_rolled_back_upload_enqueues_nothing(redis_broker, alice, alice_client, tiny_base, lora_dir):
    from hub import services
    from hub.models import Adapter

    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "quiet"}, format="json")
    assert upload(alice_client, "alice/quiet", folder_files(lora_dir, adapter_config__json=None)).status_code == 422

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        adapter = Adapter.objects.get(name="quiet")
        files = {name: __import__("io").BytesIO(c) for name, c in folder_files(lora_dir).items()}
        services.adapter_version_create(
            adapter=adapter,
            user=alice,
            files=files,
            sizes={n: len(c.getvalue()) for n, c in files.items()},
            card=services.CardInput(),
        )
        raise Abort
    assert _queued(redis_broker) == []
