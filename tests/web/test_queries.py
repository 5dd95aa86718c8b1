"""No N+1: every list page runs the same number of queries for few rows and for many."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from evaluator import lifecycle as eval_lifecycle
from evaluator import services as eval_services
from evaluator.models import EvaluationJob
from hub import services as hub_services
from tests.web.conftest import KEPT

pytestmark = pytest.mark.django_db

SCORES = {"base": 0.0, "base_rag": 0.75, "adapter": 0.75, "adapter_rag": 0.5}


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


@pytest.fixture
def grow(alice, push, evaluate):
    """Add ``n`` more adapters, each with a finished evaluation, a running one and tags."""
    made = []

    def grow(n: int) -> None:
        for _ in range(n):
            i = len(made)
            version = push(alice, f"alice/bot-{i}", task_tags=["qa", f"t{i}"], private=i % 2 == 1)
            evaluate(version, SCORES, general=KEPT)
            job = EvaluationJob.objects.get(version=version)
            rerun = eval_services.evaluation_rerun(job=job, user=alice)
            eval_lifecycle.job_start(job_id=rerun.pk)
            eval_lifecycle.jobs_progress(job_ids=[rerun.pk], progress=0.3, current="x")
            hub_services.api_token_create(user=alice, name=f"token-{i}")
            made.append(version)

    return grow


LIST_PAGES = ["/", "/adapters/", "/adapters/?sort=-score&task=qa", "/leaderboard/", "/evaluations/", "/playground/"]


@pytest.mark.parametrize("url", [*LIST_PAGES, "/settings/tokens/"])
def test_list_pages_run_a_constant_number_of_queries(url, grow, alice):
    client = Client()
    client.force_login(alice)
    grow(2)
    few = queries(client, url)
    grow(5)
    many = queries(client, url)
    print(f"{url}: {few} queries with 2 adapters, {many} with 7")
    assert many == few, f"{url}: {few} queries for 2 rows, {many} for 7"
    anonymous = Client()
    if url != "/settings/tokens/":
        assert queries(anonymous, url) <= few


def test_adapter_page_and_samples_do_not_grow_with_versions(alice, push, evaluate, django_assert_max_num_queries):
    client = Client()
    version = push(alice, "alice/many", readme="# one")
    evaluate(version, SCORES, general=KEPT)
    first = queries(client, "/adapters/alice/many/")
    for i in range(4):
        latest = push(alice, "alice/many", readme=f"# version {i + 2}")
        hub_services.alias_set(adapter=latest.adapter, name=f"alias-{i}", version=latest, user=alice)
    evaluate(latest, SCORES, general=KEPT)
    many = queries(client, "/adapters/alice/many/")
    print(f"/adapters/alice/many/: {first} queries with 1 version, {many} with 5")
    assert many == first
    job = EvaluationJob.objects.get(version=latest)
    with django_assert_max_num_queries(first):
        client.get(f"/adapters/alice/many/v/5/evaluations/{job.pk}/samples/")
