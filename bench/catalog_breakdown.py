"""Where a catalog page's server time goes, step by step, and what two fixes would save.

The catalog view does four things: COUNT for the paginator, fetch one page of rows
(with ``select_related`` joins and the task-tag prefetch), serialize them, render JSON.
Each is timed here on its own with the hub's own selector and serializer. Two what-ifs,
measured on the same page and checked to produce the same JSON, size the fixes the
report recommends; they live only in this benchmark and change nothing in the hub:

* the page's heavy columns deferred (README, peft config, metadata, the base model's
  module table and config.json), which the list does not show;
* the nested serializers declared as fields, so DRF builds them once per page instead
  of once per row (``SerializerMethodField`` + a new serializer in ``get_latest`` and
  ``get_card``).

Then the first page is requested again, as is with the garbage collector off (how much
of p95 is full-collection pauses), and with both fixes patched into this process.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from unittest import mock

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

import hub.apis
from bench.common import Row, gc_pauses, percentile, summary_ms, timed_cpu
from hub import selectors
from hub.serializers import AdapterOut, CardOut, VersionSummaryOut

REPEATS = 15
# Columns the list never shows; together they are most of each joined row's bytes.
HEAVY = [
    "latest_version__readme",
    "latest_version__config",
    "latest_version__metadata",
    "latest_version__base_model__modules",
    "latest_version__base_model__config",
]


class _SummaryOnce(VersionSummaryOut):
    card = CardOut(source="*")


class _AdapterOnce(AdapterOut):
    latest = _SummaryOnce(source="latest_version", allow_null=True)


def _median(fn: Callable[[], Any]) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn`` over :data:`REPEATS` runs."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def _serializers_built(fn: Callable[[], Any]) -> int:
    built = 0
    original = serializers.BaseSerializer.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        original(self, *args, **kwargs)

    with mock.patch.object(serializers.BaseSerializer, "__init__", counting):
        fn()
    return built


def breakdown(*, page_size: int) -> list[Row]:
    """Rows for the catalog table: the first page for an anonymous user, step by step."""
    qs = selectors.adapter_list(user=AnonymousUser())
    rows = list(qs[:page_size])
    data = AdapterOut(rows, many=True).data
    deferred = qs.defer(*HEAVY)
    deferred_rows = list(deferred[:page_size])
    # A deferred column the serializer did read would cost one query per row: count them.
    with CaptureQueriesContext(connection) as extra:
        deferred_same = AdapterOut(deferred_rows, many=True).data == data
    once_same = _AdapterOnce(rows, many=True).data == data
    built = _serializers_built(lambda: AdapterOut(rows, many=True).data)
    built_once = _serializers_built(lambda: _AdapterOnce(rows, many=True).data)

    def fmt(ms: tuple[float, float]) -> str:
        return f"{ms[0]:.1f} ms (CPU {ms[1]:.1f})"

    count = _median(qs.count)
    fetch = _median(lambda: list(qs[:page_size]))
    serialize = _median(lambda: AdapterOut(rows, many=True).data)
    render = _median(lambda: JSONRenderer().render(data))
    fetch_deferred = _median(lambda: list(deferred[:page_size]))
    serialize_once = _median(lambda: _AdapterOnce(rows, many=True).data)
    head = f"  first page (anon, {page_size} rows), median:"
    return [
        Row(head, ""),
        Row("    COUNT(*) for the paginator", fmt(count), value=count[0]),
        Row("    fetch the rows (SQL, JSON decode, models, tags)", fmt(fetch), value=fetch[0]),
        Row(
            "    serialize (AdapterOut, many=True)",
            f"{fmt(serialize)}, {built} serializers built",
            value=serialize[0],
        ),
        Row("    render JSON", fmt(render), value=render[0]),
        Row(
            "    what-if: fetch with heavy columns deferred",
            f"{fmt(fetch_deferred)}; same JSON: {deferred_same}, extra queries: {len(extra)}",
            value=fetch_deferred[0],
        ),
        Row(
            "    what-if: nested serializers as fields",
            f"{fmt(serialize_once)}, {built_once} built; same JSON: {once_same}",
            value=serialize_once[0],
        ),
    ]


@contextmanager
def _gc_disabled() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def _fixes_applied() -> Iterator[None]:
    """Both fixes, patched into this process only: heavy columns deferred, serializers built once."""
    original = selectors.adapter_list

    def deferred_list(**kwargs: Any) -> Any:
        return original(**kwargs).defer(*HEAVY)

    with (
        mock.patch.object(selectors, "adapter_list", deferred_list),
        mock.patch.object(hub.apis, "AdapterOut", _AdapterOnce),
    ):
        yield


def whatif_requests(client: Client, *, requests: int, page_size: int) -> list[Row]:
    """The first page (anonymous) requested ``requests`` times under each what-if."""
    rows = [Row(f"  what-if, GET first page (anon) x {requests}:", "")]
    cases: list[tuple[str, Callable[[], AbstractContextManager[Any]]]] = [
        ("    as is, garbage collector off", _gc_disabled),
        ("    both fixes applied", _fixes_applied),
    ]
    for label, context in cases:
        with context(), gc_pauses() as pauses:
            for _ in range(3):  # warm-up
                client.get("/api/v1/adapters/", {"page_size": page_size})
            pauses.clear()
            runs = [
                timed_cpu(lambda: client.get("/api/v1/adapters/", {"page_size": page_size})) for _ in range(requests)
            ]
        stats = summary_ms([wall for wall, _ in runs])
        full = sum(1 for generation, _ in pauses if generation == 2)
        rows.append(
            Row(
                label + " p95",
                f"{stats['p95_ms']:.1f} ms (p50 {stats['p50_ms']:.1f}, "
                f"CPU p50 {percentile([cpu for _, cpu in runs], 50) * 1000:.1f}; full GCs: {full})",
                value=stats["p95_ms"],
            )
        )
    return rows
