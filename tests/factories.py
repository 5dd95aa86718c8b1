"""The project's test factories: users and API clients, model rows (factory_boy), the tiny
base model and real tiny peft adapters on it.

Model factories build the smallest valid row; pass what a test is about explicitly.
Fixtures (tests/conftest.py) and tests build from these; nothing imports a conftest."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import factory
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from evaluator.models import ArmRun, EvaluationJob, Suite
from hub.models import Adapter, AdapterVersion, BaseModel, Namespace


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")


# --- hub rows --------------------------------------------------------------------------------
class MemberFactory(UserFactory):
    """A user who owns the namespace of their name and has an API token (``user.token``)."""

    @factory.post_generation
    def namespace(user, create: bool, extracted, **kwargs) -> None:
        from hub import services

        if create:
            services.namespace_create(name=user.username, owner=user)
            _, user.token = services.api_token_create(user=user, name="test")


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {user.token}")
    return client


# --- tiny base model -----------------------------------------------------------------------
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


class BaseModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BaseModel
        django_get_or_create = ("name",)

    name = "tiny-base"
    display_name = "Tiny base"
    architecture = "LlamaForCausalLM"
    revision = "0" * 64
    local_path = "/nonexistent/tiny-base"
    hidden_size = 64
    num_layers = 2
    num_attention_heads = 4
    num_key_value_heads = 2
    vocab_size = 128


class NamespaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Namespace
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"ns{n}")


class AdapterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Adapter

    namespace = factory.SubFactory(NamespaceFactory)
    name = factory.Sequence(lambda n: f"adapter{n}")


class AdapterVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AdapterVersion

    adapter = factory.SubFactory(AdapterFactory)
    number = 1
    content_hash = factory.Sequence(lambda n: hashlib.sha256(f"version{n}".encode()).hexdigest())
    answers_hash = factory.LazyAttribute(lambda v: v.content_hash)
    peft_type = "LORA"
    method = AdapterVersion.Method.LORA
    rank = 4
    trainable_params = 1024
    size_bytes = 4096
    license = "mit"
    base_model = factory.SubFactory(BaseModelFactory)
    base_revision = factory.LazyAttribute(lambda v: v.base_model.revision)


# --- evaluator rows ----------------------------------------------------------------------------
class SuiteFactory(factory.django.DjangoModelFactory):
    """A domain suite with two tasks; ``policy`` is empty unless given."""

    class Meta:
        model = Suite

    slug = factory.Sequence(lambda n: f"suite{n}")
    version = "1.0.0"
    name = factory.LazyAttribute(lambda s: s.slug)
    role = Suite.Role.DOMAIN
    content_hash = factory.Sequence(lambda n: hashlib.sha256(f"suite{n}".encode()).hexdigest())
    path = "/nonexistent/suite"
    tasks = ["task_a", "task_b"]
    policy = factory.LazyFunction(dict)


def samples_blob(rows: list[dict]) -> str:
    """Store per-sample rows as the worker does (a JSONL blob); returns its sha256."""
    from hub.models import Blob
    from hub.storage import blobstore

    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    sha = hashlib.sha256(data).hexdigest()
    Blob.objects.get_or_create(sha256=sha, defaults={"size": len(data)})
    if not blobstore.blob_exists(sha):
        blobstore.blob_write(sha, io.BytesIO(data))
    return sha


class ArmRunFactory(factory.django.DjangoModelFactory):
    """One arm's stored run. ``metrics`` as lm-eval reports them: ``{task: {metric: value}}``."""

    class Meta:
        model = ArmRun

    suite = factory.SubFactory(SuiteFactory)
    suite_hash = factory.LazyAttribute(lambda r: r.suite.content_hash)
    base_model = factory.SubFactory(BaseModelFactory)
    base_revision = factory.LazyAttribute(lambda r: r.base_model.revision)
    arm = ArmRun.Arm.BASE
    adapter_hash = factory.LazyAttribute(lambda r: "" if r.arm in ("base", "base_rag") else "a" * 64)
    backend = "hf"
    settings_key = factory.Sequence(lambda n: f"{n:064x}")
    metrics = factory.LazyFunction(dict)


class EvaluationJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EvaluationJob

    version = factory.SubFactory(AdapterVersionFactory)
    suite = factory.SubFactory(SuiteFactory)
    backend = "hf"


# --- real models and adapters on disk -------------------------------------------------------------
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


def save_adapter(
    base_dir: Path,
    out: Path,
    peft_config,
    seed: int = 0,
    *,
    base_name: str = "test-org/tiny-llama",
    noise: float = 0.02,
) -> Path:
    """Save a real peft adapter of ``base_dir``. peft initialises LoRA B to zero; ``noise``
    (the default) perturbs every trainable weight so the adapter changes the outputs, and
    ``noise=0`` keeps peft's initialisation (a LoRA that changes nothing)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), peft_config)
    if noise:
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn_like(param) * noise)
    model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_name
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


SMOL = "smollm2-135m-instruct"  # the bundled base the slow tests run on


def save_smol_lora(base_dir: Path, out: Path, *, seed: int, noise: float = 0.1) -> Path:
    """A small LoRA on SmolLM2 (r=8, q/v, float32 as the installed base) whose weights
    visibly change its answers."""
    from peft import LoraConfig

    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return save_adapter(base_dir, out, config, seed, base_name=SMOL, noise=noise)


CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_tokenizer(folder: Path, vocab_size: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(vocab_size - len(specials))])}
    word = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word, eos_token="<|im_end|>", bos_token="<|im_start|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)


def save_char_tokenizer(folder: Path, vocab_size: int) -> None:
    """A character-level tokenizer filling the tiny model's 128-token vocabulary, with a chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\n": 3}
    for code in range(32, 127):
        vocab[chr(code)] = len(vocab)
    extra = 0
    while len(vocab) < vocab_size:
        vocab[f"<x{extra}>"] = len(vocab)
        extra += 1
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    fast.save_pretrained(folder)


def save_tiny_qwen2(folder: Path, **overrides) -> Path:
    """A tiny random Qwen2 with a chat tokenizer: another architecture and shape than the tiny
    Llama (hidden size 32), for a second base model; ``overrides`` go to its config."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**{**TINY, "hidden_size": 32, "intermediate_size": 64, **overrides})
    Qwen2ForCausalLM(config).save_pretrained(folder)
    save_tokenizer(folder, TINY["vocab_size"])
    return folder
