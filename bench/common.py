"""What every benchmark shares: percentiles, result rows and the plain-text table."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One line of a result table. ``ok`` is None for figures that have no target."""

    what: str
    measured: str
    target: str = "-"
    ok: bool | None = None
    value: float | None = None  # the number the verdict is about, for the JSON
    unit: str = "ms"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.value is None:
            del out["value"], out["unit"]
        return out


@dataclass
class Section:
    """A benchmark's result: its table, plus details that only go to the JSON file."""

    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    appendix: list[str] = field(default_factory=list)  # printed after the table (e.g. plans)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [row.as_dict() for row in self.rows],
            "notes": self.notes,
            "appendix": self.appendix,
            "details": self.details,
        }

    @property
    def missed(self) -> list[Row]:
        return [row for row in self.rows if row.ok is False]


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile, linearly interpolated between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, min, max and mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return ``(seconds, result)`` measured with the monotonic perf counter."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Run ``fn`` once; return ``(wall seconds, CPU seconds of this process)``.

    CPU time leaves out waiting for a core, so it stays meaningful on a busy machine
    (it also leaves out the database server's own work).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


@contextmanager
def gc_pauses() -> Iterator[list[tuple[int, float]]]:
    """Record ``(generation, seconds)`` of every garbage collection while the block runs.

    A full (generation 2) collection walks every tracked object in the process, so once
    torch is imported it takes hundreds of milliseconds and shows up in p95.
    """
    pauses: list[tuple[int, float]] = []
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((info["generation"], time.perf_counter() - started.pop()))

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


def format_table(section: Section) -> str:
    """The section as an aligned plain-text table: what, measured, target, ok?"""
    header = ("what", "measured", "target", "ok?")
    lines = [
        (row.what, row.measured, row.target, "-" if row.ok is None else ("PASS" if row.ok else "FAIL"))
        for row in section.rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(4)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [section.title, "=" * len(section.title), fmt(header), rule, *(fmt(line) for line in lines)]
    out += [f"  * {note}" for note in section.notes]
    if section.appendix:
        out += ["", *section.appendix]
    return "\n".join(out)
