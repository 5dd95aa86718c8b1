"""Scores per arm, gains, forgetting, and the per-suite acceptance policy."""

from __future__ import annotations

from statistics import fmean
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ArmRun, EvaluationJob, Suite

PREFERRED_METRICS = ("acc", "exact_match", "answer_match", "acc_norm")


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

    return {
        "arms": domain,
        "general": general,
        "score": avg(domain, "adapter"),
        "gain_over_base": diff(avg(domain, "adapter"), avg(domain, "base")),
        "gain_over_rag": diff(avg(domain, "adapter"), avg(domain, "base_rag")),
        "rag_gain_for_adapter": diff(avg(domain, "adapter_rag"), avg(domain, "adapter")),
        "forgetting": diff(avg(general, "base"), avg(general, "adapter")),
    }


def decide(job: EvaluationJob, summary: dict) -> tuple[str, list[str]]:
    """Accept only if every rule of the suite's policy holds; say why either way."""
    policy = job.suite.policy
    reasons: list[str] = []
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("ok: " if passed else "failed: ") + text)

    score = summary.get("score")
    if "min_domain_score" in policy:
        want = float(policy["min_domain_score"])
        check(score is not None and score >= want, f"domain score {_pct(score)} (minimum {_pct(want)})")
    if "min_gain_over_base" in policy:
        want = float(policy["min_gain_over_base"])
        gain = summary.get("gain_over_base")
        check(
            gain is not None and gain >= want,
            f"gain over the base model {_pct(gain, signed=True)} (minimum {_pct(want, signed=True)})",
        )
    if "max_forgetting" in policy:
        limit = float(policy["max_forgetting"])
        lost = summary.get("forgetting")
        check(
            lost is not None and lost <= limit,
            f"forgetting on the general suite {_pct(lost, signed=True)} (maximum {_pct(limit, signed=True)})",
        )
    if policy.get("require_license", False):
        check(bool(job.version.license), f"license {job.version.license or 'missing: add one to the card'}")
    return ("accepted" if ok else "rejected"), reasons


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f}%"
