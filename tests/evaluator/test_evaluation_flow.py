"""Every upload is scored on four arms with the real lm-eval, then accepted or rejected.

These run the real pipeline (lm-eval's hf model with peft=, bm25 retrieval, the
policy) on a tiny random chat model and three questions per task, in eager mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from evaluator.models import ArmRun, EvaluationJob
from hub.blobstore import blob_open
from hub.models import AdapterVersion
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def push(alice_client, tiny_chat_base, shipped_suites, eval_settings, django_capture_on_commit_callbacks):
    """Upload a folder as a new adapter and run everything its upload triggers."""

    def push(name: str, folder, **metadata):
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": name}, format="json")
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(alice_client, f"alice/{name}", folder_files(folder), metadata=metadata)
        assert response.status_code == 201, response.json()
        return AdapterVersion.objects.get(pk=response.json()["id"])

    return push


def test_upload_is_scored_on_four_arms_and_decided(push, tiny_chat_lora_dir, alice_client, shipped_suites):
    version = push("scored", tiny_chat_lora_dir, license="apache-2.0")
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "finished", job.error
    assert job.progress == 1.0
    domain = {r.arm for r in job.runs.filter(suite=job.suite)}
    assert domain == {"base", "base_rag", "adapter", "adapter_rag"}
    general = {r.arm for r in job.runs.exclude(suite=job.suite)}
    assert general == {"base", "adapter"}
    for run in job.runs.all():
        for task in run.suite.tasks:
            assert task in run.metrics, (run.arm, task, run.metrics)
        assert run.repro["seed"] == 1234
        assert run.repro["limit"] == 3
        assert run.repro["task_hashes"]
        assert run.requests > 0 and run.tokens > 0 and run.duration_seconds > 0
        with blob_open(run.samples_blob) as handle:
            samples = [json.loads(line) for line in handle.read().decode().splitlines()]
        assert {s["task"] for s in samples} == set(run.suite.tasks)
    rag = job.runs.get(suite=job.suite, arm="base_rag")
    assert rag.repro["retrieved"], "the RAG arm must record what it retrieved"
    summary = job.summary
    assert set(summary["arms"]) == {"base", "base_rag", "adapter", "adapter_rag"}
    assert summary["forgetting"] is not None
    version.refresh_from_db()
    assert version.status in ("accepted", "rejected")
    assert version.status == job.decision
    assert version.status_reasons and all(r.startswith(("ok: ", "failed: ")) for r in version.status_reasons)

    detail = alice_client.get(f"/api/v1/adapters/alice/scored/versions/{version.number}/evaluations/").json()
    assert detail[0]["status"] == "finished"
    assert len(detail[0]["runs"]) == 6


def test_base_arms_are_computed_once_and_identical_content_is_reused(push, tiny_chat_lora_dir, tiny_chat_prompt_dir):
    first = push("one", tiny_chat_lora_dir)
    runs_after_first = ArmRun.objects.count()
    assert runs_after_first == 6
    # other content: only its adapter arms are new (2 domain + 1 general)
    push("two", tiny_chat_prompt_dir)
    assert ArmRun.objects.count() == runs_after_first + 3
    # the same files under another name: nothing is computed again
    again = push("three", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=again)
    assert job.reused is True
    assert job.status == "finished"
    assert ArmRun.objects.count() == runs_after_first + 3
    assert job.summary["arms"] == EvaluationJob.objects.get(version=first).summary["arms"]


def test_prompt_tuning_adapter_runs_end_to_end(push, tiny_chat_prompt_dir):
    version = push("prompt", tiny_chat_prompt_dir)
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "finished", job.error
    assert job.summary["arms"]["adapter"]["average"] is not None


def test_policy_rejects_without_license(push, tiny_chat_lora_dir):
    version = push("nolicense", tiny_chat_lora_dir)
    version.refresh_from_db()
    assert version.status == "rejected"
    assert any("license missing" in reason for reason in version.status_reasons)


def test_stored_score_equals_the_lm_eval_cli(push, tiny_chat_lora_dir, tiny_chat_dir, tmp_path, shipped_suites):
    version = push("cli", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=version)
    suite = job.suite
    run = job.runs.get(suite=suite, arm="adapter")
    out = tmp_path / "cli"
    subprocess.run(
        [
            sys.executable, "-m", "lm_eval",
            "--model", "hf",
            "--model_args", f"pretrained={tiny_chat_dir},peft={tiny_chat_lora_dir},dtype=float32",
            "--tasks", ",".join(suite.tasks),
            "--include_path", suite.path,
            "--apply_chat_template",
            "--system_instruction", suite.system_instruction,
            "--limit", "3", "--batch_size", "4", "--device", "cpu",
            "--seed", "1234",
            "--output_path", str(out),
        ],
        check=True, capture_output=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    (results_file,) = out.rglob("results_*.json")
    cli = json.loads(results_file.read_text())["results"]
    for task in suite.tasks:
        for key, value in cli[task].items():
            metric, _, filt = key.partition(",")
            if isinstance(value, float) and filt == "none" and not metric.endswith("_stderr"):
                assert run.metrics[task][metric] == pytest.approx(value, abs=1e-9), (task, metric)


def test_rerun_recomputes_the_same_numbers(push, tiny_chat_lora_dir, alice_client, django_capture_on_commit_callbacks):
    version = push("rerun", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=version)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/api/v1/evaluations/{job.pk}/rerun/")
    assert response.status_code == 202
    new = EvaluationJob.objects.get(pk=response.json()["id"])
    assert new.status == "finished", new.error
    assert new.reused is False
    assert new.summary["arms"] == job.summary["arms"]


def test_cancel_stops_a_running_job(push, tiny_chat_lora_dir, monkeypatch, shipped_suites, eval_settings):
    from evaluator import runjob, services

    real_progress = services.jobs_progress
    calls = {"n": 0}

    def cancel_midway(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the owner presses cancel while the first arm runs
            (job_id,) = kwargs["job_ids"]
            services.evaluation_cancel(job=EvaluationJob.objects.get(pk=job_id), user=None)
        return real_progress(**kwargs)

    monkeypatch.setattr(runjob.services, "jobs_progress", cancel_midway)
    version = push("cancelled", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "cancelled"
    assert job.runs.count() < 6
    version.refresh_from_db()
    assert version.status == "pending"


def test_broken_task_yaml_fails_with_a_clear_error(push, tiny_chat_lora_dir, shipped_suites, tmp_path):
    from evaluator.models import Suite

    suite = shipped_suites["acme-products"]
    broken = tmp_path / "broken"
    shutil.copytree(suite.path, broken)
    yaml_file = sorted(broken.glob("*.yaml"))[0]
    yaml_file.write_text(yaml_file.read_text() + "\n  this: [is not: yaml\n")
    Suite.objects.filter(pk=suite.pk).update(path=str(broken), content_hash="f" * 64)
    version = push("broken", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "failed"
    assert yaml_file.stem in job.error or "yaml" in job.error.lower(), job.error


def test_leaderboard_json_and_csv(push, tiny_chat_lora_dir, tiny_chat_prompt_dir, anon_client):
    push("lb-lora", tiny_chat_lora_dir, license="mit", num_training_examples=200)
    push("lb-prompt", tiny_chat_prompt_dir, license="mit")
    board = anon_client.get("/api/v1/leaderboard/acme-products/", {"ordering": "-trainable_params"}).json()
    rows = board["rows"]
    assert [r["adapter"] for r in rows] == ["alice/lb-lora", "alice/lb-prompt"]  # 1792 vs 256 parameters
    assert {"average", "gain_over_base", "gain_over_rag", "forgetting", "size_bytes"} <= set(rows[0])
    csv_response = anon_client.get("/api/v1/leaderboard/acme-products/", {"export": "csv"})
    assert csv_response["Content-Type"].startswith("text/csv")
    lines = csv_response.content.decode().splitlines()
    assert lines[0].startswith("adapter,version,method,status,average")
    assert len(lines) == 3


def test_a_job_orphaned_by_a_dead_worker_is_requeued_and_finishes(
    push, tiny_chat_lora_dir, django_capture_on_commit_callbacks
):
    """The filesystem broker drops a job whose worker was killed: the job stays `running`
    with an old heartbeat until a starting worker requeues it."""
    import datetime as dt

    from django.core.management import call_command
    from django.utils import timezone

    from evaluator.apps import _requeue_orphans

    version = push("orphan", tiny_chat_lora_dir, license="apache-2.0")
    job = EvaluationJob.objects.get(version=version)
    old = timezone.now() - dt.timedelta(hours=1)
    # As a SIGKILLed worker leaves it: running, some progress, silent for an hour.
    EvaluationJob.objects.filter(pk=job.pk).update(status="running", progress=0.3, heartbeat_at=old)
    fresh = EvaluationJob.objects.filter(pk=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("evaluator_requeue_stale", "--older-than", str(2 * 3600))  # not stale enough
    assert fresh.get().status == "running" and fresh.get().heartbeat_at == old

    with django_capture_on_commit_callbacks(execute=True):
        _requeue_orphans()  # what a starting worker runs
    job.refresh_from_db()
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.runs.count() == 6
    assert ArmRun.objects.filter(jobs=job).count() == 6
