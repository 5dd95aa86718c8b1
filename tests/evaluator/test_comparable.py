"""Comparable runs only: a leaderboard row says what it ran on, rows run on different things
are never ranked together, and a new suite version re-scores the live adapters at the
lowest priority."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from config.celery_app import app
from evaluator import services
from evaluator.models import EvaluationJob, Suite
from evaluator.suites_registry import SHIPPED_DIR
from evaluator.tasks import jobs_enqueue
from hub.models import AdapterVersion
from tests.factories import (
    AdapterVersionFactory,
    ArmRunFactory,
    BaseModelFactory,
    EvaluationJobFactory,
    SuiteFactory,
)

pytestmark = pytest.mark.django_db

HASHES = {"task_a": "a" * 64, "task_b": "b" * 64}


def finished(version, suite, score: float, *, lm_eval="0.4.9", hashes=HASHES, revision=None, ago: int = 0):
    """A finished job on ``suite`` whose runs say what they ran on."""
    job = EvaluationJobFactory(
        version=version,
        suite=suite,
        status=EvaluationJob.Status.FINISHED,
        summary={"score": score},
        decision="accepted",
        finished_at=timezone.now() - timedelta(minutes=ago),
    )
    for arm in ("base", "adapter"):
        run = ArmRunFactory(
            suite=suite,
            base_model=version.base_model,
            base_revision=revision or version.base_revision,
            arm=arm,
            adapter_hash="" if arm == "base" else version.content_hash,
            repro={"lm_eval": lm_eval, "task_hashes": hashes, "retrieved": {"task_a:0": ["p1"]}},
        )
        job.runs.add(run)
    return job


@pytest.fixture
def two_versions_of_a_suite():
    old = SuiteFactory(slug="acme", version="1.0.0")
    new = SuiteFactory(slug="acme", version="1.1.0")
    Suite.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1), active=False)
    return Suite.objects.get(pk=old.pk), new


def api_rows(client, slug="acme", **params):
    response = client.get(f"/api/v1/leaderboard/{slug}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_rows_run_on_different_things_are_not_ranked_together(two_versions_of_a_suite):
    old, new = two_versions_of_a_suite
    base = BaseModelFactory()
    a, b, c, d = (AdapterVersionFactory(base_model=base) for _ in range(4))
    finished(a, old, 0.9)  # a's newest comparable run is on 1.1.0 below: its 1.0.0 row is not shown
    finished(a, new, 0.6)
    finished(b, new, 0.7)
    finished(c, old, 0.95)  # the best score, but on the old suite: shown apart, unranked
    finished(d, new, 0.99, lm_eval="0.4.8", ago=30)  # an older run, on another lm-eval: its own group

    body = api_rows(Client())
    rows = {(r["adapter"], r["suite_version"]): r for r in body["rows"]}
    ids = {v.pk: f"{v.adapter.namespace.name}/{v.adapter.name}" for v in (a, b, c, d)}
    assert [(r["adapter"], r["rank"]) for r in body["rows"]] == [
        (ids[b.pk], 1),
        (ids[a.pk], 2),
        (ids[d.pk], None),
        (ids[c.pk], None),
    ]
    assert (ids[a.pk], "1.0.0") not in rows
    ranked = rows[(ids[b.pk], "1.1.0")]
    assert ranked["lm_eval"] == "0.4.9" and ranked["task_hashes"] == HASHES
    assert ranked["base_revision"] == b.base_revision
    assert rows[(ids[d.pk], "1.1.0")]["comparable"] != ranked["comparable"]
    groups = body["groups"]
    assert [(g["suite_version"], g["lm_eval"], g["ranked"], g["rows"]) for g in groups] == [
        ("1.1.0", "0.4.9", True, 2),
        ("1.1.0", "0.4.8", False, 1),
        ("1.0.0", "0.4.9", False, 1),
    ]
    # sorting reorders within a group, never across groups
    ascending = api_rows(Client(), ordering="average")["rows"]
    assert [(r["adapter"], r["rank"]) for r in ascending] == [
        (ids[a.pk], 1),
        (ids[b.pk], 2),
        (ids[d.pk], None),
        (ids[c.pk], None),
    ]


def test_another_base_revision_or_task_definition_is_another_group():
    suite = SuiteFactory(slug="acme")
    base = BaseModelFactory()
    a, b, c = (AdapterVersionFactory(base_model=base) for _ in range(3))
    finished(a, suite, 0.5)
    finished(b, suite, 0.6, revision="f" * 64, ago=5)
    finished(c, suite, 0.7, hashes={**HASHES, "task_b": "c" * 64}, ago=10)
    rows = api_rows(Client())["rows"]
    assert len({r["comparable"] for r in rows}) == 3
    assert [r["rank"] for r in rows] == [1, None, None]  # the newest run's group is ranked


def test_the_leaderboard_filters_by_base_model():
    suite = SuiteFactory(slug="acme")
    llama, qwen = BaseModelFactory(name="tiny-llama-x"), BaseModelFactory(name="tiny-qwen-x")
    on_llama, on_qwen = AdapterVersionFactory(base_model=llama), AdapterVersionFactory(base_model=qwen)
    finished(on_llama, suite, 0.5)
    finished(on_qwen, suite, 0.6)
    names = {v.pk: f"{v.adapter.namespace.name}/{v.adapter.name}" for v in (on_llama, on_qwen)}
    assert {r["adapter"] for r in api_rows(Client())["rows"]} == set(names.values())
    assert [r["adapter"] for r in api_rows(Client(), base_model="tiny-qwen-x")["rows"]] == [names[on_qwen.pk]]
    assert [r["adapter"] for r in api_rows(Client(), base_model="TINY-LLAMA-X")["rows"]] == [names[on_llama.pk]]
    assert api_rows(Client(), base_model="nothing")["rows"] == []


def test_csv_and_web_page_say_what_each_row_ran_on(two_versions_of_a_suite):
    old, new = two_versions_of_a_suite
    base = BaseModelFactory()
    a, b = AdapterVersionFactory(base_model=base), AdapterVersionFactory(base_model=base)
    finished(a, new, 0.6)
    finished(b, old, 0.8)
    exported = Client().get("/api/v1/leaderboard/acme/", {"export": "csv"})
    table = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["suite_version"], r["rank"], r["lm_eval"]) for r in table] == [
        ("1.1.0", "1", "0.4.9"),
        ("1.0.0", "", "0.4.9"),
    ]
    assert table[0]["task_hashes"] == f"task_a={'a' * 12};task_b={'b' * 12}"
    assert table[0]["base_revision"] == a.base_revision

    page = Client().get("/leaderboard/", {"suite": "acme"}).content.decode()
    _, ranked, apart = page.split('<section class="comparable-group"')
    assert "Not ranked with the above" in apart
    assert 'data-ranked="true"' in ranked and "Suite v1.1.0" in ranked and "lm-eval 0.4.9" in ranked
    assert f'data-adapter="{a.adapter.namespace.name}/{a.adapter.name}"' in ranked
    assert 'data-ranked="false"' in apart and "Suite v1.0.0" in apart
    assert f'data-adapter="{b.adapter.namespace.name}/{b.adapter.name}"' in apart
    assert 'data-col="rank">1<' in ranked and 'data-col="rank">—<' in apart


# --- re-evaluation on a new suite version ---------------------------------------------------------
@pytest.fixture
def shipped(db):
    from django.core.management import call_command

    call_command("evaluator_install_suites", verbosity=0)
    return Suite.objects.get(slug="acme-products", active=True)


def bumped(tmp_path, version: str):
    folder = tmp_path / "acme-products"
    shutil.copytree(SHIPPED_DIR / "acme-products", folder)
    manifest = json.loads((folder / "suite.json").read_text())
    (folder / "suite.json").write_text(json.dumps({**manifest, "version": version}))
    return folder


def test_a_new_suite_version_queues_the_live_versions_at_the_lowest_priority(
    shipped, tmp_path, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from evaluator.tasks import run_evaluation_job

    sent = []
    monkeypatch.setattr(run_evaluation_job, "apply_async", lambda args, **options: sent.append((args, options)))
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # what lowest_priority reads; nothing is sent
    base = BaseModelFactory()
    live = AdapterVersionFactory(base_model=base, status=AdapterVersion.Status.ACCEPTED)
    AdapterVersionFactory(base_model=base, status=AdapterVersion.Status.REJECTED)
    AdapterVersionFactory(base_model=base, status=AdapterVersion.Status.PENDING)
    AdapterVersionFactory(base_model=base, status=AdapterVersion.Status.ACCEPTED, deprecated_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        new = services.suite_register(folder=bumped(tmp_path, "9.0.0"))
    (job,) = EvaluationJob.objects.filter(suite=new)
    assert job.version == live and job.reevaluation and job.status == "pending"
    assert sent == [([job.pk], {"queue": "evaluation", "priority": 9})]

    # an upload's job goes without a priority (Redis's first list); registering again queues nothing
    with django_capture_on_commit_callbacks(execute=True):
        jobs_enqueue([EvaluationJobFactory(version=live, suite=shipped).pk])
        services.suite_register(folder=bumped(tmp_path / "again", "9.0.0"))
    assert sent[1][1] == {"queue": "evaluation"} and len(sent) == 2


def test_per_base_queue_and_brokers_without_priorities(settings, monkeypatch, django_capture_on_commit_callbacks):
    from evaluator.tasks import run_evaluation_job

    sent = []
    monkeypatch.setattr(run_evaluation_job, "apply_async", lambda args, **options: sent.append(options))
    settings.PEFTHUB_EVAL_BASE_QUEUES = ["*"]
    job = EvaluationJobFactory(reevaluation=True)
    for url, expected in (("amqp://guest@localhost//", {"priority": 0}), ("filesystem://", {})):
        settings.CELERY_BROKER_URL = url
        with django_capture_on_commit_callbacks(execute=True):
            jobs_enqueue([job.pk])
        assert sent.pop() == {"queue": f"evaluation.{job.version.base_model.name}", **expected}


_SERVER, _, _DB = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rpartition("/")
REDIS = f"{_SERVER}/{_DB or 0}"


@pytest.mark.redis
def test_on_redis_a_worker_takes_an_upload_before_a_re_evaluation_queued_earlier(
    settings, django_capture_on_commit_callbacks
):
    """The real broker: the re-evaluation is sent first, the upload's job second; the queue
    hands out the upload's first."""
    redis = pytest.importorskip("redis")
    settings.CELERY_BROKER_URL = REDIS
    settings.PEFTHUB_EVAL_BASE_QUEUES = ["prio-test-base"]
    base = BaseModelFactory(name="prio-test-base")
    reeval = EvaluationJobFactory(version=AdapterVersionFactory(base_model=base), reevaluation=True)
    upload = EvaluationJobFactory(version=AdapterVersionFactory(base_model=base))
    queue = "evaluation.prio-test-base"
    client = redis.Redis.from_url(REDIS)
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS, False
    app._pool = None
    app.amqp._producer_pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True):
            jobs_enqueue([reeval.pk])
        with django_capture_on_commit_callbacks(execute=True):
            jobs_enqueue([upload.pk])
        with app.connection_for_read() as conn:
            simple = conn.SimpleQueue(queue)
            taken = []
            for _ in range(2):
                message = simple.get(timeout=5)
                taken.append(message.headers["argsrepr"])
                message.ack()
            simple.close()
        assert taken == [f"[{upload.pk}]", f"[{reeval.pk}]"]
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = None
        app.amqp._producer_pool = None
        for key in client.scan_iter(f"{queue}*"):
            client.delete(key)


@pytest.mark.redis
def test_on_redis_a_base_without_a_worker_of_its_own_is_consumed_from_evaluation(
    settings, django_capture_on_commit_callbacks
):
    """The queues a real worker reads: `-Q evaluation.queue-own-base` gets that base's job, and
    `-Q evaluation` (the general worker) the job of a base nobody dedicated a worker to."""
    redis = pytest.importorskip("redis")
    settings.CELERY_BROKER_URL = REDIS
    settings.PEFTHUB_EVAL_BASE_QUEUES = ["queue-own-base"]
    own = EvaluationJobFactory(version=AdapterVersionFactory(base_model=BaseModelFactory(name="queue-own-base")))
    other = EvaluationJobFactory(version=AdapterVersionFactory(base_model=BaseModelFactory(name="queue-other-base")))
    client = redis.Redis.from_url(REDIS)
    queues = ("evaluation", "evaluation.queue-own-base", "evaluation.queue-other-base")
    for name in queues:
        client.delete(name)
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS, False
    app._pool = None
    app.amqp._producer_pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True):
            jobs_enqueue([own.pk, other.pk])
        taken = {}
        with app.connection_for_read() as conn:
            for name in queues[:2]:
                simple = conn.SimpleQueue(name)
                message = simple.get(timeout=5)
                taken[name] = message.headers["argsrepr"]
                message.ack()
                simple.close()
        assert taken == {"evaluation": f"[{other.pk}]", "evaluation.queue-own-base": f"[{own.pk}]"}
        assert [client.llen(name) for name in queues] == [0, 0, 0]  # one each, and none on a queue nobody reads
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = None
        app.amqp._producer_pool = None
        for name in queues:
            for key in client.scan_iter(f"{name}*"):
                client.delete(key)


# --- re-evaluation on a new base revision, for real (lm-eval on the tiny chat model) -------------
@pytest.mark.slow  # two real four-arm evaluations: ~50 s on a shared 2-core machine
def test_a_new_base_revision_re_scores_the_live_versions_on_it(
    alice_client, tiny_chat_base, tiny_chat_dir, tiny_chat_lora_dir, shipped, eval_settings, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from tests.factories import register_base
    from tests.utils import folder_files, upload

    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "live"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(alice_client, "alice/live", folder_files(tiny_chat_lora_dir), metadata={"license": "mit"})
    version = AdapterVersion.objects.get(pk=response.json()["id"])
    first = EvaluationJob.objects.get(version=version)
    assert first.status == "finished" and first.base_revision == ""
    AdapterVersion.objects.filter(pk=version.pk).update(status=AdapterVersion.Status.ACCEPTED)  # make it live

    # the same weights copied as a new revision (a re-upload of the base): the event re-scores
    folder = tmp_path / "tiny-chat-r2"
    shutil.copytree(tiny_chat_dir, folder)
    with django_capture_on_commit_callbacks(execute=True):
        register_base(folder, "tiny-chat", "test-org/tiny-chat", "2" * 64)
    again = EvaluationJob.objects.exclude(pk=first.pk).get(version=version)
    assert again.base_revision == "2" * 64 and again.reevaluation and again.status == "finished", again.error
    assert {run.base_revision for run in again.runs.all()} == {"2" * 64}
    assert not set(again.runs.all()) & set(first.runs.all())  # computed on the new revision, not reused

    rows = api_rows(alice_client, slug="acme-products")["rows"]
    assert [(r["adapter"], r["base_revision"], r["rank"]) for r in rows] == [("alice/live", "2" * 64, 1)]
    with django_capture_on_commit_callbacks(execute=True):  # the same revision again: nothing new
        register_base(folder, "tiny-chat", "test-org/tiny-chat", "2" * 64)
    assert EvaluationJob.objects.filter(version=version).count() == 2
