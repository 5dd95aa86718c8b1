"""The acceptance policy, rule by rule: each rule alone flips the verdict, and each reason
reads exactly as it is stored on the job and the version."""

from __future__ import annotations

import pytest

from evaluator.models import EvaluationJob, Suite
from evaluator.policy import decide, summarize
from hub.models import AdapterVersion
from tests.factories import ArmRunFactory, EvaluationJobFactory, SuiteFactory

POLICY = {"min_domain_score": 0.35, "min_gain_over_base": 0.15, "max_forgetting": 0.05, "require_license": True}
PASSING = {"score": 0.6, "gain_over_base": 0.3, "forgetting": 0.02}
ALL_OK = [
    "ok: domain score 60.0% (minimum 35.0%)",
    "ok: gain over the base model +30.0 pts (minimum +15.0 pts)",
    "ok: forgetting on the general suite +2.0 pts (maximum +5.0 pts)",
    "ok: license mit",
]


def _job(policy: dict, license: str = "mit") -> EvaluationJob:
    """An unsaved job: ``decide`` reads only the suite's policy and the version's card."""
    return EvaluationJob(suite=Suite(policy=policy), version=AdapterVersion(license=license))


def test_a_version_that_clears_every_rule_is_accepted():
    assert decide(_job(POLICY), PASSING) == ("accepted", ALL_OK)


@pytest.mark.parametrize(
    ("change", "license", "index", "reason"),
    [
        ({"score": 0.3}, "mit", 0, "failed: domain score 30.0% (minimum 35.0%)"),
        ({"score": None}, "mit", 0, "failed: domain score n/a (minimum 35.0%)"),
        ({"gain_over_base": 0.1}, "mit", 1, "failed: gain over the base model +10.0 pts (minimum +15.0 pts)"),
        ({"gain_over_base": -0.2}, "mit", 1, "failed: gain over the base model -20.0 pts (minimum +15.0 pts)"),
        ({"gain_over_base": None}, "mit", 1, "failed: gain over the base model n/a (minimum +15.0 pts)"),
        ({"forgetting": 0.08}, "mit", 2, "failed: forgetting on the general suite +8.0 pts (maximum +5.0 pts)"),
        ({"forgetting": None}, "mit", 2, "failed: forgetting on the general suite n/a (maximum +5.0 pts)"),
        ({}, "", 3, "failed: license missing: add one to the card"),
    ],
    ids=["low-score", "no-score", "small-gain", "loss", "no-gain", "forgets", "no-general-suite", "no-license"],
)
def test_each_rule_alone_rejects(change, license, index, reason):
    decision, reasons = decide(_job(POLICY, license), {**PASSING, **change})
    assert decision == "rejected"
    assert reasons == [*ALL_OK[:index], reason, *ALL_OK[index + 1 :]]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"score": 0.35}, "ok: domain score 35.0% (minimum 35.0%)"),
        ({"gain_over_base": 0.15}, "ok: gain over the base model +15.0 pts (minimum +15.0 pts)"),
        ({"forgetting": 0.05}, "ok: forgetting on the general suite +5.0 pts (maximum +5.0 pts)"),
        ({"forgetting": -0.1}, "ok: forgetting on the general suite -10.0 pts (maximum +5.0 pts)"),
    ],
    ids=["score-at-minimum", "gain-at-minimum", "forgetting-at-maximum", "general-improves"],
)
def test_a_figure_on_the_limit_passes(change, reason):
    decision, reasons = decide(_job(POLICY), {**PASSING, **change})
    assert decision == "accepted"
    assert reason in reasons


@pytest.mark.parametrize("rule", sorted(POLICY))
def test_a_rule_the_suite_leaves_out_is_not_applied(rule):
    """What fails one rule passes when the suite's policy leaves that rule out."""
    failing = {"score": 0.0, "gain_over_base": -1.0, "forgetting": 1.0}
    policy = {rule: POLICY[rule]}
    decision, reasons = decide(_job(policy, license=""), failing)
    assert decision == "rejected" and len(reasons) == 1 and reasons[0].startswith("failed: ")
    assert decide(_job({k: v for k, v in POLICY.items() if k != rule}, license="mit"), PASSING)[0] == "accepted"


def test_no_policy_accepts_with_no_reasons():
    assert decide(_job({}), {"score": None, "gain_over_base": None, "forgetting": None}) == ("accepted", [])


# --- summarize: the figures the rules read, from the stored runs --------------------------------------
DOMAIN = {"base": (0.2, 0.4), "base_rag": (0.5, 0.7), "adapter": (0.7, 0.9), "adapter_rag": (0.8, 1.0)}
GENERAL = {"base": (0.9, 0.7), "adapter": (0.8, 0.6)}


def _scored_job(domain: dict, general: dict) -> EvaluationJob:
    general_suite = SuiteFactory(
        role=Suite.Role.GENERAL, tasks=["g_mc", "g_qa"], policy={"primary_metrics": {"g_qa": "answer_match"}}
    )
    suite = SuiteFactory(
        tasks=["d_mc", "d_qa"], general_suite=general_suite, policy={"primary_metrics": {"d_qa": "answer_match"}}
    )
    job = EvaluationJobFactory(suite=suite)
    for target, scores in ((suite, domain), (general_suite, general)):
        mc, qa = target.tasks
        for arm, (a, b) in scores.items():
            # ``d_qa`` also reports exact_match: the suite's primary metric decides which counts.
            metrics = {mc: {"acc": a, "acc_stderr": 0.01}, qa: {"exact_match": 0.0, "answer_match": b}}
            job.runs.add(ArmRunFactory(suite=target, arm=arm, metrics=metrics))
    return job


def test_summarize_reports_every_arm_and_difference(db):
    summary = summarize(_scored_job(DOMAIN, GENERAL))
    assert summary["arms"]["base"]["tasks"]["d_mc"] == {"metric": "acc", "value": 0.2, "stderr": 0.01}
    assert summary["arms"]["base"]["tasks"]["d_qa"] == {"metric": "answer_match", "value": 0.4, "stderr": None}
    figures = {
        k: summary[k] for k in ("score", "gain_over_base", "gain_over_rag", "rag_gain_for_adapter", "forgetting")
    }
    assert figures == pytest.approx(
        {"score": 0.8, "gain_over_base": 0.5, "gain_over_rag": 0.2, "rag_gain_for_adapter": 0.1, "forgetting": 0.1}
    )
    assert summary["general"]["adapter"]["average"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("table", "arm", "scores", "moved"),
    [
        ("domain", "base", (0.4, 0.6), {"gain_over_base": 0.3}),
        ("domain", "base_rag", (0.7, 0.9), {"gain_over_rag": 0.0}),
        ("domain", "adapter_rag", (0.9, 1.0), {"rag_gain_for_adapter": 0.15}),
        ("general", "adapter", (0.9, 0.7), {"forgetting": 0.0}),
        ("general", "base", (1.0, 0.8), {"forgetting": 0.2}),
    ],
)
def test_each_arm_moves_only_its_own_figures(db, table, arm, scores, moved):
    domain, general = dict(DOMAIN), dict(GENERAL)
    (domain if table == "domain" else general)[arm] = scores
    summary = summarize(_scored_job(domain, general))
    expected = {
        "score": 0.8,
        "gain_over_base": 0.5,
        "gain_over_rag": 0.2,
        "rag_gain_for_adapter": 0.1,
        "forgetting": 0.1,
    }
    expected.update(moved)
    assert {k: summary[k] for k in expected} == pytest.approx(expected)


def test_without_a_general_suite_forgetting_is_unknown_and_the_rule_fails(db):
    job = _scored_job(DOMAIN, {})
    summary = summarize(job)
    assert summary["forgetting"] is None and summary["general"] == {}
    job.suite.policy = {"max_forgetting": 0.05}
    assert decide(job, summary) == ("rejected", ["failed: forgetting on the general suite n/a (maximum +5.0 pts)"])
