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
from pathlib import Path

import pytest

from evaluator.models import ArmRun, EvaluationJob
from evaluator.suites_registry import tasks_folder
from hub.models import AdapterVersion
from hub.storage.blobstore import blob_open
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
    # A random tiny model's scores decide nothing: a policy whose verdict is known here
    # (forgetting is at most 100 points; the card has a license), so the decision is pinned.
    suite = shipped_suites["acme-products"]
    suite.policy = {"primary_metrics": suite.policy["primary_metrics"], "max_forgetting": 1.0, "require_license": True}
    suite.save(update_fields=["policy"])
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
        # what a request costs: 3 questions per task (the limit), each prompt counted once
        assert run.questions == 3 * len(run.suite.tasks) and run.prompt_tokens > 0 and run.model_seconds > 0
        with blob_open(run.samples_blob) as handle:
            samples = [json.loads(line) for line in handle.read().decode().splitlines()]
        assert {s["task"] for s in samples} == set(run.suite.tasks)
    rag = job.runs.get(suite=job.suite, arm="base_rag")
    assert rag.repro["retrieved"], "the RAG arm must record what it retrieved"
    # retrieved passages make the RAG arm's prompts longer than the same questions without them
    assert rag.prompt_tokens > 2 * job.runs.get(suite=job.suite, arm="base").prompt_tokens
    summary = job.summary
    assert set(summary["arms"]) == {"base", "base_rag", "adapter", "adapter_rag"}
    assert summary["forgetting"] is not None
    version.refresh_from_db()
    assert job.decision == "accepted" and version.status == "accepted"
    pts = "{:+.1f} pts".format
    ci = summary["intervals"]["forgetting"]  # judged by default on its upper bound
    assert ci["low"] <= summary["forgetting"] <= ci["high"] and ci["samples"] == 3 * 2
    interval = f"95% interval {pts(ci['low'] * 100)} to {pts(ci['high'] * 100)}"
    assert job.reasons == [
        f"ok: forgetting on the general suite {pts(summary['forgetting'] * 100)}, {interval} (upper bound maximum "
        "+100.0 pts)",
        "ok: license apache-2.0",
    ]
    assert version.status_reasons == job.reasons

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
            "--include_path", str(tasks_folder(Path(suite.path))),  # the YAML the hub generated
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
    from evaluator import lifecycle, runjob, services

    real_progress = lifecycle.jobs_progress
    calls = {"n": 0}

    def cancel_midway(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the owner presses cancel while the first arm runs
            (job_id,) = kwargs["job_ids"]
            services.evaluation_cancel(job=EvaluationJob.objects.get(pk=job_id), user=None)
        return real_progress(**kwargs)

    monkeypatch.setattr(runjob.lifecycle, "jobs_progress", cancel_midway)
    version = push("cancelled", tiny_chat_lora_dir)
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "cancelled"
    assert job.runs.count() < 6
    version.refresh_from_db()
    assert version.status == "pending"


def test_broken_task_yaml_fails_with_a_clear_error(push, tiny_chat_lora_dir, shipped_suites, tmp_path):
    from evaluator.models import Suite

    suite = shipped_suites["acme-products"]
    broken = tmp_path / "broken"  # the suite as hand-written lm-eval YAML, one of them broken
    shutil.copytree(tasks_folder(Path(suite.path)), broken)
    shutil.copy(Path(suite.path) / "corpus.jsonl", broken)
    manifest = json.loads((Path(suite.path) / "suite.json").read_text())
    (broken / "suite.json").write_text(json.dumps({**manifest, "tasks": suite.tasks}))
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
    assert lines[0].startswith("rank,adapter,version,method,status,average")
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


@pytest.fixture(scope="session")
def untrained_lora_dir(tiny_chat_dir, tmp_path_factory):
    """A LoRA as peft initialises it: B = 0, so it changes no output."""
    from peft import LoraConfig

    from tests.factories import save_adapter

    return save_adapter(
        tiny_chat_dir,
        tmp_path_factory.mktemp("untrained-lora"),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        base_name="test-org/tiny-chat",
        noise=0,
    )


def test_an_adapter_that_changes_nothing_is_flagged_and_rejected(push, untrained_lora_dir, shipped_suites):
    suite = shipped_suites["acme-products"]  # a policy it would pass, were it not a no-op
    suite.policy = {"primary_metrics": suite.policy["primary_metrics"], "require_license": True}
    suite.save(update_fields=["policy"])
    version = push("untrained", untrained_lora_dir, license="mit")
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "finished", job.error
    questions = 3 * len(suite.tasks)
    assert job.summary["adapter_effect"] == {"samples": questions, "identical": questions, "no_op": True}
    assert job.summary["intervals"]["gain_over_base"]["high"] == 0.0  # same answers: no difference at all
    version.refresh_from_db()
    assert job.decision == version.status == "rejected"
    assert version.status_reasons == [
        f"failed: the adapter answered exactly as the base model on all {questions} questions: it was not applied, "
        "or it changes nothing (an untrained LoRA?); its scores are the base model's",
        "ok: license mit",
    ]


def test_a_trained_adapter_is_not_flagged(push, tiny_chat_lora_dir):
    job = EvaluationJob.objects.get(version=push("trained", tiny_chat_lora_dir, license="mit"))
    assert job.status == "finished", job.error
    effect = job.summary["adapter_effect"]
    assert effect["no_op"] is False and effect["identical"] < effect["samples"]
    assert not any("answered exactly as the base model" in reason for reason in job.reasons)


def test_a_pending_job_superseded_by_a_newer_push_is_cancelled_when_claimed(db):
    """``hub_strategy="every_save"``: pushes v1, v2, v3 before a worker is free. Claiming v1's
    and v2's jobs cancels them with the reason; v3's runs. A re-run of v1 is never cancelled."""
    from evaluator import lifecycle
    from tests.factories import AdapterFactory, AdapterVersionFactory, EvaluationJobFactory, SuiteFactory

    adapter, suite = AdapterFactory(), SuiteFactory()
    versions = [AdapterVersionFactory(adapter=adapter, number=n) for n in (1, 2, 3)]
    jobs = [EvaluationJobFactory(version=v, suite=suite) for v in versions]
    other_suite = EvaluationJobFactory(version=versions[0], suite=SuiteFactory())
    for job in jobs[:2]:
        assert lifecycle.job_start(job_id=job.pk) is None
        job.refresh_from_db()
        assert job.status == "cancelled"
        assert job.reasons == [
            f"cancelled before it started: v3 of {adapter} was pushed meanwhile and is evaluated instead; "
            f"re-run this job to score v{job.version.number} anyway"
        ]
    assert lifecycle.job_start(job_id=jobs[2].pk).status == "running"
    assert lifecycle.job_start(job_id=other_suite.pk).status == "running"  # v2, v3 have no job on that suite
    rerun = EvaluationJobFactory(version=versions[0], suite=suite, rerun_of=jobs[0], fresh=True)
    assert lifecycle.job_start(job_id=rerun.pk).status == "running"
