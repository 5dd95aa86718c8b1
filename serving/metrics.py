"""Prometheus metrics for /metrics (text exposition).

Totals per model (requests, errors, tokens, summed latency) come from the database, so
every web process reports the same numbers; the latency histogram is this process's own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY = Histogram(
    "pefthub_serving_request_duration_seconds",
    "Time from request to last token, per served model (this process)",
    ["model", "engine"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
ADAPTER_LOADS = Counter(
    "pefthub_serving_adapter_loads", "Adapters loaded into an engine (this process)", ["engine"], registry=REGISTRY
)
ADAPTER_EVICTIONS = Counter(
    "pefthub_serving_adapter_evictions",
    "Adapters unloaded to make room, least recently used first (this process)",
    ["engine"],
    registry=REGISTRY,
)


def observe(*, model: str, engine: str, seconds: float, error: bool) -> None:
    LATENCY.labels(model=model, engine=engine).observe(seconds)


class UsageCollector:
    """Per-model totals from ``ModelUsage`` rows."""

    def collect(self):
        from .models import ModelUsage

        labels = ["model", "base_model"]
        families = {
            "requests": CounterMetricFamily("pefthub_serving_requests", "Requests per served model", labels=labels),
            "errors": CounterMetricFamily("pefthub_serving_errors", "Failed requests per served model", labels=labels),
            "prompt_tokens": CounterMetricFamily(
                "pefthub_serving_prompt_tokens", "Prompt tokens per served model", labels=labels
            ),
            "completion_tokens": CounterMetricFamily(
                "pefthub_serving_completion_tokens", "Generated tokens per served model", labels=labels
            ),
            "latency_seconds_total": CounterMetricFamily(
                "pefthub_serving_latency_seconds", "Summed request latency per served model", labels=labels
            ),
        }
        rows = ModelUsage.objects.select_related("base_model").values_list(
            "model", "base_model__name", *families.keys()
        )
        for model, base, *values in rows:
            for family, value in zip(families.values(), values, strict=True):
                family.add_metric([model, base], value)
        yield from families.values()

    def describe(self):
        return []


REGISTRY.register(UsageCollector())
