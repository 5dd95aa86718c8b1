"""A worker scores pending LoRA jobs together in one shared pass, and stores for each job
what a job run alone stores. Claimed jobs are never run twice, nor lost.

The claim tests run no model; the others score on the tiny chat model (``slow``: a minute
each on 2 cores)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.utils import timezone

from evaluator import lifecycle, runjob, services
from evaluator.engine.runner import ArmSpec, RagSpec, run_arm
from evaluator.models import ArmRun, EvaluationJob
from evaluator.suites_registry import tasks_folder
from hub.models import AdapterVersion
from hub.storage.blobstore import blob_open
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(alice_client, tiny_chat_base, shipped_suites, eval_settings, django_capture_on_commit_callbacks):
    """Upload a folder as a new adapter; its evaluation job is created and stays pending (as
    it does in the queue while a worker is busy). Returns the job."""

    def push(name: str, folder: Path) -> EvaluationJob:
        alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": name}, format="json")
        with django_capture_on_commit_callbacks(execute=False):
            response = upload(alice_client, f"alice/{name}", folder_files(folder), metadata={"license": "mit"})
            assert response.status_code == 201, response.json()
            version = AdapterVersion.objects.get(pk=response.json()["id"])
            (job,) = services.evaluation_request(version=version)
        assert job.status == "pending"
        return job

    return push


def _samples(run: ArmRun) -> list[dict]:
    with blob_open(run.samples_blob) as handle:
        return [json.loads(line) for line in handle.read().decode().splitlines() if line]


@pytest.mark.slow
def test_pending_lora_jobs_are_scored_in_one_shared_pass(queued, three_loras, tiny_chat_prompt_dir, eval_settings):
    jobs = [queued(f"shared-{i}", folder) for i, folder in enumerate(three_loras)]
    prompt_job = queued("prompt", tiny_chat_prompt_dir)
    suite = jobs[0].suite  # a policy whose verdict is known on a random model: license only
    suite.policy = {"primary_metrics": suite.policy["primary_metrics"], "require_license": True}
    suite.save(update_fields=["policy"])

    runjob.execute_job(jobs[0].pk)

    for job in jobs:
        job.refresh_from_db()
        assert job.status == "finished", job.error
        assert job.decision == "accepted" and job.reasons == ["ok: license mit"]
        assert {(r.suite.role, r.arm) for r in job.runs.select_related("suite")} == {
            ("domain", "base"), ("domain", "base_rag"), ("domain", "adapter"), ("domain", "adapter_rag"),
            ("general", "base"), ("general", "adapter"),
        }  # fmt: skip
        assert all(r.repro["shared_pass"] for r in job.runs.filter(arm__in=["adapter", "adapter_rag"]))
    assert [j.batch_leader_id for j in jobs] == [None, jobs[0].pk, jobs[0].pk]
    assert EvaluationJob.objects.get(pk=prompt_job.pk).status == "pending"  # prompt tuning cannot be mixed
    assert ArmRun.objects.count() == 3 + 3 * 3  # base arms once, three adapter arms per adapter

    # Each job holds its own adapter's answers: the same as that adapter scored alone.
    suite = jobs[1].suite
    run = jobs[1].runs.get(suite=suite, arm="adapter_rag")
    alone = run_arm(
        ArmSpec(
            suite_dir=tasks_folder(Path(suite.path)),
            tasks=tuple(suite.tasks),
            base_path=Path(jobs[1].version.base_model.local_path),
            adapter_path=three_loras[1],
            rag=RagSpec(suite.retriever, Path(suite.path) / "corpus.jsonl", suite.top_k),
            system_instruction=suite.system_instruction,
            batch_size=eval_settings.PEFTHUB_EVAL_BATCH_SIZE,
            limit=eval_settings.PEFTHUB_EVAL_LIMIT,
        ),
        lambda *_: None,
    )
    assert alone.repro["shared_pass"] is False
    for task, values in alone.metrics.items():
        for metric, value in values.items():
            if value is not None and not metric.endswith("_stderr"):
                assert run.metrics[task][metric] == pytest.approx(value, abs=1e-9), (task, metric)
    stored = _samples(run)
    fresh = [json.loads(line) for line in alone.samples_jsonl.decode().splitlines() if line]
    assert [s["resps"] for s in stored if s["task"] == "acme_qa"] == [
        s["resps"] for s in fresh if s["task"] == "acme_qa"
    ]
    answers = [
        [s["resps"] for s in _samples(j.runs.get(suite=suite, arm="adapter")) if s["task"] == "acme_qa"] for j in jobs
    ]
    pairs = ((0, 1), (0, 2), (1, 2))
    assert all(answers[i] != answers[j] for i, j in pairs), "the adapters differ, so a mix-up would show"

    # The other jobs' own queue messages find nothing left to do.
    runjob.execute_job(jobs[1].pk)
    assert EvaluationJob.objects.get(pk=jobs[1].pk).attempts == 1
    assert ArmRun.objects.count() == 12


def test_a_claimed_jobs_message_waits_for_its_leader(queued, three_loras):
    leader, member = (queued(f"claim-{i}", f) for i, f in enumerate(three_loras[:2]))
    leader = lifecycle.job_start(job_id=leader.pk)
    assert [j.pk for j in lifecycle.jobs_claim_batch(leader=leader, limit=8)] == [member.pk]
    assert lifecycle.jobs_claim_batch(leader=leader, limit=8) == [member]  # its own, on a redelivery
    # A second worker (or the member's own message) cannot take it while the leader runs.
    assert lifecycle.job_start(job_id=member.pk) is None

    # The leader is cancelled and the pass went silent: the member's message runs it alone.
    services.evaluation_cancel(job=leader, user=None)
    assert lifecycle.job_start(job_id=member.pk) is None  # its heartbeat is still fresh
    EvaluationJob.objects.filter(pk=member.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    taken = lifecycle.job_start(job_id=member.pk)
    assert taken is not None and taken.batch_leader_id is None and taken.attempts == 3


def test_batches_respect_the_limit_and_skip_other_kinds(queued, three_loras, tiny_chat_prompt_dir):
    jobs = [queued(f"limit-{i}", f) for i, f in enumerate(three_loras)]
    queued("limit-prompt", tiny_chat_prompt_dir)
    leader = lifecycle.job_start(job_id=jobs[0].pk)
    assert lifecycle.jobs_claim_batch(leader=leader, limit=1) == []
    assert [j.pk for j in lifecycle.jobs_claim_batch(leader=leader, limit=2)] == [jobs[1].pk]
    EvaluationJob.objects.filter(pk=jobs[2].pk).update(backend="vllm")  # another backend: not mixed
    assert lifecycle.jobs_claim_batch(leader=leader, limit=8) == [EvaluationJob.objects.get(pk=jobs[1].pk)]


@pytest.mark.slow
def test_a_redelivered_leader_finishes_the_jobs_it_had_claimed(queued, three_loras):
    """As a SIGKILLed worker leaves them: the leader and its members running, mid-pass."""
    jobs = [queued(f"redeliver-{i}", f) for i, f in enumerate(three_loras)]
    leader = lifecycle.job_start(job_id=jobs[0].pk)
    lifecycle.jobs_claim_batch(leader=leader, limit=8)
    for job in jobs[1:]:
        assert lifecycle.job_start(job_id=job.pk) is None  # their messages skip

    runjob.execute_job(jobs[0].pk)  # the leader's message, redelivered
    for job in jobs:
        job.refresh_from_db()
        assert job.status == "finished", job.error
        assert job.attempts == 2 and job.runs.count() == 6
    assert ArmRun.objects.count() == 12


@pytest.mark.slow
def test_a_failed_shared_pass_runs_each_job_alone(queued, three_loras, monkeypatch, django_capture_on_commit_callbacks):
    from evaluator.engine import shared

    jobs = [queued(f"fallback-{i}", f) for i, f in enumerate(three_loras[:2])]

    def broken(*args, **kwargs):
        raise RuntimeError("mixed batches are broken today")

    monkeypatch.setattr(shared, "SharedAdapters", broken)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        requeue = runjob.execute_job(jobs[0].pk)
    leader, member = (EvaluationJob.objects.get(pk=j.pk) for j in jobs)
    assert leader.status == "finished", leader.error
    assert member.status == "pending" and member.batch_leader_id is None and member.solo
    assert requeue == [member.pk]  # for the task to send back to the queue, to run alone
    assert enqueued == []  # the worker's side enqueues nothing itself
    assert not any(r.repro["shared_pass"] for r in leader.runs.all())

    with django_capture_on_commit_callbacks(execute=True):
        assert runjob.execute_job(member.pk) == []
    member.refresh_from_db()
    assert member.status == "finished", member.error
    assert member.runs.count() == 6


@pytest.mark.slow
def test_cancelling_one_job_of_a_pass_leaves_the_others_running(queued, three_loras, monkeypatch):
    jobs = [queued(f"cancel-{i}", f) for i, f in enumerate(three_loras)]
    real = lifecycle.jobs_progress
    calls = {"n": 0}

    def cancel_one(**kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # its owner cancels the second job while the pass runs
            services.evaluation_cancel(job=EvaluationJob.objects.get(pk=jobs[1].pk), user=None)
        return real(**kwargs)

    monkeypatch.setattr(lifecycle, "jobs_progress", cancel_one)
    runjob.execute_job(jobs[0].pk)
    statuses = [EvaluationJob.objects.get(pk=j.pk).status for j in jobs]
    assert statuses == ["finished", "cancelled", "finished"]
    assert EvaluationJob.objects.get(pk=jobs[1].pk).runs.count() < 6


def test_a_pass_past_its_time_limit_requeues_its_jobs_alone(
    queued, three_loras, monkeypatch, django_capture_on_commit_callbacks
):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(self):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(runjob._Batch, "run", too_slow)
    jobs = [queued(f"slow-{i}", f) for i, f in enumerate(three_loras[:2])]
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        requeue = runjob.execute_job(jobs[0].pk)
    for job in jobs:  # the pass ran out of time, not the jobs: both wait to run alone
        job.refresh_from_db()
        assert job.status == "pending" and job.solo and job.batch_leader_id is None
    assert requeue == sorted(j.pk for j in jobs) and enqueued == []

    runjob.execute_job(jobs[0].pk)  # alone, and out of time again: now it fails, with why
    job = EvaluationJob.objects.get(pk=jobs[0].pk)
    assert job.status == "failed" and "time limit" in job.error
    assert EvaluationJob.objects.get(pk=jobs[1].pk).status == "pending"
