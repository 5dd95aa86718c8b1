"""The RAG-or-fine-tuning page of a suite and its JSON: every figure from stored runs."""

from __future__ import annotations

import pytest
from django.test import Client

from evaluator.decision import _fewest_beating_rag, decision
from evaluator.models import Suite
from evaluator.suites_registry import SHIPPED_DIR
from tests.web.conftest import KEPT

pytestmark = pytest.mark.django_db

CORPUS = sum(1 for line in (SHIPPED_DIR / "acme-products" / "corpus.jsonl").read_text().splitlines() if line.strip())


@pytest.fixture
def scored(alice, bob, push, evaluate):
    big = push(alice, "alice/big", num_training_examples=200, training_time_seconds=600, training_hardware="1x H100")
    evaluate(big, {"base": 0.0, "base_rag": 0.5, "adapter": 1.0, "adapter_rag": 1.0}, general=KEPT)
    small = push(bob, "bob/small", num_training_examples=50, training_time_seconds=120)
    evaluate(small, {"base": 0.0, "base_rag": 0.5, "adapter": 0.5, "adapter_rag": 0.75}, general=KEPT)
    secret = push(alice, "alice/secret", private=True, num_training_examples=10)
    evaluate(secret, {"base": 0.0, "base_rag": 0.5, "adapter": 1.0, "adapter_rag": 1.0}, general=KEPT)
    return Suite.objects.get(slug="acme-products", active=True)


def test_the_selector_measures_each_axis_from_the_stored_runs(scored):
    from django.contrib.auth.models import AnonymousUser

    d = decision(user=AnonymousUser(), suite=scored)
    assert d["best"]["adapter"] == "alice/big"  # alice's private one is hidden from others
    arms = {a["arm"]: a for a in d["arms"]}
    assert [arms[a]["accuracy"] for a in ("base", "base_rag", "adapter", "adapter_rag")] == [0.0, 0.5, 1.0, 1.0]
    rag = arms["base_rag"]
    assert rag["low"] < 0.5 < rag["high"] and rag["questions"] == 8  # 4 questions in each of 2 tasks
    assert arms["adapter"]["low"] == arms["adapter"]["high"] == 1.0  # right on every question: no spread
    assert d["differences"]["gain_over_rag"]["estimate"] == 0.5
    assert d["differences"]["gain_over_rag"]["low"] <= 0.5 <= d["differences"]["gain_over_rag"]["high"]

    needed = d["data_needed"]
    assert needed["rag"] == {"training_examples": 0, "corpus_passages": CORPUS, "score": 0.5}
    assert [(p["adapter"], p["training_examples"], p["score"]) for p in needed["adapters"]] == [
        ("bob/small", 50, 0.5),
        ("alice/big", 200, 1.0),
    ]

    cost = d["cost_per_request"]  # the fixture's RAG prompts hold 400 tokens, the others 40
    assert cost["rag"]["prompt_tokens_per_question"] == 400 and cost["adapter"]["prompt_tokens_per_question"] == 40
    assert cost["prompt_tokens_ratio"] == pytest.approx(10.0) and cost["model_seconds_ratio"] == pytest.approx(2.5)

    assert d["training"]["adapter"]["training_time_seconds"] == 600
    assert d["training"]["forgetting"]["estimate"] == 0.0
    assert d["update_fact"]["adapter"]["retraining_seconds"] == 600
    assert d["update_fact"]["adapter"]["training_hardware"] == "1x H100"
    assert d["update_fact"]["rag"]["retraining_seconds"] == 0


def test_alice_sees_her_private_adapter_compared(scored, alice):
    d = decision(user=alice, suite=scored)
    assert [p["adapter"] for p in d["data_needed"]["adapters"]] == ["alice/secret", "bob/small", "alice/big"]


def test_fewest_examples_beating_rag_needs_the_interval_above_zero():
    rows = [
        {"num_training_examples": 50, "gain_over_rag_low": -0.01},  # ahead on the estimate only
        {"num_training_examples": 400, "gain_over_rag_low": 0.02},
        {"num_training_examples": 100, "gain_over_rag_low": 0.05},
        {"num_training_examples": None, "gain_over_rag_low": 0.3},  # its card does not say
    ]
    assert _fewest_beating_rag(rows) == 100
    assert _fewest_beating_rag(rows[:1]) is None


def test_page_and_json_show_the_same_figures_and_the_leaderboard_links_there(scored):
    client = Client()
    leaderboard = client.get("/leaderboard/").content.decode()
    assert 'href="/suites/acme-products/decision/" data-link="decision"' in leaderboard
    page = client.get("/suites/acme-products/decision/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-best="alice/big"' in body
    assert 'data-ratio="prompt_tokens">10.0×' in body
    assert f"<strong>{CORPUS} passages</strong>" in body
    assert "10.0 min on 1x H100" in body  # the card's training time, as retraining cost
    api = client.get("/api/v1/suites/acme-products/decision/")
    assert api.status_code == 200
    assert api.json()["cost_per_request"]["prompt_tokens_ratio"] == pytest.approx(10.0)
    assert api.json()["best"]["adapter"] == "alice/big"
    assert client.get("/suites/nope/decision/").status_code == 404
    assert client.get("/api/v1/suites/nope/decision/").status_code == 404


def test_a_suite_with_nothing_ranked_says_so(suites):
    body = Client().get("/suites/acme-products/decision/").content.decode()
    assert 'id="no-data"' in body
    assert Client().get("/api/v1/suites/acme-products/decision/").json()["best"] is None
