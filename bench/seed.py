"""Fill the bench database with a realistic catalog, fast, with ``bulk_create``.

The upload path validates every file and would take hours for 10,000 adapters, so the
rows are written directly: namespaces with members, adapters with one version each,
its blobs and files, task tags, and the denormalised ``Adapter.latest_version`` /
``version_count`` the catalog reads. Values vary the way a public hub's would
(methods, licenses, tags, base models, ~10 % private, a year and a half of history).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from hub import services
from hub.models import (
    Adapter,
    AdapterVersion,
    BaseModel,
    BaseModelAlias,
    Blob,
    Membership,
    Namespace,
    TaskTag,
    VersionFile,
)

BATCH = 1000
MEMBER = "bench-member"
TASKS = [
    "qa", "chat", "summarization", "code", "translation", "classification", "math", "reasoning",
    "rag", "extraction", "sql", "medical", "legal", "finance", "instruction-following", "safety",
    "roleplay", "tool-use",
]  # fmt: skip
WORDS = [
    "chat", "sql", "summarize", "medical", "legal", "code", "math", "support", "qa", "translate",
    "news", "review", "poetry", "tool", "agent", "extract", "classify", "finance", "tutor", "story",
]  # fmt: skip
DATASETS = ["squad", "gsm8k", "alpaca", "dolly-15k", "openassistant", "xsum", "spider", "pubmedqa"]
LICENSES = {"apache-2.0": 40, "mit": 25, "llama3.2": 10, "cc-by-4.0": 8, "cc-by-nc-4.0": 7, "": 10}
# method -> (peft_type, weight)
METHODS = {
    "lora": ("LORA", 60),
    "qlora": ("LORA", 12),
    "dora": ("LORA", 8),
    "ia3": ("IA3", 7),
    "prompt_tuning": ("PROMPT_TUNING", 6),
    "prefix_tuning": ("PREFIX_TUNING", 4),
    "p_tuning": ("P_TUNING", 3),
}
# name -> (display, hidden, intermediate, layers, heads, kv heads, vocab, alias, weight)
BASES = {
    "smollm2-135m-instruct": ("SmolLM2-135M-Instruct", 576, 1536, 30, 9, 3, 49152,
                              "HuggingFaceTB/SmolLM2-135M-Instruct", 50),
    "smollm2-360m-instruct": ("SmolLM2-360M-Instruct", 960, 2560, 32, 15, 5, 49152,
                              "HuggingFaceTB/SmolLM2-360M-Instruct", 25),
    "qwen2.5-0.5b-instruct": ("Qwen2.5-0.5B-Instruct", 896, 4864, 24, 14, 2, 151936,
                              "Qwen/Qwen2.5-0.5B-Instruct", 15),
    "llama-3.2-1b-instruct": ("Llama-3.2-1B-Instruct", 2048, 8192, 16, 32, 8, 128256,
                              "meta-llama/Llama-3.2-1B-Instruct", 10),
}  # fmt: skip
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
README = (
    "---\nlicense: {license}\ntags: [{tags}]\n---\n# {name}\n\n"
    + "A {method} adapter for {base}, trained for {tags} on {dataset}. " * 4
    + "\n\n## Training\n\n"
    + "Trained for 3 epochs with a cosine schedule, learning rate 2e-4, batch size 16. " * 8
    + "\n\n## Evaluation\n\n"
    + "Exact match and F1 on the held-out split; see the training run for curves. " * 6
)


@dataclass
class Seeded:
    """What the catalog benchmark needs to know about the seeded data."""

    adapters: int
    private: int
    member_token: str
    member_namespaces: int
    visible_to_member: int
    counts: dict[str, int]


def _pick(rng: random.Random, weights: dict[str, Any]) -> str:
    keys = list(weights)
    values = [w[-1] if isinstance(w, tuple) else w for w in weights.values()]
    return rng.choices(keys, weights=values)[0]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _bases() -> dict[str, BaseModel]:
    """The four base models, reusing one the upload benchmark registered for real."""
    out: dict[str, BaseModel] = {}
    for name, (display, hidden, inter, layers, heads, kv, vocab, alias, _) in BASES.items():
        head_dim = hidden // heads
        shapes = {
            "q_proj": [hidden, hidden], "k_proj": [hidden, kv * head_dim], "v_proj": [hidden, kv * head_dim],
            "o_proj": [hidden, hidden], "gate_proj": [hidden, inter], "up_proj": [hidden, inter],
            "down_proj": [inter, hidden],
        }  # fmt: skip
        modules = {
            f"model.layers.{i}.{'mlp' if m in ('gate_proj', 'up_proj', 'down_proj') else 'self_attn'}.{m}": [
                "linear",
                *shape,
            ]
            for i in range(layers)
            for m, shape in shapes.items()
        }
        base, created = BaseModel.objects.get_or_create(
            name=name,
            defaults={
                "display_name": display, "architecture": "LlamaForCausalLM", "revision": _sha(name),
                "license": "apache-2.0", "local_path": f"/models/{name}", "hidden_size": hidden,
                "num_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
                "vocab_size": vocab, "modules": modules,
            },
        )  # fmt: skip
        if created:
            BaseModelAlias.objects.create(base_model=base, alias=alias)
        out[name] = base
    return out


def _card(rng: random.Random, method: str, base: BaseModel) -> dict[str, Any]:
    """The typed card columns of one version, with a plausible peft config."""
    peft_type = METHODS[method][0]
    hidden, layers = base.hidden_size, base.num_layers
    card: dict[str, Any] = {"peft_type": peft_type, "method": method, "target_modules": []}
    config: dict[str, Any] = {"peft_type": peft_type, "task_type": "CAUSAL_LM", "inference_mode": True,
                              "base_model_name_or_path": base.name, "revision": None}  # fmt: skip
    if peft_type == "LORA":
        rank = rng.choice([4, 8, 16, 32, 64])
        targets = sorted(rng.choice([LINEAR[:4], ["q_proj", "v_proj"], LINEAR]))
        params = layers * len(targets) * rank * 2 * hidden
        card.update(rank=rank, alpha=2.0 * rank, target_modules=targets)
        config.update(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=targets, bias="none",
                      use_dora=method == "dora", use_rslora=False, fan_in_fan_out=False,
                      init_lora_weights=True, layers_to_transform=None, layers_pattern=None,
                      rank_pattern={}, alpha_pattern={}, modules_to_save=None, megatron_config=None,
                      megatron_core="megatron.core", loftq_config={}, layer_replication=None)  # fmt: skip
        if method == "qlora":
            card.update(quantization_bits=4, quantization_type="nf4")
    elif peft_type == "IA3":
        targets = ["down_proj", "k_proj", "v_proj"]
        params = layers * hidden * 3
        card.update(target_modules=targets)
        config.update(target_modules=targets, feedforward_modules=["down_proj"], init_ia3_weights=True)
    else:
        tokens = rng.choice([8, 16, 20, 32])
        params = tokens * hidden * (2 * layers if peft_type == "PREFIX_TUNING" else 1)
        card.update(num_virtual_tokens=tokens)
        config.update(num_virtual_tokens=tokens, token_dim=hidden, num_transformer_submodules=1,
                      num_attention_heads=base.num_attention_heads, num_layers=layers)  # fmt: skip
    card.update(trainable_params=params, config=config)
    return card


def seed_catalog(n_adapters: int, *, seed: int = 1234) -> Seeded:
    """Insert ``n_adapters`` adapters (one version each) and a member with a token."""
    rng = random.Random(seed)
    now = timezone.now()
    User = get_user_model()
    bases = _bases()
    # The upload benchmark may have created some tags already.
    TaskTag.objects.bulk_create([TaskTag(name=n) for n in TASKS], ignore_conflicts=True)
    tags = {t.name: t for t in TaskTag.objects.filter(name__in=TASKS)}

    n_users = max(20, n_adapters // 25)
    n_namespaces = max(20, n_adapters // 16)
    User.objects.bulk_create([User(username=f"user{i:05d}", password="!") for i in range(n_users)], batch_size=BATCH)
    users = list(User.objects.filter(username__startswith="user").order_by("pk"))
    member = User.objects.create_user(MEMBER)
    _, token = services.api_token_create(user=member, name="bench")
    prefixes = ["team", "lab", "org", "dev", "ml"]
    namespaces = Namespace.objects.bulk_create(
        [Namespace(name=f"{rng.choice(prefixes)}-{i:05d}") for i in range(n_namespaces)], batch_size=BATCH
    )
    memberships = [
        Membership(namespace=ns, user=users[i % n_users], role=Membership.Role.OWNER) for i, ns in enumerate(namespaces)
    ]
    mine = rng.sample(namespaces, 8)
    memberships += [Membership(namespace=ns, user=member, role=Membership.Role.WRITER) for ns in mine]
    Membership.objects.bulk_create(memberships, batch_size=BATCH)

    adapters: list[Adapter] = []
    popularity = random.Random(seed + 1)  # download counts: long-tailed, apart from the rest's draws
    for i in range(n_adapters):
        words = rng.sample(WORDS, 2)
        adapters.append(
            Adapter(
                namespace=rng.choice(namespaces),
                name=f"{words[0]}-{words[1]}-{i:05d}",
                private=rng.random() < 0.10,
                description=f"{words[0].capitalize()} {words[1]} adapter number {i}, "
                f"fine-tuned on {rng.choice(DATASETS)}; see the README for evaluation results.",
                created_by=rng.choice(users),
                downloads=int(10 * popularity.paretovariate(1.2)) - 10,
            )
        )
    Adapter.objects.bulk_create(adapters, batch_size=BATCH)

    versions: list[AdapterVersion] = []
    blobs: list[Blob] = []
    tagged: list[tuple[int, list[str]]] = []
    for i, adapter in enumerate(adapters):
        method = _pick(rng, METHODS)
        base = bases[_pick(rng, BASES)]
        card = _card(rng, method, base)
        license_ = _pick(rng, LICENSES)
        task_tags = rng.sample(TASKS, rng.choice([1, 1, 2, 3]))
        if rng.random() < 0.12 and "qa" not in task_tags:
            task_tags.append("qa")
        weights_size = card["trainable_params"] * rng.choice([2, 4])
        blobs += [Blob(sha256=_sha(f"w{i}"), size=weights_size), Blob(sha256=_sha(f"c{i}"), size=1200)]
        dataset = rng.choice(DATASETS)
        versions.append(
            AdapterVersion(
                adapter=adapter,
                number=1,
                content_hash=_sha(f"v{i}"),
                status=rng.choices(["accepted", "pending", "rejected"], [70, 20, 10])[0],
                deprecated_at=now if rng.random() < 0.03 else None,
                size_bytes=weights_size + 1200,
                license=license_,
                datasets=[dataset],
                training_time_seconds=round(rng.uniform(60, 36000), 1),
                training_hardware=rng.choice(["1x A100 80GB", "1x RTX 4090", "8x H100", "1x L4"]),
                num_training_examples=rng.randint(500, 200_000),
                base_model=base,
                base_revision=base.revision,
                created_by=adapter.created_by,
                metadata={"epochs": 3, "learning_rate": 2e-4, "seed": i},
                readme=README.format(
                    license=license_,
                    tags=", ".join(task_tags),
                    name=adapter.name,
                    method=method,
                    base=base.name,
                    dataset=dataset,
                ),
                **card,
            )
        )
        tagged.append((i, task_tags))
    Blob.objects.bulk_create(blobs, batch_size=BATCH)
    AdapterVersion.objects.bulk_create(versions, batch_size=BATCH)
    VersionFile.objects.bulk_create(
        [
            VersionFile(version=v, path=path, blob_id=_sha(f"{kind}{i}"))
            for i, v in enumerate(versions)
            for path, kind in (("adapter_config.json", "c"), ("adapter_model.safetensors", "w"))
        ],
        batch_size=BATCH,
    )
    through = AdapterVersion.task_tags.through
    through.objects.bulk_create(
        [through(adapterversion_id=versions[i].pk, tasktag_id=tags[t].pk) for i, ts in tagged for t in ts],
        batch_size=BATCH,
    )

    # bulk_create stamps auto_now/auto_now_add fields with "now"; bulk_update does not,
    # so this is where the history and the denormalised latest version are set.
    for adapter, version in zip(adapters, versions, strict=True):
        age = timedelta(days=rng.uniform(0, 540))
        adapter.created_at = now - age
        adapter.updated_at = adapter.created_at + age * rng.random()
        adapter.latest_version_id = version.pk
        adapter.version_count = 1
        adapter.latest_size_bytes = version.size_bytes
        adapter.latest_trainable_params = version.trainable_params
    Adapter.objects.bulk_update(
        adapters,
        ["created_at", "updated_at", "latest_version", "version_count", "latest_size_bytes", "latest_trainable_params"],
        batch_size=BATCH,
    )
    _analyze()

    mine_ids = {ns.pk for ns in mine}
    private = sum(a.private for a in adapters)
    hidden = sum(a.private and a.namespace_id not in mine_ids for a in adapters)
    return Seeded(
        adapters=n_adapters,
        private=private,
        member_token=token,
        member_namespaces=len(mine),
        visible_to_member=n_adapters - hidden,
        counts={
            "users": n_users + 1,
            "namespaces": n_namespaces,
            "adapters": n_adapters,
            "versions": len(versions),
            "blobs": len(blobs),
            "version_files": 2 * len(versions),
            "version_task_tags": sum(len(ts) for _, ts in tagged),
        },
    )


def _analyze() -> None:
    """Fresh planner statistics (and, on PostgreSQL, a visibility map) as autovacuum would leave."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
