"""Run one arm of an evaluation with lm-eval's ``simple_evaluate``."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import get_backend
from .device import placement

Report = Callable[[str, int, int], None]  # (current task, requests done, requests total)


@dataclass(frozen=True)
class RagSpec:
    retriever: str
    corpus: Path
    top_k: int


@dataclass(frozen=True)
class ArmSpec:
    """Everything that decides an arm's numbers; the same spec gives the same numbers."""

    suite_dir: Path
    tasks: tuple[str, ...]
    base_path: Path
    adapter_path: Path | None = None
    backend: str = "hf"
    rag: RagSpec | None = None
    system_instruction: str | None = None
    batch_size: int = 8
    seed: int = 1234
    limit: int | None = None


@dataclass
class ArmOutcome:
    metrics: dict[str, dict[str, float | None]]  # None: the harness reported NaN
    results: dict[str, Any]
    samples_jsonl: bytes
    repro: dict[str, Any]
    duration_seconds: float
    requests: int
    tokens: int
    retrieved: dict[str, list[str]] = field(default_factory=dict)
    # What a request costs: the prompt of each question as the model saw it (retrieved
    # passages included), counted once per question, and the seconds spent in the model.
    questions: int = 0
    prompt_tokens: int = 0
    model_seconds: float = 0.0


def _clean_metrics(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``{"acc,none": .5, "acc_stderr,none": .1}`` -> ``{"acc": .5, "acc_stderr": .1}``."""
    clean: dict[str, dict[str, float | None]] = {}
    for task, values in results.items():
        row = {}
        for key, value in values.items():
            if key == "alias" or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            name = metric if filt in ("", "none") else f"{metric}[{filt}]"
            row[name] = None if isinstance(value, float) and math.isnan(value) else float(value)
        clean[task] = row
    return clean


def _task_hashes(task_dict: dict) -> dict[str, str]:
    """sha256 of each task's full config as lm-eval resolved it (prompt, metrics, data)."""
    import hashlib

    return {
        name: hashlib.sha256(json.dumps(task.dump_config(), sort_keys=True, default=str).encode()).hexdigest()
        for name, task in sorted(task_dict.items())
    }


def _request_total(task_dict: dict, limit: int | None) -> int:
    """How many requests lm-eval will send: one per choice (multiple choice) or per doc."""
    total = 0
    for task in task_dict.values():
        docs = list(task.eval_docs)
        if limit is not None:
            docs = docs[:limit]
        if task.OUTPUT_TYPE == "multiple_choice":
            total += sum(len(task.doc_to_choice(doc)) for doc in docs)
        else:
            total += len(docs) * max(1, int(task.config.repeats or 1))
    return total


def run_arm(spec: ArmSpec, report: Report, *, lm: Any = None) -> ArmOutcome:
    """Evaluate ``spec`` and return its metrics, results JSON, samples and repro data.

    ``lm`` is a ready model for the spec's base and adapter (a shared pass's view);
    without it the spec's backend makes one."""
    from lm_eval.tasks import TaskManager

    started = time.monotonic()
    backend = get_backend(spec.backend)
    # Only the suite's own tasks: indexing lm-eval's thousands of built-in YAMLs costs seconds.
    manager = TaskManager(include_path=str(spec.suite_dir), include_defaults=False)
    task_dict = manager.load(list(spec.tasks))["tasks"]
    missing = [t for t in spec.tasks if t not in task_dict]
    if missing:
        raise ValueError(f"suite tasks not found: {', '.join(missing)}")
    total = _request_total(task_dict, spec.limit)

    shared = lm is not None
    try:
        if lm is None:
            lm = backend.make_lm(base_path=spec.base_path, adapter_path=spec.adapter_path, batch_size=spec.batch_size)
        return _evaluate(spec, backend, lm, manager, task_dict, total, report, started, shared=shared)
    finally:
        backend.release()  # the engine backend unloads the adapter it loaded


def _evaluate(
    spec: ArmSpec, backend, lm, manager, task_dict: dict, total: int, report: Report, started: float, *, shared: bool
) -> ArmOutcome:
    import lm_eval

    from .retrievers import make_retriever
    from .wrappers import ProgressLM, RagLM

    tokenizer = getattr(lm, "tokenizer", None)
    rag = None
    if spec.rag is not None:
        rag = RagLM(lm, make_retriever(spec.rag.retriever, spec.rag.corpus), spec.rag.top_k)
        lm = rag
    tokens = 0
    prompts: dict[tuple[str, int], int] = {}  # (task, doc) -> prompt tokens

    def on_chunk(done: int, _: int, requests) -> None:
        nonlocal tokens
        if tokenizer is not None:
            tokens += sum(
                len(tokenizer(" ".join(str(a) for a in r.args[:2] if isinstance(a, str))).input_ids) for r in requests
            )
            # After the model ran: a RAG arm's context holds its passages by now (in place).
            for r in requests:
                key = (r.task_name, r.doc_id)
                if key not in prompts and r.args and isinstance(r.args[0], str):
                    prompts[key] = len(tokenizer(r.args[0]).input_ids)
        report(requests[0].task_name if requests else "", min(done, total), total)

    wrapped = ProgressLM(lm, on_chunk, total)
    report("", 0, total)
    out = lm_eval.simple_evaluate(
        model=wrapped,
        tasks=list(task_dict.values()),
        task_manager=manager,
        batch_size=spec.batch_size,
        device=placement().device,
        limit=spec.limit,
        log_samples=True,
        system_instruction=spec.system_instruction,
        apply_chat_template=True,
        fewshot_as_multiturn=False,
        random_seed=spec.seed,
        numpy_random_seed=spec.seed,
        torch_random_seed=spec.seed,
        fewshot_random_seed=spec.seed,
        bootstrap_iters=1000,
    )
    samples = out.pop("samples", {}) or {}
    lines = [
        json.dumps({"task": task, **sample}, default=str, sort_keys=True)
        for task, rows in sorted(samples.items())
        for sample in rows
    ]
    results = json.loads(json.dumps(out, default=str))
    return ArmOutcome(
        metrics=_clean_metrics(out.get("results", {})),
        results=results,
        samples_jsonl=("\n".join(lines) + "\n").encode(),
        repro={
            "lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "",
            "task_hashes": _task_hashes(task_dict),
            "versions": results.get("versions", {}),
            "seed": spec.seed,
            "batch_size": spec.batch_size,
            "limit": spec.limit,
            "system_instruction": spec.system_instruction,
            "rag": {"retriever": spec.rag.retriever, "top_k": spec.rag.top_k} if spec.rag else None,
            **backend.describe(),
            "shared_pass": shared,
        },
        duration_seconds=time.monotonic() - started,
        requests=total,
        tokens=tokens,
        retrieved={f"{t}:{d}": ids for (t, d), ids in (rag.retrieved.items() if rag else [])},
        questions=len(prompts),
        prompt_tokens=sum(prompts.values()),
        model_seconds=wrapped.seconds,
    )
