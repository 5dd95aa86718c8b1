"""A tiny chat model (real tokenizer with a chat template, random weights) so the whole
evaluation pipeline — lm-eval, peft, retrieval, Celery — runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.suites_registry import SHIPPED_DIR

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


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
    from tests.conftest import register_base

    return register_base(tiny_chat_dir, "tiny-chat", "test-org/tiny-chat", "1" * 64)


@pytest.fixture(scope="session")
def tiny_chat_lora_dir(tiny_chat_dir, tmp_path_factory) -> Path:
    from peft import LoraConfig

    from tests.conftest import _save_adapter

    out = _save_adapter(
        tiny_chat_dir,
        tmp_path_factory.mktemp("tiny-chat-lora"),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "test-org/tiny-chat"
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


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

    from tests.conftest import _save_adapter

    out = _save_adapter(
        tiny_chat_dir,
        tmp_path_factory.mktemp("tiny-chat-prompt"),
        PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
    )
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "test-org/tiny-chat"
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


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
