"""Serving fixtures: the tiny llama with a tokenizer, served by the in-process peft engine."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.factories import client_for, register_base, save_char_tokenizer, save_smol_lora
from tests.utils import folder_files, upload

SERVING_TASKS = {
    "version.created": [],
    "version.accepted": ["serving.version_accepted"],
    "version.deprecated": ["serving.version_deprecated"],
    "version.withdrawn": ["serving.version_withdrawn"],
    "adapter.deleted": ["serving.adapter_deleted"],
    "base_model.revision_added": ["serving.base_revision_added"],
}


@pytest.fixture(scope="session")
def served_base_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """The tiny llama plus a tokenizer (the shared fixture has none; an engine needs one)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.factories import TINY

    # Same shapes as the shared tiny llama (its adapters fit), but weights large enough that
    # answers depend on the prompt and the adapter (at std 0.02 every answer is the same).
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama-served") / "model"
    LlamaForCausalLM(LlamaConfig(**TINY, initializer_range=0.5)).save_pretrained(folder)
    save_char_tokenizer(folder, TINY["vocab_size"])
    return folder


def _scaled(folder: Path, out: Path, factor: float) -> Path:
    """A copy of an adapter folder with every tensor multiplied by ``factor`` (a stronger adapter)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, out)
    weights = out / "adapter_model.safetensors"
    save_file({k: v * factor for k, v in load_file(str(weights)).items()}, str(weights))
    return out


@pytest.fixture(scope="session")
def strong(tmp_path_factory, lora_dir, lora_dir_2, prompt_tuning_dir, prefix_tuning_dir, p_tuning_dir):
    """The shared adapters, scaled so each visibly changes the tiny model's answers."""
    root = tmp_path_factory.mktemp("strong")
    return {
        "lora": _scaled(lora_dir, root / "lora", 30.0),
        "lora2": _scaled(lora_dir_2, root / "lora2", 30.0),
        "prompt": _scaled(prompt_tuning_dir, root / "prompt", 3.0),
        "prefix": _scaled(prefix_tuning_dir, root / "prefix", 30.0),
        "ptuning": _scaled(p_tuning_dir, root / "ptuning", 3.0),
    }


@pytest.fixture(autouse=True)
def _serving_settings(settings, tmp_path):
    settings.PEFTHUB_SERVING_DIR = tmp_path / "serving"
    settings.PEFTHUB_EVENT_TASKS = SERVING_TASKS
    settings.PEFTHUB_SERVING_ROUTES = {
        "base": "peft",
        "lora": "peft",
        "qlora": "peft",
        "dora": "peft",
        "prompt_tuning": "peft",
        "prefix_tuning": "peft",
        "p_tuning": "peft",
    }
    settings.PEFTHUB_VLLM_BASE_MODEL = "not-this-one"
    settings.PEFTHUB_SERVING_ANONYMOUS = True
    # the gateway's limits count in the test Redis, under a prefix of this test's own;
    # high enough that only the tests of the limits meet them
    settings.PEFTHUB_SERVING_LIMITS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings.PEFTHUB_SERVING_LIMITS_PREFIX = f"pefthub-test-{uuid.uuid4().hex}"
    settings.PEFTHUB_SERVING_RATE_TOKEN = settings.PEFTHUB_SERVING_RATE_ADDRESS = "10000/minute"
    settings.PEFTHUB_SERVING_CONCURRENCY_TOKEN = settings.PEFTHUB_SERVING_CONCURRENCY_ADDRESS = 64
    settings.PEFTHUB_METRICS_TOKEN = ""


@pytest.fixture
def served_base(db, served_base_dir):
    return register_base(served_base_dir, "tiny-llama", "test-org/tiny-llama", "0" * 64)


@pytest.fixture
def engine(served_base):
    """The process's peft engine for the tiny llama, holding no adapters at the start (made
    afresh: another test may have left one on another folder under the same base name)."""
    from serving.engines import get_engine, reset_engines

    reset_engines()
    engine = get_engine("peft", base_name="tiny-llama", base_path=Path(served_base.local_path))
    for name in list(engine.loaded()):
        engine.unload(name)
    yield engine
    for name in list(engine.loaded()):
        engine.unload(name)


def push(client, repo: str, folder: Path, *, private: bool = False) -> dict:
    """Create ``repo`` if needed and upload ``folder`` as a new version; the version's JSON."""
    namespace, name = repo.split("/")
    created = client.post(
        "/api/v1/adapters/", {"namespace": namespace, "name": name, "private": private}, format="json"
    )
    assert created.status_code in (201, 409), created.content
    response = upload(client, repo, folder_files(folder), base_model="tiny-llama")
    assert response.status_code in (200, 201), response.content
    return response.json()


def accept(repo: str, number: int):
    """What the evaluator does when a version passes: set it accepted (emits version.accepted)."""
    from django.test import TestCase

    from hub.models import AdapterVersion
    from hub.services import adapter_version_set_status

    namespace, name = repo.split("/")
    version = AdapterVersion.objects.get(adapter__namespace__name=namespace, adapter__name=name, number=number)
    # the hub emits version.accepted after commit; run it now, as a real commit would
    with TestCase.captureOnCommitCallbacks(execute=True):
        return adapter_version_set_status(version=version, status="accepted", reasons=["test"])


@pytest.fixture
def live(served_base, alice, strong, engine):
    """Alice's adapters, pushed and accepted: one of each servable method, plus a private LoRA."""
    client = client_for(alice)
    repos = {f"alice/{name}": folder for name, folder in strong.items()}
    for repo, folder in repos.items():
        push(client, repo, folder)
        accept(repo, 1)
    push(client, "alice/secret", strong["lora"], private=True)
    accept("alice/secret", 1)
    return repos


@pytest.fixture(scope="session")
def smol_loras(installed, tmp_path_factory) -> list[Path]:
    """Four small LoRAs on SmolLM2 (r=8, q/v), with weights that visibly change its answers."""
    root = tmp_path_factory.mktemp("smol-loras")
    return [save_smol_lora(Path(installed.path), root / f"lora{seed}", seed=seed) for seed in range(4)]
