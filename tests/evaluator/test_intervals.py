"""Paired bootstrap intervals on the differences between arms, the policy judging their
bounds, and the flag on an adapter whose answers equal the base model's."""

from __future__ import annotations

import json
import re

import pytest

from evaluator.evidence import adapter_effect
from evaluator.models import EvaluationJob, Suite
from evaluator.policy import decide, summarize
from evaluator.stats import paired_difference
from hub.exceptions import HubError
from hub.models import AdapterVersion
from tests.factories import ArmRunFactory, EvaluationJobFactory, SuiteFactory, samples_blob


def _bernoulli(rng, n: int, p: float) -> dict[int, float]:
    return {i: float(rng.random() < p) for i in range(n)}


def test_the_interval_covers_a_known_difference_and_excludes_zero():
    """Two tasks of 200 questions; the adapter answers 50 more of each right: +25 points."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = {task: _bernoulli(rng, 200, 0.4) for task in ("a", "b")}
    adapter = {task: dict(scores) for task, scores in base.items()}
    for scores in adapter.values():
        wrong = [d for d, v in scores.items() if v == 0.0][:50]
        scores.update({d: 1.0 for d in wrong})
    interval = paired_difference(adapter, base)
    assert interval.estimate == pytest.approx(0.25)
    assert interval.contains(0.25) and interval.low > 0.15
    assert interval.samples == 400 and interval.resamples == 2000 and interval.level == 0.95
    # paired: the same questions for both arms, so only the 100 changed answers vary
    assert interval.high - interval.low < 0.13


def test_the_interval_covers_the_true_difference_about_95_times_in_100():
    """Arms drawn from populations 10 points apart: the interval covers +10 in most draws."""
    import numpy as np

    rng = np.random.default_rng(1)
    covered = 0
    for draw in range(100):
        base = {"t": _bernoulli(rng, 150, 0.5)}
        gained = {d: 1.0 if v == 0.0 and rng.random() < 0.2 else v for d, v in base["t"].items()}
        interval = paired_difference({"t": gained}, base, resamples=1000, seed=draw)
        covered += interval.contains(0.1)
    assert 88 <= covered <= 100


def test_identical_arms_give_an_interval_of_zero():
    import numpy as np

    scores = {"t": _bernoulli(np.random.default_rng(2), 50, 0.5)}
    interval = paired_difference(scores, scores)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert interval.contains(0.0)


def test_only_shared_questions_are_paired():
    assert paired_difference({"t": {0: 1.0}}, {"t": {1: 0.0}}) is None
    interval = paired_difference({"t": {0: 1.0, 1: 1.0, 2: 1.0}}, {"t": {1: 0.0, 2: 0.0, 9: 0.0}})
    assert interval.samples == 2 and interval.estimate == 1.0


def test_the_same_seed_gives_the_same_interval():
    a, b = {"t": {i: float(i % 3 == 0) for i in range(60)}}, {"t": {i: float(i % 2 == 0) for i in range(60)}}
    assert paired_difference(a, b) == paired_difference(a, b)


# --- the policy judges the bound ----------------------------------------------------------------------
def _job(policy: dict) -> EvaluationJob:
    return EvaluationJob(suite=Suite(policy=policy), version=AdapterVersion(license="mit"))


def _ci(low: float, high: float) -> dict:
    return {"estimate": (low + high) / 2, "low": low, "high": high, "level": 0.95, "resamples": 2000, "samples": 200}


GAIN = {"gain_over_base": 0.3, "intervals": {"gain_over_base": _ci(0.1, 0.5)}}
FORGETTING = {"forgetting": 0.02, "intervals": {"forgetting": _ci(-0.04, 0.08)}}


@pytest.mark.parametrize(
    ("policy", "summary", "verdict", "reason"),
    [
        (
            {"min_gain_over_base": 0.15},
            GAIN,
            "rejected",
            "failed: gain over the base model +30.0 pts, 95% interval +10.0 pts to +50.0 pts "
            "(lower bound minimum +15.0 pts)",
        ),
        (
            {"min_gain_over_base": 0.15, "decide_on": "point"},
            GAIN,
            "accepted",
            "ok: gain over the base model +30.0 pts, 95% interval +10.0 pts to +50.0 pts (minimum +15.0 pts)",
        ),
        (
            {"min_gain_over_base": 0.05, "decide_on": "interval"},
            GAIN,
            "accepted",
            "ok: gain over the base model +30.0 pts, 95% interval +10.0 pts to +50.0 pts "
            "(lower bound minimum +5.0 pts)",
        ),
        (
            {"max_forgetting": 0.05},
            FORGETTING,
            "rejected",
            "failed: forgetting on the general suite +2.0 pts, 95% interval -4.0 pts to +8.0 pts "
            "(upper bound maximum +5.0 pts)",
        ),
        (
            {"max_forgetting": 0.05, "decide_on": "point"},
            FORGETTING,
            "accepted",
            "ok: forgetting on the general suite +2.0 pts, 95% interval -4.0 pts to +8.0 pts (maximum +5.0 pts)",
        ),
    ],
    ids=["gain-bound-fails", "gain-point-passes", "gain-bound-passes", "forgetting-bound-fails", "forgetting-point"],
)
def test_the_verdict_flips_on_the_bound(policy, summary, verdict, reason):
    assert decide(_job(policy), summary) == (verdict, [reason])


def test_an_adapter_that_changes_nothing_is_never_accepted():
    summary = {"score": 0.9, "gain_over_base": 0.0, "adapter_effect": {"samples": 6, "identical": 6, "no_op": True}}
    assert decide(_job({}), summary) == (
        "rejected",
        [
            "failed: the adapter answered exactly as the base model on all 6 questions: it was not applied, or it "
            "changes nothing (an untrained LoRA?); its scores are the base model's"
        ],
    )
    changed = {**summary, "adapter_effect": {"samples": 6, "identical": 5, "no_op": False}}
    assert decide(_job({}), changed) == ("accepted", [])


def test_a_policy_must_say_interval_or_point(tmp_path):
    from evaluator.suites_registry import read_manifest

    (tmp_path / "corpus.jsonl").write_text(json.dumps({"id": "d1", "title": "T", "text": "A fact."}) + "\n")
    (tmp_path / "suite.json").write_text(
        json.dumps({"slug": "s", "version": "1", "tasks": ["t"], "policy": {"decide_on": "mean"}})
    )
    with pytest.raises(HubError, match=re.escape("`policy.decide_on` is `mean`; use interval")):
        read_manifest(tmp_path)


# --- from the stored per-sample logs -----------------------------------------------------------------
def _rows(task: str, right: list[bool], resps=None) -> list[dict]:
    return [
        {"task": task, "doc_id": i, "metrics": ["acc"], "acc": float(ok), "resps": resps[i] if resps else [[str(ok)]]}
        for i, ok in enumerate(right)
    ]


def _run(suite, arm: str, right: dict[str, list[bool]], resps=None):
    rows = [row for task, oks in right.items() for row in _rows(task, oks, resps)]
    metrics = {task: {"acc": sum(oks) / len(oks)} for task, oks in right.items()}
    return ArmRunFactory(suite=suite, arm=arm, metrics=metrics, samples_blob=samples_blob(rows))


def test_summarize_stores_the_four_intervals_from_the_samples(db):
    general = SuiteFactory(role=Suite.Role.GENERAL, tasks=["g"])
    suite = SuiteFactory(tasks=["a", "b"], general_suite=general)
    job = EvaluationJobFactory(suite=suite)
    n = 40
    domain = {
        "base": [i < 10 for i in range(n)],
        "base_rag": [i < 20 for i in range(n)],
        "adapter": [i < 30 for i in range(n)],
        "adapter_rag": [i < 34 for i in range(n)],
    }
    for arm, right in domain.items():
        job.runs.add(_run(suite, arm, {"a": right, "b": right}))
    job.runs.add(_run(general, "base", {"g": [i < 36 for i in range(n)]}))
    job.runs.add(_run(general, "adapter", {"g": [i < 32 for i in range(n)]}))

    summary = summarize(job)
    intervals = summary["intervals"]
    assert set(intervals) == {"gain_over_base", "gain_over_rag", "adapter_rag_over_rag", "forgetting"}
    for name, point in (
        ("gain_over_base", 0.5),
        ("gain_over_rag", 0.25),
        ("adapter_rag_over_rag", 0.35),
        ("forgetting", 0.1),
    ):
        assert intervals[name]["estimate"] == pytest.approx(point) == pytest.approx(summary.get(name, point))
        assert intervals[name]["low"] <= point <= intervals[name]["high"]
        assert intervals[name]["low"] < intervals[name]["high"]
    assert summary["adapter_effect"] == {"samples": 2 * n, "identical": 2 * 20, "no_op": False}


def test_a_missing_arm_has_no_interval(db):
    suite = SuiteFactory(tasks=["a"])
    job = EvaluationJobFactory(suite=suite)
    job.runs.add(_run(suite, "adapter", {"a": [True, False]}))
    summary = summarize(job)
    assert summary["intervals"] == dict.fromkeys(
        ("gain_over_base", "gain_over_rag", "adapter_rag_over_rag", "forgetting")
    )
    assert summary["adapter_effect"] is None


def test_adapter_effect_compares_every_answer_and_log_likelihood(db):
    suite = SuiteFactory(tasks=["a"])
    lls = [[["-1.25", "False"], ["-0.5", "True"]], [["-2.0", "False"], ["-3.0", "False"]]]
    base = _run(suite, "base", {"a": [False, True]}, resps=lls)
    same = _run(suite, "adapter", {"a": [False, True]}, resps=[[[str(float(a) + 1e-9), b] for a, b in r] for r in lls])
    assert adapter_effect(base, same) == {"samples": 2, "identical": 2, "no_op": True}
    moved = [lls[0], [["-2.0", "False"], ["-3.001", "False"]]]
    other = _run(suite, "adapter", {"a": [False, True]}, resps=moved)
    assert adapter_effect(base, other) == {"samples": 2, "identical": 1, "no_op": False}


def test_the_leaderboard_shows_the_intervals_and_the_flag(db, anon_client):
    suite = SuiteFactory(slug="board")
    summary = {
        "score": 0.7,
        "gain_over_base": 0.3,
        "forgetting": 0.02,
        "intervals": {"gain_over_base": _ci(0.1, 0.5), "forgetting": _ci(-0.04, 0.08)},
        "adapter_effect": {"samples": 10, "identical": 10, "no_op": True},
    }
    EvaluationJobFactory(suite=suite, status="finished", decision="rejected", summary=summary)
    (row,) = anon_client.get("/api/v1/leaderboard/board/").json()["rows"]
    assert (row["gain_over_base_low"], row["gain_over_base_high"]) == (0.1, 0.5)
    assert (row["forgetting_low"], row["forgetting_high"]) == (-0.04, 0.08)
    assert row["gain_over_rag_low"] is None and row["no_op"] is True
    header, line = anon_client.get("/api/v1/leaderboard/board/", {"export": "csv"}).content.decode().splitlines()
    cells = dict(zip(header.split(","), line.split(","), strict=True))
    assert (cells["gain_over_base_low"], cells["forgetting_high"], cells["no_op"]) == ("0.1", "0.08", "True")
