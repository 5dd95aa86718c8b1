"""What the stored per-sample logs say beyond the averages: intervals on the differences
between arms, and whether the adapter changed anything at all.

Each arm run keeps lm-eval's per-sample log (``ArmRun.samples_blob``, JSONL: one row per
question with ``task``, ``doc_id``, ``resps`` and one value per metric). The keys this
adds to a job's summary are documented in ``evaluator/suites/README.md``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from hub.storage import blobstore

from .stats import Scores, paired_difference

if TYPE_CHECKING:
    from .models import ArmRun, Suite

# name -> (suite, first arm, second arm): each is ``first - second``
DIFFERENCES = {
    "gain_over_base": ("domain", "adapter", "base"),
    "gain_over_rag": ("domain", "adapter", "base_rag"),
    "adapter_rag_over_rag": ("domain", "adapter_rag", "base_rag"),
    "forgetting": ("general", "base", "adapter"),
}
# Log-likelihoods of the same model in other batch shapes differ by float noise, not more.
SAME_LOGLIKELIHOOD = 1e-6


def read_samples(run: ArmRun) -> list[dict]:
    if not run.samples_blob:
        return []
    with blobstore.blob_open(run.samples_blob) as handle:
        return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def sample_scores(suite: Suite, run: ArmRun, samples: list[dict]) -> Scores:
    """Per-question values of each task's primary metric (the one the averages use)."""
    from .policy import primary_metric

    metric_of = {task: primary_metric(suite, task, run.metrics.get(task, {})) for task in suite.tasks}
    scores: dict[str, dict[int, float]] = {}
    for sample in samples:
        task = str(sample.get("task", ""))
        metric = metric_of.get(task)
        value = sample.get(metric) if metric else None
        if isinstance(value, (int, float)):  # bools too: a right/wrong metric
            scores.setdefault(task, {})[int(sample.get("doc_id", 0))] = float(value)
    return scores


def intervals(
    domain: Suite, runs: dict[str, ArmRun], general: Suite | None, general_runs: dict[str, ArmRun], *, seed: int
) -> dict[str, dict | None]:
    """The four differences with their paired bootstrap 95% intervals (None when an arm
    or its samples are missing)."""
    cache: dict[tuple[str, str], Scores] = {}

    def scores(side: str, arm: str) -> Scores | None:
        suite, table = (domain, runs) if side == "domain" else (general, general_runs)
        run = table.get(arm)
        if suite is None or run is None:
            return None
        if (side, arm) not in cache:
            cache[(side, arm)] = sample_scores(suite, run, read_samples(run))
        return cache[(side, arm)]

    out: dict[str, dict | None] = {}
    for name, (side, first, second) in DIFFERENCES.items():
        a, b = scores(side, first), scores(side, second)
        interval = paired_difference(a, b, seed=seed) if a and b else None
        out[name] = interval.as_json() if interval else None
    return out


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=SAME_LOGLIKELIHOOD, abs_tol=SAME_LOGLIKELIHOOD)
    return a == b


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def adapter_effect(base: ArmRun | None, adapter: ArmRun | None) -> dict | None:
    """How many questions the adapter arm answered exactly as the base arm did (same
    generated text, same log-likelihoods). Every one: the adapter was not applied, or it
    changes nothing (an untrained LoRA, B = 0), and its scores say nothing about it."""
    if base is None or adapter is None:
        return None
    by_question = {(s.get("task"), s.get("doc_id")): s.get("resps") for s in read_samples(base)}
    compared = identical = 0
    for sample in read_samples(adapter):
        key = (sample.get("task"), sample.get("doc_id"))
        if key in by_question:
            compared += 1
            identical += _same(by_question[key], sample.get("resps"))
    if not compared:
        return None
    return {"samples": compared, "identical": identical, "no_op": identical == compared}
