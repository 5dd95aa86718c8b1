"""A real Celery worker on a real Redis broker and PostgreSQL scores an upload; killed
with SIGKILL mid-run, its job is redelivered and finishes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery_app import app
from evaluator.models import ArmRun, EvaluationJob
from hub.models import AdapterVersion
from tests.utils import folder_files, upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = REDIS, False
    app._pool = None
    app.amqp._producer_pool = None
    yield client
    app.conf.broker_url, app.conf.task_always_eager = saved
    app._pool = None
    app.amqp._producer_pool = None
    client.flushdb()


@pytest.fixture
def start_worker(tmp_path, settings, _isolated_storage):
    """Start `celery worker` processes against the test database, broker and blob store."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS,
        "CELERY_VISIBILITY_TIMEOUT": "8",
        "STORAGE_URL": f"file://{_isolated_storage / 'blobs'}",
        "PEFTHUB_DATA_DIR": str(tmp_path / "worker-data"),
        "PEFTHUB_EVAL_LIMIT": str(settings.PEFTHUB_EVAL_LIMIT),
        "PEFTHUB_EVAL_BATCH_SIZE": "4",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    workers: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", "default,evaluation",
             "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "info"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        workers.append(proc)
        return proc

    yield start
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(predicate, timeout: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def pushed(broker, alice_client, tiny_chat_base, shipped_suites, eval_settings):
    def push(name: str, folder) -> AdapterVersion:
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": name}, format="json")
        response = upload(alice_client, f"alice/{name}", folder_files(folder), metadata={"license": "mit"})
        assert response.status_code == 201, response.json()
        return AdapterVersion.objects.get(pk=response.json()["id"])

    return push


def test_real_worker_scores_an_upload(pushed, start_worker, tiny_chat_lora_dir, tmp_path):
    start_worker("w1")
    version = pushed("worker-scored", tiny_chat_lora_dir)
    job = _wait(
        lambda: EvaluationJob.objects.filter(version=version, status__in=["finished", "failed"]).first(),
        300, "the job to finish", tmp_path,
    )  # fmt: skip
    assert job.status == "finished", job.error
    assert {(r.suite.role, r.arm) for r in job.runs.select_related("suite")} == {
        ("domain", "base"), ("domain", "base_rag"), ("domain", "adapter"), ("domain", "adapter_rag"),
        ("general", "base"), ("general", "adapter"),
    }  # fmt: skip
    version.refresh_from_db()
    assert version.status == job.decision
    assert version.status_reasons == job.reasons


def test_sigkilled_worker_loses_no_job_and_duplicates_nothing(
    pushed, start_worker, tiny_chat_lora_dir, tmp_path, settings
):
    settings.PEFTHUB_EVAL_LIMIT = 12  # long enough to be killed in the middle
    first = start_worker("w1")
    version = pushed("worker-killed", tiny_chat_lora_dir)
    _wait(
        lambda: EvaluationJob.objects.filter(version=version, status="running", progress__gt=0).exists(),
        300, "the job to start running", tmp_path,
    )  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert EvaluationJob.objects.get(version=version).status == "running"  # killed mid-run

    start_worker("w2")
    job = _wait(
        lambda: EvaluationJob.objects.filter(version=version, status__in=["finished", "failed"]).first(),
        600, "the redelivered job to finish", tmp_path,
    )  # fmt: skip
    assert job.status == "finished", job.error
    assert job.attempts == 2
    assert EvaluationJob.objects.filter(version=version).count() == 1
    assert job.runs.count() == 6
    assert ArmRun.objects.count() == 6  # nothing computed twice


def test_sigkilled_shared_pass_is_redelivered_and_finishes_every_job_once(
    pushed, start_worker, three_loras, tmp_path, settings
):
    """Three LoRA jobs wait in the queue; one worker claims them all for one shared pass and
    is killed mid-pass. A second worker finishes all three, computing nothing twice."""
    from evaluator.services import evaluation_request

    settings.PEFTHUB_EVAL_LIMIT = 12
    versions = [pushed(f"batch-{i}", folder) for i, folder in enumerate(three_loras)]
    for version in versions:  # the queue holds the three jobs before any worker starts
        evaluation_request(version=version)  # (their version.created events then find them there)
    jobs = EvaluationJob.objects.filter(version__in=versions)

    first = start_worker("w1")
    _wait(
        lambda: jobs.filter(status="running").count() == 3 and jobs.filter(progress__gt=0.2).exists(),
        300, "the shared pass to claim all three and get going", tmp_path,
    )  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert set(jobs.values_list("status", flat=True)) == {"running"}

    start_worker("w2")
    _wait(
        lambda: jobs.filter(status__in=["finished", "failed"]).count() == 3,
        600, "the redelivered pass to finish", tmp_path,
    )  # fmt: skip
    for job in jobs:
        assert job.status == "finished", job.error
        assert job.attempts == 2 and job.runs.count() == 6
        assert all(r.repro["shared_pass"] for r in job.runs.filter(arm__in=["adapter", "adapter_rag"]))
    assert ArmRun.objects.count() == 3 + 3 * 3  # nothing computed twice
