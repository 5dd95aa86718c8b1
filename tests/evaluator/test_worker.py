"""A real Celery worker on a real Redis broker and PostgreSQL scores an upload; killed
with SIGKILL mid-run, its job is redelivered and finishes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from config.celery_app import app
from evaluator.models import ArmRun, EvaluationJob
from hub.models import AdapterVersion
from tests.utils import folder_files, upload, wait_for_workers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# The broker's own Redis database, flushed by each test. Derived from REDIS_URL's database,
# so that test runs given different ones (parallel checkouts on one server) never share a
# queue: a worker of another run would take this run's messages.
_REDIS_SERVER, _, _REDIS_DB = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rpartition("/")
REDIS = f"{_REDIS_SERVER}/{15 - int(_REDIS_DB or 0) % 8}"
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
    job = wait_for_workers(
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
    wait_for_workers(
        lambda: EvaluationJob.objects.filter(version=version, status="running", progress__gt=0).exists(),
        300, "the job to start running", tmp_path,
    )  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert EvaluationJob.objects.get(version=version).status == "running"  # killed mid-run

    start_worker("w2")
    job = wait_for_workers(
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
    wait_for_workers(
        lambda: jobs.filter(status="running").count() == 3 and jobs.filter(progress__gt=0.2).exists(),
        300, "the shared pass to claim all three and get going", tmp_path,
    )  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert set(jobs.values_list("status", flat=True)) == {"running"}

    start_worker("w2")
    wait_for_workers(
        lambda: jobs.filter(status__in=["finished", "failed"]).count() == 3,
        600, "the redelivered pass to finish", tmp_path,
    )  # fmt: skip
    for job in jobs:
        assert job.status == "finished", job.error
        assert job.attempts == 2 and job.runs.count() == 6
        assert all(r.repro["shared_pass"] for r in job.runs.filter(arm__in=["adapter", "adapter_rag"]))
    assert ArmRun.objects.count() == 3 + 3 * 3  # nothing computed twice


@pytest.mark.slow
def test_a_data_only_suite_is_scored_by_a_real_worker_as_the_lm_eval_cli_scores_it(
    pushed, start_worker, tiny_chat_lora_dir, tiny_chat_dir, tmp_path, settings
):
    """A suite of suite.json + JSONL only, registered over REST, scored on four arms by a
    real worker; its stored adapter score equals `python -m lm_eval` on the YAML the hub
    generated for it."""
    import json

    from evaluator.models import Suite
    from evaluator.suites_registry import tasks_folder
    from tests.evaluator.suite_samples import tar_of, write_suite
    from tests.factories import MemberFactory, client_for

    settings.PEFTHUB_SUITES_DIR = tmp_path / "suites"
    staff = client_for(MemberFactory(username="staffer", is_staff=True))
    response = staff.post("/api/v1/suites/", {"archive": tar_of(write_suite(tmp_path / "quarrow"))}, format="multipart")
    assert response.status_code == 201, response.json()
    suite = Suite.objects.get(slug="quarrow-rules")
    Suite.objects.exclude(pk=suite.pk).update(active=False)  # the upload is scored on this suite alone

    start_worker("w1")
    version = pushed("quarrow-scored", tiny_chat_lora_dir)
    job = wait_for_workers(
        lambda: EvaluationJob.objects.filter(version=version, status__in=["finished", "failed"]).first(),
        300, "the job to finish", tmp_path,
    )  # fmt: skip
    assert job.status == "finished", job.error
    assert job.suite == suite
    assert {(r.suite.slug, r.arm) for r in job.runs.select_related("suite")} == {
        ("quarrow-rules", "base"), ("quarrow-rules", "base_rag"), ("quarrow-rules", "adapter"),
        ("quarrow-rules", "adapter_rag"), ("general", "base"), ("general", "adapter"),
    }  # fmt: skip
    assert set(job.summary["arms"]) == {"base", "base_rag", "adapter", "adapter_rag"}
    run = job.runs.get(suite=suite, arm="adapter")
    assert set(run.metrics) == {"quarrow_mc", "quarrow_qa"}

    # The worker ran the folder the hub generates: the same content, under the same name.
    generated = tasks_folder(Path(suite.path))
    assert (tmp_path / "worker-data" / "suites" / "_generated" / generated.name).is_dir()
    out = tmp_path / "cli"
    subprocess.run(
        [
            sys.executable, "-m", "lm_eval",
            "--model", "hf",
            "--model_args", f"pretrained={tiny_chat_dir},peft={tiny_chat_lora_dir},dtype=float32",
            "--tasks", ",".join(suite.tasks),
            "--include_path", str(generated),
            "--apply_chat_template",
            "--system_instruction", suite.system_instruction,
            "--limit", str(settings.PEFTHUB_EVAL_LIMIT), "--batch_size", "4", "--device", "cpu",
            "--seed", "1234",
            "--output_path", str(out),
        ],
        check=True, capture_output=True, cwd=tmp_path,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    (results_file,) = out.rglob("results_*.json")
    cli = json.loads(results_file.read_text())["results"]
    compared = 0
    for task in suite.tasks:
        for key, value in cli[task].items():
            metric, _, filt = key.partition(",")
            if isinstance(value, float) and filt == "none" and not metric.endswith("_stderr"):
                assert run.metrics[task][metric] == pytest.approx(value, abs=1e-9), (task, metric)
                compared += 1
    assert compared == 3  # acc, acc_norm, answer_match


def test_a_second_base_added_from_its_folder_is_evaluated_by_a_real_worker_and_served(
    broker, eval_settings, start_worker, alice_client, shipped_suites, tiny_chat_dir, tmp_path
):
    """A tiny Qwen2 that the test writes: added with ``hub_base_model_add``, an adapter made
    for it uploaded, scored on it by a real worker (Redis, PostgreSQL), accepted and served."""
    from django.core.management import call_command
    from peft import LoraConfig
    from transformers import AutoTokenizer

    from evaluator.models import Suite
    from hub.models import BaseModel
    from serving.engines import reset_engines
    from tests.factories import save_adapter, save_tiny_qwen2

    # The tiny chat model's tokenizer (trained on the suites' text), so lm-eval's prompts encode.
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_dir)
    folder = save_tiny_qwen2(
        tmp_path / "tiny-qwen2",
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    tokenizer.save_pretrained(folder)
    call_command("hub_base_model_add", str(folder), "--name", "tiny-qwen2", "--alias", "test-org/tiny-qwen2")
    base = BaseModel.objects.get(name="tiny-qwen2")
    lora = save_adapter(
        folder,
        tmp_path / "qwen-lora",
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        base_name="test-org/tiny-qwen2",
        noise=0.5,
    )
    # Scores of a random model decide nothing here: the domain suite keeps its metrics, no rules.
    for suite in Suite.objects.filter(role=Suite.Role.DOMAIN):
        suite.policy = {"primary_metrics": suite.policy["primary_metrics"]}
        suite.save(update_fields=["policy"])

    start_worker("w1")
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "qwen-bot"}, format="json")
    response = upload(alice_client, "alice/qwen-bot", folder_files(lora), metadata={"license": "mit"})
    assert response.status_code == 201, response.json()
    version = AdapterVersion.objects.get(pk=response.json()["id"])
    assert (version.base_model_id, version.base_revision) == (base.pk, base.revision)
    job = wait_for_workers(
        lambda: EvaluationJob.objects.filter(version=version, status__in=["finished", "failed"]).first(),
        300, "the job on the second base to finish", tmp_path,
    )  # fmt: skip
    assert job.status == "finished", job.error
    runs = job.runs.select_related("base_model")
    assert {(r.base_model.name, r.base_revision) for r in runs} == {("tiny-qwen2", base.revision)}
    version.refresh_from_db()
    assert version.status == "accepted", version.status_reasons
    deployed = wait_for_workers(
        lambda: alice_client.get("/api/v1/adapters/alice/qwen-bot/versions/1/deployment/").json().get("live"),
        60, "the accepted version to go live", tmp_path,
    )  # fmt: skip
    assert deployed is True

    reset_engines()
    answer = alice_client.post(
        "/v1/completions", {"model": "alice/qwen-bot", "prompt": "w1 w2 w3", "max_tokens": 3}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["model"] == "alice/qwen-bot" and answer.json()["choices"][0]["text"]
    reset_engines()
