"""Fixtures: a tiny random Llama with SmolLM2's head layout, and real peft adapters on it
(built with ``builders.new_llama`` and ``builders.save_adapter``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.specs import BaseModelSpec
from tests.hub.validation.builders import Upload, new_llama, save_adapter, spec_from_model

pytest.importorskip("peft")


@pytest.fixture(scope="session")
def tiny_spec() -> BaseModelSpec:
    return spec_from_model(new_llama(), "tiny-llama")


@pytest.fixture
def make_adapter(tmp_path: Path) -> Callable[..., Upload]:
    """Save a real peft adapter of the given config on a fresh tiny model."""
    counter = iter(range(1000))

    def make(peft_config: Any) -> Upload:
        return save_adapter(new_llama(), peft_config, tmp_path / f"adapter{next(counter)}")

    return make


@pytest.fixture
def lora(make_adapter: Callable[..., Upload]) -> Upload:
    """A plain LoRA on q/k/v, r=4: the starting point most rejection tests edit."""
    from peft import LoraConfig

    return make_adapter(
        LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"])
    )
