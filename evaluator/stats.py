"""Paired bootstrap intervals over per-sample scores.

Two arms answered the same questions; a suite's score is the mean over its tasks of each
task's mean per-sample score. The difference between two arms is resampled by drawing the
same questions for both (paired), task by task (stratified: each task keeps its size), so
the interval reflects which questions happened to be asked, not noise between arms.

Pure numpy (imported lazily), no Django: :mod:`evaluator.evidence` feeds it what the runs
stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

# {task: {doc_id: score}}: one arm's per-sample scores on a suite
Scores = Mapping[str, Mapping[int, float]]

RESAMPLES = 2000
LEVEL = 0.95
SEED = 1234


@dataclass(frozen=True)
class Interval:
    """A difference between two arms (first minus second) with its bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    samples: int  # paired questions, over every task

    def as_json(self) -> dict:
        return asdict(self)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def suite_mean(scores: Scores) -> float | None:
    """The suite's score as lm-eval's per-task means give it: the mean of task means."""
    means = [sum(values.values()) / len(values) for values in scores.values() if values]
    return sum(means) / len(means) if means else None


def paired_difference(
    first: Scores, second: Scores, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED
) -> Interval | None:
    """``first - second`` on the questions both answered, with a percentile bootstrap
    interval; None when they share no question."""
    import numpy as np

    diffs = []
    for task in sorted(set(first) & set(second)):
        common = sorted(set(first[task]) & set(second[task]))
        if common:
            diffs.append(np.array([first[task][d] - second[task][d] for d in common], dtype=np.float64))
    if not diffs:
        return None
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([d.mean() for d in diffs]))
    # For each task, ``resamples`` means over questions drawn with replacement; then the
    # suite's mean of task means per resample.
    per_task = np.stack([d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1) for d in diffs])
    boot = per_task.mean(axis=0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        level=level,
        resamples=resamples,
        samples=int(sum(len(d) for d in diffs)),
    )
