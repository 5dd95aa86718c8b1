"""Benchmark 1: upload and validate a ~10 MB LoRA through the real HTTP stack.

The adapters are real peft output (see ``bench/lora.py``), each from a different seed so
every upload is new content and takes the full path: multipart parsing (spooled to a temp
file, as any upload over 2.5 MB is), validation against the base model, hashing, the
blob write, the rows, the response. Requests go through Django's test ``Client``
in-process: middleware, DRF, token auth and all, but no socket, so the figure is the
server's own time. The multipart body is encoded before the clock starts.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request

import hub.outbox
import hub.services
import hub.storage.blobstore
import hub.validation
import hub.validation.adapter
from bench.common import Row, Section, percentile, summary_ms, timed, timed_cpu
from hub import services
from hub.basemodels import InstalledModel
from hub.selectors import base_model_spec
from hub.specs import BaseModelSpec

TARGET_S = 0.5
MB = 1_000_000
CARD = {"task_tags": ["qa"], "license": "apache-2.0", "datasets": ["squad"]}
# What is timed inside a request; each wraps a function the upload path calls.
PARTS: dict[str, tuple[Any, str]] = {
    "parse": (Request, "_parse"),  # DRF's multipart parse, incl. spooling to a temp file
    "service": (hub.services, "adapter_version_create"),  # everything below happens inside it
    "validate": (hub.validation, "validate_adapter"),
    "peft_config": (hub.validation.adapter, "load_adapter_config"),
    "finite_scan": (hub.validation.adapter, "check_finite"),
    "sha256": (hub.storage.blobstore, "sha256_of"),
    "blob_write": (hub.storage.blobstore, "blob_write"),
    "deliver": (hub.outbox, "outbox_deliver"),  # the version.created event, sent from the outbox on commit
}


def make_loras(out: Path, *, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Build ``count`` adapters in a child process (see module docstring of bench/lora.py)."""
    log(f"building {count} peft LoRA adapters for a SmolLM2-135M-shaped base ...")
    script = Path(__file__).with_name("lora.py")
    subprocess.run([sys.executable, str(script), str(out), "--count", str(count)], check=True)
    return json.loads((out / "manifest.json").read_text())


def register_base(out: Path) -> Any:
    """Register the base described by ``out/spec.json`` as ``smollm2-135m-instruct``."""
    raw = json.loads((out / "spec.json").read_text())
    spec = BaseModelSpec.from_json(raw, name=raw["name"], aliases=tuple(raw["aliases"]))
    installed = InstalledModel(
        name=spec.name,
        path=out / "base",
        revision="b" * 64,
        architecture=spec.architecture,
        display_name="SmolLM2-135M-Instruct (geometry only)",
        aliases=spec.aliases,
        license="apache-2.0",
        spec=spec,
        config=json.loads((out / "base" / "config.json").read_text()),
    )
    return services.base_model_register(installed=installed)


@contextmanager
def instrumented() -> Iterator[dict[str, float]]:
    """Accumulate the time spent in each of :data:`PARTS` while the block runs."""
    spent: dict[str, float] = defaultdict(float)

    def wrap(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        return timed_fn

    with ExitStack() as stack:
        for key, (owner, attr) in PARTS.items():
            stack.enter_context(mock.patch.object(owner, attr, wrap(key, getattr(owner, attr))))
        yield spent


def _body(folder: Path) -> bytes:
    files = [open(p, "rb") for p in sorted(folder.iterdir()) if p.is_file()]  # noqa: SIM115
    try:
        return encode_multipart(BOUNDARY, {"files": files, "metadata": json.dumps(CARD)})
    finally:
        for handle in files:
            handle.close()


def _post(client: Client, url: str, body: bytes) -> Any:
    response = client.generic("POST", url, body, content_type=MULTIPART_CONTENT)
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.content[:2000]!r}")
    return response


def _validate_direct(folder: Path, spec: BaseModelSpec) -> float:
    """validate_adapter alone, on disk-backed files like the server's temp uploads."""
    limits = hub.validation.UploadLimits(
        max_file_bytes=settings.PEFTHUB_MAX_FILE_BYTES,
        max_upload_bytes=settings.PEFTHUB_MAX_UPLOAD_BYTES,
        max_header_bytes=settings.PEFTHUB_MAX_HEADER_BYTES,
    )
    paths = {p.name: p for p in folder.iterdir() if p.is_file()}
    with ExitStack() as stack:
        files = {name: stack.enter_context(open(p, "rb")) for name, p in paths.items()}
        sizes = {name: p.stat().st_size for name, p in paths.items()}
        seconds, _ = timed(lambda: hub.validation.validate_adapter(files, sizes, spec, limits))
    return seconds


def run_upload(*, work: Path, repeats: int, log: Callable[[str], None]) -> Section:
    """Cold first upload, then ``repeats`` timed ones, then validate_adapter on its own."""
    out = work / "loras"
    manifest = make_loras(out, count=repeats + 2, log=log)
    folders = [out / name for name in manifest["folders"]]
    base = register_base(out)
    user = get_user_model().objects.create_user("bench-uploader")
    namespace = services.namespace_create(name="bench", owner=user)
    _, token = services.api_token_create(user=user, name="bench")
    services.adapter_create(namespace=namespace, name="smollm2-qa-lora", user=user)
    url = "/api/v1/adapters/bench/smollm2-qa-lora/versions/"
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    upload_bytes = manifest["folder_bytes"]

    torch_before = "torch" in sys.modules
    log("cold first upload (imports peft and torch) ...")
    body = _body(folders[0])
    with instrumented() as cold_parts:
        cold_s, _ = timed(lambda: _post(client, url, body))

    log(f"{repeats} timed uploads ...")
    totals: list[float] = []
    cpus: list[float] = []
    parts: dict[str, list[float]] = defaultdict(list)
    for folder in folders[1 : repeats + 1]:
        body = _body(folder)
        with instrumented() as spent:
            seconds, cpu = timed_cpu(lambda: _post(client, url, body))  # noqa: B023
        totals.append(seconds)
        cpus.append(cpu)
        for key in PARTS:
            parts[key].append(spent[key])
        inside = sum(spent[k] for k in ("validate", "sha256", "blob_write", "deliver"))
        parts["rows"].append(spent["service"] - inside)
        parts["other"].append(seconds - spent["parse"] - spent["service"])

    body = _body(folders[repeats + 1])
    with CaptureQueriesContext(connection) as queries:
        _post(client, url, body)

    log("validate_adapter alone ...")
    spec = base_model_spec(base)
    direct = [_validate_direct(folder, spec) for folder in folders[1 : repeats + 1]]

    req = summary_ms(totals)
    val = summary_ms(direct)
    p50 = {key: percentile(values, 50) * 1000 for key, values in parts.items()}
    mb = upload_bytes / MB
    section = Section(title=f"Upload + validate a {mb:.1f} MB LoRA (N={repeats}, server time, in-process)")
    limit_ms = TARGET_S * 1000
    target = f"< {limit_ms:.0f} ms"
    mb_s = mb / (req["p50_ms"] / 1000)
    cpu_p50 = percentile(cpus, 50) * 1000
    geometry = f"r={manifest['rank']} on {len(manifest['target_modules'])} modules x 30 layers"
    section.rows = [
        Row(
            "adapter uploaded",
            f"{mb:.2f} MB ({upload_bytes / 2**20:.2f} MiB), {manifest['tensors']} F32 tensors, {geometry}",
        ),
        Row("cold first request (imports peft/torch)", f"{cold_s * 1000:.0f} ms", value=cold_s * 1000),
        Row("full request p50", f"{req['p50_ms']:.1f} ms", target, req["p50_ms"] < limit_ms, req["p50_ms"]),
        Row("full request p95", f"{req['p95_ms']:.1f} ms", target, req["p95_ms"] < limit_ms, req["p95_ms"]),
        Row("full request CPU time p50 (this process)", f"{cpu_p50:.1f} ms", value=cpu_p50),
        Row("throughput at p50", f"{mb_s:.0f} MB/s", value=mb_s, unit="MB/s"),
        Row("  p50: multipart parse + spool to temp file", f"{p50['parse']:.1f} ms"),
        Row("  p50: adapter_version_create (service)", f"{p50['service']:.1f} ms"),
        Row("    validate_adapter", f"{p50['validate']:.1f} ms"),
        Row("      of which peft config check", f"{p50['peft_config']:.1f} ms"),
        Row("      of which NaN/Inf scan", f"{p50['finite_scan']:.1f} ms"),
        Row("    sha256 of the files", f"{p50['sha256']:.1f} ms"),
        Row("    blob write", f"{p50['blob_write']:.1f} ms"),
        Row("    event publish (Celery, on commit)", f"{p50['deliver']:.1f} ms"),
        Row("    rows and the rest of the service", f"{p50['rows']:.1f} ms"),
        Row("  p50: auth, lookups, response (the rest)", f"{p50['other']:.1f} ms"),
        Row(
            "validate_adapter alone p50 / p95",
            f"{val['p50_ms']:.1f} / {val['p95_ms']:.1f} ms",
            value=val["p95_ms"],
        ),
        Row(
            "queries per upload request",
            str(len(queries.captured_queries)),
            value=len(queries),
            unit="queries",
        ),
    ]
    section.notes = [
        f"cold request: {cold_s * 1000:.0f} ms, of which validate_adapter "
        f"{cold_parts['validate'] * 1000:.0f} ms (torch imported before it: {torch_before})",
        "a new version of one adapter each time; every upload has new content (no dedupe)",
        "sub-rows are each their own p50 over the N uploads, so they need not add up exactly",
    ]
    section.details = {
        "upload_bytes": upload_bytes,
        "manifest": manifest,
        "cold_ms": round(cold_s * 1000, 1),
        "cold_parts_ms": {k: round(v * 1000, 1) for k, v in cold_parts.items()},
        "request": req,
        "request_cpu_p50_ms": round(cpu_p50, 2),
        "request_parts_p50_ms": {k: round(v, 2) for k, v in p50.items()},
        "validate_direct": val,
        "queries": [q["sql"][:300] for q in queries.captured_queries],
    }
    return section
