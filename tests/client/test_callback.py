"""PefthubCallback inside a real ``Trainer.train()``: it pushes and fills in the card."""

from __future__ import annotations

import json

import pytest

from pefthub import ConnectionFailed, PefthubCallback
from tests.client.conftest import versions_of
from tests.client.training import TokenDataset, lora_model, make_trainer

pytestmark = pytest.mark.django_db(transaction=True)


def _version(full_name: str, number: int):
    from hub.models import AdapterVersion

    return AdapterVersion.objects.get(adapter__name=full_name.split("/")[1], number=number)


def _last_logged_loss(trainer) -> float:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry][-1]


def test_callback_pushes_checkpoints_and_the_final_adapter(hub, alice, tiny_base_dir, tmp_path, capsys):
    dataset = TokenDataset(6, vocab_size=128)
    model = lora_model(tiny_base_dir)
    callback = PefthubCallback(
        "alice/trained",
        token=alice.token,
        endpoint=hub,
        push_on_save=True,
        base_model="tiny-llama",
        metadata={"task_tags": ["qa"], "datasets": ["synthetic"], "extra": {"run": "test"}},
        progress=False,
    )
    trainer = make_trainer(
        model,
        dataset,
        tmp_path / "run",
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        callbacks=[callback],
    )

    trainer.train()

    # The checkpoint at step 2, then the final adapter (the save at the last step is the final push).
    assert versions_of("alice/trained") == [1, 2]
    assert [(r.version, r.created) for r in callback.pushed] == [(1, True), (2, True)]
    printed = capsys.readouterr().out
    assert "alice/trained v1 (new version" in printed and "alice/trained v2 (new version" in printed
    assert f"evaluation: {hub}/api/v1/adapters/alice/trained/versions/2/ (status: pending)" in printed
    checkpoint, final = _version("alice/trained", 1), _version("alice/trained", 2)
    assert checkpoint.metadata["checkpoint"] is True
    assert checkpoint.metadata["global_step"] == 2
    assert sorted(f.path for f in checkpoint.files.all()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]

    assert final.training_time_seconds > 0
    assert final.training_time_seconds >= checkpoint.training_time_seconds
    assert "CPU" in final.training_hardware and "torch" in final.training_hardware
    assert final.num_training_examples == len(dataset) == 6
    assert isinstance(final.metadata["final_loss"], float)
    assert final.metadata["final_loss"] == pytest.approx(_last_logged_loss(trainer))
    assert final.metadata["global_step"] == 4
    assert final.metadata["run"] == "test"
    assert "checkpoint" not in final.metadata
    assert [t.name for t in final.task_tags.all()] == ["qa"]
    assert final.datasets == ["synthetic"]
    assert final.base_model.name == "tiny-llama"


def test_callback_without_checkpoint_pushes_once(hub, alice, tiny_base_dir, tmp_path):
    dataset = TokenDataset(5, vocab_size=128, seed=1)
    callback = PefthubCallback("alice/once", token=alice.token, endpoint=hub, base_model="tiny-llama")
    trainer = make_trainer(
        lora_model(tiny_base_dir),
        dataset,
        tmp_path / "run",
        max_steps=3,
        save_strategy="steps",
        save_steps=1,
        callbacks=[callback],
    )

    trainer.train()

    assert versions_of("alice/once") == [1]
    assert _version("alice/once", 1).num_training_examples == 5


def test_callback_refuses_a_model_without_an_adapter_before_training(hub, alice, tiny_base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    callback = PefthubCallback("alice/whole", token=alice.token, endpoint=hub)
    trainer = make_trainer(
        AutoModelForCausalLM.from_pretrained(tiny_base_dir),
        TokenDataset(4, vocab_size=128),
        tmp_path / "run",
        max_steps=2,
        callbacks=[callback],
    )

    with pytest.raises(ValueError, match=r"wrap it with peft\.get_peft_model"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert versions_of("alice/whole") == []


def test_failed_final_push_keeps_the_adapter_on_disk(client, tiny_base_dir, tmp_path):
    from pefthub import Client

    alice_token = client.token

    unreachable = Client("http://127.0.0.1:9", alice_token, retries=0, progress=False)
    callback = PefthubCallback("alice/lost", client=unreachable, base_model="tiny-llama")
    trainer = make_trainer(
        lora_model(tiny_base_dir),
        TokenDataset(4, vocab_size=128),
        tmp_path / "run",
        max_steps=2,
        callbacks=[callback],
    )

    with pytest.raises(ConnectionFailed):
        trainer.train()
    kept = tmp_path / "run" / "pefthub-unpushed"
    assert sorted(p.name for p in kept.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_metadata.json",
    ]
    # What the run recorded travels with the folder: pushing it later fills the card.
    record = json.loads((kept / "training_metadata.json").read_text())
    client.push(kept, "alice/lost", base_model="tiny-llama")
    version = _version("alice/lost", 1)
    assert version.training_time_seconds == record["training_time_seconds"] > 0
    assert version.num_training_examples == 4
    assert "CPU" in version.training_hardware
    assert version.metadata["global_step"] == 2


def test_only_the_main_process_pushes(tiny_base_dir, tmp_path):
    from pefthub import Client

    class NoNetwork(Client):
        def push(self, *args, **kwargs):
            raise AssertionError("a non-main process pushed")

    callback = PefthubCallback("alice/ranks", client=NoNetwork("http://127.0.0.1:9"), push_on_save=True)
    trainer = make_trainer(
        lora_model(tiny_base_dir),
        TokenDataset(4, vocab_size=128),
        tmp_path / "run",
        max_steps=2,
        save_strategy="steps",
        save_steps=1,
        callbacks=[callback],
    )
    trainer.is_world_process_zero = lambda: False  # what every rank but 0 sees
    trainer.train()
    assert callback.pushed == []


@pytest.mark.slow
def test_callback_on_smollm2(live_server, alice, smollm2, tmp_path):
    dataset = TokenDataset(4, vocab_size=smollm2.vocab_size)
    callback = PefthubCallback(
        "alice/smol-trained", token=alice.token, endpoint=live_server.url, base_model="smollm2-135m-instruct"
    )
    trainer = make_trainer(lora_model(smollm2.local_path), dataset, tmp_path / "run", max_steps=2, callbacks=[callback])

    trainer.train()

    assert versions_of("alice/smol-trained") == [1]
    version = _version("alice/smol-trained", 1)
    assert version.training_time_seconds > 0
    assert version.training_hardware
    assert version.num_training_examples == 4
    assert version.metadata["final_loss"] == pytest.approx(_last_logged_loss(trainer))
    assert version.base_model.name == "smollm2-135m-instruct"
