"""Benchmark 2: the catalog list (GET /api/v1/adapters/) over a large seeded registry.

Each variant (default page, text search, filters, sort, a deep page) is requested once
with its queries captured (count, SQL time, the slowest statement), then ``requests``
times with nothing attached, anonymously and as a member of some namespaces (who also
sees their private adapters). Any variant over the target gets an ``EXPLAIN ANALYZE`` of
its slowest statement. Requests go through Django's test ``Client`` in-process.
"""

from __future__ import annotations

import gc
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.catalog_breakdown import breakdown, whatif_requests
from bench.common import Row, Section, gc_pauses, percentile, summary_ms, timed, timed_cpu
from bench.seed import Seeded, seed_catalog
from hub.models import ApiToken

TARGET_MS = 50.0
URL = "/api/v1/adapters/"
PAGE_SIZES = (10, 50, 200)


@dataclass
class Capture:
    """One request's statements: how many, how long in the database, the slowest one."""

    queries: int
    sql_ms: float
    slowest_ms: float
    slowest_sql: str
    count: int  # the "count" the page reports


@contextmanager
def _timed_queries() -> Iterator[list[float]]:
    durations: list[float] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append(time.perf_counter() - start)

    with connection.execute_wrapper(wrapper):
        yield durations


def _get(client: Client, params: dict[str, Any]) -> Any:
    response = client.get(URL, params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {URL} {params}: {response.status_code} {response.content[:500]!r}")
    return response


def capture(client: Client, params: dict[str, Any], token: ApiToken | None) -> Capture:
    """Request once with the statements recorded."""
    if token is not None:
        # Token auth writes last_used_at at most once a minute; keep that write out of
        # the counted request so counts compare like with like (it is in the timed ones).
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    with CaptureQueriesContext(connection) as captured, _timed_queries() as durations:
        response = _get(client, params)
    slowest = max(range(len(durations)), key=durations.__getitem__)
    return Capture(
        queries=len(captured.captured_queries),
        sql_ms=sum(durations) * 1000,
        slowest_ms=durations[slowest] * 1000,
        slowest_sql=captured.captured_queries[slowest]["sql"],
        count=response.json()["count"],
    )


def explain(sql: str) -> list[str]:
    """The plan of ``sql`` as executed (PostgreSQL) or as planned (SQLite)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [" ".join(str(c) for c in row) for row in cursor.fetchall()]


def _miss_summary(label: str, stats: dict[str, float], cap: Capture, plan: list[str]) -> str:
    timings = [line.strip() for line in plan if line.startswith(("Planning Time", "Execution Time"))]
    share = 100 * cap.sql_ms / stats["p50_ms"]
    server = ", ".join(timings) or "no timings"
    return (
        f"{label} {stats['p95_ms']:.1f} ms: SQL {cap.sql_ms:.1f} ms = {share:.0f} % of p50; slowest "
        f"statement {cap.slowest_ms:.1f} ms ({server}): {_describe(cap.slowest_sql)}"
    )


def _describe(sql: str) -> str:
    """A one-line name for a statement: ``COUNT on hub_adapter``, ``rows of hub_adapter LIMIT 50``."""
    table = re.search(r' FROM "?(\w+)"?', sql)
    where = table.group(1) if table else "?"
    if re.match(r"SELECT COUNT\(", sql):
        return f"COUNT on {where}"
    tail = re.search(r"(LIMIT \d+(?: OFFSET \d+)?)\s*$", sql)
    return f"rows of {where}" + (f" {tail.group(1)}" if tail else "")


def _variants(deep_page: int) -> dict[str, dict[str, Any]]:
    return {
        "first page": {},
        "q=chat": {"q": "chat"},
        "method=lora": {"method": "lora"},
        "task=qa": {"task": "qa"},
        "license=mit": {"license": "mit"},
        "ordering=-size": {"ordering": "-size"},
        "ordering=-downloads": {"ordering": "-downloads"},
        f"page {deep_page}": {"page": deep_page},
    }


def run_catalog(*, n_adapters: int, requests: int, log: Callable[[str], None]) -> Section:
    """Seed ``n_adapters``, then time the catalog variants for an anonymous user and a member."""
    log(f"seeding {n_adapters} adapters with bulk_create, then (VACUUM) ANALYZE ...")
    seed_s, seeded = timed(lambda: seed_catalog(n_adapters))
    seeded_: Seeded = seeded
    log(f"seeded in {seed_s:.1f} s: {seeded_.counts}")
    token = ApiToken.objects.get(user__username="bench-member")
    users: dict[str, tuple[Client, ApiToken | None]] = {
        "anon": (Client(), None),
        "member": (Client(HTTP_AUTHORIZATION=f"Bearer {seeded_.member_token}"), token),
    }
    visible_anon = seeded_.adapters - seeded_.private
    deep_page = max(1, min(100, math.ceil(visible_anon / 50)))
    variants = _variants(deep_page)

    title = f"Catalog list, {n_adapters:,} adapters ({connection.vendor}), {requests} requests each"
    section = Section(title=title)
    section.rows.append(Row("seeded", f"{n_adapters:,} adapters ({seeded_.private:,} private), in {seed_s:.1f} s"))
    results: dict[str, Any] = {}
    explained: list[str] = []
    all_full_gc: list[float] = []
    for who, (client, tok) in users.items():
        for name, params in variants.items():
            params = {**params, "page_size": 50}
            cap = capture(client, params, tok)
            with gc_pauses() as pauses:
                runs = [timed_cpu(lambda: _get(client, params)) for _ in range(requests)]  # noqa: B023
            stats = summary_ms([wall for wall, _ in runs])
            stats["cpu_p50_ms"] = round(percentile([cpu for _, cpu in runs], 50) * 1000, 2)
            full_gc = [seconds * 1000 for generation, seconds in pauses if generation == 2]
            all_full_gc += full_gc
            stats["full_gc"] = {"count": len(full_gc), "max_ms": round(max(full_gc, default=0), 1)}
            ok = stats["p95_ms"] < TARGET_MS
            label = f"GET {name} ({who}) p95"
            section.rows.append(
                Row(
                    label,
                    f"{stats['p95_ms']:.1f} ms (p50 {stats['p50_ms']:.1f}, CPU p50 {stats['cpu_p50_ms']:.1f}"
                    f"; {cap.queries} queries, SQL {cap.sql_ms:.1f} ms; {cap.count:,} hits)",
                    f"< {TARGET_MS:.0f} ms",
                    ok,
                    stats["p95_ms"],
                    "ms",
                )
            )
            entry: dict[str, Any] = {"params": params, **stats, **cap.__dict__}
            if not ok:
                entry["plan"] = explain(cap.slowest_sql)
                explained.append(_miss_summary(label, stats, cap, entry["plan"]))
                if cap.sql_ms >= stats["p50_ms"] / 2:  # the database is the cause: show how
                    explained += [f"   {line}" for line in entry["plan"]]
            results[f"{who}: {name}"] = entry
            log(f"{label}: {stats['p95_ms']:.1f} ms")

    section.details["variants"] = results
    if explained:
        section.appendix += ["", "-- misses: EXPLAIN ANALYZE of each one's slowest statement", *explained]
    section.details["page_sizes"] = {}
    for who, (client, tok) in users.items():
        counts: list[int] = []
        for size in PAGE_SIZES:
            params = {"page_size": size}
            cap = capture(client, params, tok)
            counts.append(cap.queries)
            runs = [timed_cpu(lambda: _get(client, params)) for _ in range(max(5, requests // 2))]  # noqa: B023
            stats = summary_ms([wall for wall, _ in runs])
            stats["cpu_p50_ms"] = round(percentile([cpu for _, cpu in runs], 50) * 1000, 2)
            section.details["page_sizes"][f"{who}: {size}"] = {**stats, **cap.__dict__}
        sizes = "/".join(str(s) for s in PAGE_SIZES)
        section.rows.append(
            Row(
                f"queries per request, page_size {sizes} ({who})",
                " / ".join(str(c) for c in counts),
                "constant",
                len(set(counts)) == 1,
                counts[-1],
                "queries",
            )
        )
    for who in users:
        big = section.details["page_sizes"][f"{who}: {PAGE_SIZES[-1]}"]
        section.rows.append(
            Row(
                f"GET first page, page_size {PAGE_SIZES[-1]} ({who}) p95",
                f"{big['p95_ms']:.1f} ms (p50 {big['p50_ms']:.1f}, CPU p50 {big['cpu_p50_ms']:.1f}; "
                f"SQL {big['sql_ms']:.1f} ms)",
                value=big["p95_ms"],
                unit="ms",
            )
        )
    timed_requests = 2 * len(variants) * requests
    gc_note = (
        f"{len(all_full_gc)} in {timed_requests} timed requests, p50 {percentile(all_full_gc, 50):.0f} ms, "
        f"max {max(all_full_gc):.0f} ms"
        if all_full_gc
        else f"none in {timed_requests} timed requests"
    )
    heap = f"{len(gc.get_objects()):,} objects tracked, torch loaded: {'torch' in sys.modules}"
    section.rows.append(
        Row(
            f"full GC pauses ({heap})",
            gc_note,
            value=max(all_full_gc, default=0.0),
        )
    )
    section.rows += breakdown(page_size=50)
    section.rows += whatif_requests(users["anon"][0], requests=requests, page_size=50)
    section.notes = [
        f"member: writer in {seeded_.member_namespaces} namespaces, sees {seeded_.visible_to_member:,} "
        f"adapters; anonymous sees {visible_anon:,}",
        "queries and SQL ms are from one captured request per variant; the timed requests run bare",
        "CPU = this process's CPU time per request (no waiting for a core, no database server work; "
        "a VM's stolen time may still show in it)",
        "member requests include the token lookup; token auth adds one UPDATE at most once a minute",
    ]
    if explained:
        section.notes.append(
            "each miss's slowest statement was EXPLAINed (ANALYZE on PostgreSQL; plans in the JSON, "
            "printed below where SQL is at least half the request)"
        )
    section.details["seed"] = {"seconds": round(seed_s, 1), **seeded_.counts}
    return section
