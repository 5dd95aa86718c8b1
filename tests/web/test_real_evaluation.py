"""The evaluation pages on what a real run stores: lm-eval on the evaluator's tiny chat model
(three questions per task), so the sample browser reads lm-eval's own per-sample log."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from evaluator import services
from evaluator.models import EvaluationJob

# The evaluator's tiny chat model and its LoRA (fixtures, imported so this module can use them).
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("tiny_chat_base", "suites", "eval_settings")
def test_pages_show_a_real_lm_eval_run(alice, alice_client, request, django_capture_on_commit_callbacks):
    lora = request.getfixturevalue("tiny_chat_lora_dir")
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "real"}, format="json")
    response = upload(alice_client, "alice/real", folder_files(lora), metadata={"license": "mit"})
    assert response.status_code == 201, response.json()
    version = alice.namespaces.get().adapters.get().versions.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.evaluation_request(version=version)  # runs lm-eval now (eager Celery)
    job = EvaluationJob.objects.get(version=version)
    assert job.status == "finished", job.error

    page = Client().get("/adapters/alice/real/").content.decode()
    arms = job.summary["arms"]
    for arm in ("base", "base_rag", "adapter", "adapter_rag"):
        average = arms[arm]["average"]
        assert re.search(rf'<tr data-arm="{arm}">.*?<strong>{average * 100:.1f}%</strong>', page, re.S), arm

    samples = Client().get(f"/adapters/alice/real/v/1/evaluations/{job.pk}/samples/").content.decode()
    for run in job.runs.filter(suite=job.suite):
        for task in job.suite.tasks:
            metric = arms[run.arm]["tasks"][task]["metric"]
            value = run.metrics[task][metric]
            marks = re.findall(rf'<span class="muted">{task} #\d+</span>.*?</tr>', samples, re.S)
            assert len(marks) == 3, task  # PEFTHUB_EVAL_LIMIT questions per task
            right = sum(f'class="answer right" data-arm="{run.arm}"' in row for row in marks)
            wrong = sum(f'class="answer wrong" data-arm="{run.arm}"' in row for row in marks)
            assert right + wrong == 3, (run.arm, task)
            assert right / 3 == pytest.approx(value), (run.arm, task, metric)
