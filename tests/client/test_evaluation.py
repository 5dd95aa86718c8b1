"""Following an evaluation: `pefthub status` shows each job's progress, arms and
decision; `push --wait` follows it to the verdict and exits with a code per outcome."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.client.conftest import run_cli, start_cli
from tests.client.evaluations import BAD, GOOD, fail_job, finish_job, make_suites, start_job, version_of

pytestmark = pytest.mark.django_db(transaction=True)

FAST = ("--interval", "0.2", "--timeout", "120")


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _table_after(lines: list[str], first: str) -> list[list[str]]:
    """The rows of the table whose header starts with ``first``, header included."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(first))
    return [_cells(line) for line in lines[start : start + 5]]


def _wait_for_version(full_name: str, number: int = 1, limit: float = 120):
    from hub.models import AdapterVersion

    namespace, name = full_name.split("/")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        version = AdapterVersion.objects.filter(
            adapter__namespace__name=namespace, adapter__name=name, number=number
        ).first()
        if version is not None:
            return version
        time.sleep(0.1)
    raise AssertionError(f"{full_name} v{number} never appeared")


def test_status_shows_a_running_job_then_its_arms_and_decision(client, lora_dir, cli_env):
    suite = make_suites()
    client.push(lora_dir, "alice/bot")
    job = start_job(
        version_of("alice/bot"),
        suite,
        progress=0.5,
        current="adapter on acme-products",
        arms=("base", "base_rag"),
        scores=BAD,
    )

    running = run_cli(cli_env, "status", "alice/bot")
    running_json = json.loads(run_cli(cli_env, "status", "alice/bot", "--json").stdout)
    finish_job(job, scores=BAD)
    finished = run_cli(cli_env, "status", "alice/bot")
    finished_json = json.loads(run_cli(cli_env, "status", "alice/bot", "--json").stdout)

    assert running.returncode == 0, running.stderr
    lines = running.stdout.splitlines()
    assert lines[:3] == [
        "alice/bot v1: pending",
        "evaluation: 1 suite, 50% done, now: adapter on acme-products",
        f"  acme-products@1: running 50%, now: adapter on acme-products (job {job.pk})",
    ]
    assert _table_after(lines, "ARM")[:3] == [
        ["ARM", "SUITE", "SCORES", "TIME"],
        ["base", "acme-products@1", "acme_qa exact_match 40.0%", "12 s"],
        ["base + RAG", "acme-products@1", "acme_qa exact_match 60.0%", "12 s"],
    ]
    assert running_json["outcome"] is None
    [reported] = running_json["evaluations"]
    assert (reported["status"], reported["progress"], reported["current"]) == (
        "running",
        0.5,
        "adapter on acme-products",
    )

    lines = finished.stdout.splitlines()
    assert lines[:5] == [
        "alice/bot v1: rejected",
        "evaluation: 1 suite, 100% done",
        f"  acme-products@1: finished, decision rejected (job {job.pk})",
        "    - failed: gain over the base model -10.0 pts (minimum +5.0 pts)",
        "    - ok: forgetting on the general suite +2.0 pts (maximum +5.0 pts)",
    ]
    assert _table_after(lines, "ARM") == [
        ["ARM", "acme_qa (exact_match)", "GENERAL"],
        ["base", "40.0%", "60.0%"],
        ["base + RAG", "60.0%", "-"],
        ["adapter", "30.0%", "58.0%"],
        ["adapter + RAG", "45.0%", "-"],
    ]
    assert (
        "    adapter vs base -10.0 pts, vs base + RAG -30.0 pts, RAG on the adapter +15.0 pts, forgetting +2.0 pts"
        in lines
    )
    assert finished_json["outcome"] == "rejected"
    assert finished_json["evaluations"][0]["decision"] == "rejected"


def test_push_wait_follows_the_evaluation_and_exits_3_on_a_rejection(lora_dir, cli_env):
    suite = make_suites()
    push = start_cli(cli_env, "push", str(lora_dir), "alice/bot", "--wait", *FAST)

    # The worker's part, while the CLI watches: take the job, run two arms, reject.
    version = _wait_for_version("alice/bot")
    job = start_job(version, suite, progress=0.5, current="adapter on acme-products", arms=("base",), scores=BAD)
    time.sleep(0.5)  # lets the CLI see the running job (its output does not depend on it)
    finish_job(job, scores=BAD)
    out, err = push.communicate(timeout=300)

    assert push.returncode == 3, err
    lines = out.splitlines()
    assert lines[0].startswith("alice/bot v1 (new version;")
    assert "alice/bot v1: rejected" in lines
    assert f"  acme-products@1: finished, decision rejected (job {job.pk})" in lines
    assert _table_after(lines, "ARM")[3] == ["adapter", "30.0%", "58.0%"]
    assert lines[-1] == "verdict: rejected"


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("accepted", 0), ("rejected", 3), ("failed", 4), ("cancelled", 5)],
)
def test_push_wait_exit_code_per_outcome(client, lora_dir, cli_env, outcome, code):
    suite = make_suites()
    client.push(lora_dir, "alice/bot")
    job = start_job(version_of("alice/bot"), suite, progress=0.3, current="base on acme-products")
    if outcome in ("accepted", "rejected"):
        finish_job(job, scores=GOOD if outcome == "accepted" else BAD)
    else:
        fail_job(job, status=outcome, error="CUDA out of memory" if outcome == "failed" else "")

    # The same files again: the hub hands back v1, whose evaluation is over.
    done = run_cli(cli_env, "push", str(lora_dir), "alice/bot", "--wait", *FAST)

    assert done.returncode == code, done.stderr
    assert done.stdout.splitlines()[-1] == f"verdict: {outcome}"
    if outcome == "failed":
        assert "    error: CUDA out of memory" in done.stdout.splitlines()


def test_a_verdict_set_on_the_hub_without_a_job_ends_the_wait(client, lora_dir, cli_env):
    from hub.services import adapter_version_set_status

    client.push(lora_dir, "alice/bot")
    adapter_version_set_status(version=version_of("alice/bot"), status="rejected", reasons=["license missing"])

    done = run_cli(cli_env, "status", "alice/bot", "--wait", *FAST)

    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "alice/bot v1: rejected",
        "  - license missing",
        "evaluation: none (the status was set without an evaluation)",
    ]


def test_push_wait_gives_up_after_the_timeout(lora_dir, cli_env):
    # No active suite: no job is ever made, the version stays pending.
    done = run_cli(cli_env, "push", str(lora_dir), "alice/bot", "--wait", "--interval", "0.1", "--timeout", "0.5")

    assert done.returncode == 6
    assert "alice/bot v1: pending" in done.stdout.splitlines()
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: no verdict for alice/bot v1 after 0.5 s (no evaluation job was made for it")
    )


def test_wait_for_evaluation_shows_a_progress_bar(client, lora_dir, capsys):
    suite = make_suites()
    client.push(lora_dir, "alice/bot")
    finish_job(start_job(version_of("alice/bot"), suite), scores=GOOD)

    status = client.wait_for_evaluation("alice/bot", interval=0.1, timeout=60, progress=True)

    assert (status.version, status.outcome, status.progress) == (1, "accepted", 1.0)
    bars = capsys.readouterr().err.replace("\r", "\n").split("\n")
    assert any(b.startswith("evaluate alice/bot v1: 100%") and b.endswith("accepted") for b in bars), bars


def test_wait_for_evaluation_raises_on_timeout(client, lora_dir):
    import pefthub

    client.push(lora_dir, "alice/bot")

    with pytest.raises(pefthub.EvaluationTimeout) as caught:
        client.wait_for_evaluation("alice/bot", interval=0.05, timeout=0.2)
    assert caught.value.evaluation.status == "pending"
    assert caught.value.evaluation.jobs == []
