"""Scores per arm, gains, forgetting, and the per-suite acceptance policy.

``decide_on`` (a policy field, ``"interval"`` by default) says what the gain and
forgetting rules judge: the bound of the paired bootstrap 95% interval (the gain's lower
bound must reach ``min_gain_over_base``, forgetting's upper bound stay under
``max_forgetting``), or the point estimate (``"point"``). Why interval is the default:
on a 100-question suite a point estimate moves by several points with which questions
were asked, so a verdict on it could flip on a re-draw of the suite; the bound only
accepts what the questions support.
"""

from __future__ import annotations

from statistics import fmean
from typing import TYPE_CHECKING

from django.conf import settings

from . import evidence

if TYPE_CHECKING:
    from .models import ArmRun, EvaluationJob, Suite

PREFERRED_METRICS = ("acc", "exact_match", "answer_match", "acc_norm")
DEFAULT_DECIDE_ON = "interval"


def primary_metric(suite: Suite, task: str, metrics: dict[str, float]) -> str | None:
    """The metric a task is judged by: the suite's choice, else the first usual one."""
    chosen = (suite.policy.get("primary_metrics") or {}).get(task)
    if chosen and chosen in metrics:
        return chosen
    for name in PREFERRED_METRICS:
        if metrics.get(name) is not None:
            return name
    rest = sorted(k for k, v in metrics.items() if not k.endswith("_stderr") and v is not None)
    return rest[0] if rest else None


def arm_scores(suite: Suite, run: ArmRun) -> dict:
    """``{"tasks": {task: {"metric", "value", "stderr"}}, "average": float | None}``."""
    tasks = {}
    for task in suite.tasks:
        metrics = run.metrics.get(task, {})
        name = primary_metric(suite, task, metrics)
        if name is None:
            continue
        tasks[task] = {"metric": name, "value": metrics[name], "stderr": metrics.get(f"{name}_stderr")}
    values = [t["value"] for t in tasks.values() if t["value"] is not None]
    return {"tasks": tasks, "average": fmean(values) if values else None}


def summarize(job: EvaluationJob) -> dict:
    """The numbers a reader wants: the four arms, the gains, and forgetting."""
    by_suite: dict[int, dict[str, ArmRun]] = {}
    for run in job.runs.select_related("suite"):
        by_suite.setdefault(run.suite_id, {})[run.arm] = run
    domain = {arm: arm_scores(job.suite, run) for arm, run in by_suite.get(job.suite_id, {}).items()}
    general_suite = job.suite.general_suite
    general = (
        {arm: arm_scores(general_suite, run) for arm, run in by_suite.get(general_suite.pk, {}).items()}
        if general_suite
        else {}
    )

    def avg(table: dict, arm: str) -> float | None:
        return (table.get(arm) or {}).get("average")

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    domain_runs = by_suite.get(job.suite_id, {})
    general_runs = by_suite.get(general_suite.pk, {}) if general_suite else {}
    return {
        "arms": domain,
        "general": general,
        "score": avg(domain, "adapter"),
        "gain_over_base": diff(avg(domain, "adapter"), avg(domain, "base")),
        "gain_over_rag": diff(avg(domain, "adapter"), avg(domain, "base_rag")),
        "adapter_rag_over_rag": diff(avg(domain, "adapter_rag"), avg(domain, "base_rag")),
        "rag_gain_for_adapter": diff(avg(domain, "adapter_rag"), avg(domain, "adapter")),
        "forgetting": diff(avg(general, "base"), avg(general, "adapter")),
        "intervals": evidence.intervals(
            job.suite, domain_runs, general_suite, general_runs, seed=settings.PEFTHUB_EVAL_SEED
        ),
        "adapter_effect": evidence.adapter_effect(domain_runs.get("base"), domain_runs.get("adapter")),
    }


def decide(job: EvaluationJob, summary: dict) -> tuple[str, list[str]]:
    """Accept only if every rule of the suite's policy holds; say why either way.

    An adapter whose answers equal the base model's on every question is never accepted,
    whatever the policy: its scores measure the base model.
    """
    policy = job.suite.policy
    on_bound = policy.get("decide_on", DEFAULT_DECIDE_ON) == "interval"
    intervals = summary.get("intervals") or {}
    reasons: list[str] = []
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("ok: " if passed else "failed: ") + text)

    effect = summary.get("adapter_effect") or {}
    if effect.get("no_op"):
        check(
            False,
            f"the adapter answered exactly as the base model on all {effect['samples']} questions: it was not "
            "applied, or it changes nothing (an untrained LoRA?); its scores are the base model's",
        )
    score = summary.get("score")
    if "min_domain_score" in policy:
        want = float(policy["min_domain_score"])
        check(score is not None and score >= want, f"domain score {_pct(score)} (minimum {_pct(want)})")
    if "min_gain_over_base" in policy:
        want = float(policy["min_gain_over_base"])
        gain, ci = summary.get("gain_over_base"), intervals.get("gain_over_base")
        judged = ci["low"] if on_bound and ci else gain
        check(
            judged is not None and judged >= want,
            f"gain over the base model {_pct(gain, signed=True)}{_ci(ci)} "
            f"({'lower bound ' if on_bound and ci else ''}minimum {_pct(want, signed=True)})",
        )
    if "max_forgetting" in policy:
        limit = float(policy["max_forgetting"])
        lost, ci = summary.get("forgetting"), intervals.get("forgetting")
        judged = ci["high"] if on_bound and ci else lost
        check(
            judged is not None and judged <= limit,
            f"forgetting on the general suite {_pct(lost, signed=True)}{_ci(ci)} "
            f"({'upper bound ' if on_bound and ci else ''}maximum {_pct(limit, signed=True)})",
        )
    if policy.get("require_license", False):
        check(bool(job.version.license), f"license {job.version.license or 'missing: add one to the card'}")
    return ("accepted" if ok else "rejected"), reasons


def _ci(interval: dict | None) -> str:
    if not interval:
        return ""
    low, high = _pct(interval["low"], signed=True), _pct(interval["high"], signed=True)
    return f", {interval['level']:.0%} interval {low} to {high}"


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f}%"
