"""Evaluation backends: how an lm-eval ``LM`` for the shared base (+ adapter) is made.

A small registry keyed by name; the suite or the settings pick one. ``hf`` is lm-eval's
own ``hf`` model with ``peft=``: it runs every method (LoRA, prompt, prefix, P-tuning)
and is the embedded default.
"""

from __future__ import annotations

import abc
from pathlib import Path


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


BACKENDS: dict[str, type[EvalBackend]] = {HFPeftBackend.name: HFPeftBackend}


def get_backend(name: str) -> EvalBackend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"evaluation backend `{name}` is not known; use one of {', '.join(BACKENDS)}") from None
