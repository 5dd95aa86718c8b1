"""A version's evaluation as the hub reports it: outcome, progress, and the four arms.

The evaluator scores a version on each active suite in one job per suite, each with
four arms: the base model and the adapter, each with and without retrieval (RAG).
A finished job has a decision (accepted, rejected) with the policy's reasons, and the
hub records it as the version's status. These helpers read the jobs of
``/api/v1/adapters/<ns>/<name>/versions/<ref>/evaluations/`` and say where they stand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import EvaluationTimeout
from .text import table
from .types import ArmRun, EvaluationJob

if TYPE_CHECKING:
    from .results import EvaluationStatus

ACCEPTED = "accepted"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"
LIVE = frozenset({"pending", "running"})

ARMS = ("base", "base_rag", "adapter", "adapter_rag")
ARM_LABELS = {"base": "base", "base_rag": "base + RAG", "adapter": "adapter", "adapter_rag": "adapter + RAG"}
# The metric a task is judged by when the job has no summary yet (the evaluator's
# policy picks the same ones first).
PREFERRED_METRICS = ("acc", "exact_match", "answer_match", "acc_norm")


def latest_per_suite(jobs: Sequence[EvaluationJob]) -> list[EvaluationJob]:
    """The newest job of each suite (a re-run replaces the job it re-runs)."""
    newest: dict[str, EvaluationJob] = {}
    for job in sorted(jobs, key=lambda j: (j.get("created_at") or "", j.get("id") or 0), reverse=True):
        newest.setdefault(job.get("suite", ""), job)
    return sorted(newest.values(), key=lambda j: j.get("suite", ""))


def outcome(status: str, jobs: Sequence[EvaluationJob] | None) -> str | None:
    """The verdict once every suite's newest job is over, else None.

    A rejection (by the hub's status or by any suite) wins; then a failed or cancelled
    job, which leaves the version without a verdict; then acceptance. A version with
    no job at all has the verdict its status says, once it says one.
    """
    latest = latest_per_suite(jobs or [])
    if any(j.get("status") in LIVE for j in latest):
        return None
    decisions = {j.get("decision") for j in latest if j.get("status") == "finished"}
    if status == REJECTED or REJECTED in decisions:
        return REJECTED
    if any(j.get("status") == FAILED for j in latest):
        return FAILED
    if any(j.get("status") == CANCELLED for j in latest):
        return CANCELLED
    if status == ACCEPTED or (latest and decisions == {ACCEPTED}):
        return ACCEPTED
    return None


def overall_progress(jobs: Sequence[EvaluationJob] | None) -> tuple[float, str]:
    """The share of the work done over all suites (0..1) and what runs now."""
    latest = latest_per_suite(jobs or [])
    if not latest:
        return 0.0, "waiting for the evaluation service to take the version"
    done = [1.0 if j.get("status") not in LIVE else float(j.get("progress") or 0) for j in latest]
    running = [j for j in latest if j.get("status") in LIVE]
    if not running:
        now = "done"
    elif len(latest) == 1:
        now = _now(running[0])
    else:
        now = "; ".join(f"{j.get('suite')}: {_now(j)}" for j in running)
    return sum(done) / len(done), now


def _now(job: EvaluationJob) -> str:
    if job.get("status") == "pending":
        return "queued"
    return job.get("current") or "running"


def pct(value: Any, *, signed: bool = False) -> str:
    """A 0..1 score as the policy's reasons write it (``55.0%``, ``+3.2 pts``)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if signed:
        return f"{value * 100:+.1f} pts"
    return f"{value * 100:.1f}%" if 0 <= value <= 1 else f"{value:.4g}"


def arm_table(job: EvaluationJob, indent: str = "") -> str:
    """The four arms of a job: the domain suite's score per task, their average, and the
    general suite's average (forgetting). Before the job has a summary: the arms that
    have run so far, with their metrics."""
    summary = job.get("summary") or {}
    arms: dict[str, Any] = summary.get("arms") or {}
    general: dict[str, Any] = summary.get("general") or {}
    if not arms:
        return _runs_table(job.get("runs") or [], indent)
    tasks: dict[str, str] = {}
    for arm in ARMS:
        for task, score in ((arms.get(arm) or {}).get("tasks") or {}).items():
            tasks.setdefault(task, score.get("metric") or "")
    header = ["ARM", *(f"{task} ({metric})" if metric else task for task, metric in tasks.items())]
    if len(tasks) != 1:
        header.append("AVERAGE")
    if general:
        header.append("GENERAL")
    rows = []
    for arm in ARMS:
        scores = arms.get(arm) or {}
        row = [ARM_LABELS[arm]]
        row += [pct(((scores.get("tasks") or {}).get(task) or {}).get("value")) for task in tasks]
        if len(tasks) != 1:
            row.append(pct(scores.get("average")))
        if general:
            row.append(pct((general.get(arm) or {}).get("average")))
        rows.append(row)
    gains = [
        f"adapter vs base {pct(summary.get('gain_over_base'), signed=True)}",
        f"vs base + RAG {pct(summary.get('gain_over_rag'), signed=True)}",
        f"RAG on the adapter {pct(summary.get('rag_gain_for_adapter'), signed=True)}",
    ]
    if general:
        gains.append(f"forgetting {pct(summary.get('forgetting'), signed=True)}")
    return table(rows, header, indent) + "\n" + indent + ", ".join(gains)


def _runs_table(runs: Sequence[ArmRun], indent: str) -> str:
    if not runs:
        return indent + "no arm has run yet"
    order = {arm: i for i, arm in enumerate(ARMS)}
    rows = []
    for run in sorted(runs, key=lambda r: (r.get("suite", ""), order.get(r.get("arm", ""), 9))):
        scores = []
        for task, metrics in sorted((run.get("metrics") or {}).items()):
            name = next((m for m in PREFERRED_METRICS if isinstance(metrics.get(m), (int, float))), None)
            if name is None:
                name = next((m for m in sorted(metrics) if not m.endswith("_stderr")), None)
            if name is not None:
                scores.append(f"{task} {name} {pct(metrics[name])}")
        rows.append(
            [
                ARM_LABELS.get(run.get("arm", ""), run.get("arm", "")),
                run.get("suite", ""),
                ", ".join(scores) or "-",
                f"{run.get('duration_seconds') or 0:.0f} s",
            ]
        )
    return table(rows, ["ARM", "SUITE", "SCORES", "TIME"], indent)


def describe_job(job: EvaluationJob) -> list[str]:
    """Lines for one job: suite, status, progress and step, decision with reasons, arms."""
    state = job.get("status", "?")
    head = f"  {job.get('suite', '?')}: {state}"
    if state in LIVE:
        head += f" {float(job.get('progress') or 0):.0%}, now: {_now(job)}"
    elif state == "finished":
        head += f", decision {job.get('decision') or 'none'}" + (" (reused earlier runs)" if job.get("reused") else "")
    head += f" (job {job.get('id')})"
    lines = [head]
    if state == FAILED and job.get("error"):
        error = " ".join(str(job["error"]).split())
        lines.append(f"    error: {error[:300]}" + ("..." if len(error) > 300 else ""))
    lines += [f"    - {reason}" for reason in job.get("reasons") or []]
    if state != "pending":
        lines.append(arm_table(job, indent="    "))
    return lines


def follow(
    fetch: Callable[[], EvaluationStatus],
    *,
    timeout: float | None = None,
    interval: float = 5.0,
    on_update: Callable[[EvaluationStatus], Any] | None = None,
) -> EvaluationStatus:
    """Fetch the status every ``interval`` seconds until it has an outcome; raise
    :class:`pefthub.EvaluationTimeout` after ``timeout`` seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = fetch()
        if on_update is not None:
            on_update(status)
        if status.outcome is not None:
            return status
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EvaluationTimeout(_timeout_message(status, timeout or 0), evaluation=status)
            time.sleep(min(interval, left))
        else:
            time.sleep(interval)


def _timeout_message(status: EvaluationStatus, timeout: float) -> str:
    where = f"{status.repo}@v{status.version}"
    if not status.jobs:
        why = (
            "no evaluation job was made for it: are an evaluation worker and an active suite running on the hub?"
            if status.jobs is not None
            else "this hub does not report evaluations"
        )
    else:
        done, now = overall_progress(status.jobs)
        why = f"{done:.0%} done, now: {now}"
    return (
        f"no verdict for {status.repo} v{status.version} after {timeout:g} s ({why}); "
        f"wait longer, or look later with `pefthub status {where}`"
    )
