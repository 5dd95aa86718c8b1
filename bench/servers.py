"""Which web server holds the gateway's traffic (issue 13): Django's ``runserver`` (what
``make run`` used), gunicorn with gthread workers (2 x 4 threads: the former Docker
image) and the production server (gunicorn with uvicorn workers, ASGI,
``docker/gunicorn.conf.py``: ``make run`` and the image now), each in a process of its
own on the bench database, in front of one fake vLLM replica that answers slowly (the
replica's speed is not what is measured; the web server's concurrency is):

- a burst of ``burst`` chat requests at once, each answered by the replica in 0.5 s;
- ``streams`` chat streams at once, three chunks a second apart each (idle streams, mostly).

For each: answered, refused or reset, the wall time, and the most requests the replica
saw at once (how many the server let through together).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, Section, percentile
from bench.fleet import PRODUCTION, _base, _loadavg, _Web

SERVERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "runserver": ([sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"], {}),
    "gunicorn gthread 2x4": (
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", "127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--timeout", "600"],
        {},
    ),
    "gunicorn uvicorn 2 (production)": (PRODUCTION, {"WEB_CONCURRENCY": "2"}),
}  # fmt: skip


async def _load(url: str, base: str, count: int, *, stream: bool) -> dict[str, Any]:
    """``count`` chat requests at once, each on a connection of its own."""
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    body = {"model": base, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": stream}
    latencies: list[float] = []
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one() -> None:
            sent = time.perf_counter()
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    text = (await response.aread()).decode()
            except httpx.HTTPError as exc:
                failures.append(exc.__class__.__name__)
                return
            if response.status_code != 200:
                failures.append(f"{response.status_code}")
            elif stream and not text.rstrip().endswith("data: [DONE]"):
                failures.append("stream ended without [DONE]")
            elif not stream and "choices" not in json.loads(text):
                failures.append("no choices")
            else:
                latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
    return {"seconds": time.perf_counter() - started, "latencies": latencies, "failures": failures}


def run_servers(*, work: Path, log: Callable[[str], None], burst: int, streams: int) -> Section:
    section = Section(title=f"Web servers in front of the gateway: a burst of {burst}, {streams} slow streams")
    from serving import placement
    from tests.serving.fakes import FakeVLLM

    _installed, base = _base(work, log)
    fake = FakeVLLM("bench", base=base.name)
    results: dict[str, dict[str, Any]] = {}
    try:
        placement.replica_register(base=base, url=fake.url, max_cpu_loras=2)
        placement.replicas_reconcile()  # the identity LoRA loaded, the replica healthy
        for name, (command, env) in SERVERS.items():
            web = _Web(work, fake.url, base.name, command=command, extra_env=env)
            log(f"{name}: up at {web.url}")
            try:
                asyncio.run(_load(web.url, base.name, 4, stream=False))  # warm
                fake.delay, fake.peak = 0.5, 0
                burst_result = asyncio.run(_load(web.url, base.name, burst, stream=False))
                burst_result["peak"] = fake.peak
                fake.delay, fake.peak = 1.0, 0
                stream_result = asyncio.run(_load(web.url, base.name, streams, stream=True))
                stream_result["peak"] = fake.peak
                results[name] = {"burst": burst_result, "streams": stream_result}
                log(f"{name}: burst {burst_result['seconds']:.1f} s, streams {stream_result['seconds']:.1f} s")
            finally:
                web.stop()
    finally:
        fake.kill()
    production = results[next(reversed(SERVERS))]
    for name, result in results.items():
        b, st = result["burst"], result["streams"]
        section.rows += [
            Row(f"{name}: burst of {burst}, answered", f"{len(b['latencies'])} of {burst} "
                f"({len(b['failures'])} refused or reset)", value=len(b["latencies"]), unit="requests"),
            Row("  wall / p95 latency", f"{b['seconds']:.1f} s / {percentile(b['latencies'], 95):.1f} s "
                f"(x{b['seconds'] / production['burst']['seconds']:.1f} of production); "
                f"at once at the replica: {b['peak']}",
                value=round(b["seconds"], 2), unit="s"),
            Row(f"  {streams} streams, ended with [DONE]", f"{len(st['latencies'])} of {streams} "
                f"({len(st['failures'])} failed)", value=len(st["latencies"]), unit="streams"),
            Row("  wall; open at once at the replica", f"{st['seconds']:.1f} s "
                f"(x{st['seconds'] / production['streams']['seconds']:.1f} of production); {st['peak']}",
                value=round(st["seconds"], 2), unit="s"),
        ]  # fmt: skip
        section.details[name] = {
            "burst": {**b, "failures": b["failures"][:10], "latencies": None},
            "streams": {**st, "failures": st["failures"][:10], "latencies": None},
        }
    section.notes.append(f"load average: {_loadavg()}")
    return section
