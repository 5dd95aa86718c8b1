"""RAG or fine-tuning? The arms of a suite side by side, every figure read from stored data.

The adapters are the suite's leaderboard's ranked group (its newest comparable runs); the
base and RAG arms are that group's own runs. Each axis says where its numbers come from:

* accuracy: each arm's suite score with a bootstrap 95% interval over its questions, and
  the paired differences the jobs stored (adapter - RAG, adapter+RAG - RAG);
* data needed: each adapter's score against its card's training examples, against RAG,
  which needs none, only the corpus;
* cost per request: prompt tokens and model seconds per question of each arm's run;
* training cost (the card) and forgetting (the job's general-suite runs);
* updating a fact: a line of the corpus for RAG, a retraining (the card's measured time)
  for the adapter.
"""

from __future__ import annotations

from pathlib import Path

from .evidence import read_samples, sample_scores
from .models import ArmRun, EvaluationJob, Suite
from .selectors import leaderboard
from .stats import paired_difference

ARMS = (
    ("base", "Base model"),
    ("base_rag", "RAG (base + retrieval)"),
    ("adapter", "Fine-tuned (adapter)"),
    ("adapter_rag", "Adapter + RAG"),
)
CARD_FIELDS = ("num_training_examples", "training_time_seconds", "training_hardware", "trainable_params", "size_bytes")


def decision(*, user, suite: Suite) -> dict:
    """Everything the page and its JSON show. ``best`` is None until an adapter is ranked."""
    rows = [r for r in leaderboard(user=user, suite=suite) if r["rank"] is not None]
    corpus = _count_lines(Path(suite.path) / "corpus.jsonl")
    out: dict = {"suite": str(suite), "name": suite.name, "corpus_passages": corpus, "best": None}
    if not rows:
        return out
    best = rows[0]
    job = EvaluationJob.objects.select_related("suite__general_suite", "version").get(pk=best["job"])
    runs = {run.arm: run for run in job.runs.filter(suite=job.suite)}
    summary = job.summary or {}
    intervals = summary.get("intervals") or {}
    arms = [_arm(suite, arm, label, runs.get(arm)) for arm, label in ARMS]
    by_arm = {a["arm"]: a for a in arms}
    card = {field: getattr(job.version, field) for field in CARD_FIELDS}
    rag_score = by_arm["base_rag"]["accuracy"]
    out.update(
        best={"adapter": best["adapter"], "version": best["version"], "job": job.pk, "comparable": best["comparable"]},
        arms=arms,
        differences={
            name: {"estimate": summary.get(name), **_bounds(intervals.get(name))}
            for name in ("gain_over_rag", "adapter_rag_over_rag", "gain_over_base")
        },
        data_needed={
            "rag": {"training_examples": 0, "corpus_passages": corpus, "score": rag_score},
            "adapters": _data_points(rows),
            "fewest_examples_beating_rag": _fewest_beating_rag(rows),
        },
        cost_per_request=_cost(by_arm),
        training={
            "adapter": card,
            "forgetting": {"estimate": summary.get("forgetting"), **_bounds(intervals.get("forgetting"))},
            "rag": {"training_examples": 0, "training_time_seconds": 0},
        },
        update_fact={
            "rag": {
                "how": "edit the fact's passage in corpus.jsonl",
                "corpus_passages": corpus,
                "retraining_seconds": 0,
            },
            "adapter": {
                "how": "retrain on the changed training set, upload, evaluate",
                "retraining_seconds": card["training_time_seconds"],
                "training_hardware": card["training_hardware"],
                "num_training_examples": card["num_training_examples"],
            },
        },
    )
    return out


def _arm(suite: Suite, arm: str, label: str, run: ArmRun | None) -> dict:
    row: dict = {"arm": arm, "label": label, "accuracy": None, "low": None, "high": None, "questions": 0}
    if run is None:
        return row
    scores = sample_scores(suite, run, read_samples(run))
    # The arm's score with an interval: its difference from an arm scoring 0 on every
    # question is its own suite mean, resampled task by task as every other interval is.
    zero = {task: dict.fromkeys(values, 0.0) for task, values in scores.items()}
    interval = paired_difference(scores, zero) if scores else None
    if interval is not None:
        row.update(accuracy=interval.estimate, low=interval.low, high=interval.high)
    measured = run.questions > 0  # runs stored before request costs were recorded have 0
    row.update(
        questions=run.questions,
        prompt_tokens_per_question=run.prompt_tokens / run.questions if measured else None,
        model_seconds_per_question=run.model_seconds / run.questions if measured else None,
        shared_pass=bool((run.repro or {}).get("shared_pass")),
        backend=run.backend,
    )
    return row


def _bounds(interval: dict | None) -> dict:
    return {"low": (interval or {}).get("low"), "high": (interval or {}).get("high")}


def _data_points(rows: list[dict]) -> list[dict]:
    points = [
        {
            "adapter": r["adapter"],
            "version": r["version"],
            "training_examples": r["num_training_examples"],
            "score": r["average"],
            "gain_over_rag": r["gain_over_rag"],
            "gain_over_rag_low": r["gain_over_rag_low"],
            "gain_over_rag_high": r["gain_over_rag_high"],
        }
        for r in rows
        if r.get("num_training_examples") is not None and r.get("average") is not None
    ]
    return sorted(points, key=lambda p: (p["training_examples"], p["adapter"], p["version"]))


def _fewest_beating_rag(rows: list[dict]) -> int | None:
    """The fewest training examples of an adapter whose lower bound over RAG is above zero."""
    beating = [
        r["num_training_examples"]
        for r in rows
        if r.get("num_training_examples") is not None and (r.get("gain_over_rag_low") or 0) > 0
    ]
    return min(beating) if beating else None


def _cost(by_arm: dict[str, dict]) -> dict:
    rag, adapter = by_arm["base_rag"], by_arm["adapter"]

    def ratio(key: str) -> float | None:
        a, b = rag.get(key), adapter.get(key)
        return a / b if a is not None and b else None

    return {
        "rag": {k: rag.get(k) for k in ("prompt_tokens_per_question", "model_seconds_per_question", "shared_pass")},
        "adapter": {
            k: adapter.get(k) for k in ("prompt_tokens_per_question", "model_seconds_per_question", "shared_pass")
        },
        "prompt_tokens_ratio": ratio("prompt_tokens_per_question"),
        "model_seconds_ratio": ratio("model_seconds_per_question"),
    }


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
